"""BoundedQueue (threads): each policy under a fast producer and a slow consumer, memory bounded."""

from __future__ import annotations

import gc
import queue
import threading
import time
import tracemalloc
from collections.abc import Callable

import pytest

from memsleuth.guards import BoundedQueue, GuardError, snapshot

ITEM = 1024  # bytes per item: a small packet


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def produce(put: Callable[[bytes], object], n: int) -> None:
    for i in range(n):
        put(i.to_bytes(4, "big") + bytes(ITEM - 4))  # a distinct 1 KiB object per item


def number(item: bytes) -> int:
    return int.from_bytes(item[:4], "big")


def run_slow_consumer(q: queue.Queue[bytes] | BoundedQueue[bytes], n: int) -> tuple[list[int], int]:
    """Producer puts n items as fast as it can; the consumer sleeps 1 ms per item and only
    starts draining fast once the producer is done. Returns (items received, peak traced bytes).
    """
    received: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while True:
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                if done.is_set():
                    return
                continue
            received.append(number(item))
            if not done.is_set():
                time.sleep(0.001)

    gc.collect()
    tracemalloc.start()
    try:
        consumer = threading.Thread(target=consume)
        consumer.start()
        produce(q.put, n)
        _, peak = tracemalloc.get_traced_memory()
        done.set()
        consumer.join(30)
    finally:
        tracemalloc.stop()
    return received, peak


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
def test_drop_policies_keep_memory_bounded_where_an_unbounded_queue_grows(policy: str) -> None:
    n, maxsize = 5000, 64
    unbounded: queue.Queue[bytes] = queue.Queue()
    got_unbounded, peak_unbounded = run_slow_consumer(unbounded, n)
    q: BoundedQueue[bytes] = BoundedQueue(maxsize, policy, name=f"test-{policy}")  # type: ignore[arg-type]
    got, peak = run_slow_consumer(q, n)

    assert len(got_unbounded) == n  # nothing lost, but everything was held at once
    assert peak_unbounded > 3 * 1024 * 1024
    # Bounded: at most maxsize packets alive, plus the producer's one in flight and slack for
    # the consumer's list of ints and tracemalloc's own frames.
    assert peak < maxsize * ITEM * 2 + 256 * 1024
    assert peak * 10 < peak_unbounded
    assert q.high_water <= maxsize
    assert q.drops > 0
    assert q.puts + (q.drops if policy == "drop_newest" else 0) == n
    assert len(got) == q.gets == (q.puts if policy == "drop_newest" else n - q.drops)
    assert got == sorted(got)  # FIFO order among what was kept
    if policy == "drop_oldest":
        assert got[-1] == n - 1  # the newest item always survives
    else:
        assert got[0] == 0  # the first item was never dropped


def test_block_policy_applies_backpressure_and_loses_nothing() -> None:
    n, maxsize = 400, 16
    q: BoundedQueue[bytes] = BoundedQueue(maxsize, "block", name="test-block")
    got, peak = run_slow_consumer(q, n)
    assert got == list(range(n))
    assert q.drops == 0
    assert q.waits > 0  # the producer had to wait for the slow consumer
    assert q.high_water <= maxsize
    assert peak < maxsize * ITEM * 2 + 256 * 1024


def test_raise_policy_refuses_when_full() -> None:
    q: BoundedQueue[int] = BoundedQueue(2, "raise")
    q.put(1)
    q.put(2)
    with pytest.raises(queue.Full):
        q.put(3)
    assert q.rejections == 1
    assert [q.get(), q.get()] == [1, 2]
    q.put(4)
    assert q.get_nowait() == 4


def test_block_with_timeout_raises_full_and_put_nowait_does_not_wait() -> None:
    q: BoundedQueue[int] = BoundedQueue(1, "block")
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    assert q.rejections == 2
    assert q.qsize() == 1


def test_drop_oldest_reports_dropped_items_to_on_drop() -> None:
    dropped: list[int] = []
    q: BoundedQueue[int] = BoundedQueue(3, "drop_oldest", on_drop=dropped.append)
    for i in range(6):
        assert q.put(i) is True
    assert dropped == [0, 1, 2]
    assert [q.get_nowait() for _ in range(3)] == [3, 4, 5]


def test_drop_newest_returns_false_and_reports_the_new_item() -> None:
    dropped: list[int] = []
    q: BoundedQueue[int] = BoundedQueue(2, "drop_newest", on_drop=dropped.append)
    assert [q.put(i) for i in range(4)] == [True, True, False, False]
    assert dropped == [2, 3]
    assert q.drops == 2


def test_byte_bound_limits_queued_bytes_with_the_default_sizeof() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(1000, "drop_oldest", max_bytes="10KiB")
    for i in range(100):
        q.put(bytes([i]) * 3000)
        assert q.bytes is not None and q.bytes <= 10 * 1024
    assert q.qsize() == 3  # 3 x 3000 B fit in 10 KiB, a 4th does not
    assert q.get()[0] == 97
    assert q.bytes == 6000


def test_byte_bound_uses_an_injected_size_estimate() -> None:
    q: BoundedQueue[str] = BoundedQueue(100, "drop_newest", max_bytes=10, sizeof=len)
    assert q.put("aaaa") and q.put("bbbb")
    assert q.put("cccc") is False  # 12 > 10
    assert q.put("cc") is True
    assert q.bytes == 10


