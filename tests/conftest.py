"""Shared fixtures: the venv's python, the repository root, C programs built with gcc."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def needs(binary: str, why: str) -> None:
    """Skip when a Debian-packaged tool is missing - but under CI=true, fail instead."""
    if shutil.which(binary) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} is required under CI=true ({why}); .ci/run installs it")
        pytest.skip(f"{binary} not installed ({why})")


@pytest.fixture(scope="session")
def build_c(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Compile an examples/*.c program with gcc, once per session; returns its path."""
    out_dir = tmp_path_factory.mktemp("cbin")
    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            needs("gcc", "native test targets are C programs")
            exe = out_dir / name
            subprocess.run(
                ["gcc", "-O2", "-Wall", "-o", str(exe), str(EXAMPLES / f"{name}.c")],
                check=True,
            )
            built[name] = exe
        return built[name]

    return build


@pytest.fixture(scope="session")
def build_go(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Build an examples/<name>/ Go program with Debian's golang-go, once per session (its
    standard library only: nothing is downloaded); returns its path."""
    out_dir = tmp_path_factory.mktemp("gobin")
    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            needs("go", "Go test targets serve real pprof heap profiles")
            exe = out_dir / name
            env = os.environ | {
                "GOCACHE": str(out_dir / "cache"),
                "GOPATH": str(out_dir / "gopath"),
                "GOFLAGS": "-mod=mod",
                "GOPROXY": "off",
                "GOTOOLCHAIN": "local",
            }
            subprocess.run(
                ["go", "build", "-o", str(exe), "."], cwd=EXAMPLES / name, env=env, check=True
            )
            built[name] = exe
        return built[name]

    return build


@pytest.fixture
def tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """mount(name, size) -> a fresh tmpfs of that size under tmp_path (a full disk, a read-only
    place), unmounted at teardown. Mounting needs root: skipped otherwise."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a full disk, a read-only place) needs root")
    mounted: list[Path] = []

    def mount(name: str, size: str = "1m") -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)  # still busy: detach


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memsleuth_cmd(*args: str) -> list[str]:
    """The CLI as a subprocess, with this interpreter."""
    return [sys.executable, "-m", "memsleuth", *args]


def record_python(db: Path, code: str) -> list[str]:
    """`memsleuth record` arguments for a quiet 0.1 s recording of `python -c code`."""
    return [
        "record",
        "--store",
        str(db),
        "-q",
        "--interval",
        "0.1",
        "--",
        sys.executable,
        "-c",
        code,
    ]


def assert_clean_error(p: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    """The ground rule for bad input: the exit code, one `error:` line naming `words`, a
    `hint:`, no traceback."""
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and words in lines[0], p.stderr
    assert any(line.startswith("hint:") for line in lines), p.stderr
