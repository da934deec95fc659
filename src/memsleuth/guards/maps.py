"""Maps and sets bounded by size and/or age, on cachetools, with eviction counters and hooks."""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, MutableSet
from typing import Any, Literal, TypeVar, cast

from cachetools import Cache, LRUCache, TTLCache

from memsleuth.guards.limits import GuardError, parse_duration, parse_size
from memsleuth.guards.queues import default_sizeof
from memsleuth.guards.registry import GuardStats, call_back, default_name, register

K = TypeVar("K")
V = TypeVar("V")
EvictReason = Literal["size", "ttl", "pressure"]
OnEvict = Callable[[Any, Any, EvictReason], object]


class CappedDict(MutableMapping[K, V]):
    """A dict bounded by entries (LRU eviction), by age (`ttl` seconds) and/or by bytes.

    Built on cachetools: LRUCache without a ttl, TTLCache with one (its `timer=` makes expiry
    testable). Adds what cachetools lacks: eviction and expiry counters, `on_evict(key, value,
    reason)` with reason "size", "ttl" or "pressure", a byte bound next to the entry bound, a
    `shrink()` pressure hook for the watchdog, and a registry entry for snapshot() and metrics.
    Like cachetools it is not thread-safe: guard it with a lock when threads share it.
    Expired entries leave on the next write, on expire(), or when the watchdog calls expire().
    """

    kind = "dict"

    def __new__(cls, *args: Any, **kwargs: Any) -> CappedDict[K, V]:
        if cls in _IMPLS or any(issubclass(cls, impl) for impl in _IMPLS):
            return super().__new__(cls)  # an implementation (or unpickling one)
        # Pick the cheapest implementation that honours the bounds asked for: a TTLCache
        # costs ~3.5x an LRUCache per write, so it is used only when a ttl is given.
        ttl = kwargs.get("ttl", args[1] if len(args) > 1 else None)
        by_bytes = kwargs.get("max_bytes") is not None
        impl: type[CappedDict[Any, Any]]
        if ttl is None:
            impl = _LRUBytesDict if by_bytes else _LRUDict
        else:
            impl = _TTLBytesDict if by_bytes else _TTLDict
        # A program's subclass (`class Sessions(CappedDict)`) is mixed with it: it had been
        # an abstract class that could not be made.
        return super().__new__(impl if cls is CappedDict else _mixed(cls, impl))

    def __init__(
        self,
        maxsize: int | None = None,
        ttl: float | str | None = None,
        *,
        max_bytes: int | str | None = None,
        sizeof: Callable[[V], int] = default_sizeof,
        name: str | None = None,
        on_evict: OnEvict | None = None,
        timer: Callable[[], float] = time.monotonic,
        register_guard: bool = True,
    ) -> None:
        if maxsize is None and ttl is None and max_bytes is None:
            raise GuardError("a capped dict needs a bound", "give maxsize=, ttl= and/or max_bytes=")
        if maxsize is not None and (
            isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1
        ):  # "100" or 2.5 had given a bare TypeError, or been taken as is
            raise GuardError(
                f"maxsize must be a whole number >= 1, not {maxsize!r}", "e.g. maxsize=100_000"
            )
        bad_ttl = GuardError(f"ttl must be a positive duration, not {ttl!r}", "e.g. ttl='10min'")
        try:
            ttl = None if ttl is None else parse_duration(ttl)  # seconds, or "5s", "10min"
        except GuardError:
            raise bad_ttl from None
        if ttl is not None and not ttl < math.inf:  # nothing would ever expire
            raise bad_ttl
        self.max_items = maxsize
        self.max_bytes = None if max_bytes is None else parse_size(max_bytes)
        if self.max_bytes is not None and self.max_bytes < 1:
            raise GuardError("max_bytes must be at least 1 byte", "e.g. max_bytes='64MiB'")
        self._ttl_s = ttl
        self.name = name or default_name(self.kind)
        self._on_evict = on_evict
        self._evict_reason: EvictReason = "size"
        self.evictions = 0  # removed to make room (reason "size")
        self.expirations = 0  # removed because older than ttl (reason "ttl")
        self.pressure_evictions = 0  # removed by shrink() (reason "pressure")
        self.callback_errors = 0  # on_evict calls that raised (logged, never raised)
        self.too_large = 0  # values over max_bytes on their own: not stored (reason "too-large")
        self._init_cache(
            self.max_bytes if self.max_bytes is not None else (maxsize or sys.maxsize),
            sizeof if self.max_bytes is not None else None,
            timer,
        )
        if register_guard:
            register(self)

    def _init_cache(
        self, capacity: int, getsizeof: Callable[[V], int] | None, timer: Callable[[], float]
    ) -> None:
        raise NotImplementedError  # pragma: no cover - every implementation defines it

    def popitem(self) -> tuple[K, V]:
        """Evict the least recently used entry (cachetools calls this when full)."""
        key, value = self._cache_popitem()
        if self._evict_reason == "size":
            self.evictions += 1
        else:
            self.pressure_evictions += 1
        if self._on_evict is not None:
            call_back(self, "on_evict", self._on_evict, key, value, self._evict_reason)
        return key, value

    def _cache_popitem(self) -> tuple[K, V]:
        raise NotImplementedError  # pragma: no cover - every implementation binds its cache's

    def shrink(self, keep: float = 0.5) -> int:
        """Evict least recently used entries until at most `keep` of them remain; how many went.

        A pressure hook: `watchdog.on_pressure(cache.shrink)` halves the cache when memory is
        short (seed 003's emergency cleanup), counting them as "pressure" evictions.
        """
        if not 0 <= keep <= 1:
            raise GuardError(f"keep must be within 0..1, not {keep!r}", "e.g. keep=0.5")
        target = int(_raw_len(self) * keep)
        removed = 0
        self._evict_reason = "pressure"
        try:
            while _raw_len(self) > target:
                self.popitem()
                removed += 1
        finally:
            self._evict_reason = "size"
        return removed

    # As a dict's: `d | other` and `other | d` are plain dicts (the bound is the guard's, not
    # its results'); `d |= other` writes into the guard, bounds and all. Without them the
    # error had named the implementation: "'_LRUDict' and 'dict'".
    def __or__(self, other: Mapping[K, V]) -> dict[K, V]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return {**self, **other}

    def __ror__(self, other: Mapping[K, V]) -> dict[K, V]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return {**other, **self}

    def __ior__(self, other: Mapping[K, V] | Iterable[tuple[K, V]]) -> CappedDict[K, V]:
        self.update(other)
        return self

    def stats(self) -> GuardStats:
        # Raw sizes, without expiring: stats() runs on the metrics thread and must not mutate.
        items = _raw_len(self)
        size = _raw_currsize(self) if self.max_bytes is not None else None
        return GuardStats(
            kind=self.kind,
            name=self.name,
            items=items,
            bytes=size,
            max_items=self.max_items,
            max_bytes=self.max_bytes,
            counters={
                "evictions": self.evictions,
                "expirations": self.expirations,
                "pressure_evictions": self.pressure_evictions,
                "callback_errors": self.callback_errors,
                "too_large": self.too_large,
            },
        )


