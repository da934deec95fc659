"""Reading which program a process runs, from files laid out as /proc/PID's.

The state tested here, an exec() under way, lasts microseconds in a real process and cannot be
produced on demand (a helper's Rust target was caught in it once in 25 recordings); the
exec detection on real processes is in tests/integration/test_record.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memsleuth.sources import procfs


def _proc(tmp_path: Path, auxv: bytes) -> Path:
    pid = tmp_path / "4242"
    pid.mkdir()
    os.symlink("/usr/bin/true", pid / "exe")
    (pid / "auxv").write_bytes(auxv)
    return tmp_path


def test_a_process_mid_exec_runs_no_program_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between the new memory map and the new program's vector, auxv reads as its terminator
    # alone (and the command line as nothing): the target had been said to exec at 1.0 s.
    monkeypatch.setattr(procfs, "PROC", _proc(tmp_path, bytes(16)))
    assert procfs.program(4242) is None


def test_a_process_runs_the_program_its_vector_was_written_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vector = (33).to_bytes(8, "little") + (0x7FFF0000).to_bytes(8, "little") + bytes(16)
    monkeypatch.setattr(procfs, "PROC", _proc(tmp_path, vector))
    assert procfs.program(4242) == ("/usr/bin/true", vector)
