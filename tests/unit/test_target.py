"""A run's default name."""

from __future__ import annotations

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
