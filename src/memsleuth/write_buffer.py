"""What a recording has yet to write: samples, named points, run updates and events, committed
together; held in order while the store cannot take writes (a full disk, another's lock)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

from memsleuth.errors import StoreWriteError
from memsleuth.model import Sample
from memsleuth.store import Store

# While the store cannot take writes (its disk full, its write lock held by another process),
# samples are held in memory and written at the next commit: at most this many (an hour at the
# default interval; a few MiB), and this many named points with them. Past either, recording
# stops: an attached target is left running, one memsleuth started is left to run to its end.
MAX_HELD_SAMPLES = 3600
MAX_HELD_POINTS = 100_000


class WriteBuffer:
    """Writes for one recording's store, held until the next commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.samples: list[Sample] = []
        # Named points to write with the samples: malloc's free bytes (--malloc-stats), and
        # the RSS of the processes a recording without --children leaves out.
        self.points: dict[str, list[tuple[float, float]]] = {}
        # Run updates and events the store could not take yet, written before the samples.
        self._deferred: list[Callable[[], object]] = []
        self.failing: StoreWriteError | None = None  # why the store takes nothing now
        self.failed: StoreWriteError | None = None  # the first such failure of the recording

    def add_point(self, name: str, t: float, value: float) -> None:
        self.points.setdefault(name, []).append((t, value))

    def write(self, write: Callable[[], object]) -> None:
        """A run update or event, now; or, while the store cannot take writes, with the held
        samples at the next commit (in order)."""
        if self.failing is None:
            try:
                write()
                return
            except StoreWriteError as exc:
                self._store_failed(exc)
        self._deferred.append(write)

    def _store_failed(self, exc: StoreWriteError) -> None:
        """Said once a recording (not once a sample): what failed, and what to do."""
        if self.failed is None:
            say(
                f"memsleuth: warning: {exc.message}; samples are held in memory (up to "
                f"{MAX_HELD_SAMPLES}) and written once it takes them again: {exc.remedy}"
            )
            self.failed = exc
        self.failing = exc

    def held_too_many(self) -> bool:
        points = sum(map(len, self.points.values())) + len(self._deferred)
        return len(self.samples) >= MAX_HELD_SAMPLES or points >= MAX_HELD_POINTS

    def flush(self, run_id: int) -> bool:
        """Write what is held: False when the store cannot take it now (a full disk, a lock:
        held for the next flush, and said once)."""
        try:
            while self._deferred:
                self._deferred[0]()
                self._deferred.pop(0)
            if self.samples:
                self.store.add_samples(run_id, self.samples)
                held, self.samples = len(self.samples), []
            else:
                held = 0
            for name, points in list(self.points.items()):
                self.store.add_points(run_id, name, points)
                del self.points[name]
        except StoreWriteError as exc:
            self._store_failed(exc)
            return False
        if self.failing is not None:
            self.failing = None
            held_words = sample_words(held)
            say(f"memsleuth: the store takes writes again: the {held_words} held are written")
        return True

    def last_flush(self, run_id: int) -> int:
        """Write what is held, waiting the usual time for a lock; how many samples the store
        could not take (then dropped)."""
        if self.flush(run_id):
            return 0
        unstored = len(self.samples)
        self.samples, self.points, self._deferred = [], {}, []
        return unstored


def sample_words(count: int) -> str:
    return f"{count} sample{'' if count == 1 else 's'}"


def say(message: str) -> None:
    """A line on stderr, if stderr can take it: the run is saved whether it can or not."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)