def _raw_len(cache: object) -> int:
    """Entries held, expired or not: unlike len() on a TTLCache this never mutates."""
    return Cache.__len__(cast("Cache[Any, Any]", cache))


def _raw_currsize(cache: object) -> int:
    size: int = Cache.currsize.fget(cache)  # type: ignore[attr-defined]
    return size


class _TTLExpiry(CappedDict[K, V]):
    """Counts and reports expiries; sits before TTLCache in the MRO."""

    def expire(self, time: float | None = None) -> list[tuple[K, V]]:
        expired: list[tuple[K, V]] = TTLCache.expire(self, time)  # type: ignore[arg-type]
        if expired:
            self.expirations += len(expired)
            if self._on_evict is not None:
                for key, value in expired:
                    call_back(self, "on_evict", self._on_evict, key, value, "ttl")
        return expired


class _ItemCap(CappedDict[K, V]):
    """The entry bound when cachetools' own maxsize is spent on bytes."""

    def __setitem__(self, key: K, value: V) -> None:
        size = cast("Cache[Any, Any]", self).getsizeof(value)
        if self.max_bytes is not None and size > self.max_bytes:
            # Larger than the whole bound: not stored (a cache miss next time), counted, and
            # the older value under that key goes too (cachetools raised ValueError here).
            self.too_large += 1
            self.pop(key, None)
            if self._on_evict is not None:
                call_back(self, "on_evict", self._on_evict, key, value, "too-large")
            return
        limit = self.max_items
        if limit is not None and key not in self:
            while _raw_len(self) >= limit:
                self.popitem()
        super().__setitem__(key, value)


