"""`memsleuth record` on real processes: what lands in the store, and how a run ends."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from memsleuth.cli import main
from memsleuth.guards.memory import find_cgroup_files
from memsleuth.store import Store
from tests.conftest import memsleuth_cmd, record_python

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _wait_for_samples(db: Path, n: int, timeout: float = 60.0) -> None:
    # A deadline for a busy CI machine, not a speed requirement: the first samples come in ~1 s.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with Store(db, readonly=True) as store:
                    if store.list_runs() and store.list_runs()[-1].sample_count >= n:
                        return
            except Exception:
                pass
        time.sleep(0.1)
    raise AssertionError(f"no {n} samples in {db} after {timeout} s")


def test_record_command_until_exit(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    code = "import time; b = []\nfor i in range(12): b.append(bytearray(4 << 20)); time.sleep(0.1)"
    rc = main(
        [
            "record",
            "--store",
            str(db),
            "--interval",
            "0.1",
            "-q",
            "--name",
            "grow",
            "--",
            sys.executable,
            "-c",
            code,
        ]
    )
    assert rc == 0
    with Store(db, readonly=True) as store:
        run = store.get_run("grow")
        assert run.exit_status == 0 and run.ended_at is not None
        assert run.note == "target exited"
        assert run.command[0] == sys.executable
        samples = list(store.iter_samples(run.id))
    assert len(samples) >= 5
    assert samples[-1].rss_bytes - samples[0].rss_bytes > 20 << 20  # it grew by ~48 MiB
    first = samples[0]
    assert first.threads == 1 and first.fds is not None and first.cpu_s is not None
    assert first.pss_bytes is not None and first.uss_bytes is not None  # costly reads at start
    assert first.anon_bytes and first.hwm_bytes and first.hwm_bytes >= first.rss_bytes // 2
    # The cgroup's memory, v2 or v1, wherever the host accounts it: a v1 host had recorded none.
    if find_cgroup_files() is not None:
        assert all(s.cgroup_bytes for s in samples), [s.cgroup_bytes for s in samples]


def test_a_failing_target_fails_record_and_its_run_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    code = "import sys, time; time.sleep(0.5); sys.exit(7)"
    assert main(record_python(db, code)) == 7  # like time(1): scripts and CI see the failure
    note = capsys.readouterr().err.strip().splitlines()[-1]
    assert note.startswith("memsleuth: run 1 saved (") and "exited with status 7" in note
    assert note.endswith(f"see: memsleuth analyze --store {tmp_path / 'm.db'} 1")
    with Store(db, readonly=True) as store:
        run = store.get_run()
        assert run.exit_status == 7 and run.note == "target exited" and run.sample_count >= 3
    # `runs` says how it failed: a panic, SIGKILL and SIGABRT had all read "target exited".
    assert main(["runs", "--store", str(db)]) == 0
    assert "target exited (status 7)" in capsys.readouterr().out


def _analyzed(db: Path) -> tuple[dict[str, Any], int]:
    """`analyze --json` of the store's newest run, in a process of its own: (report, exit)."""
    done = subprocess.run(
        memsleuth_cmd("analyze", "--store", str(db), "--json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(done.stdout), done.returncode


def _evidence(db: Path) -> list[str]:
    return list(_analyzed(db)[0]["evidence"])


def test_a_target_killed_by_a_signal_exits_128_plus_the_signal(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    code = "import os, signal, time; time.sleep(0.5); os.kill(os.getpid(), signal.SIGKILL)"
    p = subprocess.run(
        memsleuth_cmd(*record_python(db, code)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 128 + signal.SIGKILL, p.stderr  # 137, as a shell reports it
    assert "killed by SIGKILL" in p.stderr and "Traceback" not in p.stderr
    with Store(db, readonly=True) as store:
        run = store.get_run()
        assert run.exit_status == 137 and run.sample_count >= 3
    # The verdict says how the target ended (the exit status had been on the report's header
    # alone, and a stack overflow's analysis had read only "limit reached in 4.3 h").
    said = _evidence(db)
    assert (
        "the target was killed by SIGKILL (sent by the OOM killer, or by hand): exit status "
        "137; the verdict reads its memory up to then"
    ) in said


def test_an_exit_status_over_128_is_no_signal(tmp_path: Path) -> None:
    # exit(255), as exit(-1) gives, had read "the target was killed by signal 127".
    db = tmp_path / "m.db"
    code = "import sys, time; time.sleep(0.5); sys.exit(255)"
    p = subprocess.run(memsleuth_cmd(*record_python(db, code)), capture_output=True, timeout=60)
    assert p.returncode == 255
    said = _evidence(db)
    assert "the target exited with status 255; the verdict reads its memory up to then" in said


def test_attach_with_duration_and_children(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "c = subprocess.Popen([sys.executable, '-c', 'b = bytearray(64 << 20); "
            "import time; time.sleep(30)'])\ntime.sleep(30)",
        ]
    )
    try:
        time.sleep(1.0)
        rc = main(
            [
                "record",
                "--pid",
                str(parent.pid),
                "--children",
                "--duration",
                "1.5",
                "--interval",
                "0.25",
                "-q",
                "--store",
                str(db),
            ]
        )
        assert rc == 0
        assert parent.poll() is None  # attaching never stops the target
        with Store(db, readonly=True) as store:
            run = store.get_run()
            samples = list(store.iter_samples(run.id))
        assert run.note == "duration reached" and run.pid == parent.pid
        assert 4 <= len(samples) <= 8
        assert samples[-1].rss_bytes > 64 << 20  # the child's 64 MiB is summed in
    finally:
        for p in __import__("psutil").Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
        parent.wait()


def test_a_trees_pss_is_recorded_though_its_processes_are_read_in_turn() -> None:
    # Each process's smaps_rollup is read on its own budgeted schedule, and a field counted
    # only when every process had it read at once: with --children, a helper's pre-fork
    # server had PSS in 2 samples of 91, its report drawing "USS 3.96 MiB → 400 KiB".
    from memsleuth.sources.procfs import CostBudget, ProcSampler, identify

    code = (
        "import os, time\nshared = bytearray(40 << 20)\n"
        "for _ in range(3):\n    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)\n"
        "time.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(1.5)
        # A budget small enough that the four processes' reads come in turn, as with many.
        sampler = ProcSampler(identify(parent.pid), children=True, budget=CostBudget(0.01))
        samples = []
        for _ in range(30):
            sample = sampler.sample()
            assert sample is not None
            samples.append(sample)
            time.sleep(0.1)
        assert len(sampler.pids) == 4
        with_pss = [s for s in samples if s.pss_bytes is not None]
        assert len(with_pss) >= len(samples) // 4, len(with_pss)  # 13-16 of 30 here; 1 before
        # The 40 MiB the workers share by copy-on-write is counted once, not four times.
        last = with_pss[-1]
        assert last.pss_bytes is not None and last.pss_bytes < 0.6 * last.rss_bytes
    finally:
        for p in psutil.Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
        parent.wait()


def test_a_launcher_recorded_without_children_is_judged_with_the_process_it_started(
    tmp_path: Path,
) -> None:
    # A helper's launcher script running a leaking program: recorded without --children it
    # read `stable`, exit 0, while its child leaked 686 MiB/h.
    db = tmp_path / "m.db"
    leak = (
        "import time\nkept = []\nwhile True:\n    kept.append(b'x' * 200_000)\n    time.sleep(0.05)"
    )
    script = f'{sys.executable} -c "{leak}"; echo done'  # not exec'd: sh stays the target
    assert (
        main(["record", "--store", str(db), "--duration", "21", "-q", "--", "sh", "-c", script])
        == 0
    )
    doc, status = _analyzed(db)
    assert doc["verdict"] == "leak" and status == 3, doc["evidence"]
    assert doc["evidence"][0].startswith("judged with the process pid "), doc["evidence"]
    # The shell alone: flat, or its start-up read as a small plateau under load.
    assert doc["evidence"][0].endswith(("alone it reads stable)", "alone it reads plateau)"))
    assert doc["growth_bytes_per_hour"] == pytest.approx(4e6 * 3600, rel=0.15)


def test_a_target_that_execs_another_program_is_judged_from_the_exec(tmp_path: Path) -> None:
    # A helper's launcher held 60 MiB, then exec()ed a leaking program under the same pid:
    # the launcher's peak had been "memory stood this high before and came down", and the
    # leak read `plateau`, exit 0. Here the same interpreter, with another script.
    db = tmp_path / "m.db"
    leak = (
        "import time\nkept = []\nwhile True:\n    kept.append(b'x' * 100_000)\n    time.sleep(0.05)"
    )
    code = (
        "import os, sys, time\nb = bytearray(60 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
        f"time.sleep(4)\nos.execv(sys.executable, [sys.executable, '-c', {leak!r}])"
    )
    rc = main(["record", "--store", str(db), "--duration", "20", "--interval", "0.5", "-q", "--",
               sys.executable, "-c", code])  # fmt: skip
    assert rc == 0
    doc, status = _analyzed(db)
    assert doc["verdict"] == "leak" and status == 3, doc["evidence"]
    assert doc["evidence"][0].startswith(f"pid {doc['run']['pid']} became "), doc["evidence"]
    assert "(exec) at 4." in doc["evidence"][0] and "judged from then" in doc["evidence"][0]
    assert doc["growth_bytes_per_hour"] == pytest.approx(2e6 * 3600, rel=0.15)


def _record_sh(db: Path, script: str) -> subprocess.CompletedProcess[str]:
    """`memsleuth record -q -- sh -c SCRIPT` into db (at most 20 s)."""
    return subprocess.run(
        memsleuth_cmd("record", "--store", str(db), "--duration", "20", "-q", "--",
                      "sh", "-c", script),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_processes_a_target_left_running_are_said(tmp_path: Path) -> None:
    # A launcher that sends its program to the background and exits: the recording ended at
    # once, "inconclusive: record 3.0 s more", and the program went on leaking, unsaid.
    db = tmp_path / "m.db"
    done = _record_sh(db, "sleep 0.5; sleep 60 >/dev/null 2>&1 & sleep 1.5")
    try:
        assert done.returncode == 0, done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("memsleuth: the target exited; 1 process it started still runs: ")
        pid = int(line.split("still runs: ")[1].split()[0])
        assert psutil.Process(pid).name() == "sleep"
        assert f"`memsleuth record --pid {pid}` watches one" in line
        with Store(db, readonly=True) as store:
            assert store.get_run().note.startswith("target exited; 1 process it started")
    finally:
        for p in psutil.process_iter(["name", "cmdline"]):
            if p.info["cmdline"] == ["sleep", "60"]:
                p.kill()


def test_a_helper_that_exits_just_after_its_program_is_not_said_to_run(tmp_path: Path) -> None:
    # multiprocessing's resource tracker and forkserver exit a moment after their program: they
    # had been named "2 processes it started still run".
    db = tmp_path / "m.db"
    done = _record_sh(db, "sleep 0.5; sleep 1.3 & sleep 1")
    assert done.returncode == 0, done.stderr
    assert "still run" not in done.stderr, done.stderr
    with Store(db, readonly=True) as store:
        assert store.get_run().note == "target exited"


def test_the_worker_that_leaks_in_a_tree_is_named(tmp_path: Path) -> None:
    # A helper's pre-fork server, one worker of three leaking: recorded with --children, the
    # tree's rate was exact, but nothing said which process grew.
    db, leaker = tmp_path / "m.db", tmp_path / "leaker.pid"
    code = (
        "import os, time\n"
        "for i in range(3):\n"
        "    if os.fork() == 0:\n"
        "        kept = []\n"
        f"        if i == 1: open({str(leaker)!r}, 'w').write(str(os.getpid()))\n"
        "        while True:\n"
        "            if i == 1: kept.append(b'x' * 100_000)\n"
        "            time.sleep(0.05)\n"
        "time.sleep(600)"
    )
    rc = main(["record", "--store", str(db), "--children", "--duration", "22", "-q", "--",
               sys.executable, "-c", code])  # fmt: skip
    assert rc == 0
    doc, _ = _analyzed(db)
    assert doc["verdict"] == "leak", doc["evidence"]
    [top, *others] = doc["culprits"]
    assert top["kind"] == "process" and top["name"].startswith(f"process {leaker.read_text()} ")
    assert top["growth_per_hour"] == pytest.approx(2e6 * 3600, rel=0.15)
    assert not [c for c in others if c["kind"] == "process"]  # the idle workers and parent


RECYCLING = """
import os, time
def worker():
    kept, end = [], time.time() + 8.0
    while time.time() < end:
        kept.append(b"x" * 100_000)  # 2 MB/s while it lives
        time.sleep(0.05)
    os._exit(0)
def spawn():
    pid = os.fork()
    if pid == 0:
        worker()
    return pid
for _ in range(3):
    spawn()
    time.sleep(8.0 / 3)
while True:  # a worker that exits is replaced, as gunicorn's max_requests does
    os.wait()
    spawn()
"""


def test_workers_that_leak_and_are_recycled_are_said_to_be(tmp_path: Path) -> None:
    # A helper's pre-fork server replacing each worker after 10 s, each leaking: the tree read
    # `plateau`, ceiling 39.4 MiB, and nothing said that its nine workers had each grown
    # +3.4 GiB/h.
    db = tmp_path / "m.db"
    rc = main(["record", "--store", str(db), "--children", "--duration", "30", "-q", "--",
               sys.executable, "-c", RECYCLING])  # fmt: skip
    assert rc == 0
    doc, status = _analyzed(db)
    assert status == 0 and doc["verdict"] in ("plateau", "stable"), doc["evidence"]
    assert doc["cause"] == "recycled-workers", doc["evidence"]
    words = doc["evidence"][0]
    assert "processes that started and exited during the recording grew steadily" in words
    rate = re.search(r"\(median \+([\d.]+) GiB/h, ", words)
    assert rate is not None, words
    assert float(rate[1]) * 2**30 == pytest.approx(2e6 * 3600, rel=0.25), words
    text = subprocess.run(
        memsleuth_cmd("analyze", "--store", str(db)), capture_output=True, text=True
    ).stdout
    assert "Memory stays bounded because the processes that grow are replaced" in text


def test_a_leak_that_ends_in_an_exec_of_a_short_hook_is_judged_before_it(
    tmp_path: Path,
) -> None:
    # A helper's program leaking for 25 s, then exec()ing a 3 s hook on the same pid: judged
    # from the exec, 3 samples, "inconclusive", exit 0.
    db = tmp_path / "m.db"
    code = (
        "import os, time\nkept = []\nfor _ in range(240):\n"
        "    kept.append(b'x' * 100_000)\n    time.sleep(0.05)\n"
        "os.execvp('sh', ['sh', '-c', 'sleep 2'])"
    )
    assert main(["record", "--store", str(db), "--interval", "0.5", "-q", "--",
                 sys.executable, "-c", code]) == 0  # fmt: skip
    doc, status = _analyzed(db)
    assert doc["verdict"] == "leak" and status == 3, doc["evidence"]
    assert "became `sh -c sleep 2` (exec) at 1" in doc["evidence"][0], doc["evidence"]
    assert "too briefly to judge: judged what it ran before" in doc["evidence"][0]


def test_a_binary_deleted_while_it_runs_has_not_exec_ed(tmp_path: Path) -> None:
    # A rebuild unlinks the running binary: /proc/PID/exe gains " (deleted)", which had been
    # taken for an exec and the run judged from then.
    from memsleuth.sources.procfs import program

    exe = tmp_path / "sleeper"
    exe.write_bytes(Path("/bin/sleep").read_bytes())
    exe.chmod(0o755)
    proc = subprocess.Popen([str(exe), "30"])
    try:
        time.sleep(0.3)
        before = program(proc.pid)
        exe.unlink()
        assert before is not None and program(proc.pid) == before
    finally:
        proc.kill()
        proc.wait()


def test_a_scripts_other_commands_are_not_taken_for_what_the_target_left(
    tmp_path: Path,
) -> None:
    # A CI script without job control shares one process group: its other commands, started
    # while memsleuth recorded, had been named as processes the target left running.
    err = tmp_path / "err"
    record = " ".join(memsleuth_cmd("record", "--store", str(tmp_path / "m.db"), "-q"))
    script = f"{record} -- sleep 1.5 2> {err} & sleep 0.5; sleep 8 & wait %1"
    subprocess.run(["sh", "-c", script], timeout=60, check=True)
    try:
        assert "still run" not in err.read_text(), err.read_text()
    finally:
        for p in psutil.process_iter(["cmdline"]):
            if p.info["cmdline"] == ["sleep", "8"]:
                p.kill()


def test_sigkill_of_the_recorder_keeps_what_was_committed(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    rec = subprocess.Popen(
        memsleuth_cmd("record", "--store", str(db), "--interval", "0.2", "-q", "--", *SLEEPER)
    )
    _wait_for_samples(db, 10)
    time.sleep(1.0)
    killed_at = time.time()
    rec.kill()
    rec.wait()
    with Store(db, readonly=True) as store:
        run = store.get_run()
        samples = list(store.iter_samples(run.id))
    if run.pid is not None:  # only this test's own target: others run the same command
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.pid, signal.SIGKILL)
    assert run.ended_at is None  # killed: never closed
    assert len(samples) >= 10
    assert killed_at - samples[-1].t < 1.5  # at most the last second was lost


def test_sigint_closes_the_run_and_stops_the_target(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    rec = subprocess.Popen(
        memsleuth_cmd("record", "--store", str(db), "--interval", "0.2", "-q", "--", *SLEEPER)
    )
    _wait_for_samples(db, 5)
    rec.send_signal(signal.SIGINT)
    assert rec.wait(timeout=15) == 0
    with Store(db, readonly=True) as store:
        run = store.get_run()
    assert run.ended_at is not None and run.note == "interrupted"
    assert run.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(run.pid, 0)  # the target memsleuth started was stopped too


def test_sigterm_is_as_clean_as_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    rec = subprocess.Popen(
        memsleuth_cmd("record", "--store", str(db), "-q", "--interval", "0.2", "--", *SLEEPER)
    )
    _wait_for_samples(db, 3)
    rec.terminate()
    assert rec.wait(timeout=15) == 0
    with Store(db, readonly=True) as store:
        assert store.get_run().note == "interrupted"


def test_stopping_the_recorder_stops_what_the_target_started_too(tmp_path: Path) -> None:
    # A shell that starts the real program: stopping the shell alone had left the program
    # running (and leaking) after memsleuth was gone.
    db = tmp_path / "m.db"
    script = "import time; time.sleep(60)"
    shell = f"{sys.executable} -c '{script}' & {sys.executable} -c '{script}' & wait"
    args = ("record", "--store", str(db), "-q", "--interval", "0.2", "--", "sh", "-c", shell)
    rec = subprocess.Popen(memsleuth_cmd(*args))
    _wait_for_samples(db, 3)
    with Store(db, readonly=True) as store:
        pid = store.get_run().pid
    assert pid is not None
    family = psutil.Process(pid).children(recursive=True)
    assert len(family) == 2
    rec.terminate()
    assert rec.wait(timeout=30) == 0
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left running: {alive}"


def test_a_status_line_that_cannot_be_written_does_not_stop_the_recording(
    tmp_path: Path,
) -> None:
    # stderr on a full disk: the live line's first write had ended the recording after one
    # sample, as "recorder stopped by an error", exit 1.
    db = tmp_path / "m.db"
    args = ("record", "--store", str(db), "--interval", "0.2", "--duration", "2s", "--")
    with open("/dev/full", "w") as full:
        done = subprocess.run(memsleuth_cmd(*args, *SLEEPER), stderr=full, timeout=60)
    assert done.returncode == 0
    with Store(db, readonly=True) as store:
        run = store.get_run()
        assert run.note == "duration reached" and len(store.load_series(run.id)) >= 8
    # Piped, `runs` shows whole cells: it had squeezed itself to 80 columns ("durat…").
    listed = subprocess.run(
        memsleuth_cmd("runs", "--store", str(db)), capture_output=True, text=True, timeout=60
    )
    assert "duration reached" in listed.stdout and "…" not in listed.stdout, listed.stdout


def test_export_csv_and_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"
    main(record_python(db, "import time; time.sleep(0.6)"))
    capsys.readouterr()
    assert main(["export", "--store", str(db), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("t,rss_bytes,pss_bytes")
    assert len(lines) >= 4
    out = tmp_path / "s.jsonl"
    assert main(["export", "--store", str(db), "--format", "jsonl", "-o", str(out)]) == 0
    import json

    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["rss_bytes"] > 0 and "threads" in rows[0]


def test_plain_status_lines_without_a_terminal(tmp_path: Path) -> None:
    code = "import time; b = []\nfor i in range(70): b.append(bytearray(1 << 20)); time.sleep(0.1)"
    p = subprocess.run(
        memsleuth_cmd(
            "record",
            "--store",
            str(tmp_path / "m.db"),
            "--interval",
            "0.2",
            "--",
            sys.executable,
            "-c",
            code,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    status = [line for line in lines if line.startswith("recording ")]
    assert len(status) >= 2 and "RSS" in status[0]  # one line per 5 s, no terminal codes
    assert "\x1b[" not in p.stderr
    assert any("verdict so far:" in line for line in status[1:])
    assert "memsleuth: run 1:" in lines[-1] and "memsleuth analyze --store " in lines[-1]


def test_a_process_whose_memory_is_being_torn_down_is_gone_not_zero() -> None:
    # kill -9 of a big process: for a while its memory is being freed, /proc/PID/status has no
    # VmRSS line, and RSS had been read as 0 (the exporter served that 0 to Prometheus).
    from memsleuth.sources.procfs import ProcSampler, identify

    big = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; x = bytearray(600 << 20); print(1); "
            "sys.stdout.flush(); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert big.stdout is not None and big.stdout.readline()
    sampler = ProcSampler(identify(big.pid))
    first = sampler.sample()
    assert first is not None and first.rss_bytes > 500 << 20
    big.kill()
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = sampler.sample()
        if s is None:
            break
        seen.append(s.rss_bytes)
    big.wait()
    assert s is None, "the killed process was never seen gone"
    assert all(r > 0 for r in seen), f"RSS read as 0 while being torn down: {seen[-5:]}"


FD_LEAK = """
import resource, time
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
kept = []
while True:
    try:
        kept.append(open("/dev/null"))
    except OSError:
        pass
    time.sleep(0.02)
"""


def test_an_fd_leak_at_its_open_files_limit_is_an_fd_leak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It reaches its limit of 64 in about a second and stays there, every open failing.
    db = tmp_path / "m.db"
    args = record_python(db, FD_LEAK)
    main([*args[:1], "--duration", "4", *args[1:]])
    with Store(db, readonly=True) as store:
        assert store.run_meta(store.get_run().id)["fd_limit"] == 64
    capsys.readouterr()
    assert main(["analyze", "--store", str(db), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "fd-leak"
    assert doc["evidence"][0].startswith("fds reached the open-files limit (64) at ")
