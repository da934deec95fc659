"""Runtime guards that keep memory bounded: queues, capped maps, a watchdog, and their metrics."""

from __future__ import annotations

from memsleuth.guards.asyncqueues import AsyncBoundedQueue
from memsleuth.guards.limits import GrowthRule, GuardError, parse_duration, parse_growth, parse_size
from memsleuth.guards.maps import CappedDict, CappedSet
from memsleuth.guards.pending import PendingTable
from memsleuth.guards.queues import BoundedQueue, default_sizeof
from memsleuth.guards.registry import GuardStats, snapshot

__all__ = [
    "AsyncBoundedQueue",
    "BoundedQueue",
    "CappedDict",
    "CappedSet",
    "GrowthRule",
    "GuardError",
    "GuardStats",
    "PendingTable",
    "default_sizeof",
    "parse_duration",
    "parse_growth",
    "parse_size",
    "snapshot",
]
