"""A request/ack table that forgets entries older than a timeout (seed 000's sent_datagrams)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from memsleuth.guards.limits import GuardError, parse_duration
from memsleuth.guards.registry import GuardStats, call_back, default_name, register

K = TypeVar("K")
V = TypeVar("V")


class PendingTable(Generic[K, V]):
    """Entries waiting for an ack, pruned once older than `timeout` seconds.

    add() records an entry (re-adding a key restarts its clock), ack() removes and returns it.
    Entries older than `timeout` are pruned by prune(), and also automatically by add() once
    the oldest entry is due, so a table nobody prunes still stays bounded. Each pruned entry is
    counted (`expired`) and given to `on_expire(key, value)`; `maxsize` optionally caps the
    table too, evicting the oldest entries (counted as `evictions`). Not thread-safe.
    """

    kind = "pending"

    def __init__(
        self,
        timeout: float | str,
        *,
        maxsize: int | None = None,
        name: str | None = None,
        on_expire: Callable[[K, V], object] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        seconds = parse_duration(timeout)  # "10s" as the other guards' windows
        if maxsize is not None and (isinstance(maxsize, bool) or maxsize < 1):
            raise GuardError(f"maxsize must be >= 1, not {maxsize!r}", "e.g. maxsize=4096")
        self.timeout = seconds
        self.maxsize = maxsize
        self._cap = float("inf") if maxsize is None else maxsize
        self.name = name or default_name(self.kind)
        self._on_expire = on_expire
        self._timer = timer
        # Insertion order is age order (a re-add moves the key to the end), so the oldest
        # entry is always first and a prune stops at the first entry still young enough.
        self._entries: dict[K, tuple[V, float]] = {}
        self._next_due = float("inf")  # when the oldest entry times out
        self.adds = 0
        self.acks = 0
        self.expired = 0
        self.evictions = 0
        self.high_water = 0
        self.callback_errors = 0
        register(self)

    def add(self, key: K, value: V) -> None:
        """Record `key` as pending now (re-adding restarts its clock)."""
        now = self._timer()
        if now >= self._next_due:
            self.prune(now)
        entries = self._entries
        if key in entries:
            del entries[key]
        elif len(entries) >= self._cap:
            self._evict_oldest()
        entries[key] = (value, now)
        self.adds += 1
        n = len(entries)
        if n > self.high_water:
            self.high_water = n
        if n == 1:
            self._next_due = now + self.timeout

    def ack(self, key: K) -> V | None:
        """Remove `key` and return its value; None when unknown (already acked or pruned)."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.acks += 1
        return entry[0]

    def prune(self, now: float | None = None) -> list[tuple[K, V]]:
        """Remove and return the entries older than the timeout, counting them as expired."""
        if now is None:
            now = self._timer()
        entries = self._entries
        cutoff = now - self.timeout
        gone: list[tuple[K, V]] = []
        for key, (value, t) in entries.items():
            if t > cutoff:
                self._next_due = t + self.timeout
                break
            gone.append((key, value))
        else:
            self._next_due = float("inf")
        for key, _ in gone:
            del entries[key]
        if gone:
            self.expired += len(gone)
            if self._on_expire is not None:
                for key, value in gone:
                    # Raised, it had left add() without its new entry and the rest of the
                    # expired entries unreported.
                    call_back(self, "on_expire", self._on_expire, key, value)
        return gone

    def _evict_oldest(self) -> None:
        del self._entries[next(iter(self._entries))]
        self.evictions += 1

    def age(self, key: K) -> float | None:
        """Seconds since `key` was added; None when not pending."""
        entry = self._entries.get(key)
        return None if entry is None else self._timer() - entry[1]

    def oldest_age(self) -> float | None:
        """Seconds the oldest pending entry has waited; None when empty."""
        for _, t in self._entries.values():
            return self._timer() - t
        return None

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._entries))

    def clear(self) -> None:
        self._entries.clear()
        self._next_due = float("inf")

    def stats(self) -> GuardStats:
        return GuardStats(
            kind=self.kind,
            name=self.name,
            items=len(self._entries),
            bytes=None,
            max_items=self.maxsize,
            counters={
                "adds": self.adds,
                "acks": self.acks,
                "expirations": self.expired,
                "evictions": self.evictions,
                "callback_errors": self.callback_errors,
            },
            gauges={"high_water": self.high_water},
        )

    def __repr__(self) -> str:
        n = len(self._entries)
        return f"PendingTable(name={self.name!r}, {n} pending, timeout={self.timeout})"
