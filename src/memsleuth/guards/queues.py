"""A thread-safe bounded queue with a policy when full, counters and a slow-consumer flag."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from memsleuth.guards.limits import GuardError, parse_duration, parse_size
from memsleuth.guards.registry import GuardStats, call_back, default_name, register

T = TypeVar("T")
Policy = Literal["block", "drop_newest", "drop_oldest", "raise"]
POLICIES: tuple[Policy, ...] = ("block", "drop_newest", "drop_oldest", "raise")


def default_sizeof(item: object) -> int:
    """len() for bytes-like items (what a packet costs), sys.getsizeof() for anything else."""
    if isinstance(item, bytes | bytearray):
        return len(item)
    if isinstance(item, memoryview):
        return item.nbytes
    return sys.getsizeof(item)


def check_bounds(
    maxsize: int, policy: str, max_bytes: int | str | None
) -> tuple[int, Policy, int | None]:
    """Validate a queue's bounds; shared by the thread and asyncio flavours."""
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
        raise GuardError(
            f"maxsize must be an int >= 1, not {maxsize!r}",
            "a bounded queue needs a bound; use queue.Queue() if you really want none",
        )
    if policy not in POLICIES:
        raise GuardError(f"unknown policy {policy!r}", f"use one of: {', '.join(POLICIES)}")
    limit = None if max_bytes is None else parse_size(max_bytes)
    if limit is not None and limit < 1:
        raise GuardError(f"max_bytes must be >= 1, not {max_bytes!r}", "e.g. max_bytes='50MiB'")
    return maxsize, policy, limit


class Pressure:
    """When a queue was last full: drops or waits that persist make the consumer 'slow'.

    The consumer is slow when the queue has been under pressure (full on put) for at least
    `slow_after_s` without draining to empty, and the last pressure is recent (seed 000's
    ClientNetworkState: packets_dropped + last_drop_time).
    """

    __slots__ = ("last", "since", "slow_after_s", "timer")

    def __init__(self, slow_after_s: float | str, timer: Callable[[], float]) -> None:
        # Checked: a negative or nan wait could never be exceeded, and the check never fire.
        self.slow_after_s = parse_duration(slow_after_s)
        self.timer = timer
        self.since: float | None = None
        self.last = 0.0

    def note(self) -> None:
        now = self.timer()
        if self.since is None or now - self.last > self.slow_after_s:
            self.since = now
        self.last = now

    def is_slow(self) -> bool:
        since = self.since
        if since is None:
            return False
        return (
            self.last - since >= self.slow_after_s and self.timer() - self.last <= self.slow_after_s
        )


class QueueAccounting(Generic[T]):
    """What the thread and asyncio queues report alike: bytes, the slow-consumer flag, stats."""

    kind = "queue"
    name: str
    policy: Policy
    maxsize: int
    max_bytes: int | None
    puts: int
    gets: int
    drops: int
    waits: int
    rejections: int
    callback_errors: int
    high_water: int
    _items: deque[T]
    _sizes: deque[int] | None
    _bytes: int
    _pressure: Pressure

    @property
    def bytes(self) -> int | None:
        """Bytes queued by the `sizeof` estimate; None when bytes are not bounded."""
        return None if self._sizes is None else self._bytes

    @property
    def slow_consumer(self) -> bool:
        """True while puts keep finding the queue full (drops or waits) for slow_after_s."""
        return self._pressure.is_slow()

    def stats(self) -> GuardStats:
        return GuardStats(
            kind=self.kind,
            name=self.name,
            items=len(self._items),
            bytes=self.bytes,
            max_items=self.maxsize,
            max_bytes=self.max_bytes,
            counters={
                "puts": self.puts,
                "gets": self.gets,
                "drops": self.drops,
                "waits": self.waits,
                "rejections": self.rejections,
                "callback_errors": self.callback_errors,
            },
            gauges={"high_water": self.high_water, "slow_consumer": float(self.slow_consumer)},
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, policy={self.policy!r}, "
            f"{len(self._items)}/{self.maxsize} items, drops={self.drops})"
        )


