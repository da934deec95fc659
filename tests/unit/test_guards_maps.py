"""CappedDict, CappedSet and PendingTable: size and TTL eviction on an injected clock, prune."""

from __future__ import annotations

import pytest

from memsleuth.guards import CappedDict, CappedSet, GuardError, PendingTable, snapshot


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_size_bound_evicts_least_recently_used_and_reports_it() -> None:
    evicted: list[tuple[object, object, str]] = []
    d: CappedDict[str, int] = CappedDict(3, on_evict=lambda k, v, r: evicted.append((k, v, r)))
    d["a"], d["b"], d["c"] = 1, 2, 3
    assert d["a"] == 1  # touch: "b" is now the least recently used
    d["d"] = 4
    assert evicted == [("b", 2, "size")]
    assert sorted(d) == ["a", "c", "d"]
    assert d.evictions == 1 and d.expirations == 0


def test_ttl_expires_entries_on_the_injected_clock() -> None:
    clock = FakeClock()
    evicted: list[tuple[object, str]] = []
    d: CappedDict[str, int] = CappedDict(
        100, ttl=5.0, timer=clock, on_evict=lambda k, v, r: evicted.append((k, r))
    )
    d["old"] = 1
    clock.now = 3.0
    d["young"] = 2
    clock.now = 5.5
    assert "old" not in d and d["young"] == 2
    d["new"] = 3  # a write removes what expired
    assert evicted == [("old", "ttl")]
    assert d.expirations == 1 and d.evictions == 0
    clock.now = 100.0
    assert d.expire() == [("young", 2), ("new", 3)]
    assert len(d) == 0 and d.expirations == 3


def test_ttl_and_size_together() -> None:
    clock = FakeClock()
    d: CappedDict[int, int] = CappedDict(maxsize=2, ttl=10.0, timer=clock)
    for i in range(5):
        d[i] = i
    assert sorted(d) == [3, 4] and d.evictions == 3
    clock.now = 11.0
    d[9] = 9
    assert list(d) == [9] and d.expirations == 2


def test_byte_bound_counts_bytes_and_entries() -> None:
    d: CappedDict[int, bytes] = CappedDict(maxsize=5, max_bytes="1KiB")
    for i in range(10):
        d[i] = bytes(300)
    assert len(d) == 3  # 3 x 300 B <= 1024 B < 4 x 300 B
    assert d.stats().bytes == 900
    small: CappedDict[int, bytes] = CappedDict(maxsize=5, max_bytes=10_000)
    for i in range(10):
        small[i] = b"x"
    assert len(small) == 5  # the entry bound still holds when bytes are bounded
    assert small.evictions == 5


def test_byte_bound_with_ttl_and_custom_sizeof() -> None:
    clock = FakeClock()
    d: CappedDict[str, str] = CappedDict(ttl=1.0, max_bytes=10, sizeof=len, timer=clock)
    d["a"] = "12345"
    d["b"] = "12345"
    d["c"] = "1"
    assert "a" not in d and d.evictions == 1
    clock.now = 2.0
    d["d"] = "1"
    assert list(d) == ["d"] and d.expirations == 2


def test_shrink_is_a_pressure_hook_counted_apart() -> None:
    reasons: list[str] = []
    d: CappedDict[int, int] = CappedDict(1000, on_evict=lambda k, v, r: reasons.append(r))
    for i in range(100):
        d[i] = i
    assert d.shrink(0.25) == 75
    assert sorted(d) == list(range(75, 100))  # the most recently used stay
    assert d.pressure_evictions == 75 and d.evictions == 0
    assert set(reasons) == {"pressure"}
    d[1000] = 0  # later evictions are "size" again
    assert d.stats().counters["pressure_evictions"] == 75


def test_stats_do_not_expire_entries() -> None:
    """stats() runs on the metrics thread: it must not mutate a cache another thread owns."""
    clock = FakeClock()
    d: CappedDict[int, int] = CappedDict(10, ttl=1.0, timer=clock, name="no-mutate")
    d[1] = 1
    clock.now = 5.0
    assert d.stats().items == 1
    assert d.expirations == 0
    assert len(d) == 0  # len() on a TTL cache does expire, like cachetools


