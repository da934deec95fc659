"""Guards benchmark: each guard's hot path next to the plain structure it replaces, and the
watchdog's own CPU cost at its default interval.

    python bench/guards.py

`main()` returns the figures as a dict (for `make bench`). Ratios are guard cost / plain cost,
measured in alternating rounds in one run; the median round is reported.
"""

from __future__ import annotations

import asyncio
import queue
import statistics
import threading
import time
from collections.abc import Callable

from cachetools import LRUCache, TTLCache

from memsleuth.guards import (
    AsyncBoundedQueue,
    BoundedQueue,
    CappedDict,
    MemoryWatchdog,
    PendingTable,
)

N = 20_000  # operations per timed round
ROUNDS = 7
TARGET = 1.3  # the bound for count-bounded variants


def _time(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def compare(plain: Callable[[], object], guard: Callable[[], object]) -> tuple[float, float, float]:
    """(plain ns/op, guard ns/op, median guard/plain ratio) over alternating rounds."""
    plain(), guard()  # warm up
    ratios, p_times, g_times = [], [], []
    for _ in range(ROUNDS):
        p, g = _time(plain), _time(guard)
        ratios.append(g / p)
        p_times.append(p)
        g_times.append(g)
    return (
        statistics.median(p_times) / N * 1e9,
        statistics.median(g_times) / N * 1e9,
        statistics.median(ratios),
    )


def queue_pairs(q: queue.Queue[bytes] | BoundedQueue[bytes]) -> Callable[[], None]:
    def run() -> None:
        put, get = q.put, q.get
        for _ in range(N):
            put(b"packet")
            get()

    return run


def queue_threads(make: Callable[[], queue.Queue[int] | BoundedQueue[int]]) -> Callable[[], None]:
    """One producer thread and one consumer thread moving N items through a 1024-slot queue."""

    def run() -> None:
        q = make()

        def consume() -> None:
            get = q.get
            for _ in range(N):
                get()

        consumer = threading.Thread(target=consume)
        consumer.start()
        put = q.put
        for i in range(N):
            put(i)
        consumer.join()

    return run


def async_pairs(
    make: Callable[[], asyncio.Queue[bytes] | AsyncBoundedQueue[bytes]],
) -> Callable[[], None]:
    async def body() -> None:
        q = make()
        put, get = q.put, q.get
        for _ in range(N):
            await put(b"packet")
            await get()

    def run() -> None:
        asyncio.run(body())

    return run


def map_set_get(
    m: dict[int, int] | LRUCache[int, int] | CappedDict[int, int], keys: int
) -> Callable[[], None]:
    def run() -> None:
        for i in range(N):
            k = i % keys
            m[k] = i
            m[k]

    return run


def pending_by_hand() -> Callable[[], None]:
    """Seed 000's sent_datagrams as most code has it: a dict of (value, sent_at), no pruning."""
    table: dict[int, tuple[bytes, float]] = {}
    now = time.monotonic

    def run() -> None:
        for i in range(N):
            table[i] = (b"datagram", now())
            table.pop(i, None)

    return run


def pending_guard() -> Callable[[], None]:
    table: PendingTable[int, bytes] = PendingTable(10.0)

    def run() -> None:
        add, ack = table.add, table.ack
        for i in range(N):
            add(i, b"datagram")
            ack(i)

    return run


def watchdog_cpu_share(seconds: float) -> tuple[float, float]:
    """Process CPU over wall time while the main thread sleeps: without, then with a watchdog
    at its default interval (1 s; soft limit + growth rule). Returns (without, with)."""

    def share(run_watchdog: bool) -> float:
        dog = MemoryWatchdog(soft_limit="64GiB", growth="50MiB/5min") if run_watchdog else None
        if dog is not None:
            dog.start()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if dog is not None:
            dog.stop()
        return cpu / wall

    return share(False), share(True)


def watchdog_check_cost() -> tuple[float, float | None]:
    """Seconds per check() (the thread's whole job each interval), and per trend judgement."""
    dog = MemoryWatchdog(soft_limit="64GiB", growth="50MiB/5min")
    checks = 2000
    per_check = _time(lambda: [dog.check() for _ in range(checks)]) / checks
    try:
        from memsleuth.analysis.verdict import judge  # noqa: F401
    except ImportError:
        return per_check, None
    import numpy as np

    from memsleuth.model import Series

    t = np.arange(300, dtype=np.float64)  # 5 min at 1 Hz: the default trend window
    rss = 200e6 + 1e5 * np.sin(t / 7) + np.random.default_rng(1).normal(0, 1e5, 300)
    series = Series.from_arrays(t, rss)
    from memsleuth.analysis.verdict import judge as run_judge

    per_judge = _time(lambda: [run_judge(series) for _ in range(20)]) / 20
    return per_check, per_judge


def main() -> dict[str, float]:
    rows: list[tuple[str, float, float, float, bool]] = []

    def row(label: str, result: tuple[float, float, float], bounded_by_count: bool) -> None:
        rows.append((label, *result, bounded_by_count))

    row(
        "BoundedQueue(block) vs queue.Queue, put+get",
        compare(queue_pairs(queue.Queue(1024)), queue_pairs(BoundedQueue(1024, "block"))),
        True,
    )
    row(
        "BoundedQueue(drop_oldest) vs queue.Queue, put+get",
        compare(queue_pairs(queue.Queue(1024)), queue_pairs(BoundedQueue(1024, "drop_oldest"))),
        True,
    )
    row(
        "BoundedQueue(block) vs queue.Queue, 2 threads",
        compare(
            queue_threads(lambda: queue.Queue(1024)),
            queue_threads(lambda: BoundedQueue(1024, "block")),
        ),
        True,
    )
    row(
        "BoundedQueue(max_bytes) vs queue.Queue, put+get",
        compare(
            queue_pairs(queue.Queue(1024)),
            queue_pairs(BoundedQueue(1024, "block", max_bytes="50MiB")),
        ),
        False,
    )
    row(
        "AsyncBoundedQueue(block) vs asyncio.Queue",
        compare(
            async_pairs(lambda: asyncio.Queue(1024)),
            async_pairs(lambda: AsyncBoundedQueue(1024, "block")),
        ),
        True,
    )
    row(
        "CappedDict(ttl) vs TTLCache, set+get, fits",
        compare(
            map_set_get(TTLCache(4096, 60.0), 1000), map_set_get(CappedDict(4096, ttl=60.0), 1000)
        ),
        True,
    )
    row(
        "CappedDict(ttl) vs TTLCache, set+get, evicting",
        compare(
            map_set_get(TTLCache(1000, 60.0), 4096), map_set_get(CappedDict(1000, ttl=60.0), 4096)
        ),
        True,
    )
    row(
        "CappedDict vs LRUCache, set+get, evicting",
        compare(map_set_get(LRUCache(1000), 4096), map_set_get(CappedDict(1000), 4096)),
        True,
    )
    row(
        "CappedDict vs dict, set+get (dict is unbounded)",
        compare(map_set_get({}, 1000), map_set_get(CappedDict(4096), 1000)),
        False,
    )
    row(
        "PendingTable vs dict of (value, time), add+ack",
        compare(pending_by_hand(), pending_guard()),
        False,
    )

    print(f"{'guard vs plain structure':<52} {'plain':>9} {'guard':>9} {'ratio':>7}")
    figures: dict[str, float] = {}
    for label, plain_ns, guard_ns, ratio, counted in rows:
        verdict = ("ok" if ratio <= TARGET else "OVER") if counted else "(info)"
        print(f"{label:<52} {plain_ns:7.0f}ns {guard_ns:7.0f}ns {ratio:6.2f}x  {verdict}")
        figures[f"ratio: {label}"] = round(ratio, 3)

    seconds = 6.0
    idle, watched = watchdog_cpu_share(seconds)
    per_check, per_judge = watchdog_check_cost()
    print(f"\nwatchdog at its default interval (1 s), {seconds:.0f} s idle each way:")
    print(f"  process CPU share without watchdog        {idle:9.4%} of a core")
    print(f"  process CPU share with watchdog           {watched:9.4%} of a core")
    print(f"  difference                                {watched - idle:9.4%}  (target < 0.1%)")
    print(
        f"  one check() (read statm+cgroup, rules)    {per_check * 1e6:9.1f} us"
        f"  = {per_check:.4%} of a core at 1 Hz"
    )
    figures["watchdog_cpu_share_idle"] = idle
    figures["watchdog_cpu_share_running"] = watched
    figures["watchdog_cpu_share_added"] = watched - idle
    figures["watchdog_check_seconds"] = per_check
    if per_judge is not None:
        # trend mode judges at most every window/20 (15 s for the default 5 min window)
        share = per_judge / 15.0
        print(
            f"  one trend judgement (300 samples)         {per_judge * 1e3:9.2f} ms"
            f"  = {share:.4%} of a core every 15 s (trend=True)"
        )
        figures["watchdog_trend_judge_seconds"] = per_judge
    return figures


if __name__ == "__main__":
    main()
