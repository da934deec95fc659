"""The probe's own small SQLite writer: buffered points and events, flushed in short transactions.

The probe does not log (not even at debug level, nor import logging): it must never write to the
host's output, and its failures are counted and reported in the store instead.

It uses sqlite3 directly rather than `memsleuth.store.Store` so the host never imports numpy
(tens of MB of RSS and ~100 ms of start-up that would show up as the probe's overhead).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 MB of RSS
if TYPE_CHECKING:
    from typing import Any

# Buffered rows are dropped beyond this, so a store that cannot be written never grows the host.
MAX_BUFFERED = 20_000
_INF = float("inf")


class ProbeWriter:
    """Buffers rows in memory; `flush()` writes them in one transaction (thread-safe)."""

    def __init__(self, path: str, run_id: int, pid: int) -> None:
        self.path = path
        self.run_id = run_id
        self.pid = pid
        self.lock = threading.Lock()
        self._points: list[tuple[int, str, float, float]] = []
        self._events: list[tuple[int, float, str, str]] = []
        self._samples: list[tuple[object, ...]] = []
        self._ended_at: float | None = None
        self._conn: sqlite3.Connection | None = None
        self._files: dict[int, tuple[int, int]] = {}  # fd -> (st_dev, st_ino) it had
        self.reconnects = 0
        self.dropped = 0
        self.failures = 0
        self.last_error = ""

    def buffer_ids(self) -> tuple[int, int]:
        """Ids of the lists rows wait in (new lists after each flush): the census skips them."""
        return id(self._points), id(self._events)

    def point(self, series: str, value: float, t: float | None = None) -> None:
        if value != value or value in (_INF, -_INF):  # a NaN would fail the whole flush
            self.dropped += 1
            return
        if len(self._points) >= MAX_BUFFERED:
            self.dropped += 1
            return
        self._points.append(
            (self.run_id, f"{series} [pid {self.pid}]", time.time() if t is None else t, value)
        )

    def event(self, kind: str, payload: dict[str, Any], t: float | None = None) -> None:
        if len(self._events) >= MAX_BUFFERED:
            self.dropped += 1
            return
        payload = {"pid": self.pid, **payload}
        self._events.append(
            (self.run_id, time.time() if t is None else t, kind, json.dumps(payload, default=str))
        )

    def sample(self, t: float, status: dict[str, int], fds: int) -> None:
        """A row of the run's samples, for a probe started from code: no recorder outside
        writes them (`status`: /proc/self/status fields in bytes, Threads a count)."""
        if len(self._samples) >= MAX_BUFFERED:
            self.dropped += 1
            return
        self._samples.append(
            (
                self.run_id,
                t,
                status.get("VmRSS", 0),
                status.get("RssAnon"),
                status.get("RssFile"),
                status.get("VmSwap"),
                status.get("VmHWM"),
                status.get("Threads"),
                fds,
            )
        )

    def end_run(self, t: float) -> None:
        """Mark the run ended at the next flush (a probe started from code owns its run)."""
        self._ended_at = t

    def _connect(self) -> sqlite3.Connection:
        before = _open_fds()
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        # The store is in WAL mode: NORMAL commits without an fsync (durable but for power
        # loss), so neither the flushes nor the last one at exit wait on the host's disk.
        conn.execute("PRAGMA synchronous = NORMAL")
        # The probe only appends: a page cache of 64 KiB (16 pages: the B-trees' upper levels
        # and the leaves being appended to), not SQLite's default 2 MiB, which fills page by
        # page as the store grows: in a 50 MiB host that rise (~0.3 MiB/min for minutes)
        # turned a bounded cache into a "leak" (tests/integration/test_probe_culprits.py).
        conn.execute("PRAGMA cache_size = -64")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens -wal and -shm
        self._files = _our_files(self.path, _open_fds() - before)
        return conn

    def _stale(self) -> bool:
        """The host closed the store's files under the connection (a daemon's closerange()),
        and their fds may name the host's own files now: writing through them had put SQLite
        pages into a host's data file."""
        for fd, ident in self._files.items():
            try:
                st = os.fstat(fd)
            except OSError:
                return True
            if (st.st_dev, st.st_ino) != ident:
                return True
        return False

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write what is buffered; False when the lock or the database was not available."""
        if not self.lock.acquire(timeout=timeout_s):
            return False
        try:
            points, self._points = self._points, []
            events, self._events = self._events, []
            samples, self._samples = self._samples, []
            ended, self._ended_at = self._ended_at, None
            if not points and not events and not samples and ended is None:
                return True
            if self._conn is not None and self._stale():
                # Never closed: closing would close fds that are the host's now.
                _ABANDONED.append(self._conn)
                self._conn = None
                self.reconnects += 1
            if self._conn is None:
                self._conn = self._connect()
            with self._conn:
                if points:
                    _insert(self._conn, "points", ("run_id", "series", "t", "value"), points)
                if events:
                    _insert(self._conn, "events", ("run_id", "t", "kind", "payload"), events)
                if samples:
                    _insert(self._conn, "samples", SAMPLE_COLUMNS, samples)
                if ended is not None:
                    self._conn.execute(
                        "UPDATE runs SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                        (ended, self.run_id),
                    )
            return True
        except sqlite3.Error as exc:
            # Keep the host healthy: count, remember and drop; never raise into the host.
            self.failures += 1
            self.last_error = str(exc)
            return False
        finally:
            self.lock.release()

    def abandon(self) -> None:
        """After fork, in the child: never touch or close the parent's connection (closing it
        could checkpoint or delete the parent's WAL); keep it referenced so it is never freed."""
        if self._conn is not None:
            _ABANDONED.append(self._conn)
        self._conn = None
        self._points = []
        self._events = []
        self._samples = []
        self._ended_at = None
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None


_ABANDONED: list[sqlite3.Connection] = []
SAMPLE_COLUMNS = (
    "run_id",
    "t",
    "rss_bytes",
    "anon_bytes",
    "file_bytes",
    "swap_bytes",
    "hwm_bytes",
    "threads",
    "fds",
)


def _insert(
    conn: sqlite3.Connection, table: str, columns: tuple[str, ...], rows: list[Any]
) -> None:
    """All rows in one statement, from one JSON text. Row by row, executemany gives up the
    GIL for each row's step and waits to take it back, which a host with 20 busy threads
    stretched to seconds: its exit held 9.6 s, a fork 2.45 s, waiting on the flush."""
    cols = ", ".join(columns)
    picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
    # No NaN reaches here (point() drops them); one would make the JSON malformed, a
    # sqlite3.Error that flush() counts like any other.
    text = json.dumps(rows)
    conn.execute(f"INSERT INTO {table} ({cols}) SELECT {picks} FROM json_each(?)", (text,))


def _open_fds() -> set[int]:
    try:
        return {int(name) for name in os.listdir("/proc/self/fd")}
    except (OSError, ValueError):
        return set()


def _our_files(path: str, fds: set[int]) -> dict[int, tuple[int, int]]:
    """Of the fds opened while connecting, those on the store or its -wal/-shm (another
    thread of the host may have opened files of its own meanwhile)."""
    idents = set()
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(OSError):
            st = os.stat(name)
            idents.add((st.st_dev, st.st_ino))
    out = {}
    for fd in fds:
        with contextlib.suppress(OSError):
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in idents:
                out[fd] = (st.st_dev, st.st_ino)
    return out