def test_capped_set_dedups_within_ttl_and_size() -> None:
    clock = FakeClock()
    gone: list[tuple[object, str]] = []
    seen: CappedSet[str] = CappedSet(
        maxsize=3,
        ttl=5.0,
        timer=clock,
        name="dedup-test",
        on_evict=lambda k, r: gone.append((k, r)),
    )
    for sig in ["s1", "s2", "s1", "s3", "s4"]:
        seen.add(sig)
    assert "s4" in seen and len(seen) == 3
    assert gone == [("s2", "size")]  # s1 was re-added, so s2 was the oldest
    clock.now = 6.0
    assert seen.expire() == 3
    assert len(seen) == 0 and seen.expirations == 3
    [stats] = [s for s in snapshot() if s.name == "dedup-test"]
    assert stats.kind == "set" and stats.counters["evictions"] == 1
    assert not [s for s in snapshot() if s.name == "dedup-test" and s.kind == "dict"]


def test_capped_dict_needs_a_bound() -> None:
    with pytest.raises(GuardError) as err:
        CappedDict()
    assert err.value.hint
    with pytest.raises(GuardError):
        CappedDict(10, ttl=0)


def test_pending_table_prunes_entries_older_than_the_timeout() -> None:
    clock = FakeClock()
    expired: list[tuple[int, str]] = []
    acks: PendingTable[int, str] = PendingTable(
        10.0, timer=clock, on_expire=lambda k, v: expired.append((k, v)), name="sent-test"
    )
    for seq in range(5):
        clock.now = float(seq)
        acks.add(seq, f"datagram {seq}")
    assert acks.ack(1) == "datagram 1"
    assert acks.ack(1) is None  # acked twice: nothing left
    clock.now = 12.5
    assert acks.prune() == [(0, "datagram 0"), (2, "datagram 2")]
    assert expired == [(0, "datagram 0"), (2, "datagram 2")]
    assert list(acks) == [3, 4]
    assert acks.expired == 2 and acks.acks == 1
    assert acks.oldest_age() == pytest.approx(9.5)
    stats = acks.stats()
    assert stats.counters == {
        "adds": 5,
        "acks": 1,
        "expirations": 2,
        "evictions": 0,
        "callback_errors": 0,
    }
    assert stats.items == 2 and stats.gauges["high_water"] == 5


def test_pending_table_prunes_by_itself_on_add() -> None:
    """A table nobody prunes still stays bounded: add() prunes once the oldest is due."""
    clock = FakeClock()
    acks: PendingTable[int, None] = PendingTable(1.0, timer=clock)
    for i in range(10_000):
        clock.now = i * 0.01  # 100 adds per second, none ever acked
        acks.add(i, None)
    assert len(acks) <= 101
    assert acks.expired >= 10_000 - 101


def test_pending_table_re_add_restarts_the_clock_and_maxsize_evicts_oldest() -> None:
    clock = FakeClock()
    acks: PendingTable[str, int] = PendingTable(5.0, maxsize=2, timer=clock)
    acks.add("a", 1)
    clock.now = 3.0
    acks.add("a", 2)  # retransmitted: its age starts again
    clock.now = 6.0
    assert acks.prune() == []
    assert acks.age("a") == pytest.approx(3.0)
    acks.add("b", 3)
    acks.add("c", 4)
    assert list(acks) == ["b", "c"] and acks.evictions == 1
    with pytest.raises(GuardError):
        PendingTable(0)


def test_an_on_evict_that_raises_loses_neither_the_write_nor_the_count() -> None:
    def boom(key: object, value: object, reason: object) -> None:
        raise RuntimeError("on_evict bug")

    d: CappedDict[str, int] = CappedDict(1, on_evict=boom)
    d["a"] = 1
    d["b"] = 2  # evicts "a"; the callback's error had left the dict empty
    assert dict(d) == {"b": 2}
    assert d.evictions == 1 and d.stats().counters["callback_errors"] == 1


