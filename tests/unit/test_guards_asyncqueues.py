"""AsyncBoundedQueue: each policy under a fast producer and a slow consumer, memory bounded."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from memsleuth.guards import AsyncBoundedQueue

ITEM = 1024


def packet(i: int) -> bytes:
    return i.to_bytes(4, "big") + bytes(ITEM - 4)


async def slow_consumer_run(
    q: asyncio.Queue[bytes] | AsyncBoundedQueue[bytes], n: int
) -> tuple[list[int], int]:
    """A producer puts n packets as fast as the queue lets it; the consumer sleeps 1 ms per
    packet until the producer is done. Returns (packet numbers received, peak traced bytes)."""
    received: list[int] = []
    done = asyncio.Event()

    async def consume() -> None:
        while not (done.is_set() and q.empty()):
            try:
                item = await asyncio.wait_for(q.get(), 0.05)
            except asyncio.TimeoutError:
                continue
            received.append(int.from_bytes(item[:4], "big"))
            if not done.is_set():
                await asyncio.sleep(0.001)

    gc.collect()
    tracemalloc.start()
    try:
        consumer = asyncio.create_task(consume())
        for i in range(n):
            await q.put(packet(i))
            if i % 50 == 0:
                await asyncio.sleep(0)  # a real producer yields now and then (I/O)
        _, peak = tracemalloc.get_traced_memory()
        done.set()
        await asyncio.wait_for(consumer, 30)
    finally:
        tracemalloc.stop()
    return received, peak


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
def test_drop_policies_keep_memory_bounded_where_asyncio_queue_grows(policy: str) -> None:
    n, maxsize = 5000, 64

    async def main() -> None:
        unbounded: asyncio.Queue[bytes] = asyncio.Queue()
        got_unbounded, peak_unbounded = await slow_consumer_run(unbounded, n)
        q: AsyncBoundedQueue[bytes] = AsyncBoundedQueue(maxsize, policy)  # type: ignore[arg-type]
        got, peak = await slow_consumer_run(q, n)

        assert len(got_unbounded) == n
        assert peak_unbounded > 3 * 1024 * 1024
        assert peak < maxsize * ITEM * 2 + 256 * 1024
        assert peak * 10 < peak_unbounded
        assert q.high_water <= maxsize
        assert q.drops > 0
        assert len(got) == q.gets
        assert got == sorted(got)
        if policy == "drop_oldest":
            assert q.puts == n and len(got) == n - q.drops
            assert got[-1] == n - 1
        else:
            assert q.puts + q.drops == n and len(got) == q.puts
            assert got[0] == 0

    asyncio.run(main())


def test_block_policy_makes_the_producer_wait_and_loses_nothing() -> None:
    async def main() -> None:
        q: AsyncBoundedQueue[bytes] = AsyncBoundedQueue(16, "block")
        got, peak = await slow_consumer_run(q, 300)
        assert got == list(range(300))
        assert q.drops == 0 and q.waits > 0
        assert q.high_water <= 16
        assert peak < 16 * ITEM * 2 + 256 * 1024

    asyncio.run(main())


def test_block_put_times_out_with_queue_full_and_leaves_no_waiter_behind() -> None:
    async def main() -> None:
        q: AsyncBoundedQueue[int] = AsyncBoundedQueue(1, "block")
        await q.put(1)
        with pytest.raises(asyncio.QueueFull):
            await q.put(2, timeout=0.01)
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait(3)
        assert q.rejections == 2
        assert await q.get() == 1
        assert await q.put(4) is True  # room again: no stale waiter swallowed the wake-up
        assert q.get_nowait() == 4

    asyncio.run(main())


def test_a_waiting_putter_is_woken_by_get() -> None:
    async def main() -> None:
        q: AsyncBoundedQueue[int] = AsyncBoundedQueue(1, "block")
        await q.put(1)
        putter = asyncio.create_task(q.put(2))
        await asyncio.sleep(0)
        assert not putter.done()
        assert await q.get() == 1
        assert await asyncio.wait_for(putter, 5) is True
        assert await q.get() == 2

    asyncio.run(main())


def test_a_cancelled_getter_does_not_lose_an_item() -> None:
    async def main() -> None:
        q: AsyncBoundedQueue[int] = AsyncBoundedQueue(4)
        getter = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        getter.cancel()
        await asyncio.sleep(0)
        q.put_nowait(5)
        assert await asyncio.wait_for(q.get(), 5) == 5

    asyncio.run(main())


def test_raise_policy_and_drop_results() -> None:
    async def main() -> None:
        q: AsyncBoundedQueue[int] = AsyncBoundedQueue(1, "raise")
        await q.put(1)
        with pytest.raises(asyncio.QueueFull):
            await q.put(2)
        dropped: list[int] = []
        d: AsyncBoundedQueue[int] = AsyncBoundedQueue(2, "drop_oldest", on_drop=dropped.append)
        for i in range(5):
            assert await d.put(i)
        assert dropped == [0, 1, 2]
        n: AsyncBoundedQueue[int] = AsyncBoundedQueue(1, "drop_newest")
        assert [n.put_nowait(i) for i in range(3)] == [True, False, False]

    asyncio.run(main())


def test_byte_bound_and_join() -> None:
    async def main() -> None:
        q: AsyncBoundedQueue[bytes] = AsyncBoundedQueue(100, "drop_oldest", max_bytes=8000)
        for i in range(10):
            await q.put(bytes([i]) * 3000)
            assert q.bytes is not None and q.bytes <= 8000
        assert q.qsize() == 2
        seen: list[int] = []

        async def worker() -> None:
            while True:
                item = await q.get()
                seen.append(item[0])
                q.task_done()

        task = asyncio.create_task(worker())
        await asyncio.wait_for(q.join(), 5)
        task.cancel()
        assert seen == [8, 9]

    asyncio.run(main())


def test_slow_consumer_flag() -> None:
    now = [0.0]
    q: AsyncBoundedQueue[int] = AsyncBoundedQueue(
        1, "drop_newest", slow_after_s=1.0, timer=lambda: now[0]
    )
    q.put_nowait(0)
    for step in range(4):
        now[0] = step * 0.5
        q.put_nowait(1)
    assert q.slow_consumer
    q.get_nowait()
    assert not q.slow_consumer


def test_an_on_drop_that_raises_is_logged_and_the_put_still_holds() -> None:
    def bad(item: object) -> None:
        raise RuntimeError("on_drop bug")

    async def main() -> None:
        q: AsyncBoundedQueue[int] = AsyncBoundedQueue(1, "drop_oldest", on_drop=bad)
        await q.put(1)
        await q.put(2)
        assert q.get_nowait() == 2 and q.empty()
        assert q.drops == 1 and q.callback_errors == 1

    asyncio.run(main())
