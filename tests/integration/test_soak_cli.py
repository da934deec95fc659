"""`memsleuth soak` as a subprocess against real local servers and real commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from memsleuth.errors import ExitCode
from memsleuth.store import Store
from tests.conftest import EXAMPLES, free_port, memsleuth_cmd

SERVER = str(EXAMPLES / "soak_server.py")
pytestmark = pytest.mark.xdist_group("soak_cli")  # servers on loopback ports, one at a time


def _serving(port: int, listen: int | None = None) -> list[str]:
    """--url of the example server's items on `port`, and the command that starts it on
    `listen` (the same port unless given)."""
    url = f"http://127.0.0.1:{port}/api/items"
    return ["--url", url, "--", sys.executable, SERVER, "--port", str(listen or port)]


def _soak(store: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        memsleuth_cmd("soak", "--store", str(store), *args),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_leaking_server_fails_with_its_bytes_per_request(tmp_path: Path) -> None:
    port = free_port()
    out = _soak(
        tmp_path / "m.db",
        "--cycles",
        "600",
        "--json",
        *_serving(port),
        "--leak",
        "8192",
    )
    assert out.returncode == 3, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "leak" and not result["ok"]
    kept = sys.getsizeof(bytes(8192)) + 8  # the bytes object and its slot in SEEN
    assert result["bytes_per_unit"] == pytest.approx(kept, rel=0.2)
    assert result["units"] == 600 and result["errors"] == 0
    assert set(result["latency_s"]) == {"p50", "p90", "p99", "max"}
    with Store(tmp_path / "m.db", readonly=True) as store:
        run = store.get_run(result["run_id"])
        series = store.load_series(run.id)
    assert run.kind == "soak" and run.ended_at is not None
    assert series.get("work") is not None and series.get("latency_s") is not None


def test_a_server_that_does_not_leak_passes(tmp_path: Path) -> None:
    port = free_port()
    out = _soak(
        tmp_path / "m.db",
        "--cycles",
        "600",
        *_serving(port),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok (" in out.stdout and "B per request" in out.stdout
    assert "latency: p50" in out.stdout
    # memsleuth stopped the server at the soak's end: its SIGTERM's status is no failure (it
    # had read "the target exited with status 143; the verdict reads its memory up to then").
    store = ("--store", str(tmp_path / "m.db"))
    analyzed = subprocess.run(memsleuth_cmd("analyze", *store), capture_output=True, text=True)
    assert "exited with status" not in analyzed.stdout, analyzed.stdout
    runs = subprocess.run(memsleuth_cmd("runs", *store), capture_output=True, text=True)
    assert "soak done: " in runs.stdout and "status 143" not in runs.stdout, runs.stdout


def test_sigterm_stops_the_soak_and_the_server_it_started(tmp_path: Path) -> None:
    # A CI job's timeout sends SIGTERM: the server memsleuth started must not outlive it.
    port = free_port()
    cmd = memsleuth_cmd("soak", "--store", str(tmp_path / "m.db"), "--cycles", "1000000")
    cmd += ["--url", f"http://127.0.0.1:{port}/api/items", "--", sys.executable, SERVER]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stderr=subprocess.PIPE, text=True)
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while not me.children() and time.monotonic() < deadline:
        time.sleep(0.1)
    servers = me.children()
    assert servers, "the soak never started its server"
    time.sleep(1.0)  # soaking now
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.TERMINATED, err
    assert "error: terminated (SIGTERM) after" in err and "Traceback" not in err
    # The command it names finds the run: with the store it is in ("see: memsleuth analyze 2"
    # had failed with "no store at memsleuth.db").
    assert f"kept as run 1: `memsleuth analyze --store {tmp_path / 'm.db'} 1`" in err, err
    _, alive = psutil.wait_procs(servers, timeout=10)
    assert not alive, f"the server outlived the soak: {alive}"
    with Store(tmp_path / "m.db", readonly=True) as store:
        assert store.list_runs()[0].ended_at is not None


def test_a_short_soak_whose_requests_all_fail_is_an_error_not_ok(tmp_path: Path) -> None:
    port = free_port()
    out = _soak(
        tmp_path / "m.db",
        "--cycles",
        "5",  # fewer than the 20 requests after which a failing soak is aborted
        "--url",
        f"http://127.0.0.1:{port}/no-such-path",
        "--",
        sys.executable,
        SERVER,
        "--port",
        str(port),
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "error: 6 of 6 requests" in out.stderr and "HTTP 404" in out.stderr
    assert "hint: " in out.stderr and "Traceback" not in out.stderr
    assert "ok (" not in out.stdout


def test_a_url_off_loopback_is_refused_with_a_hint(tmp_path: Path) -> None:
    out = _soak(
        tmp_path / "m.db",
        "--cycles",
        "10",
        "--url",
        "http://10.1.2.3:8080/",
        "--",
        sys.executable,
        SERVER,
    )
    assert out.returncode == 2
    assert "error: 10.1.2.3 is not a loopback address" in out.stderr
    assert "hint:" in out.stderr and "--allow-remote" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_server_that_never_listens_is_an_error_and_the_run_is_kept(tmp_path: Path) -> None:
    # Hold the asked-for port bound but not listening, so no parallel test can take it.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    other = blocker.getsockname()[1]
    port = free_port()
    with blocker:
        out = _soak(
            tmp_path / "m.db",
            "--cycles",
            "10",
            "--listen-timeout",
            "2s",
            *_serving(other, listen=port),
        )
    assert out.returncode == 1
    assert f"error: nothing listens on 127.0.0.1:{other} after 2 s" in out.stderr
    assert "the partial run is kept as run 1" in out.stderr
    with Store(tmp_path / "m.db", readonly=True) as store:
        run = store.get_run(1)
    assert run.kind == "soak" and "nothing listens" in run.note and run.ended_at is not None


def test_a_port_something_else_serves_is_refused_before_the_server_starts(
    tmp_path: Path,
) -> None:
    # The server started could not bind and died; the soak had driven the other process and
    # judged the dead server's start-up: "FAILED (leak)" in one run, "ok (stable)" in the next.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    with squatter:
        out = _soak(
            tmp_path / "m.db",
            "--cycles",
            "20",
            *_serving(port),
        )
    assert out.returncode == ExitCode.ERR, out.stdout
    lines = out.stderr.splitlines()
    assert lines[0].startswith(f"error: something already listens on 127.0.0.1:{port} (pid ")
    assert lines[0].endswith(", before the server was started") and lines[1].startswith("hint:")
    assert not (tmp_path / "m.db").exists()  # nothing was started, nothing recorded


def test_a_server_whose_port_another_process_answers_on_is_refused() -> None:
    from memsleuth.soak.server import Target, served_by

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with squatter, pytest.raises(Exception, match="not the server started") as err:
            served_by(Target("127.0.0.1", port, "/"), server)
        assert f"(pid {os.getpid()}: " in str(err.value)
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_command_soak_stops_its_run_in_flight(tmp_path: Path, signum: int) -> None:
    # A signal to memsleuth alone (a CI timeout's SIGTERM, `kill -INT`) had left the run it
    # was waiting on running, and the spawner printed a BrokenPipeError traceback.
    cmd = memsleuth_cmd("soak", "--store", str(tmp_path / "m.db"), "--cycles", "10")
    proc = subprocess.Popen([*cmd, "--", "sleep", "37"], stderr=subprocess.PIPE, text=True)
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    runs: list[psutil.Process] = []
    while not runs and time.monotonic() < deadline:
        runs = [p for p in me.children(recursive=True) if p.name() == "sleep"]
        time.sleep(0.1)
    assert runs, "the soak never started its command"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (ExitCode.TERMINATED, ExitCode.INTERRUPTED), err
    # Stopped in its first run, it had measured nothing: no empty run is kept or named.
    assert "Traceback" not in err and "nothing had been measured yet" in err, err
    with Store(tmp_path / "m.db", readonly=True) as store:
        assert store.list_runs() == []
    _, alive = psutil.wait_procs(runs, timeout=10)
    assert not alive, f"the run outlived the soak: {alive}"


def test_a_command_run_n_times_is_judged_on_its_peak(tmp_path: Path) -> None:
    out = _soak(
        tmp_path / "m.db",
        "--cycles",
        "20",
        "--json",
        "--",
        sys.executable,
        "-c",
        "x = bytes(2_000_000)",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["unit"] == "run" and result["units"] == 20
    assert result["rss_bytes"][0] > 2_000_000  # each run's own peak


def test_a_soak_too_short_for_an_interval_says_so(tmp_path: Path) -> None:
    out = _soak(tmp_path / "m.db", "--cycles", "3", "--", sys.executable, "-c", "pass")
    assert out.returncode == 0, out.stderr
    assert "(inconclusive)" in out.stdout and "too few samples for a 95% CI" in out.stdout
    assert "inf" not in out.stdout, out.stdout


def test_a_command_whose_peak_grows_under_memsleuths_own_size_fails(tmp_path: Path) -> None:
    # Each run touches 300 kB more than the last, peaking far under memsleuth's own ~40 MiB.
    # Spawned from memsleuth itself, the kernel reported every peak as memsleuth's: +0 B, ok.
    script = tmp_path / "grows.py"
    script.write_text(
        "import pathlib\n"
        f"p = pathlib.Path({str(tmp_path / 'n')!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "x = bytearray(300_000 * n)\n"
        "for i in range(0, len(x), 4096):\n"
        "    x[i] = 1\n"
    )
    out = _soak(tmp_path / "m.db", "--cycles", "30", "--json", "--", sys.executable, str(script))
    assert out.returncode == 3, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "leak"
    lo, hi = result["bytes_per_unit_ci"]
    assert lo < 300_000 < hi or abs(result["bytes_per_unit"] - 300_000) < 30_000, result
    assert result["rss_bytes"][1] < 30 * 2**20  # the run's own peak, not memsleuth's


def test_a_failing_command_is_an_error_and_the_runs_before_are_kept(tmp_path: Path) -> None:
    script = tmp_path / "flaky.py"
    marker = tmp_path / "count"
    script.write_text(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "sys.exit(4 if n == 5 else 0)\n"
    )
    out = _soak(tmp_path / "m.db", "--cycles", "20", "--", sys.executable, str(script))
    assert out.returncode == 1
    assert "error: the command failed on run 5 of 22 (exit status 4)" in out.stderr
    assert "the 4 runs before are kept as run 1" in out.stderr
    with Store(tmp_path / "m.db", readonly=True) as store:
        assert store.get_run(1).sample_count == 4
    # Failing on its first run, it keeps nothing, and says nothing was kept: an empty run had
    # been kept, and named in the hint ("the 0 runs before are kept as run 2").
    out = _soak(tmp_path / "m.db", "--cycles", "20", "--", sys.executable, "-c", "exit(4)")
    assert out.returncode == 1 and "kept" not in out.stderr, out.stderr
    with Store(tmp_path / "m.db", readonly=True) as store:
        assert [r.id for r in store.list_runs()] == [1]


def test_a_command_soak_watches_a_long_lived_process_with_pid(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, SERVER, "--port", str(port), "--leak", "131072"])
    try:
        client = (
            "import socket, time, urllib.request\n"
            "for _ in range(100):\n"
            "    try:\n"
            f"        urllib.request.urlopen('http://127.0.0.1:{port}/api/x').read(); break\n"
            "    except OSError: time.sleep(0.05)\n"
        )
        out = _soak(
            tmp_path / "m.db",
            "--cycles",
            "30",
            "--json",
            "--pid",
            str(server.pid),
            "--",
            sys.executable,
            "-c",
            client,
        )
    finally:
        server.terminate()
        server.wait()
    assert out.returncode == 3, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "leak"
    assert result["bytes_per_unit"] == pytest.approx(131072 + 41, rel=0.2)


SLOWER = """
import os, pathlib, time
p = pathlib.Path(os.environ["COUNTER"])
n = int(p.read_text()) if p.exists() else 0
p.write_text(str(n + 1))
time.sleep(0.004 * n)  # every run slower than the one before
"""


def test_a_command_soak_and_analyze_of_its_run_give_one_latency_ratio(tmp_path: Path) -> None:
    store = tmp_path / "m.db"
    env = {**os.environ, "COUNTER": str(tmp_path / "n")}
    out = subprocess.run(
        memsleuth_cmd(
            "soak", "--store", str(store), "--cycles", "40", "--warmup", "8", "--json",
            "--", sys.executable, "-c", SLOWER,
        ),
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    soaked = json.loads(out.stdout)
    assert soaked["latency_ratio"] is not None and soaked["latency_ratio"] > 1.5, soaked
    analyzed = subprocess.run(
        memsleuth_cmd("analyze", "--store", str(store), "--json", str(soaked["run_id"])),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # The warm-up runs (the fastest) are left out of both, not only of the soak's.
    assert json.loads(analyzed.stdout)["latency_ratio"] == pytest.approx(soaked["latency_ratio"])


DYING = """
import http.server, os, sys
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        global count
        count += 1
        if count == 50:
            os._exit(9)  # dies mid-soak
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_a_server_that_dies_mid_soak_is_named_as_the_cause(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "dying.py"
    script.write_text(DYING)
    out = _soak(
        tmp_path / "m.db", "--cycles", "400", "--concurrency", "1",
        "--url", f"http://127.0.0.1:{port}/", "--", sys.executable, str(script), str(port),
    )  # fmt: skip
    assert out.returncode == ExitCode.ERR, out.stderr
    first = out.stderr.strip().splitlines()[0]
    # It answered 49 (the 50th killed it); the requests that failed after were counted too.
    assert first.startswith("error: the server exited (status 9) after answering 49 "), first
    assert "check the URL" not in out.stderr and "kept as run" in out.stderr
