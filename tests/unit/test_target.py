"""A run's default name, and the line `record` ends with."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsleuth.target import command_name


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["./leak", "30"], "leak"),
        (["python3", "app.py", "x"], "app.py"),
        (["/usr/bin/python3.11", "-u", "-X", "dev", "svc/main.py"], "main.py"),
        (["python", "-m", "http.server", "8000"], "http.server"),
        (["python", "-c", "print(1)"], "python"),
        (["sh", "-c", "sleep 1"], "sleep"),
        (["bash", "-c", "FOO=1 exec python3 -u app.py --port 1; echo done"], "app.py"),
        (["bash", "-c", "./server&& echo up"], "server"),
        (["sh", "-c", "(cd x && make)"], "sh"),  # a subshell: nothing to name it by
        (["sh", "-c", "echo 'unbalanced"], "sh"),
        (["bash", "run.sh"], "run.sh"),
        (["node", "--inspect", "srv.js"], "srv.js"),
        (["shred", "file"], "shred"),  # not an interpreter, though it starts like one
        (["python3"], "python3"),
    ],
)
def test_an_interpreter_run_is_named_for_its_script_or_module(argv: list[str], name: str) -> None:
    assert command_name(argv) == name


def test_an_attached_process_keeps_its_own_name_unless_it_is_an_interpreter() -> None:
    assert command_name(["/usr/sbin/nginx: worker process"], "nginx") == "nginx"
    assert command_name(["python3", "/srv/app/worker.py"], "python3") == "worker.py"


def test_a_run_without_a_sample_is_said_with_nothing_to_analyze(tmp_path: Path) -> None:
    # "see: memsleuth analyze …" had led to "error: run 1 (mem) has no samples", and with
    # --quiet a target that ended before its first sample had left no word at all.
    from memsleuth.recorder import RecordResult
    from memsleuth.recording import closing_line

    empty = RecordResult(run_id=1, samples=0, exit_status=0, reason="target exited")
    for quiet in (False, True):
        line = closing_line(empty, tmp_path / "m.db", quiet)
        assert line is not None and line.endswith(
            "; it ended before its first sample: nothing to analyze"
        )
    some = RecordResult(run_id=1, samples=5, exit_status=0, reason="target exited")
    assert closing_line(some, tmp_path / "m.db", quiet=True) is None
    assert "see: memsleuth analyze --store" in (closing_line(some, tmp_path / "m.db", False) or "")