def test_bad_bounds_are_guard_errors_and_a_ttl_may_be_a_duration() -> None:
    # CappedDict("100") had raised a bare TypeError, CappedDict(2.5) was taken as is, and
    # max_bytes=0 was accepted, then refused every insert as "too large".
    for bad in ("100", 2.5, 0, True):
        with pytest.raises(GuardError, match="maxsize must be a whole number"):
            CappedDict(bad)  # type: ignore[arg-type]
    with pytest.raises(GuardError, match="max_bytes"):
        CappedDict(max_bytes=0)
    with pytest.raises(GuardError):
        CappedDict(10, ttl="soon")
    for never in (float("nan"), float("inf")):  # nan: nothing would ever expire
        with pytest.raises(GuardError, match="ttl must be a positive duration"):
            CappedDict(10, ttl=never)
    now = [0.0]
    d: CappedDict[str, int] = CappedDict(10, ttl="5s", timer=lambda: now[0])
    d["a"] = 1
    now[0] = 6.0
    assert d.expire() == [("a", 1)] and d.expirations == 1


@pytest.mark.parametrize("ttl", [None, 60.0])
def test_a_value_larger_than_the_byte_bound_is_not_stored_nor_raised(ttl: float | None) -> None:
    # cachetools raised ValueError("value too large") into the program's write.
    evicted: list[tuple[str, str]] = []
    d: CappedDict[str, bytes] = CappedDict(
        ttl=ttl, max_bytes=1000, sizeof=len, on_evict=lambda k, v, why: evicted.append((k, why))
    )
    d["a"] = b"x" * 100
    d["big"] = b"y" * 5000
    d["a"] = b"z" * 5000  # the older value under the key goes too: it is no longer current
    assert dict(d) == {} and d.too_large == 2
    assert evicted == [("big", "too-large"), ("a", "too-large")]
    assert d.stats().counters["too_large"] == 2


def test_an_on_expire_that_raises_is_counted_and_the_add_still_happens() -> None:
    # Raised from prune() inside add(), it had lost the new entry and left the other expired
    # entry unreported.
    now = [0.0]
    seen: list[int] = []

    def report(key: int, value: str) -> None:
        seen.append(key)
        raise RuntimeError("logging backend down")

    table: PendingTable[int, str] = PendingTable("10s", on_expire=report, timer=lambda: now[0])
    table.add(1, "a")
    table.add(2, "b")
    now[0] = 20.0
    table.add(3, "c")
    assert 3 in table and len(table) == 1 and seen == [1, 2]
    assert table.expired == 2 and table.callback_errors == 2
    assert table.stats().counters["callback_errors"] == 2


def test_a_program_may_subclass_capped_dict() -> None:
    # CappedDict(...) builds a private implementation: a subclass had been an abstract class.
    class Sessions(CappedDict[str, int]):
        def total(self) -> int:
            return sum(self.values())

    lru = Sessions(maxsize=2, register_guard=False)
    lru["a"], lru["b"], lru["c"] = 1, 2, 3
    assert isinstance(lru, Sessions) and type(lru).__name__ == "Sessions"
    assert list(lru) == ["b", "c"] and lru.total() == 5 and lru.evictions == 1
    ttl = Sessions(10, ttl="5s", register_guard=False)
    ttl["x"] = 1
    assert isinstance(ttl, Sessions) and ttl.total() == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maxsize": 10, "max_bytes": float("inf")},
        {"maxsize": 10, "max_bytes": float("nan")},
        {"maxsize": 10, "ttl": [1]},
    ],
)
def test_impossible_bounds_are_guard_errors_with_a_hint(kwargs: dict[str, object]) -> None:
    # inf had raised OverflowError, a list AttributeError, nan a bare conversion message.
    with pytest.raises(GuardError) as err:
        CappedDict(**kwargs)  # type: ignore[arg-type]
    assert err.value.hint


def test_set_and_dict_operators_give_plain_results_and_in_place_ones_stay_bounded() -> None:
    seen: CappedSet[int] = CappedSet(maxsize=3, name="ops-seen")
    seen.update([1, 2])
    assert (seen | {9}, seen & {1}, seen - {1}, {9} | seen) == ({1, 2, 9}, {1}, {2}, {1, 2, 9})
    assert seen.union({3}) == {1, 2, 3} and type(seen | {9}) is set
    seen |= {5, 6, 7}
    assert len(seen) == 3  # the bound holds for what is written into the guard
    cache: CappedDict[str, int] = CappedDict(maxsize=2, name="ops-cache")
    cache["a"] = 1
    assert cache | {"b": 2} == {"a": 1, "b": 2} and {"z": 0} | cache == {"z": 0, "a": 1}
    cache |= {"b": 2, "c": 3}
    assert dict(cache) == {"b": 2, "c": 3} and cache.evictions == 1