def test_an_item_larger_than_the_byte_bound_never_fits() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(10, "drop_oldest", max_bytes=100)
    q.put(b"x" * 50)
    assert q.put(b"y" * 101) is False  # dropped, and the queued item is kept
    assert q.qsize() == 1
    blocking: BoundedQueue[bytes] = BoundedQueue(10, "block", max_bytes=100)
    with pytest.raises(queue.Full):
        blocking.put(b"y" * 101, timeout=5)  # raises at once instead of waiting forever


def test_slow_consumer_flag_needs_persistent_pressure_and_clears_when_drained() -> None:
    clock = FakeClock()
    q: BoundedQueue[int] = BoundedQueue(2, "drop_oldest", slow_after_s=1.0, timer=clock)
    q.put(1)
    q.put(2)
    q.put(3)  # one drop: pressure starts
    assert not q.slow_consumer
    clock.now = 0.6
    q.put(4)
    assert not q.slow_consumer  # 0.6 s of pressure is not yet "persistent"
    clock.now = 1.2
    q.put(5)
    assert q.slow_consumer
    assert q.stats().gauges["slow_consumer"] == 1.0
    q.get()
    q.get()  # drained to empty: the consumer caught up
    assert not q.slow_consumer
    clock.now = 5.0
    q.put(6)
    q.put(7)
    q.put(8)
    assert not q.slow_consumer


def test_slow_consumer_flag_goes_stale_without_new_pressure() -> None:
    clock = FakeClock()
    q: BoundedQueue[int] = BoundedQueue(1, "drop_newest", slow_after_s=1.0, timer=clock)
    q.put(0)
    for step in range(5):
        clock.now = step * 0.5
        q.put(1)
    assert q.slow_consumer
    clock.now = 10.0  # no drop for 8 s: whatever was slow is not slow now
    assert not q.slow_consumer


def test_task_done_and_join_like_queue_queue() -> None:
    q: BoundedQueue[int] = BoundedQueue(4, "drop_oldest")
    for i in range(6):
        q.put(i)  # two dropped: they count as done
    results: list[int] = []

    def worker() -> None:
        for _ in range(4):
            results.append(q.get())
            q.task_done()

    threading.Thread(target=worker).start()
    q.join()
    assert results == [2, 3, 4, 5]
    with pytest.raises(ValueError):
        q.task_done()


def test_get_waits_for_a_producer_and_times_out_when_none_comes() -> None:
    q: BoundedQueue[int] = BoundedQueue(4)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    threading.Timer(0.02, q.put, args=(7,)).start()
    assert q.get(timeout=10) == 7


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"maxsize": 0}, "maxsize"),
        ({"maxsize": 10, "policy": "drop_random"}, "policy"),
        ({"maxsize": 10, "max_bytes": "lots"}, "size"),
    ],
)
def test_bad_configuration_is_a_guard_error_with_a_hint(
    kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(GuardError) as err:
        BoundedQueue(**kwargs)  # type: ignore[arg-type]
    assert fragment in err.value.message
    assert err.value.hint


def test_queues_register_weakly_in_the_snapshot() -> None:
    q: BoundedQueue[int] = BoundedQueue(8, "drop_newest", name="snap-queue", max_bytes=1000)
    q.put(1)
    [stats] = [s for s in snapshot() if s.name == "snap-queue"]
    assert (stats.kind, stats.items, stats.max_items, stats.max_bytes) == ("queue", 1, 8, 1000)
    assert stats.counters["puts"] == 1
    assert stats.bytes == 28  # sys.getsizeof(1)
    del q, stats
    gc.collect()
    assert not [s for s in snapshot() if s.name == "snap-queue"]


def test_an_on_drop_that_raises_is_logged_and_the_put_still_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad(item: object) -> None:
        raise RuntimeError("on_drop bug")

    q: BoundedQueue[int] = BoundedQueue(1, "drop_oldest", on_drop=bad)
    q.put(1)
    q.put(2)  # drops 1: the callback's error must not make a put that succeeded look failed
    assert q.get_nowait() == 2 and q.empty()
    assert q.drops == 1 and q.stats().counters["callback_errors"] == 1
    assert "on_drop callback failed" in caplog.text


@pytest.mark.parametrize("slow", [-1.0, float("nan")])
def test_a_slow_consumer_wait_that_could_never_pass_is_refused(slow: float) -> None:
    with pytest.raises(GuardError):
        BoundedQueue(maxsize=4, slow_after_s=slow)


def test_the_registry_keeps_nothing_of_many_unnamed_queues_made_and_dropped() -> None:
    # A queue per request, unnamed: each is its own series while alive, and none may be kept
    # once gone (named ones keep their counters, one entry a name).
    def churn(n: int) -> None:
        for _ in range(n):
            q: BoundedQueue[int] = BoundedQueue(4)
            q.put(1)
            if _ % 20 == 0:
                snapshot()

    churn(2000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        churn(20_000)
        gc.collect()
        snapshot()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    kept = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert kept < 64 * 1024


def test_a_negative_timeout_and_an_item_over_max_bytes_are_refused_as_they_say() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(1)
    with pytest.raises(ValueError, match="non-negative"):  # as queue.Queue(1).put(1, timeout=-1)
        q.put(b"x", timeout=-1)
    small: BoundedQueue[bytes] = BoundedQueue(10, "raise", max_bytes=100, name="small")
    with pytest.raises(
        queue.Full, match=r"an item of 2\d\d bytes is larger than max_bytes \(100\)"
    ):
        small.put(bytes(200))
