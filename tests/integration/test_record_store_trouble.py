"""A store that cannot take writes while recording (its disk full, its write lock held): the
samples are held and written later, and the target is never stopped for it."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from memsleuth import recorder, write_buffer
from memsleuth.cli import main
from memsleuth.errors import ExitCode
from memsleuth.store import Store
from tests.conftest import memsleuth_cmd
from tests.integration.test_record import SLEEPER, _wait_for_samples

# Ticks for ~5 s, says it finished, and exits 3: its status must come back through memsleuth.
WORKER = (
    "import time\n"
    "for i in range(50):\n"
    "    print('tick', i, flush=True); time.sleep(0.1)\n"
    "print('finished all work', flush=True); raise SystemExit(3)\n"
)


def _fill(disk: Path) -> Path:
    """Fill a tmpfs to its last page."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


@contextlib.contextmanager
def _write_lock(db: Path, seconds: float) -> Iterator[None]:
    """Another process's write lock on the store (an open sqlite3 shell's BEGIN EXCLUSIVE),
    held for `seconds` in the background."""
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        taken.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(10)
    try:
        yield
    finally:
        holder.join()


def _gaps(db: Path) -> float:
    with Store(db, readonly=True) as store:
        return float(np.max(np.diff(store.load_series(store.get_run().id).t)))


@pytest.mark.parametrize("freed", [True, False], ids=["space-freed", "never-freed"])
def test_a_full_disk_neither_stops_the_command_nor_loses_its_exit_status(
    tmp_path: Path, tmpfs, freed: bool
) -> None:
    # A full store had stopped the recorded command (killed by SIGTERM at tick 78 of 100),
    # memsleuth had exited 1, and the samples taken since the last commit were lost.
    disk = tmpfs("disk", "2m")
    db = disk / "s.db"
    rec = subprocess.Popen(
        memsleuth_cmd(
            "record",
            "-q",
            "--interval",
            "0.05",
            "--store",
            str(db),
            "--",
            sys.executable,
            "-c",
            WORKER,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_samples(db, 3)
        filler = _fill(disk)
        time.sleep(2.0)  # two commits or more fail meanwhile; the samples are held
        if freed:
            filler.unlink()
        out, err = rec.communicate(timeout=60)
    finally:
        if rec.poll() is None:
            rec.kill()
    assert "Traceback" not in err
    assert rec.returncode == 3, err  # the command's own status
    assert "finished all work" in out  # it ran to its end
    assert err.count("warning: cannot write to the store") == 1, err  # once, not per sample
    assert "its disk is full" in err and "free some space on its disk" in err
    if freed:
        assert "the store takes writes again" in err and "could not be stored" not in err
        assert _gaps(db) < 0.5  # the samples held while it was full were written
    else:
        assert "samples could not be stored" in err, err


def test_a_full_disk_before_recording_is_an_error_that_says_to_free_space(
    tmp_path: Path, tmpfs
) -> None:
    disk = tmpfs("disk", "1m")
    db = disk / "s.db"
    with Store(db) as store:
        store.create_run(name="old", kind="record", command=["x"], pid=1, interval_s=1.0)
    _fill(disk)
    # Read, a store on a full disk is read as it stands.
    p = subprocess.run(memsleuth_cmd("runs", "--store", str(db)), capture_output=True, text=True)
    assert p.returncode == ExitCode.OK and "old" in p.stdout, p.stderr
    p = subprocess.run(
        memsleuth_cmd("record", "-q", "--store", str(db), "--", sys.executable, "-c", "pass"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == ExitCode.ERR and "Traceback" not in p.stderr
    # It had said "s.db is corrupt or not a memsleuth store (disk I/O error)".
    first = p.stderr.splitlines()[0]
    assert first.startswith("error: cannot ") and first.endswith(f"store {db}: its disk is full")
    assert p.stderr.splitlines()[1].startswith("hint: free some space on its disk")


def test_a_write_lock_held_a_while_leaves_no_gap_in_the_samples(tmp_path: Path) -> None:
    # A store locked by another writer had aborted `record --pid` after 10 s ("database is
    # locked"), losing the samples taken meanwhile; shorter, it had left a gap in them.
    db = tmp_path / "s.db"
    target = subprocess.Popen(SLEEPER)
    try:
        rec = subprocess.Popen(
            memsleuth_cmd(
                "record",
                "-q",
                "--interval",
                "0.1",
                "--duration",
                "7s",
                "--store",
                str(db),
                "--pid",
                str(target.pid),
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_samples(db, 3)
        with _write_lock(db, 3.0):
            pass
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == ExitCode.OK and "Traceback" not in err, err
        assert err.count("another process holds its write lock") == 1, err
        assert "the store takes writes again" in err
        assert _gaps(db) < 1.6  # one wait of RECORDING_LOCK_WAIT_S, not the lock's 3 s
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()


def test_a_store_that_takes_nothing_ends_an_attached_recording_and_leaves_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Held samples are bounded: past the bound, a --pid recording ends as at Ctrl-C.
    monkeypatch.setattr(write_buffer, "MAX_HELD_SAMPLES", 5)
    db = tmp_path / "s.db"
    target = subprocess.Popen(SLEEPER)
    code: list[int] = []
    argv = ["record", "-q", "--interval", "0.05", "--store", str(db), "--pid", str(target.pid)]
    rec = threading.Thread(target=lambda: code.append(main(argv)))
    try:
        rec.start()
        _wait_for_samples(db, 1)
        with _write_lock(db, 5.0):  # past the 5 held samples; let go before the last write
            rec.join(timeout=60)
        assert code == [ExitCode.ERR]
        err = capsys.readouterr().err
        assert "up to 5)" in err and "recording stops here" in err, err
        assert f"process {target.pid} goes on running" in err
        assert "error: recording stopped early: cannot write to the store" in err, err
        assert "hint: end the process that holds it" in err
        assert psutil.Process(target.pid).status() != psutil.STATUS_ZOMBIE
        with Store(db, readonly=True) as store:
            run = store.get_run()
            assert run.note == recorder.STORE_FAILED and run.sample_count >= 5
    finally:
        target.kill()
        target.wait()
