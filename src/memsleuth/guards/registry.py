"""The process-wide, weak registry of guards and the stats each one reports."""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class GuardStats:
    """What one guard reports: its size now and its counters since it was created."""

    kind: str  # "queue", "async-queue", "dict", "set", "pending", "watchdog"
    name: str
    items: int | None  # entries held now (None for the watchdog)
    bytes: int | None  # bytes held now by the guard's own estimate; None when not tracked
    max_items: int | None = None
    max_bytes: int | None = None
    # Monotonic counts: puts, gets, drops, evictions, expirations, firings, freed_bytes ...
    counters: dict[str, int] = field(default_factory=dict)
    # Values that go up and down: high_water, slow_consumer (0/1), rss_bytes ...
    gauges: dict[str, float] = field(default_factory=dict)


logger = logging.getLogger(__name__)


class _Calls(Protocol):
    name: str
    callback_errors: int


def call_back(guard: _Calls, what: str, fn: Callable[..., object], *args: object) -> None:
    """Run a program's callback from a guard's hot path. Its error is logged and counted in
    `guard.callback_errors`, never raised: raised, it would leave the guard half-updated (an
    item queued while the put fails, an entry evicted while the new one is not stored)."""
    try:
        fn(*args)
    except Exception:
        guard.callback_errors += 1
        logger.exception("guard %s: %s callback failed", guard.name, what)


@runtime_checkable
class Guard(Protocol):
    """Anything that can report GuardStats; every guard registers itself on creation."""

    kind: str
    name: str

    def stats(self) -> GuardStats: ...


_lock = threading.Lock()
_ids = itertools.count(1)
# Counters must never go down (Prometheus reads a fall as a reset, and rate() then counts the
# other guards' whole totals again): what a guard had counted at its last snapshot is kept, per
# kind and name, once it is gone. One queue per client, summed under one name, had fallen from
# 1,050 puts to 50 when a client left.
_last: dict[int, GuardStats] = {}
_retired: dict[tuple[str, str], dict[str, int]] = {}
# Weak references: a guard the program dropped disappears from snapshots and metrics by itself.
_refs: dict[int, weakref.ref[Guard]] = {}
# Ids of guards collected since: appended by the references' callbacks, which run wherever the
# guard died (inside gc, under _lock in this thread) and so take no lock.
_dead: collections.deque[int] = collections.deque()


def register(guard: Guard) -> None:
    """Add a guard to the registry (held weakly)."""
    with _lock:
        _retire()  # drained here too, for a program no one scrapes
        key = next(_ids)
        _refs[key] = weakref.ref(guard, functools.partial(_died, key))


def _died(key: int, _: object) -> None:
    _dead.append(key)


class _DefaultName(str):
    """A name no other guard will have: its guard's counters end with it (kept, every guard
    made without a name would be a series forever)."""

    __slots__ = ()


def default_name(kind: str) -> str:
    """A unique name for a guard created without one: "queue-3"."""
    return _DefaultName(f"{kind}-{next(_ids)}")


def guards() -> tuple[Guard, ...]:
    """The guards alive now, oldest first."""
    return tuple(guard for _, guard in _live())


def _live() -> list[tuple[int, Guard]]:
    with _lock:
        refs = sorted(_refs.items())
    return [(key, guard) for key, ref in refs if (guard := ref()) is not None]


def snapshot() -> tuple[GuardStats, ...]:
    """Every live guard's kind, name, sizes and counters, oldest guard first."""
    return snapshot_with_retired()[0]


def snapshot_with_retired() -> tuple[tuple[GuardStats, ...], dict[tuple[str, str], dict[str, int]]]:
    """snapshot(), and by (kind, name) the counters of guards that are gone, as their last
    snapshot saw them (what a guard counted after it is not there). A guard is in one or the
    other, never both: their sums never go down from one call to the next."""
    live = _live()
    # Read outside the lock: a guard's stats() takes the guard's own lock.
    stats = [(key, guard.stats()) for key, guard in live]
    with _lock:
        _retire()  # the guards in `live` are held, so none of them is among the dead
        _last.update(stats)
        retired = {key: dict(counters) for key, counters in _retired.items()}
    del live  # no reference of ours may keep a guard the program dropped alive
    return tuple(s for _, s in stats), retired


def _retire() -> None:
    """Move the last counts of guards collected since into _retired (under _lock)."""
    while _dead:
        key = _dead.popleft()
        _refs.pop(key, None)
        last = _last.pop(key, None)
        if last is not None and type(last.name) is not _DefaultName:
            totals = _retired.setdefault((last.kind, last.name), {})
            for counter, value in last.counters.items():
                totals[counter] = totals.get(counter, 0) + value
