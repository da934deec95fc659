"""Runtime guards that keep memory bounded: queues, capped maps, a watchdog, and their metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memsleuth.guards.asyncqueues import AsyncBoundedQueue
from memsleuth.guards.limits import GrowthRule, GuardError, parse_duration, parse_growth, parse_size
from memsleuth.guards.maps import CappedDict, CappedSet
from memsleuth.guards.pending import PendingTable
from memsleuth.guards.queues import BoundedQueue, default_sizeof
from memsleuth.guards.registry import GuardStats, snapshot
from memsleuth.guards.relief import ActionResult, Firing
from memsleuth.guards.watchdog import MemoryWatchdog

if TYPE_CHECKING:
    from memsleuth.guards.metrics import (
        GuardCollector,
        MetricsServer,
        register_metrics,
        serve_metrics,
    )

# prometheus_client costs ~50 ms to import: load it only when metrics are asked for.
_METRICS = ("GuardCollector", "MetricsServer", "register_metrics", "serve_metrics")


def __getattr__(name: str) -> Any:
    if name in _METRICS:
        from memsleuth.guards import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ActionResult",
    "AsyncBoundedQueue",
    "BoundedQueue",
    "CappedDict",
    "CappedSet",
    "Firing",
    "GrowthRule",
    "GuardCollector",
    "GuardError",
    "GuardStats",
    "MemoryWatchdog",
    "MetricsServer",
    "PendingTable",
    "default_sizeof",
    "parse_duration",
    "parse_growth",
    "parse_size",
    "register_metrics",
    "serve_metrics",
    "snapshot",
]
