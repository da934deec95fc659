"""Starting and stopping a target process that memsleuth owns (record, run, soak), and telling
a Python program from another (run)."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

from memsleuth.errors import TargetError

_NOT_EXECUTABLE = (
    "it is not executable: run it with its interpreter, or chmod +x it if it is a program"
)

# Interpreters whose runs are better named by the script or module they run: every Python
# program had been named `python`, and `analyze python` picked whichever ran last.
_INTERPRETER = re.compile(r"(python|pypy|node|ruby|perl|bash|dash|zsh|sh)[0-9.]*")
_TAKES_VALUE = frozenset({"-W", "-X", "-Q", "-r", "-e", "-I"})  # python -W x, node -r x ...
_SHELL = re.compile(r"(bash|dash|zsh|sh)")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
_PYTHON = re.compile(r"^(python[\d.]*|pypy[\d.]*)$")


def command_name(argv: Sequence[str], name: str | None = None) -> str:
    """A run's default name: the command's `name` (by default its argv[0]'s), or for an
    interpreter the script or module it runs (`python app.py` is `app.py`, `python -m
    http.server` is `http.server`); for a shell's `-c`, the first command it runs (`bash -c
    'exec python3 app.py'` is `app.py`: such runs had all been named `bash`); other code given
    inline (`python -c`) keeps the interpreter's name."""
    base = name or (Path(argv[0]).name if argv else "?")
    if not _INTERPRETER.fullmatch(base):
        return base
    args = iter(argv[1:])
    for a in args:
        if a == "-m":
            return next(args, base)
        if a == "-c" and _SHELL.fullmatch(base):
            return _first_command(next(args, "")) or base
        if a in ("-c", "--"):
            return base
        if a in _TAKES_VALUE:
            next(args, None)
        elif not a.startswith("-"):
            return Path(a).name
    return base


def _first_command(script: str) -> str | None:
    """The name of the first command a shell script line runs, past `VAR=x` and `exec`."""
    try:
        words = shlex.split(script, comments=True)
    except ValueError:  # unbalanced quotes: the shell will say so
        return None
    words = list(itertools.takewhile(lambda w: w not in (";", "&&", "||", "|", "&"), words))
    while words and (_ASSIGNMENT.fullmatch(words[0]) or words[0] in ("exec", "env", "nohup")):
        words.pop(0)
    if not words or words[0].startswith(("(", "{")):
        return None
    return command_name([word.rstrip(";&|") for word in words])


def check_command(argv: Sequence[str]) -> None:
    """A TargetError now, before a run is made for it, when argv[0] cannot be started: nowhere
    to be found, a directory, or a file that is not executable (`record -- /etc/passwd` had
    left a run of no samples behind)."""
    exe = argv[0]
    if shutil.which(exe) is not None:
        return
    path = Path(exe)
    if not path.exists():
        raise TargetError(
            f"cannot start {exe!r}: command not found",
            "check the command after `--` (use a path like ./server for local files)",
        )
    if path.is_dir():
        raise TargetError(f"cannot start {exe!r}: it is a directory", "check the command")
    if not os.access(path, os.X_OK):
        raise TargetError(f"cannot start {exe!r}: permission denied", _NOT_EXECUTABLE)
    if "/" not in exe:  # a file here, but a bare name is looked up in PATH only
        raise TargetError(
            f"cannot start {exe!r}: command not found (not in PATH)",
            f"to run the file {exe} in this directory, give its path: ./{exe}",
        )


def start_target(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv (its stdout/stderr pass through), or a TargetError saying why it cannot."""
    exe = argv[0]
    check_command(argv)
    try:
        return subprocess.Popen(list(argv), env=env, stdin=stdin)
    except PermissionError:
        # Executable by its mode, yet refused: a file system mounted noexec, or a directory
        # on its path that cannot be searched.
        raise TargetError(
            f"cannot start {exe!r}: permission denied",
            "check its permissions, the directories above it, and that its file system is "
            "not mounted noexec",
        ) from None
    except OSError as exc:
        raise TargetError(
            f"cannot start {shlex.join(argv)}: {exc.strerror}", "check the command"
        ) from None


def shell_status(returncode: int) -> int:
    """A Popen returncode as a shell shows it: 128 + N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def stop_target(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> int:
    """SIGTERM to the target and every process it started, then SIGKILL to those still there
    after grace_s; the target's exit status, shell-style.

    Its descendants are found before it goes (they are reparented then): `sh -c 'a & b &
    wait'` or a wrapper script had left `a`, `b` or the real program running, still leaking,
    after memsleuth stopped the shell.
    """
    if proc.poll() is not None:
        return shell_status(proc.returncode)
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    for child in family:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    deadline = time.monotonic() + grace_s  # one grace for them all, not one after another
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(family, timeout=max(0.0, deadline - time.monotonic()))
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    return shell_status(proc.returncode)


def with_interpreter(argv: list[str]) -> list[str]:
    """`memsleuth run app.py ARGS`, as memray and scalene take it: a Python script that is not
    executable is run by the `python3` on PATH (an activated virtualenv's), else by memsleuth's
    own. It had failed "cannot start app.py: No such file or directory"."""
    script = Path(argv[0]) if argv else None
    if script is None or script.suffix != ".py" or not script.is_file():
        return argv
    if os.access(script, os.X_OK) and (os.sep in argv[0] or shutil.which(argv[0])):
        return argv  # its own #! line says what runs it
    return [shutil.which("python3") or sys.executable, *argv]


def looks_like_python(argv: Sequence[str]) -> bool:
    """Whether a stored command runs Python, by its words alone (the files may be elsewhere
    now): a python interpreter, or a script named .py."""
    return bool(argv) and (bool(_PYTHON.match(Path(argv[0]).name)) or argv[0].endswith(".py"))


def not_python(argv: list[str]) -> str | None:
    """Why the command is not a Python program, or None when it looks like one."""
    exe = shutil.which(argv[0]) or argv[0]
    name = Path(exe).name
    if _PYTHON.match(name):
        return None
    try:
        with open(exe, "rb") as f:
            head = f.read(256)
    except OSError:
        return None  # a shell builtin or a wrapper we cannot read: the probe status decides
    if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
        return None
    kind = "a native executable" if head.startswith(b"\x7fELF") else "not a Python interpreter"
    return f"the target {name} is not a Python program ({kind})"
