"""The process-wide, weak registry of guards and the stats each one reports."""

from __future__ import annotations

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
# Weak values: a guard the program dropped disappears from snapshots and metrics by itself.
_guards: weakref.WeakValueDictionary[int, Guard] = weakref.WeakValueDictionary()
_ids = itertools.count(1)


def register(guard: Guard) -> None:
    """Add a guard to the registry (held weakly)."""
    with _lock:
        _guards[next(_ids)] = guard


def default_name(kind: str) -> str:
    """A unique name for a guard created without one: "queue-3"."""
    return f"{kind}-{next(_ids)}"


def guards() -> tuple[Guard, ...]:
    """The guards alive now, oldest first."""
    with _lock:
        return tuple(guard for _, guard in sorted(_guards.items()))


def snapshot() -> tuple[GuardStats, ...]:
    """Every live guard's kind, name, sizes and counters, oldest guard first."""
    return tuple(guard.stats() for guard in guards())
