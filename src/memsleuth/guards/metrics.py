"""Prometheus metrics for the guards, read from the registry at scrape time, off the hot path."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from memsleuth.guards.registry import GuardStats, snapshot_with_retired

# Counter help by the counter's name in GuardStats; unknown counters still export, generically.
_GUARD_COUNTERS: dict[str, str] = {
    "puts": "Items accepted by a bounded queue.",
    "gets": "Items taken from a bounded queue.",
    "drops": "Items a bounded queue dropped because it was full (drop policies).",
    "waits": "Puts that had to wait for room (policy block).",
    "rejections": "Puts refused with Full (policy raise, or a block timeout).",
    "evictions": "Entries evicted to stay within the size bound.",
    "pressure_evictions": "Entries evicted by shrink() under memory pressure.",
    "expirations": "Entries removed for being older than their ttl or timeout.",
    "adds": "Entries added to a pending table.",
    "acks": "Pending entries acknowledged before their timeout.",
    "callback_errors": "on_drop / on_evict / on_expire callbacks that raised (logged, not raised).",
    "too_large": "Values larger than a capped dict's whole max_bytes, not stored.",
}
_WATCHDOG_GAUGES: dict[str, str] = {
    "rss_bytes": "Resident memory of this process at the watchdog's last check.",
    "cgroup_bytes": "Memory usage of this process's cgroup at the last check.",
    "cgroup_limit_bytes": "Memory limit of this process's cgroup.",
    "soft_limit_bytes": "The watchdog's soft limit.",
    "hard_limit_bytes": "The watchdog's hard limit.",
}


class GuardCollector(Collector):
    """Turns snapshot() into metric families each time Prometheus scrapes.

    Guards sharing a kind and name (one queue per client, all named "player-outbound") are
    summed into one series, so the label set stays small; high-water marks take the maximum.
    A named guard that is garbage-collected stays in its counters' sums (as last scraped), so
    they never go down: Prometheus would read a fall as a reset.
    """

    def describe(self) -> Iterable[Metric]:
        return ()  # the series depend on which guards are alive at scrape time

    def collect(self) -> Iterator[Metric]:
        groups = _groups(*snapshot_with_retired())
        yield from _guard_families({k: g for k, g in groups.items() if k[0] != "watchdog"})
        yield from _watchdog_families({k: g for k, g in groups.items() if k[0] == "watchdog"})


# (live guards of one kind and name, the counters of those gone and theirs summed)
_Group = tuple[list[GuardStats], dict[str, int]]


def _groups(
    stats: tuple[GuardStats, ...], retired: dict[tuple[str, str], dict[str, int]]
) -> dict[tuple[str, str], _Group]:
    """Guards by kind and name, with their counters summed over the live and the gone."""
    groups: dict[tuple[str, str], _Group] = {
        key: ([], dict(counters)) for key, counters in retired.items()
    }
    for s in stats:
        group, totals = groups.setdefault((s.kind, s.name), ([], {}))
        group.append(s)
        for counter, value in s.counters.items():
            totals[counter] = totals.get(counter, 0) + value
    return groups


def _guard_families(groups: dict[tuple[str, str], _Group]) -> Iterator[Metric]:
    labels = ["kind", "name"]

    def gauge(metric: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"memsleuth_guard_{metric}", doc, labels=labels)

    instances = gauge("instances", "Live guards with this kind and name.")
    items = gauge("items", "Entries held now.")
    size = gauge("bytes", "Bytes held now, by the guard's size estimate (byte-bounded guards).")
    max_items = gauge("max_items", "The entry bound.")
    max_bytes = gauge("max_bytes", "The byte bound.")
    high = gauge("high_water_items", "Most entries ever held at once (max over instances).")
    slow = gauge("slow_consumers", "Queues whose consumer is slow now (drops or waits persist).")
    counters: dict[str, CounterMetricFamily] = {}
    for (kind, name), (group, totals) in groups.items():
        key = [kind, name]
        instances.add_metric(key, len(group))
        items.add_metric(key, sum(s.items or 0 for s in group))
        if any(s.bytes is not None for s in group):
            size.add_metric(key, sum(s.bytes or 0 for s in group))
        if group and all(s.max_items is not None for s in group):
            max_items.add_metric(key, sum(s.max_items or 0 for s in group))
        if group and all(s.max_bytes is not None for s in group):
            max_bytes.add_metric(key, sum(s.max_bytes or 0 for s in group))
        if any("high_water" in s.gauges for s in group):
            high.add_metric(key, max(s.gauges.get("high_water", 0.0) for s in group))
        if any("slow_consumer" in s.gauges for s in group):
            slow.add_metric(key, sum(s.gauges.get("slow_consumer", 0.0) for s in group))
        for counter, value in totals.items():
            if counter not in counters:
                doc = _GUARD_COUNTERS.get(counter, f"The guard's {counter} counter.")
                counters[counter] = CounterMetricFamily(
                    f"memsleuth_guard_{counter}", doc, labels=labels
                )
            counters[counter].add_metric(key, value)
    yield from (instances, items, size, max_items, max_bytes, high, slow)
    yield from counters.values()


def _watchdog_families(groups: dict[tuple[str, str], _Group]) -> Iterator[Metric]:
    firings = CounterMetricFamily(
        "memsleuth_watchdog_firings",
        "Times the watchdog fired, by rule: hard, soft, growth, trend.",
        labels=["name", "reason"],
    )
    freed = CounterMetricFamily(
        "memsleuth_watchdog_freed_bytes",
        "Bytes of RSS the watchdog's actions freed (sum of the drops it measured).",
        labels=["name"],
    )
    checks = CounterMetricFamily(
        "memsleuth_watchdog_checks", "Memory checks the watchdog made.", labels=["name"]
    )
    errors = CounterMetricFamily(
        "memsleuth_watchdog_errors",
        "Failures in the watchdog's checks or in its cleanups (logged).",
        labels=["name"],
    )
    gauges = {
        key: GaugeMetricFamily(f"memsleuth_watchdog_{key}", doc, labels=["name"])
        for key, doc in _WATCHDOG_GAUGES.items()
    }
    for (_, name), (group, totals) in groups.items():
        for counter, value in totals.items():
            if counter.startswith("firings_"):
                firings.add_metric([name, counter.removeprefix("firings_")], value)
        freed.add_metric([name], totals.get("freed_bytes", 0))
        checks.add_metric([name], totals.get("checks", 0))
        errors.add_metric([name], totals.get("errors", 0))
        for key, family in gauges.items():
            # Two live watchdogs of one name: the last made speaks for the process.
            values = [s.gauges[key] for s in group if key in s.gauges]
            if values:
                family.add_metric([name], values[-1])
    yield from (firings, freed, checks, errors)
    yield from gauges.values()


_registered: weakref.WeakKeyDictionary[CollectorRegistry, GuardCollector] = (
    weakref.WeakKeyDictionary()
)
_registered_lock = threading.Lock()


def register_metrics(registry: CollectorRegistry = REGISTRY) -> GuardCollector:
    """Add the guards' metrics to `registry` (once; later calls return the same collector).

    The exporter and any program with its own prometheus_client setup call this; the hot path
    of the guards never touches a metric object: values are read from the guards at scrape.
    """
    with _registered_lock:
        collector = _registered.get(registry)
        if collector is None:
            collector = GuardCollector()
            registry.register(collector)
            _registered[registry] = collector
        return collector


class MetricsServer:
    """A running /metrics endpoint; close() stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, addr: str) -> None:
        self._server = server
        self._thread = thread
        self.addr = addr
        self.port: int = server.server_port

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(
    port: int = 0, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve `registry` (with the guards' metrics added) over HTTP on a daemon thread.

    Binds to loopback unless told otherwise: a program's internals are not for the network
    by default. port=0 picks a free port (see `.port`).
    """
    register_metrics(registry)
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread, addr)
