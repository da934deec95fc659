"""MemoryWatchdog on a scripted memory reading and a fake clock: rules, cooldown, actions."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import numpy as np
import psutil
import pytest

from memsleuth.guards import GuardError, MemoryWatchdog, parse_growth, parse_size, snapshot
from memsleuth.guards.limits import parse_duration, resolve_limit
from memsleuth.guards.memory import MemoryReading, find_malloc_trim

MIB = 1 << 20


class Scripted:
    """A fake clock and memory reading the test moves by hand."""

    def __init__(self, rss: int = 100 * MIB) -> None:
        self.now = 0.0
        self.rss = rss
        self.cgroup: int | None = None
        self.limit: int | None = None

    def timer(self) -> float:
        return self.now

    def read(self) -> MemoryReading:
        return MemoryReading(self.rss, self.cgroup, self.limit)


def dog(mem: Scripted, **kwargs: object) -> MemoryWatchdog:
    kwargs.setdefault("trim", False)
    kwargs.setdefault("collect", False)
    return MemoryWatchdog(timer=mem.timer, reader=mem.read, **kwargs)  # type: ignore[arg-type]


def test_soft_limit_runs_the_cleanups_once_per_cooldown() -> None:
    mem = Scripted(rss=100 * MIB)
    w = dog(mem, soft_limit="150MiB", cooldown=10.0)
    calls: list[float] = []
    w.on_pressure(lambda: calls.append(mem.now))
    assert w.check() is None
    mem.rss = 200 * MIB
    for step in range(25):  # 25 s above the soft limit, one check per second
        mem.now = 1.0 + step
        w.check()
    assert calls == [1.0, 11.0, 21.0]
    assert w.counts["soft"] == 3
    [firing, *_] = w.firings
    assert firing.reason == "soft" and "soft limit" in firing.detail


def test_cleanup_that_frees_memory_is_measured_and_counted() -> None:
    mem = Scripted(rss=300 * MIB)
    w = dog(mem, soft_limit=200 * MIB)
    cache = {i: i for i in range(10)}

    def clear_cache() -> None:
        cache.clear()
        mem.rss -= 120 * MIB  # what freeing the cache did to RSS

    w.on_pressure(clear_cache, name="cache.clear")
    firing = w.check()
    assert firing is not None and not cache
    [action] = firing.actions
    assert action.action == "cleanup cache.clear" and action.freed_bytes == 120 * MIB
    assert firing.freed_bytes == 120 * MIB and w.freed_bytes == 120 * MIB
    assert w.stats().counters["freed_bytes"] == 120 * MIB


def test_growth_rule_is_seed_003s_rss_delta_over_a_window() -> None:
    mem = Scripted(rss=100 * MIB)
    w = dog(mem, growth="50MiB/5min", cooldown=60)
    fired = []
    for step in range(20):  # +4 MiB a minute: 20 MiB per 5 min, under the rule
        mem.now, mem.rss = step * 60.0, 100 * MIB + step * 4 * MIB
        fired.append(w.check())
    assert not any(fired)
    for step in range(20, 30):  # then +15 MiB a minute
        mem.now, mem.rss = step * 60.0, mem.rss + 15 * MIB
        fired.append(w.check())
    firings = [f for f in fired if f is not None]
    assert firings and firings[0].reason == "growth"
    # At t=22 min the sample 5 min back (t=17 min, 168 MiB) is 53 MiB below: the first firing.
    assert firings[0].t == 22 * 60.0
    assert w.counts["growth"] == len(firings)


def test_hard_limit_calls_back_only_when_relief_was_not_enough() -> None:
    mem = Scripted(rss=100 * MIB)
    seen: list[str] = []
    w = dog(
        mem, hard_limit="1GiB", soft_limit="900MiB", on_hard_limit=lambda f: seen.append(f.reason)
    )
    freed = {"amount": 0}
    w.on_pressure(lambda: setattr(mem, "rss", mem.rss - freed["amount"]))
    mem.rss = 1100 * MIB
    freed["amount"] = 300 * MIB  # the cleanup brings it under the hard limit
    assert w.check() is not None
    assert seen == [] and w.counts["hard"] == 1
    mem.now, mem.rss, freed["amount"] = 100.0, 1100 * MIB, 0  # nothing to free this time
    w.check()
    assert seen == ["hard"] and w.hard_callbacks == 1
    assert w.counts["soft"] == 0  # a hard firing covers the soft one


def test_hard_limit_crossed_again_within_the_cooldown_calls_back_without_new_relief() -> None:
    """gc.collect() freed a little and got RSS just under the limit; the program kept growing.
    The OOM killer does not wait for the cooldown: the callback must run on the next crossing,
    once, and the relief (already tried) is not repeated."""
    mem = Scripted(rss=100 * MIB)
    seen: list[str] = []
    w = dog(mem, hard_limit="1GiB", cooldown=60.0, on_hard_limit=lambda f: seen.append(f.detail))
    relief: list[float] = []
    w.on_pressure(lambda: (relief.append(mem.now), setattr(mem, "rss", 1000 * MIB)))
    mem.rss = 1040 * MIB
    w.check()
    assert relief == [0.0] and seen == []
    mem.now, mem.rss = 1.0, 1030 * MIB  # back above the limit 1 s later
    w.check()
    mem.now = 2.0
    w.check()  # still above: the callback already ran in this cooldown
    assert relief == [0.0] and len(seen) == 1 and "again within the cooldown" in seen[0]
    assert w.counts["hard"] == 2 and w.hard_callbacks == 1
    mem.now = 61.0  # the cooldown is over: relief, then the callback since it freed nothing
    w.on_pressure(lambda: None)
    w.check()
    assert relief == [0.0, 61.0] and w.hard_callbacks == 1  # this relief got below again


def test_limits_can_follow_the_cgroup() -> None:
    mem = Scripted(rss=100 * MIB)
    mem.cgroup, mem.limit = 950 * MIB, 1000 * MIB
    w = dog(mem, soft_limit="90%", usage="cgroup")
    assert w.soft_limit == 900 * MIB
    firing = w.check()
    assert firing is not None and firing.usage_bytes == 950 * MIB
    assert "cgroup usage" in firing.detail
    assert w.stats().gauges["cgroup_limit_bytes"] == 1000 * MIB


def test_a_failing_cleanup_is_logged_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mem = Scripted(rss=500 * MIB)
    w = dog(mem, soft_limit=100 * MIB)
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("cleanup bug")

    w.on_pressure(broken)
    w.on_pressure(lambda: ran.append("second"), name="second")
    with caplog.at_level(logging.ERROR, logger="memsleuth.guards.watchdog"):
        firing = w.check()
    assert firing is not None and ran == ["second"]
    assert firing.actions[0].error == "RuntimeError: cleanup bug"
    assert w.errors == 1
    assert "cleanup bug" in caplog.text


def test_cleanups_for_an_event_loop_run_on_its_thread() -> None:
    mem = Scripted(rss=500 * MIB)
    w = dog(mem, soft_limit=100 * MIB, cooldown=0.001)
    ran_on: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        w.on_pressure(lambda: ran_on.append(threading.get_ident()), loop=loop)
        assert await loop.run_in_executor(None, w.check) is not None  # the watchdog's thread
        mem.now = 1.0
        assert w.check() is not None  # called on the loop itself: runs inline, no deadlock

    asyncio.run(main())
    assert ran_on == [threading.get_ident()] * 2


def test_a_check_on_the_loop_while_the_thread_waits_for_that_loop_does_not_freeze_it() -> None:
    # The thread fires and waits for the loop to run a loop= cleanup; the loop's own code
    # calls check() meanwhile. Both had waited on each other for the 30 s relief timeout.
    mem = Scripted(rss=500 * MIB)
    w = dog(mem, soft_limit=100 * MIB, cooldown=3600)
    ran: list[str] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        w.on_pressure(lambda: ran.append("cleanup"), loop=loop)
        firing = loop.run_in_executor(None, w.check)  # the watchdog's thread, about to fire
        while not w.checks:
            await asyncio.sleep(0)  # until it holds the check and waits for the loop
        started = time.monotonic()
        assert w.check() is None  # that check does the work: this one does not wait for it
        blocked = time.monotonic() - started
        assert await firing is not None
        return blocked

    blocked = asyncio.run(asyncio.wait_for(main(), timeout=20))
    assert blocked < 1.0
    assert ran == ["cleanup"] and w.errors == 0


def test_stop_that_gives_up_on_a_slow_cleanup_then_start_runs_one_thread() -> None:
    mem = Scripted(rss=500 * MIB)
    release = threading.Event()
    w = dog(mem, soft_limit=100 * MIB, cooldown=3600, interval=0.01)
    w.on_pressure(lambda: release.wait(10), name="slow")
    w.start()
    deadline = time.monotonic() + 10
    while not w.counts["soft"] and time.monotonic() < deadline:
        time.sleep(0.01)
    w.stop(timeout=0.05)  # the cleanup is still running
    w.start()
    release.set()
    time.sleep(0.3)
    names = [t.name for t in threading.enumerate() if t.name.startswith("memsleuth-watchdog")]
    assert len(names) == 1, names  # the old thread ended with its cleanup
    w.stop()
    assert not w.running


def test_the_thread_survives_failing_reads_and_stop_joins_it() -> None:
    failures = {"n": 0}

    def flaky() -> MemoryReading:
        failures["n"] += 1
        if failures["n"] > 1:  # the first read (in the constructor) works
            raise OSError("statm vanished")
        return MemoryReading(100 * MIB)

    w = MemoryWatchdog(soft_limit="1GiB", interval=0.01, reader=flaky)
    before = threading.active_count()
    w.start()
    deadline = time.monotonic() + 10
    while w.errors < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.errors >= 3 and w.running
    w.stop()
    assert not w.running
    assert threading.active_count() == before


def test_malloc_trim_is_skipped_cleanly_where_the_lookup_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert find_malloc_trim("libmemsleuth-no-such-libc.so.6") is None
    mem = Scripted(rss=500 * MIB)
    w = MemoryWatchdog(
        soft_limit=100 * MIB,
        timer=mem.timer,
        reader=mem.read,
        libc="libmemsleuth-no-such-libc.so.6",
    )
    with caplog.at_level(logging.INFO, logger="memsleuth.guards.watchdog"):
        firing = w.check()
    assert firing is not None
    assert [a.action for a in firing.actions] == ["gc.collect"]
    assert w.errors == 0
    assert "no malloc_trim here" in caplog.text


def test_malloc_trim_runs_where_glibc_has_it() -> None:
    if find_malloc_trim() is None:
        pytest.skip("this C library has no malloc_trim")
    mem = Scripted(rss=500 * MIB)
    w = MemoryWatchdog(soft_limit=100 * MIB, timer=mem.timer, reader=mem.read)
    firing = w.check()
    assert firing is not None
    assert [a.action for a in firing.actions] == ["gc.collect", "malloc_trim"]
    assert all(a.error is None for a in firing.actions)


def test_watchdog_is_in_the_snapshot() -> None:
    mem = Scripted()
    w = dog(mem, soft_limit="1GiB", name="snap-dog")
    w.check()
    [stats] = [s for s in snapshot() if s.name == "snap-dog"]
    assert stats.kind == "watchdog" and stats.counters["checks"] == 1
    assert stats.gauges["rss_bytes"] == 100 * MIB


def test_configuration_errors() -> None:
    mem = Scripted()
    with pytest.raises(GuardError):
        dog(mem)  # nothing to watch
    # No cgroup limit in this reading: a percentage is of physical memory.
    assert dog(mem, soft_limit="90%").soft_limit == int(psutil.virtual_memory().total * 0.9)
    with pytest.raises(GuardError):
        dog(mem, growth="50MiB")
    with pytest.raises(GuardError):
        dog(mem, soft_limit="lots")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5GiB", 1536 * MIB),
        ("50MiB", 50 * MIB),
        ("50MB", 50_000_000),
        ("4096", 4096),
        ("512 KiB", 512 * 1024),
        ("2g", 2_000_000_000),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_durations_growth_and_percent_limits() -> None:
    assert parse_duration("5min") == 300.0
    assert parse_duration("30s") == 30.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2h") == 7200.0
    rule = parse_growth("50MiB/5min")
    assert (rule.bytes, rule.window_s) == (50 * MIB, 300.0)
    assert resolve_limit("50%", 1000) == 500
    for bad in ("5 parsecs", "-1s", "0s"):
        with pytest.raises(GuardError):
            parse_duration(bad)
    with pytest.raises(GuardError) as err:
        resolve_limit("50%", None)
    assert "bytes" in err.value.hint


# -- the robust trend mode: the project's verdict engine decides -------------------------------


def sawtooth(n: int, period: int = 45) -> np.ndarray:
    """A GC sawtooth: climbs 60 MiB over each period then drops back, no trend in the floor."""
    rng = np.random.default_rng(3)
    return 200 * MIB + 60 * MIB * ((np.arange(n) % period) / period) + rng.normal(0, MIB, n)


def leak(n: int) -> np.ndarray:
    rng = np.random.default_rng(4)
    return 200 * MIB + 0.5 * MIB * np.arange(n) + rng.normal(0, MIB, n)


def feed(w: MemoryWatchdog, mem: Scripted, rss: np.ndarray) -> list[str]:
    reasons = []
    for i, value in enumerate(rss):
        mem.now, mem.rss = float(i), int(value)
        firing = w.check()
        if firing is not None:
            reasons.append(firing.reason)
    return reasons


def test_plain_growth_rule_fires_on_a_sawtooth_the_trend_mode_does_not() -> None:
    pytest.importorskip("memsleuth.analysis.verdict")
    rss = sawtooth(600)
    mem = Scripted()
    plain = dog(mem, growth="40MiB/2min", cooldown=30)
    assert feed(plain, mem, rss)  # seed 003's rule: a false alarm on every tooth
    mem = Scripted()
    robust = dog(mem, growth="40MiB/2min", trend=True, trend_window="5min", cooldown=30)
    assert feed(robust, mem, rss) == []
    assert robust.trend_checks > 0  # the rule tripped; the verdict engine vetoed it


def test_trend_mode_fires_on_a_steady_leak() -> None:
    pytest.importorskip("memsleuth.analysis.verdict")
    mem = Scripted()
    robust = dog(mem, growth="40MiB/2min", trend=True, trend_window="5min", cooldown=3600)
    assert feed(robust, mem, leak(600)) == ["trend"]
    assert "verdict leak" in robust.firings[0].detail


def test_trend_mode_alone_judges_the_window() -> None:
    pytest.importorskip("memsleuth.analysis.verdict")
    mem = Scripted()
    alone = dog(mem, trend=True, trend_window="5min", cooldown=3600)
    assert feed(alone, mem, sawtooth(600)) == []
    mem = Scripted()
    alone = dog(mem, trend=True, trend_window="5min", cooldown=3600)
    assert feed(alone, mem, leak(600)) == ["trend"]


def test_a_soft_limit_above_the_hard_limit_is_refused() -> None:
    with pytest.raises(GuardError, match="soft_limit"):
        MemoryWatchdog(soft_limit="2GiB", hard_limit="1GiB")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval": float("nan")},  # its thread had checked 167,000 times a second
        {"trend_confidence": 2.0},
        {"trend_confidence": float("nan")},
    ],
)
def test_a_watchdog_that_could_never_work_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(GuardError) as err:
        MemoryWatchdog(hard_limit="1GiB", **kwargs)  # type: ignore[arg-type]
    assert err.value.hint


def test_start_and_stop_from_many_threads_raise_nothing_and_leave_no_thread() -> None:
    dog = MemoryWatchdog(soft_limit="100GiB", interval=0.05)
    errors: list[BaseException] = []

    def user() -> None:
        for _ in range(100):
            try:
                dog.start()
                time.sleep(0.001)
                dog.stop(timeout=2)
            except BaseException as exc:
                errors.append(exc)

    users = [threading.Thread(target=user) for _ in range(4)]
    for u in users:
        u.start()
    for u in users:
        u.join()
    time.sleep(0.3)
    left = [t for t in threading.enumerate() if t.name.startswith("memsleuth-watchdog")]
    assert errors == [] and left == [] and not dog.running
