"""The asyncio flavour of the bounded queue: same policies, counters and slow-consumer flag."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from memsleuth.guards.queues import (
    Policy,
    Pressure,
    QueueAccounting,
    check_bounds,
    default_sizeof,
)
from memsleuth.guards.registry import call_back, default_name, register

T = TypeVar("T")


class AsyncBoundedQueue(QueueAccounting[T]):
    """An `asyncio.Queue` replacement bounded in items (and optionally bytes) with a full policy.

    Like asyncio.Queue it belongs to one event loop and is not thread-safe. `await put()` waits
    for room only with policy "block" (and raises asyncio.QueueFull after `timeout`); the drop
    policies never wait. put()/put_nowait() return False when the given item was dropped.
    """

    kind = "async-queue"

    def __init__(
        self,
        maxsize: int,
        policy: Policy = "block",
        *,
        max_bytes: int | str | None = None,
        sizeof: Callable[[T], int] = default_sizeof,
        name: str | None = None,
        on_drop: Callable[[T], object] | None = None,
        slow_after_s: float = 1.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maxsize, self.policy, self.max_bytes = check_bounds(maxsize, policy, max_bytes)
        self.name = name or default_name(self.kind)
        self._sizeof = sizeof
        self._on_drop = on_drop
        self._items: deque[T] = deque()
        self._sizes: deque[int] | None = None if self.max_bytes is None else deque()
        self._bytes = 0
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._unfinished = 0
        self._finished: asyncio.Event | None = None  # created lazily inside the loop by join()
        self._pressure = Pressure(slow_after_s, timer)
        self.puts = 0
        self.gets = 0
        self.drops = 0
        self.waits = 0
        self.rejections = 0
        self.callback_errors = 0  # on_drop calls that raised (logged, never raised into put)
        self.high_water = 0
        register(self)

    # -- producer side ------------------------------------------------------------------------

    def put_nowait(self, item: T) -> bool:
        """Queue `item` now, applying the policy when full ("block" raises asyncio.QueueFull)."""
        items = self._items
        if self._sizes is None and len(items) < self.maxsize:
            items.append(item)
            self.puts += 1
            self._unfinished += 1
            if len(items) > self.high_water:
                self.high_water = len(items)
            if self._getters:
                _wake_one(self._getters)
            return True
        return self._put_slow(item, self._size(item))

    async def put(self, item: T, timeout: float | None = None) -> bool:
        """Queue `item`; with policy "block" wait for room (up to `timeout` seconds)."""
        items = self._items
        if self._sizes is None and len(items) < self.maxsize:
            items.append(item)
            self.puts += 1
            self._unfinished += 1
            if len(items) > self.high_water:
                self.high_water = len(items)
            if self._getters:
                _wake_one(self._getters)
            return True
        size = self._size(item)
        if self.policy != "block" or self._fits(size) or self._oversize(size):
            return self._put_slow(item, size)
        self.waits += 1
        self._pressure.note()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._fits(size):
            waiter: asyncio.Future[None] = loop.create_future()
            self._putters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                self._forget(self._putters, waiter)
                self.rejections += 1
                raise asyncio.QueueFull(f"{self.name}: still full after {timeout}s") from None
            except BaseException:
                self._forget(self._putters, waiter)
                raise
            self._pressure.note()
        return self._put_slow(item, size)

    def _size(self, item: T) -> int:
        return 0 if self._sizes is None else self._sizeof(item)

    def _fits(self, size: int) -> bool:
        return len(self._items) < self.maxsize and (
            self.max_bytes is None or self._bytes + size <= self.max_bytes
        )

    def _oversize(self, size: int) -> bool:
        return self.max_bytes is not None and size > self.max_bytes

    def _forget(self, waiters: deque[asyncio.Future[None]], waiter: asyncio.Future[None]) -> None:
        """A waiter gave up: remove it, and pass a wake-up it already received to the next one."""
        waiter.cancel()
        with contextlib.suppress(ValueError):
            waiters.remove(waiter)
        room = self._fits(0) if waiters is self._putters else bool(self._items)
        if room:
            _wake_one(waiters)

    def _put_slow(self, item: T, size: int) -> bool:
        dropped: list[T] = []
        if not self._fits(size):
            self._pressure.note()
            oversize = self._oversize(size)
            if self.policy == "drop_newest" or (oversize and self.policy == "drop_oldest"):
                self.drops += 1
                self._call_on_drop([item])
                return False
            if self.policy == "drop_oldest":
                while not self._fits(size):
                    dropped.append(self._items.popleft())
                    if self._sizes is not None:
                        self._bytes -= self._sizes.popleft()
                    self.drops += 1
                    self._unfinished -= 1
            else:
                self.rejections += 1
                why = "larger than max_bytes" if oversize else "full"
                raise asyncio.QueueFull(f"{self.name}: {why} ({len(self._items)} items)")
        self._items.append(item)
        if self._sizes is not None:
            self._sizes.append(size)
            self._bytes += size
        self.puts += 1
        self._unfinished += 1
        if len(self._items) > self.high_water:
            self.high_water = len(self._items)
        if self._getters:
            _wake_one(self._getters)
        self._call_on_drop(dropped)
        return True

    def _call_on_drop(self, dropped: list[T]) -> None:
        if self._on_drop is not None:
            for old in dropped:
                call_back(self, "on_drop", self._on_drop, old)

    # -- consumer side ------------------------------------------------------------------------

    def get_nowait(self) -> T:
        """Remove and return the oldest item; raises asyncio.QueueEmpty."""
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if self._sizes is not None:
            self._bytes -= self._sizes.popleft()
        self.gets += 1
        if self._putters:
            _wake_one(self._putters)
        if not items:
            self._pressure.since = None  # drained: the consumer caught up
        return item

    async def get(self) -> T:
        """Remove and return the oldest item, waiting for one."""
        if not self._items:
            loop = asyncio.get_running_loop()
            while not self._items:
                waiter: asyncio.Future[None] = loop.create_future()
                self._getters.append(waiter)
                try:
                    await waiter
                except BaseException:
                    self._forget(self._getters, waiter)
                    raise
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._finished is not None:
            self._finished.set()

    async def join(self) -> None:
        """Wait until every accepted item was got and marked done (or dropped)."""
        while self._unfinished > 0:
            if self._finished is None:
                self._finished = asyncio.Event()
            self._finished.clear()
            await self._finished.wait()

    # -- state --------------------------------------------------------------------------------

    def qsize(self) -> int:
        return len(self._items)

    __len__ = qsize

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return not self._fits(0)


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return
