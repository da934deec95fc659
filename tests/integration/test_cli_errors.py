"""Bad input: one `error:` line, a `hint:`, a named exit code, no traceback, nothing destroyed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from memsleuth.errors import ExitCode
from memsleuth.model import Sample
from memsleuth.store import Store
from tests.conftest import assert_clean_error, memsleuth_cmd, record_python


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(memsleuth_cmd(*args), capture_output=True, text=True, timeout=60)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_dead_pid(tmp_path: Path) -> None:
    p = _run("record", "--pid", str(_dead_pid()), "--store", str(tmp_path / "m.db"))
    assert_clean_error(p, ExitCode.ERR, "no process with pid")


def test_a_zombie_or_a_kernel_thread_is_named_for_what_it_is(tmp_path: Path) -> None:
    # A zombie had been "no process with pid N" though `ps` lists it; kthreadd (pid 2) had
    # been recorded as a run of no samples, "target vanished", exit 0.
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        p = _run("record", "--pid", str(zombie.pid), "--store", str(tmp_path / "m.db"))
        assert_clean_error(p, ExitCode.ERR, "is a zombie")
    finally:
        zombie.wait()
    kthreadd = next(
        (q.pid for q in psutil.process_iter(["name"]) if q.info["name"] == "kthreadd"), None
    )
    if kthreadd is not None:  # not in every container
        p = _run("record", "--pid", str(kthreadd), "--store", str(tmp_path / "m.db"))
        assert_clean_error(p, ExitCode.ERR, "is a kernel thread")


def test_command_not_found(tmp_path: Path) -> None:
    p = _run("record", "--store", str(tmp_path / "m.db"), "--", "./no-such-server")
    assert_clean_error(p, ExitCode.ERR, "command not found")
    # No empty run is left behind to become the newest one a bare `analyze` picks.
    assert (
        not (tmp_path / "m.db").exists()
        or '"id"' not in _run("runs", "--store", str(tmp_path / "m.db"), "--json").stdout
    )


def _run_ids(db: Path) -> list[int]:
    if not db.exists() or db.stat().st_size == 0:
        return []
    with Store(db, readonly=True) as store:
        return [r.id for r in store.list_runs()]


def test_a_file_that_is_not_a_program_leaves_no_run_and_a_fitting_hint(tmp_path: Path) -> None:
    # `record -- /etc/passwd` had left a run "passwd" (recorder stopped by an error), and its
    # hint had said `chmod +x /etc/passwd`.
    db = tmp_path / "m.db"
    _run("record", "--store", str(db), "-q", "--", sys.executable, "-c", "pass")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a program\n")
    p = _run("record", "--store", str(db), "--", str(notes))
    assert_clean_error(p, ExitCode.ERR, "permission denied")
    assert "hint: it is not executable: run it with its interpreter, or chmod +x" in p.stderr
    assert "chmod +x " + str(notes) not in p.stderr
    # Executable by its mode but no program (no #! line): the kernel refuses it at exec.
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01 not an executable\n")
    junk.chmod(0o755)
    p = _run("record", "--store", str(db), "--", str(junk))
    assert_clean_error(p, ExitCode.ERR, "cannot start")
    p = _run("record", "--store", str(db), "--", str(tmp_path))
    assert_clean_error(p, ExitCode.ERR, "is a directory")
    assert _run_ids(db) == [1]  # the one real run, nothing for the three refused


def test_run_names_are_shown_as_given_not_as_markup(tmp_path: Path) -> None:
    store = str(tmp_path / "m.db")
    for name in ("api[/]", "worker[prod]", "[red]oops[/red]"):
        assert _run("record", "--store", store, "--name", name, "--", "true").returncode == 0
    p = subprocess.run(
        memsleuth_cmd("runs", "--store", store),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    for name in ("api[/]", "worker[prod]", "[red]oops[/red]"):
        assert name in p.stdout


def test_store_in_missing_directory(tmp_path: Path) -> None:
    p = _run("record", "--store", str(tmp_path / "nope" / "m.db"), "--", "true")
    assert_clean_error(p, ExitCode.ERR, "does not exist")


def test_store_from_environment_and_missing_store(tmp_path: Path) -> None:
    env_store = tmp_path / "env.db"
    p = subprocess.run(
        memsleuth_cmd("runs"),
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "MEMSLEUTH_STORE": str(env_store)},
    )
    assert_clean_error(p, ExitCode.ERR, str(env_store))
    assert not env_store.exists()  # reading never creates a store


@pytest.mark.parametrize("command", ["runs", "analyze", "report", "export"])
def test_foreign_file_is_refused_and_kept(tmp_path: Path, command: str) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my notes, not a store\n" * 20)
    before = path.read_bytes()
    p = _run(command, "--store", str(path))
    assert_clean_error(p, ExitCode.ERR, "not a memsleuth store")
    assert path.read_bytes() == before


@pytest.mark.parametrize("command", ["runs", "analyze", "report", "export"])
def test_empty_file_is_not_a_store_yet_and_kept(tmp_path: Path, command: str) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    p = _run(command, "--store", str(path))
    assert_clean_error(p, ExitCode.ERR, "is empty: not a memsleuth store yet")
    assert "memsleuth record --store" in p.stderr
    assert path.read_bytes() == b"" and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    "args",
    [
        ["record", "--interval", "fast", "--", "true"],
        # Under 10 ms the sampler would spin a core and flood the store.
        ["record", "--interval", "1ms", "--", "true"],
        ["run", "--interval", "0.001", "--", "true"],
        ["exporter", "--interval", "1ms", "--port", "0"],
        ["soak", "--interval", "1ms", "--cycles", "2", "--", "true"],
        ["fleet", "--prometheus", "http://127.0.0.1:1", "--step", "1ms"],
        ["record", "--limit", "lots", "--", "true"],
        ["record", "--limit", "1e999", "--", "true"],
        ["record", "--pid", "-5"],
        ["soak", "--cycles", "2", "--pid", "-5", "--", "true"],
        ["soak", "--cycles", "1", "--", "true"],  # had run, "ok (inconclusive) after 1 runs"
        ["exporter", "--pid", "-5", "--port", "0"],
        ["exporter", "--port", "99999"],
        ["exporter", "--history", "-1", "--port", "0"],
        ["exporter", "--history", "7", "--port", "0"],
        ["fleet", "--prometheus", "http://127.0.0.1:1", "--top", "-1"],
        ["fleet", "--prometheus", "http://127.0.0.1:1", "--retries", "-2"],
        ["fleet", "--prometheus", "http://127.0.0.1:1", "--jobs", "0"],  # had been taken
        # Malformed durations had been summed: 1.5 + .3 s, 1 s + 1 s.
        ["record", "--interval", "1.5.3", "--", "true"],
        ["record", "--duration", "1s1s", "--", "true"],
        ["analyze", "--until", "1.5.3"],
        ["rules", "--for", "9" * 400],
        ["rules", "--metric", 'foo bar{"'],
        ["rules", "--metric", "http_requests_total"],  # a counter, as `fleet` refuses one
        ["rules", "--min-growth", "nan"],
        ["rules", "--min-growth", "-1"],
        ["analyze", "--until", "nan"],
        ["report", "--until", "inf"],
        ["analyze", "--until", "-5"],
        ["report", "--until", "0"],
        ["analyze", "--bogus"],
        ["report", "--format", "pdf"],
        ["frobnicate"],
    ],
)
def test_bad_flags_are_usage_errors(args: list[str]) -> None:
    p = _run(*args)
    assert_clean_error(p, ExitCode.USAGE, "")
    assert "--help" in p.stderr


def test_ctrl_c_is_an_error_with_a_hint() -> None:
    with socket.socket() as silent:  # accepts the fleet's connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        p = subprocess.Popen(
            memsleuth_cmd("fleet", "--prometheus", url, "--timeout", "60", "--retries", "0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    done = subprocess.CompletedProcess(p.args, p.returncode, "", err)
    assert_clean_error(done, ExitCode.INTERRUPTED, "interrupted")


def test_record_needs_a_target(tmp_path: Path) -> None:
    p = _run("record", "--store", str(tmp_path / "m.db"))
    assert_clean_error(p, ExitCode.USAGE, "nothing to record")


def test_unknown_run(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    assert _run(*record_python(db, "import time; time.sleep(0.5)")).returncode == 0
    p = _run("analyze", "nosuchrun", "--store", str(db))
    assert_clean_error(p, ExitCode.ERR, "no run 'nosuchrun'")


@pytest.mark.parametrize("command", ["export", "report"])
def test_output_onto_the_store_is_refused_and_the_store_kept(tmp_path: Path, command: str) -> None:
    db = tmp_path / "m.db"
    p = _run("record", "--store", str(db), "-q", "--interval", "0.1", "--", "sleep", "0.5")
    assert p.returncode == 0, p.stderr
    before = db.read_bytes()
    p = _run(command, "--store", str(db), "-o", str(db))
    assert_clean_error(p, ExitCode.ERR, "not replacing it")
    assert db.read_bytes() == before
    assert _run("analyze", "--store", str(db)).returncode in (ExitCode.OK, ExitCode.PROBLEM)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--probe-budget", "5", "--store", "{db}", "--", "python3", "-c", "pass"],
        ["fleet", "--prometheus", "http://127.0.0.1:1", "--batch-size", "0"],
    ],
)
def test_out_of_range_options_say_what_to_do(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "m.db"
    p = _run(*(a.format(db=db) for a in args))
    assert_clean_error(p, ExitCode.USAGE, "must be")
    assert not db.exists()


@pytest.mark.parametrize(
    ("option", "args"),
    [
        ("--warmup", "soak --cycles 3 --warmup -3 --store {db} -- true"),
        ("--max-latency-ratio", "soak --cycles 3 --max-latency-ratio nan --store {db} -- true"),
        ("--max-latency-ratio", "soak --cycles 3 --max-latency-ratio -1 --store {db} -- true"),
        ("--limit", "record --limit 0 --store {db} -- true"),
        ("--limit", "run --limit 0.5 --store {db} -- python3 -c pass"),
        ("--limit", "exporter --port 0 --limit 0"),
        ("--limit", "fleet --prometheus http://127.0.0.1:1 --limit 0"),
    ],
)
def test_nonsense_numbers_are_refused_before_anything_runs(
    tmp_path: Path, option: str, args: str
) -> None:
    db = tmp_path / "m.db"
    p = _run(*args.format(db=db).split())
    assert_clean_error(p, ExitCode.USAGE, f"argument {option}:")
    assert not db.exists()


def test_help_lists_every_subcommand() -> None:
    p = _run("--help")
    assert p.returncode == 0
    for name in ("record", "runs", "analyze", "report", "export"):
        assert name in p.stdout


def test_a_season_shorter_than_the_rule_looks_back_is_refused() -> None:
    # It would compare the last four 15-minute windows with ones they overlap.
    p = _run("rules", "--season", "30m")
    assert_clean_error(p, ExitCode.USAGE, "--season 30m is shorter than four windows of 15m")


def test_run_does_not_offer_pid_and_refuses_it_with_a_hint() -> None:
    assert "--pid" not in _run("run", "--help").stdout  # it starts its program itself
    p = _run("run", "--pid", "1")
    assert_clean_error(p, ExitCode.USAGE, "cannot probe a running process")
    assert "memsleuth record --pid" in p.stderr


def test_a_work_file_that_cannot_exist_is_refused_and_one_never_written_is_said(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "m.db")
    p = _run("record", "--store", store, "--work-file", str(tmp_path / "no" / "w"), "--", "true")
    assert_clean_error(p, ExitCode.USAGE, "which does not exist")
    p = _run("record", "--store", store, "--work-file", str(tmp_path), "--", "true")
    assert_clean_error(p, ExitCode.USAGE, "is a directory")
    # A file the target never writes: the run is kept, and -q still says why there is no
    # growth per unit of work.
    never = tmp_path / "w"
    p = _run("record", "-q", "--store", store, "--work-file", str(never), "--", "sleep", "0.3")
    assert p.returncode == 0 and f"the work file {never} was never read" in p.stderr, p.stderr


def _leak_store(db: Path) -> Path:
    with Store(db) as store:
        run = store.create_run(name="leak", kind="record", command=["x"], pid=1, interval_s=1.0)
        samples = [Sample(t=1e9 + i, rss_bytes=50_000_000 + 100_000 * i) for i in range(300)]
        store.add_samples(run.id, samples)
        store.finish_run(run.id, exit_status=0, note="target exited")
    return db


@pytest.mark.parametrize("command", [["analyze"], ["export"], ["runs", "--json"], ["rules"]])
def test_a_full_or_closed_stdout_is_an_error_not_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    db = _leak_store(tmp_path / "m.db")
    args = memsleuth_cmd(*command, *([] if command == ["rules"] else ["--store", str(db)]))
    with open("/dev/full", "w") as full:
        p = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    # `runs --json` and `rules` had exited 0 with nothing written: the failure came at exit.
    assert_clean_error(p, ExitCode.ERR, "No space left on device")
    p = subprocess.run(
        args, stderr=subprocess.PIPE, text=True, timeout=60, preexec_fn=lambda: os.close(1)
    )
    assert_clean_error(p, ExitCode.ERR, "standard output: it is closed")


def test_a_reader_that_goes_away_leaves_the_verdicts_exit_code(tmp_path: Path) -> None:
    # `analyze | head -1` had exited 0 on a leak: with pipefail, a CI gate passed it.
    db = _leak_store(tmp_path / "m.db")
    p = subprocess.Popen(
        memsleuth_cmd("analyze", "--store", str(db)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert p.stdout is not None
    p.stdout.close()  # gone before the first line: every write meets a broken pipe
    _, err = p.communicate(timeout=60)
    assert p.returncode == ExitCode.PROBLEM and b"Traceback" not in err, err


def test_a_run_with_no_samples_is_an_error_not_bad_usage(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Store(db) as store:
        store.create_run(name="empty", kind="record", command=["x"], pid=1, interval_s=1.0)
    assert_clean_error(_run("analyze", "--store", str(db)), ExitCode.ERR, "has no samples")
    p = _run("analyze", "--store", str(db), "--until", "5")
    assert_clean_error(p, ExitCode.USAGE, "no samples in its first 5 s")


def test_the_hint_names_the_subcommands_help_and_a_bad_url_is_bad_usage() -> None:
    p = _run("record", "--bogus", "--", "true")
    assert_clean_error(p, ExitCode.USAGE, "unrecognized arguments: --bogus")
    assert "`memsleuth record --help`" in p.stderr
    p = _run("fleet", "--prometheus", "notaurl")
    assert_clean_error(p, ExitCode.USAGE, "not an http(s) URL")
    # A value that starts with "-" is an option to argparse: say so, not only "expected one".
    p = _run("record", "--duration", "-5m", "--", "true")
    assert_clean_error(p, ExitCode.USAGE, "expected one argument")
    assert "--opt=VALUE" in p.stderr


@pytest.mark.parametrize("query", ["http_requests_total", 'rpc_duration_seconds_count{job="x"}'])
def test_a_counter_is_not_scanned_as_memory(query: str) -> None:
    # A request counter only rises: judged as memory, it had paged as four leaks (exit 3).
    p = _run("fleet", "--prometheus", "http://127.0.0.1:1", "--query", query)
    assert_clean_error(p, ExitCode.USAGE, "is a counter")


def test_output_to_dev_stdout_on_a_pipe_and_to_dash_go_to_stdout(tmp_path: Path) -> None:
    # `-o /dev/stdout | head` resolved to `pipe:[…]` and failed; `-o -` wrote a file named -.
    db = _leak_store(tmp_path / "m.db")
    for command in (["report", "--format", "json"], ["export"]):
        for out in ("/dev/stdout", "-"):
            p = subprocess.run(
                memsleuth_cmd(*command, "--store", str(db), "-o", out),
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
            )
            assert p.returncode == ExitCode.OK, p.stderr
            assert p.stdout.startswith("{" if command[0] == "report" else "t,rss_bytes"), p.stdout
    assert not (tmp_path / "-").exists()


def test_report_json_with_samples_and_verbose_after_the_subcommand(tmp_path: Path) -> None:
    db = _leak_store(tmp_path / "m.db")
    p = _run("report", "--store", str(db), "--format", "json", "--samples", "-v")
    doc = json.loads(p.stdout)
    assert p.returncode == ExitCode.OK and len(doc["series"]["rss_bytes"]) > 10, doc.keys()
    assert_clean_error(_run("report", "--store", str(db), "--samples"), ExitCode.USAGE, "--samples")


def test_a_closed_stderr_keeps_the_closing_line_off_stdout(tmp_path: Path) -> None:
    # With fd 2 closed, Python leaves sys.stderr None and print(file=None) writes to stdout:
    # `record 2>&-` had put "memsleuth: run 1: …" into the output a script reads.
    p = subprocess.run(
        memsleuth_cmd("record", "--store", str(tmp_path / "m.db"), "--", sys.executable, "-c", ""),
        stdout=subprocess.PIPE,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(2),
    )
    assert p.returncode == ExitCode.OK and p.stdout == ""


def test_a_python_program_is_named_for_its_script(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text("")
    db = tmp_path / "m.db"
    subprocess.run(
        memsleuth_cmd("record", "--store", str(db), "-q", "--", sys.executable, "-u", str(script)),
        check=True,
        timeout=60,
    )
    runs = json.loads(_run("runs", "--store", str(db), "--json").stdout)
    assert [r["name"] for r in runs] == ["worker.py"]


def test_until_takes_a_duration_with_its_unit(tmp_path: Path) -> None:
    # `--until 40s` had been refused ("not a number of seconds") where --duration takes "10m".
    db = _leak_store(tmp_path / "m.db")
    seconds, unit = (
        _run("analyze", "--store", str(db), "--json", "--until", until) for until in ("120", "2m")
    )
    assert (seconds.returncode, unit.returncode) == (ExitCode.PROBLEM, ExitCode.PROBLEM)
    assert json.loads(seconds.stdout)["verdict"] == json.loads(unit.stdout)["verdict"]
    assert json.loads(seconds.stdout)["span_s"] == json.loads(unit.stdout)["span_s"] == 120


def test_a_read_only_store_with_runs_in_its_log_is_refused_not_shown_without_them(
    tmp_path: Path, tmpfs
) -> None:
    # A store copied to a read-only place without its -shm file is read as it stands
    # (immutable), which ignores the -wal file: its newest runs had been missing without a
    # word, and a store all in its log had read "empty: not a memsleuth store yet".
    db = tmp_path / "m.db"
    _leak_store(db)  # closed: this run is in the .db itself
    holder = sqlite3.connect(db)  # open, so the next run stays in the -wal at close
    holder.execute("SELECT count(*) FROM runs").fetchone()
    try:
        with Store(db) as store:
            run = store.create_run(name="second", kind="record", command=["y"], pid=2, interval_s=1)
            store.add_samples(run.id, [Sample(t=2e9 + i, rss_bytes=10_000_000) for i in range(9)])
        wal = db.with_name("m.db-wal")
        assert wal.stat().st_size > 0
        logged, plain = tmpfs("logged"), tmpfs("plain")
        shutil.copy(db, logged / "m.db")
        shutil.copy(wal, logged / "m.db-wal")
    finally:
        holder.close()  # the last connection: the log is checkpointed into the .db
    assert not db.with_name("m.db-wal").exists()
    shutil.copy(db, plain / "m.db")
    for place in (logged, plain):
        subprocess.run(["mount", "-o", "remount,ro", str(place)], check=True)
    for command in (["runs"], ["analyze", "second"], ["export"]):
        p = _run(*command, "--store", str(logged / "m.db"))
        assert_clean_error(p, ExitCode.ERR, "write-ahead log")
        assert "hint: copy m.db with its m.db-wal" in p.stderr
    # Without a log beside it, a store in a read-only place is read as it stands.
    p = _run("runs", "--store", str(plain / "m.db"), "--json")
    assert p.returncode == 0, p.stderr
    assert [r["name"] for r in json.loads(p.stdout)] == ["leak", "second"]


def test_one_bad_row_leaves_the_rest_of_the_store_readable(tmp_path: Path) -> None:
    # A run whose command was not JSON had made every command fail with a JSONDecodeError
    # traceback; rss_bytes = 'abc' in a few rows had failed analyze and report with
    # "could not convert string to float".
    db = _leak_store(tmp_path / "m.db")
    _leak_store(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE runs SET command = '{not json' WHERE id = 1")
        conn.execute("UPDATE samples SET rss_bytes = 'abc' WHERE run_id = 2 AND rowid % 50 = 0")
    conn.close()
    before = db.read_bytes()
    p = _run("runs", "--store", str(db))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "unreadable in the store: command" in p.stdout and " 2 " in p.stdout
    for run_id in ("1", "2"):
        for command in (["analyze"], ["report", "--format", "json"], ["export"]):
            p = _run(*command, run_id, "--store", str(db))
            assert "Traceback" not in p.stderr, p.stderr
            assert p.returncode in (ExitCode.OK, ExitCode.PROBLEM), p.stderr
        p = _run("analyze", run_id, "--store", str(db), "--json")
        assert json.loads(p.stdout)["verdict"] == "leak"  # the 294 good samples still tell
    assert db.read_bytes() == before
