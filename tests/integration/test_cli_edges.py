"""The CLI at its edges: a signal at any instant, values argparse lets through unchecked, a work
file that is no file, and errors that name what to do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memsleuth.errors import ExitCode
from memsleuth.store import Store
from tests.conftest import assert_clean_error, memsleuth_cmd, record_python


def _run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(memsleuth_cmd(*args), capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload, no-any-return]


@pytest.mark.parametrize(
    ("signum", "code", "words"),
    [
        (signal.SIGTERM, ExitCode.TERMINATED, "terminated (SIGTERM)"),
        (signal.SIGINT, ExitCode.INTERRUPTED, "interrupted"),
    ],
)
def test_a_signal_while_the_subcommand_is_loaded_stops_it_cleanly(
    tmp_path: Path, signum: int, code: int, words: str
) -> None:
    # Building the parser imports the subcommand's modules (numpy among them), ~0.1 s outside
    # main()'s try: a signal then had ended in a traceback, exit 1 (SIGTERM) or -2 (SIGINT).
    p = subprocess.Popen(
        memsleuth_cmd("runs", "--store", str(tmp_path / "m.db")),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while "numpy" not in Path(f"/proc/{p.pid}/maps").read_text():
        assert p.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    p.send_signal(signum)
    _, err = p.communicate(timeout=30)
    assert_clean_error(subprocess.CompletedProcess(p.args, p.returncode, "", err), code, words)


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "--until=--"],
        ["report", "--until=--"],
        ["export", "--format=--"],
        ["runs", "--store=--"],
        ["record", "--duration=--", "--"],
        ["record", "--interval=--", "--"],
        ["record", "--limit=--", "--"],
        ["record", "--pid=--"],
        ["soak", "--cycles=--", "--"],
        ["exporter", "--pid=--", "--port", "0"],
        ["fleet", "--prometheus", "http://127.0.0.1:1", "--jobs=--"],
    ],
)
def test_dashdash_as_an_options_value_is_bad_usage_before_anything_starts(
    tmp_path: Path, args: list[str]
) -> None:
    # argparse takes `--opt=--` as the end of options and stores an empty list, never calling
    # the option's type: tracebacks, a psutil TypeError, a target started then killed.
    marker = tmp_path / "started"
    db = tmp_path / "m.db"
    target = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"] if args[-1] == "--" else []
    store = ["--store", str(db)] if args[0] not in ("exporter", "fleet", "runs") else []
    p = _run(*args[:-1] if target else args, *store, *(["--", *target] if target else []))
    assert_clean_error(p, ExitCode.USAGE, "expected a value, not '--'")
    assert not marker.exists() and not db.exists()


def test_a_work_file_that_is_a_fifo_or_a_device_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "w"
    os.mkfifo(fifo)
    db = str(tmp_path / "m.db")
    for work in (str(fifo), os.devnull):
        p = _run("record", "-q", "--store", db, "--work-file", work, "--", "true")
        assert_clean_error(p, ExitCode.USAGE, "is not a regular file")
    assert not Path(db).exists()


def test_a_fifo_made_as_the_work_file_while_recording_is_never_waited_on(tmp_path: Path) -> None:
    # The target makes the FIFO once it runs: reading it had blocked the sampler, past
    # --duration and Ctrl-C. Now it is read as no counter, and --duration ends the run.
    db = str(tmp_path / "m.db")
    later = tmp_path / "later"
    make = f"import os, time; os.mkfifo({str(later)!r}); time.sleep(15)"
    started = time.monotonic()
    p = _run(
        "record", "-q", "--store", db, "--interval", "0.1", "--duration", "1.5s",
        "--work-file", str(later), "--", sys.executable, "-c", make,
    )  # fmt: skip
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert time.monotonic() - started < 10
    with Store(db) as store:
        assert store.get_run().sample_count >= 5


def test_until_before_the_first_sample_says_where_that_sample_is(tmp_path: Path) -> None:
    from memsleuth.model import Sample

    db = tmp_path / "m.db"
    with Store(db) as store:
        # A command memsleuth started: its first sample, taken at its exec, is not judged.
        run = store.create_run(
            name="late", kind="record", command=["x"], pid=1, interval_s=1.0,
            meta={"attached": False},
        )  # fmt: skip
        times = [0.0, *(2.5 + i for i in range(30))]
        store.add_samples(run.id, [Sample(t=1e9 + t, rss_bytes=1e8) for t in times])
        store.finish_run(run.id, exit_status=0, note="target exited")
    # The hint had said "the target may have exited at once; record it again".
    p = _run("analyze", "--store", str(db), "--until", "1s")
    assert_clean_error(p, ExitCode.USAGE, "no samples in its first 1 s")
    assert "hint: its first sample judged is at 2.5 s: ask for --until 2.5s or more" in p.stderr
    p = _run("analyze", "--store", str(db), "--until", "2.5s")
    assert p.returncode == ExitCode.OK, p.stderr


def test_an_empty_output_path_is_bad_usage(tmp_path: Path) -> None:
    # Path("") is the current directory: "cannot write /home/me: Is a directory", exit 1.
    for command in ("report", "export"):
        p = _run(command, "--store", str(tmp_path / "m.db"), "-o", "", cwd=tmp_path)
        assert_clean_error(p, ExitCode.USAGE, "an empty path")
    assert list(tmp_path.iterdir()) == []


def test_options_before_the_subcommand_are_shown_after_it(tmp_path: Path) -> None:
    # It had said only "invalid choice: 'x.db'".
    p = _run("--store", "x.db", "runs", cwd=tmp_path)
    assert_clean_error(p, ExitCode.USAGE, "invalid choice")
    assert "hint: options go after the subcommand: `memsleuth runs --store x.db`" in p.stderr


def test_a_run_named_with_a_number_is_found_by_its_name(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    for name in ("first", "123"):
        p = _run(*record_python(db, "import time; time.sleep(0.4)")[:-4], "--name", name,
                 "--", sys.executable, "-c", "import time; time.sleep(0.4)")  # fmt: skip
        assert p.returncode == 0, p.stderr
    # Run 123 does not exist: the number is a name then. Run 1 does: the number is its id.
    named = _run("export", "--store", str(db), "--format", "jsonl", "123")
    assert named.returncode == 0 and named.stdout, named.stderr
    by_id = _run("analyze", "--store", str(db), "--json", "1")
    assert by_id.returncode in (ExitCode.OK, ExitCode.PROBLEM), by_id.stderr
    assert '"name": "first"' in by_id.stdout
    p = _run("analyze", "--store", str(db), "--json", "123")
    assert '"name": "123"' in p.stdout, p.stderr
    assert_clean_error(_run("analyze", "--store", str(db), "7"), ExitCode.ERR, "no run '7'")


def test_control_characters_in_a_run_name_are_shown_escaped(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    name = "evil\x1b[31mRED\x1b]0;title\x07"
    # A run without samples, made directly: `record -- true` is sampled once or not at all,
    # as the machine's load has it.
    with Store(db) as store:
        store.create_run(name=name, kind="record", command=["true"], pid=None, interval_s=1.0)
    p = _run("runs", "--store", db, env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 0 and "\x1b" not in p.stdout and "\x07" not in p.stdout
    assert "evil\\x1b[31mRED\\x1b]0;title\\x07" in p.stdout
    # The run has no samples: the error that names it escapes it too.
    p = _run("analyze", "--store", db)
    assert_clean_error(p, ExitCode.ERR, "evil\\x1b[31mRED")
    assert "\x1b" not in p.stderr


def test_a_soak_stopped_before_any_sample_says_nothing_was_measured(tmp_path: Path) -> None:
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(
        memsleuth_cmd(
            "soak", "--cycles", "100", "--store", str(tmp_path / "m.db"),
            "--url", f"http://127.0.0.1:{port}/", "--", sys.executable, "-c",
            "import time; time.sleep(30)",
        ),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(2)  # waiting for a server that never listens
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    done = subprocess.CompletedProcess(p.args, p.returncode, "", err)
    assert_clean_error(done, ExitCode.INTERRUPTED, "interrupted after 0 requests")
    # It had said "`memsleuth analyze N` judges it", and analyze then "run N has no samples".
    assert "hint: nothing had been measured yet" in err and "judges it" not in err