class _LRUDict(CappedDict[K, V], LRUCache[K, V]):
    # Bound directly rather than through super(): popitem runs on every eviction.
    _cache_popitem = LRUCache.popitem

    def _init_cache(
        self, capacity: int, getsizeof: Callable[[V], int] | None, timer: Callable[[], float]
    ) -> None:
        LRUCache.__init__(self, capacity, getsizeof)


class _TTLDict(_TTLExpiry[K, V], TTLCache[K, V]):
    _cache_popitem = TTLCache.popitem

    def _init_cache(
        self, capacity: int, getsizeof: Callable[[V], int] | None, timer: Callable[[], float]
    ) -> None:
        assert self._ttl_s is not None
        TTLCache.__init__(self, capacity, self._ttl_s, timer, getsizeof)


class _LRUBytesDict(_ItemCap[K, V], _LRUDict[K, V]):
    pass


class _TTLBytesDict(_ItemCap[K, V], _TTLDict[K, V]):
    pass


_IMPLS: tuple[type[CappedDict[Any, Any]], ...] = (
    _LRUDict,
    _TTLDict,
    _LRUBytesDict,
    _TTLBytesDict,
)


@functools.cache
def _mixed(
    cls: type[CappedDict[Any, Any]], impl: type[CappedDict[Any, Any]]
) -> type[CappedDict[Any, Any]]:
    """The program's subclass over the implementation its bounds need, named as the subclass."""
    return type(cls.__name__, (cls, impl), {"__module__": cls.__module__})


class CappedSet(MutableSet[K]):
    """A set bounded by entries and/or age, e.g. seed 003's dedup set of seen signatures.

    A CappedDict of key -> None underneath: same bounds, counters, shrink() and timer=;
    `on_evict(key, reason)`.
    """

    kind = "set"

    def __init__(
        self,
        maxsize: int | None = None,
        ttl: float | str | None = None,
        *,
        name: str | None = None,
        on_evict: Callable[[K, EvictReason], object] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name or default_name(self.kind)
        forward: OnEvict | None = None
        if on_evict is not None:
            callback = on_evict

            def forward(key: Any, _value: Any, reason: EvictReason) -> None:
                callback(key, reason)

        self._map: CappedDict[K, None] = CappedDict(  # type: ignore[abstract]
            maxsize, ttl, name=self.name, on_evict=forward, timer=timer, register_guard=False
        )
        register(self)

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> set[Any]:
        """What `|`, `&`, `-` and `^` return: a plain set. The bound is the guard's, not its
        results' (they had passed their items to the constructor as `maxsize`)."""
        return set(it)

    def add(self, value: K) -> None:
        self._map[value] = None

    def update(self, *others: Iterable[K]) -> None:
        for other in others:
            for value in other:
                self._map[value] = None

    def union(self, *others: Iterable[Any]) -> set[Any]:
        return set(self).union(*others)

    def intersection(self, *others: Iterable[Any]) -> set[Any]:
        return set(self).intersection(*others)

    def difference(self, *others: Iterable[Any]) -> set[Any]:
        return set(self).difference(*others)

    def discard(self, value: K) -> None:
        self._map.pop(value, None)

    def __contains__(self, value: object) -> bool:
        return value in self._map

    def __iter__(self) -> Iterator[K]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def clear(self) -> None:
        self._map.clear()

    def shrink(self, keep: float = 0.5) -> int:
        return self._map.shrink(keep)

    def expire(self) -> int:
        """Drop expired entries now; how many went (0 without a ttl)."""
        expire = getattr(self._map, "expire", None)
        return 0 if expire is None else len(expire())

    @property
    def evictions(self) -> int:
        return self._map.evictions

    @property
    def expirations(self) -> int:
        return self._map.expirations

    def stats(self) -> GuardStats:
        inner = self._map.stats()
        return GuardStats(
            kind=self.kind,
            name=self.name,
            items=inner.items,
            bytes=None,
            max_items=inner.max_items,
            counters=inner.counters,
        )

    def __repr__(self) -> str:
        return f"CappedSet(name={self.name!r}, {len(self._map)}/{self._map.max_items} entries)"