class BoundedQueue(QueueAccounting[T]):
    """A `queue.Queue` replacement bounded in items (and optionally bytes) with a full policy.

    policy: "block" waits for room (backpressure; put(timeout=) raises queue.Full when it runs
    out), "drop_newest" discards the item being put, "drop_oldest" discards the oldest queued
    items to make room, "raise" raises queue.Full at once. put() returns False when it dropped
    the item it was given. Dropped items go to `on_drop` (called outside the queue's lock).
    An item larger than max_bytes on its own never fits: it is dropped, or queue.Full is raised.
    """

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
        self._timer = timer
        self._items: deque[T] = deque()
        # Per-item sizes only when bytes are bounded, so the count-only path stays lean.
        self._sizes: deque[int] | None = None if self.max_bytes is None else deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._all_done = threading.Condition(self._lock)
        # Waiter counts let the hot path skip Condition.notify() when nobody waits.
        self._getters = 0
        self._putters = 0
        self._unfinished = 0
        self._pressure = Pressure(slow_after_s, timer)
        self.puts = 0
        self.gets = 0
        self.drops = 0
        self.waits = 0  # puts that had to wait for room (policy "block")
        self.rejections = 0  # puts refused with queue.Full (policy "raise", or a block timeout)
        self.callback_errors = 0  # on_drop calls that raised (logged, never raised into put)
        self.high_water = 0
        register(self)

    # -- producer side ------------------------------------------------------------------------

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> bool:
        """Queue `item`, applying the policy when full; False if `item` itself was dropped."""
        if timeout is not None and block and not timeout >= 0:  # as queue.Queue refuses it
            raise ValueError("'timeout' must be a non-negative number")
        if self._sizes is None:
            with self._lock:
                items = self._items
                if len(items) < self.maxsize:
                    items.append(item)
                    self.puts += 1
                    self._unfinished += 1
                    if len(items) > self.high_water:
                        self.high_water = len(items)
                    if self._getters:
                        self._not_empty.notify()
                    return True
        return self._put_slow(item, block, timeout)

    def put_nowait(self, item: T) -> bool:
        """put() without waiting: with policy "block" a full queue raises queue.Full."""
        return self.put(item, block=False)

    def _fits(self, size: int) -> bool:
        return len(self._items) < self.maxsize and (
            self.max_bytes is None or self._bytes + size <= self.max_bytes
        )

    def _put_slow(self, item: T, block: bool, timeout: float | None) -> bool:
        size = 0 if self._sizes is None else self._sizeof(item)
        dropped: list[T] = []
        accepted = True
        try:
            with self._lock:
                if not self._fits(size):
                    accepted = self._make_room(item, size, block, timeout, dropped)
                if accepted:
                    self._items.append(item)
                    if self._sizes is not None:
                        self._sizes.append(size)
                        self._bytes += size
                    self.puts += 1
                    self._unfinished += 1
                    if len(self._items) > self.high_water:
                        self.high_water = len(self._items)
                    if self._getters:
                        self._not_empty.notify()
        finally:
            if dropped and self._on_drop is not None:
                for old in dropped:
                    call_back(self, "on_drop", self._on_drop, old)
        return accepted

    def _make_room(
        self, item: T, size: int, block: bool, timeout: float | None, dropped: list[T]
    ) -> bool:
        """With the lock held and the queue full: apply the policy. True = append `item`."""
        self._pressure.note()
        oversize = self.max_bytes is not None and size > self.max_bytes
        policy = self.policy
        if policy == "drop_newest" or (oversize and policy == "drop_oldest"):
            self.drops += 1
            dropped.append(item)
            return False
        if policy == "drop_oldest":
            while not self._fits(size):
                dropped.append(self._items.popleft())
                if self._sizes is not None:
                    self._bytes -= self._sizes.popleft()
                self.drops += 1
                self._unfinished -= 1
            self._note_done()
            return True
        if policy == "raise" or not block or oversize:
            self.rejections += 1
            if oversize:
                why = f"an item of {size:,} bytes is larger than max_bytes ({self.max_bytes:,})"
            else:
                why = f"full ({len(self._items)} items, {self._bytes} bytes)"
            raise queue.Full(f"{self.name}: {why}")
        self.waits += 1
        deadline = None if timeout is None else time.monotonic() + timeout
        self._putters += 1
        try:
            while not self._fits(size):
                if deadline is None:
                    self._not_full.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.rejections += 1
                    raise queue.Full(f"{self.name}: still full after {timeout}s")
                self._not_full.wait(remaining)
                self._pressure.note()
        finally:
            self._putters -= 1
        return True

    # -- consumer side ------------------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return the oldest item; raises queue.Empty like queue.Queue.get()."""
        with self._lock:
            items = self._items
            if items:
                item = items.popleft()
                if self._sizes is not None:
                    self._bytes -= self._sizes.popleft()
                self.gets += 1
                if self._putters:
                    self._not_full.notify()
                if not items:
                    self._pressure.since = None  # drained: the consumer caught up
                return item
        if not block:
            raise queue.Empty
        return self._get_wait(timeout)

    def get_nowait(self) -> T:
        return self.get(block=False)

    def _get_wait(self, timeout: float | None) -> T:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._getters += 1
            try:
                while not self._items:
                    if deadline is None:
                        self._not_empty.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise queue.Empty
                    self._not_empty.wait(remaining)
            finally:
                self._getters -= 1
            item = self._items.popleft()
            if self._sizes is not None:
                self._bytes -= self._sizes.popleft()
            self.gets += 1
            if self._putters:
                self._not_full.notify()
            if not self._items:
                self._pressure.since = None
            return item

    def task_done(self) -> None:
        """As queue.Queue.task_done(); dropped items count as done."""
        with self._lock:
            if self._unfinished <= 0:
                raise ValueError("task_done() called too many times")
            self._unfinished -= 1
            self._note_done()

    def _note_done(self) -> None:
        if self._unfinished <= 0:
            self._all_done.notify_all()

    def join(self) -> None:
        """Block until every accepted item was got and marked done (or dropped)."""
        with self._lock:
            while self._unfinished > 0:
                self._all_done.wait()

    # -- state --------------------------------------------------------------------------------

    def qsize(self) -> int:
        return len(self._items)

    __len__ = qsize

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        with self._lock:
            return not self._fits(0)
