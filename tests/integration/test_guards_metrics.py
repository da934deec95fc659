"""The guards' metrics on a real HTTP scrape of serve_metrics, and in a real Prometheus."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from memsleuth.guards import (
    BoundedQueue,
    CappedDict,
    MemoryWatchdog,
    PendingTable,
    register_metrics,
    serve_metrics,
)
from tests.conftest import free_port


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_appear_on_a_real_scrape_of_serve_metrics() -> None:
    registry = CollectorRegistry()
    q: BoundedQueue[bytes] = BoundedQueue(4, "drop_oldest", name="scrape-outbound")
    q2: BoundedQueue[bytes] = BoundedQueue(4, "drop_oldest", name="scrape-outbound")
    for _ in range(10):
        q.put(b"packet")
    q2.put(b"p")
    seen: CappedDict[int, int] = CappedDict(2, name="scrape-dedup")
    for i in range(5):
        seen[i] = i
    acks: PendingTable[int, int] = PendingTable(10.0, name="scrape-acks")
    acks.add(1, 1)
    dog = MemoryWatchdog(soft_limit=1, name="scrape-dog", trim=False)  # 1 byte: fires at once
    dog.check()
    with serve_metrics(0, registry=registry) as server:
        assert server.addr == "127.0.0.1"
        samples = scrape(server.url)

    queue_labels = (("kind", "queue"), ("name", "scrape-outbound"))
    # Two queues with one name are one series: sums of sizes and counters.
    assert samples[("memsleuth_guard_items", queue_labels)] == 5
    assert samples[("memsleuth_guard_instances", queue_labels)] == 2
    assert samples[("memsleuth_guard_drops_total", queue_labels)] == 6
    assert samples[("memsleuth_guard_puts_total", queue_labels)] == 11
    assert samples[("memsleuth_guard_high_water_items", queue_labels)] == 4
    assert samples[("memsleuth_guard_max_items", queue_labels)] == 8
    dict_labels = (("kind", "dict"), ("name", "scrape-dedup"))
    assert samples[("memsleuth_guard_items", dict_labels)] == 2
    assert samples[("memsleuth_guard_evictions_total", dict_labels)] == 3
    pending = (("kind", "pending"), ("name", "scrape-acks"))
    assert samples[("memsleuth_guard_items", pending)] == 1
    firing = (("name", "scrape-dog"), ("reason", "soft"))
    assert samples[("memsleuth_watchdog_firings_total", firing)] == 1
    rss = samples[("memsleuth_watchdog_rss_bytes", (("name", "scrape-dog"),))]
    assert rss > 1 << 20
    assert ("memsleuth_watchdog_freed_bytes_total", (("name", "scrape-dog"),)) in samples


def test_a_dropped_unnamed_guard_leaves_the_metrics_and_registration_is_idempotent() -> None:
    registry = CollectorRegistry()
    assert register_metrics(registry) is register_metrics(registry)
    q: BoundedQueue[int] = BoundedQueue(4)
    q.put(1)
    with serve_metrics(0, registry=registry) as server:
        labels = (("kind", "queue"), ("name", q.name))
        assert scrape(server.url)[("memsleuth_guard_items", labels)] == 1
        del q
        gc.collect()
        # A name no other guard will have is no series forever.
        assert not [key for key in scrape(server.url) if key[1] == labels]


def test_counters_never_go_down_when_a_named_guard_is_collected_or_made_again() -> None:
    # One queue per client under one name: a client leaving had taken its puts and drops out
    # of the sum, which Prometheus reads as a counter reset (rate() then counts the rest again).
    registry = CollectorRegistry()
    a: BoundedQueue[int] = BoundedQueue(10, "drop_oldest", name="scrape-per-client")
    b: BoundedQueue[int] = BoundedQueue(10, "drop_oldest", name="scrape-per-client")
    for i in range(1000):
        a.put(i)
    for i in range(50):
        b.put(i)
    sessions: CappedDict[int, int] = CappedDict(2, name="scrape-sessions")
    for i in range(100):
        sessions[i] = i
    labels = (("kind", "queue"), ("name", "scrape-per-client"))
    evictions = ("memsleuth_guard_evictions_total", (("kind", "dict"), ("name", "scrape-sessions")))
    with serve_metrics(0, registry=registry) as server:
        before = scrape(server.url)
        assert before[("memsleuth_guard_puts_total", labels)] == 1050
        assert before[evictions] == 98
        del a
        sessions = CappedDict(2, name="scrape-sessions")  # made again (a config reload)
        gc.collect()
        b.put(1)
        sessions.update({1: 1, 2: 2, 3: 3})
        after = scrape(server.url)
    assert after[("memsleuth_guard_puts_total", labels)] == 1051
    assert after[("memsleuth_guard_drops_total", labels)] == 1031
    assert after[("memsleuth_guard_instances", labels)] == 1
    assert after[("memsleuth_guard_items", labels)] == 10
    assert after[evictions] == 99


# -- a real Prometheus scraping the endpoint ---------------------------------------------------


@pytest.fixture
def prometheus_scraping(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Prometheus on loopback scraping 127.0.0.1:<target port> every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is required under CI=true")
        pytest.skip("prometheus not installed (Debian package prometheus)")
    port, target = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: guards\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", target
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(base: str, promql: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except OSError:
        return []  # not up yet
    result: list[dict[str, object]] = body["data"]["result"]
    return result


@pytest.mark.prometheus
def test_a_real_prometheus_scrapes_the_guards(prometheus_scraping: tuple[str, int]) -> None:
    base, target = prometheus_scraping
    q: BoundedQueue[int] = BoundedQueue(2, "drop_newest", name="prom-outbound")
    for i in range(7):
        q.put(i)
    registry = CollectorRegistry()
    with serve_metrics(target, registry=registry):
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while not result and time.monotonic() < deadline:
            result = query(base, 'memsleuth_guard_drops_total{name="prom-outbound"}')
            time.sleep(0.5)
    assert result, "Prometheus never scraped the guards' metrics"
    [series] = result
    assert series["metric"]["kind"] == "queue"  # type: ignore[index]
    assert float(series["value"][1]) == 5  # type: ignore[index]
