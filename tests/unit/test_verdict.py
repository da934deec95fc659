"""The verdict a user relies on: its name, its numbers and its words, on small made-up series."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from memsleuth.analysis import judge
from memsleuth.model import Culprit, Series
from memsleuth.reports.summary import headline, key_numbers

MB = 1e6
HOUR = 3600.0
MIB = 2**20


def _t(hours: float, every_s: float = 10.0) -> np.ndarray:
    return np.arange(0.0, hours * HOUR, every_s)


def _noise(n: int, sd: float, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, n)


def _sawtooth(t: np.ndarray, period_s: float, height: float) -> np.ndarray:
    return (t % period_s) / period_s * height


def test_a_ramp_that_stops_is_a_leak_or_undecided_before_and_a_plateau_after() -> None:
    t = _t(6.0)
    ramp = 200 * MB + np.minimum(t, 2 * HOUR) * (100 * MB / HOUR) + _noise(t.size, 2 * MB)
    series = Series.from_arrays(t, ramp)
    before = judge(series.prefix(1.5 * HOUR))
    after = judge(series)
    assert before.verdict in ("leak", "inconclusive")
    assert after.verdict == "plateau"
    assert after.ceiling_bytes == pytest.approx(400 * MB, rel=0.05)
    assert not after.is_problem
    # Levelling off under the limit, it never reaches it (no time to limit, not "100 y").
    assert judge(series, limit_bytes=int(1e9)).time_to_limit_s is None


def test_a_sawtooth_with_a_rising_floor_is_a_leak() -> None:
    t = _t(4.0)
    rss = 500 * MB + 30 * MB * t / HOUR + _sawtooth(t, 300.0, 80 * MB) + _noise(t.size, MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "leak"
    assert v.growth_bytes_per_hour == pytest.approx(30 * MB, rel=0.2)
    lo, hi = v.growth_ci_bytes_per_hour  # type: ignore[misc]
    assert lo < 30 * MB < hi
    # Any program's: a C cache cleared every 5 min saws too, and had read "a GC sawtooth"
    # with its "post-GC minima".
    assert v.evidence[0].startswith("RSS floor (its lows between falls) rose +28.5 MiB/h")
    assert "a sawtooth every 5.1 min (memory freed in batches): its floor is trended" in v.evidence
    assert v.trend is not None and v.trend.slope_bytes_per_s > 0


def test_a_sawtooth_with_a_flat_floor_is_stable() -> None:
    t = _t(4.0)
    rss = 500 * MB + _sawtooth(t, 300.0, 80 * MB) + _noise(t.size, MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "stable"
    assert not v.is_problem


def test_one_step_is_a_step() -> None:
    t = _t(4.0)
    rss = 300 * MB + np.where(t > 1.5 * HOUR, 120 * MB, 0.0) + _noise(t.size, 2 * MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "step"
    assert any("jumped" in e for e in v.evidence)


def test_repeated_steps_are_a_leak() -> None:
    t = _t(4.0)
    rss = 300 * MB + np.floor(t / (20 * 60)) * 15 * MB + _noise(t.size, MB)
    assert judge(Series.from_arrays(t, rss)).verdict == "leak"


def test_a_staircase_ending_on_a_flat_tread_gives_the_staircase_rate() -> None:
    # 15 MB every 20 min (45 MB/h), four times; the recording ends 25 min into a tread, which
    # alone is flat: the leak had been reported as "grows without bound: 0 B/h".
    t = np.arange(0.0, 4 * 1200 + 1500, 30.0)
    rss = 300 * MB + np.floor(t / 1200) * 15 * MB + _noise(t.size, 0.3 * MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "leak"
    assert "memory rises in repeated steps" in v.evidence
    assert v.growth_bytes_per_hour == pytest.approx(45 * MB, rel=0.2)


def test_a_rise_seen_for_too_few_points_after_a_fast_start_claims_no_ceiling() -> None:
    # A C leak recorded for 12 s: 4 MB/s while starting, then a steady 0.19 MB/s for 6 s. Six
    # points can never reach the leak's bar; this had read "levels off near 21.8 MiB" while
    # RSS stood at 22.4 MiB and rising. Five seconds of rise is no process starting but a fill
    # (or a warm-up from 40% of the final level): the rise after it keeps the past's name,
    # claims no ceiling, says why, and gives the time until 8 bins.
    t = np.arange(12.0)
    for start in (1.7, 9.0):
        rss = np.where(t < 5, start + (21.0 - start) / 5 * t, 21.0 + 0.19 * (t - 5)) * 2**20
        v = judge(Series.from_arrays(t, np.round(rss / 4096) * 4096))
        assert v.verdict != "leak" and v.ceiling_bytes is None, v.evidence
        assert v.more_time_s is not None and 0 < v.more_time_s < 10
        assert "more of recording" in v.would_change[0]
        assert any("too few points" in e for e in v.evidence), v.evidence


def test_no_time_to_the_limit_from_a_few_points_after_a_jump() -> None:
    # A C program leaking while busy (20 s busy holding 30 MB, 20 s idle), judged at 45 s
    # with a 1 GiB limit: "jumped, then stayed flat: limit reached in 2.7 min", from the 5 s
    # since the jump, where some 2.8 h were left.
    busy = 31.5 + 0.18 * np.arange(20)
    mib = np.concatenate([[8.5], busy, np.full(20, 5.0), 35.2 + 0.18 * np.arange(5)])
    v = judge(Series.from_arrays(np.arange(float(mib.size)), mib * MIB), limit_bytes=1 << 30)
    assert not v.is_problem and v.more_time_s is not None, v.evidence
    assert v.time_to_limit_s is None


def test_a_leak_seen_for_seconds_after_python_started_is_undecided_not_a_plateau() -> None:
    # `record --duration 8s -- python leak.py` (200 KB every 0.1 s): the interpreter loading,
    # then six points of steady rise. It had read `plateau`, "grew, then levelled off", exit 0.
    t = np.arange(9.0)
    rss = np.array([2.2, 12.0, 18.1, 18.75, 20.7, 22.6, 24.5, 26.4, 28.3]) * 2**20
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "inconclusive", v.evidence
    assert v.more_time_s == pytest.approx(2.0)  # 8 bins: what Mann–Kendall needs


def test_a_warm_up_then_flat_is_stable_with_the_warm_up_skipped() -> None:
    t = _t(4.0)
    rss = 300 * MB + 60 * MB * (1 - np.exp(-t / 600.0)) + _noise(t.size, MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "stable"
    assert v.warmup_end_s is not None and v.warmup_end_s < HOUR


def test_leaked_threads_are_a_thread_leak_with_their_cost_in_memory() -> None:
    t = _t(2.0)
    threads = 8 + np.floor(t / 60.0)  # one more thread a minute
    rss = 200 * MB + threads * 256e3 + _noise(t.size, 0.3 * MB)
    v = judge(Series.from_arrays(t, rss, threads=threads))
    assert v.verdict == "thread-leak"
    assert v.thread_growth_per_hour == pytest.approx(60.0, rel=0.1)
    assert any("per thread" in e for e in v.evidence)
    assert v.evidence[0].startswith("threads grew from 8 to"), v.evidence  # what names it


def test_memory_given_back_is_said_to_fall_not_to_have_no_trend() -> None:
    # "no significant trend ... -85.8 MiB/h (95% CI -90.1 – -84.9 MiB/h)" on a batch's drain.
    t = np.arange(0.0, 120.0)
    v = judge(Series.from_arrays(t, 300 * MB - 24e3 * t + _noise(t.size, 50e3)))
    assert v.verdict == "stable" and v.evidence[0].startswith("RSS fell "), v.evidence


def test_a_breathing_thread_pool_is_not_a_thread_leak() -> None:
    t = _t(2.0)
    threads = 8 + (np.arange(t.size) % 7 == 0)
    v = judge(Series.from_arrays(t, 200 * MB + _noise(t.size, MB), threads=threads))
    assert v.verdict == "stable"


def test_leaked_fds_are_an_fd_leak() -> None:
    t = _t(2.0)
    fds = 20 + np.floor(t / 120.0)
    v = judge(Series.from_arrays(t, 200 * MB + _noise(t.size, MB), fds=fds))
    assert v.verdict == "fd-leak"
    assert v.fd_growth_per_hour == pytest.approx(30.0, rel=0.1)


def test_an_fd_leak_stopped_by_its_limit_is_still_an_fd_leak() -> None:
    # Three fds a second up to `ulimit -n 300`, then every open fails: "fds flat (300)" had
    # read `stable`, exit 0, while the service refused all work.
    t = np.arange(180.0)
    fds = np.minimum(3 + 3 * t, 299)
    series = Series.from_arrays(t, 20 * MB + _noise(t.size, 20e3), fds=fds)
    v = judge(series, fd_limit=300)
    assert v.verdict == "fd-leak" and v.is_problem
    assert v.evidence[0] == (
        "fds reached the open-files limit (300) at 1.6 min and stay there: every open() or "
        "socket() since fails (EMFILE)"
    )
    assert not any(e.startswith(("fds flat", "fds not growing")) for e in v.evidence)
    assert v.fd_growth_per_hour == pytest.approx(3 * 3600, rel=0.02)
    assert judge(series).verdict != "fd-leak"  # without the limit, nothing tells it
    # Still climbing: when it gets there.
    early = judge(series.prefix(60.0), fd_limit=300)
    assert early.verdict == "fd-leak"
    assert "at this rate the open-files limit (300) is reached in 39 s" in early.evidence


def test_tasks_the_collector_releases_in_batches_are_no_task_leak() -> None:
    # Pending asyncio tasks nothing references are destroyed at each collection: the count
    # rose to 51 and fell to 15, to 65 and fell to 9, then rose to 165 as collections grew
    # rarer. It had read `task-leak` at 0.97 between two collections.
    t = np.arange(0.0, 60.0, 0.5)
    tasks = np.interp(t, [0, 13, 13.5, 26, 26.5, 60], [0, 51, 15, 65, 9, 165]).round()
    v = judge(Series.from_arrays(t, 30 * MB + _noise(t.size, 50e3), tasks=tasks))
    assert v.verdict != "task-leak", v.evidence
    assert any("fell back to 9–15 2 times: released in batches" in e for e in v.evidence)
    # Falling back to a higher floor each time is still a leak.
    rising = np.interp(t, [0, 13, 13.5, 26, 26.5, 60], [0, 51, 30, 95, 60, 200]).round()
    assert judge(Series.from_arrays(t, 30 * MB, tasks=rising)).verdict == "task-leak"


def _recorded(name: str) -> Series:
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).parent / "data" / name).read_text())
    others = {k: v for k, v in doc.items() if k not in ("about", "t", "rss")}
    return Series.from_arrays(doc["t"], doc["rss"], **others)


def test_a_plateau_that_stopped_gives_the_rate_it_stays_at() -> None:
    # A helper's fd leak under `ulimit -n 300`: RSS rose with the fds for 59 s, then held at
    # 9.98 MiB. Its rate had been the window's, rise and all: "levels off near 9.98 MiB; over
    # the last 1.6 min: +60.5 MiB/h (95% CI +19.6 – +89.9)", its trend drawn over flat RSS.
    v = judge(_recorded("fd_limit_300.json"), fd_limit=300)
    assert v.verdict == "fd-leak"
    assert v.growth_ci_bytes_per_hour is not None and v.trend is not None
    lo, hi = v.growth_ci_bytes_per_hour
    assert lo <= 0 <= hi and hi < 1 * MB
    assert v.trend.t0_s >= 55
    assert any("levels off near 9.98 MiB; over the last" in e and "since it levelled" in e
               for e in v.evidence)  # fmt: skip


def test_a_plateau_s_rate_is_over_a_stretch_long_enough_to_show_one() -> None:
    # 90 s flat after the fill, then two samples 80 KiB up: its rate had been the last regime's
    # three bins alone, "since it levelled: +141 MiB/h (95% CI +56.0 – +226 MiB/h)" in the
    # headline of a plateau.
    v = judge(_recorded("ring_filled.json"))
    assert v.verdict == "plateau"
    assert v.growth_ci_bytes_per_hour is not None and v.trend is not None
    lo, hi = v.growth_ci_bytes_per_hour
    assert lo <= 0 <= hi and hi < 1 * MB
    assert v.trend.t1_s - v.trend.t0_s >= 30


def test_flat_memory_claims_no_warm_up() -> None:
    # A helper's thread pool released in batches: RSS flat near 9.5 MiB under a 13 s
    # sawtooth, its bins moving by 0.2 MiB. "The first 53 s were warm-up, not trended" had
    # been said, of a window trended from 26 s.
    v = judge(_recorded("thread_batches.json"))
    assert v.verdict == "stable"
    assert v.warmup_end_s is None
    assert not any("warm-up" in e for e in v.evidence)
    assert any("fell back to 1 6 times" in e for e in v.evidence)  # not "1–1"


def test_an_fd_pool_near_its_limit_is_no_fd_leak() -> None:
    # 195 fds opened once at start-up, two short of `ulimit -n 200`, then held: it had been
    # "an fd leak at its limit" (+234k fds/h, 0.95). And a count swinging from 154 to 199 had
    # read "fds flat (181)".
    t = np.arange(40.0)
    pool = np.where(t < 3, 3.0, 198.0)
    v = judge(Series.from_arrays(t, 20 * MB + _noise(t.size, 20e3), fds=pool), fd_limit=200)
    assert v.verdict != "fd-leak"
    assert "fds came within 2 of the open-files limit (200)" in v.evidence
    wave = 176.5 + 22.5 * np.sin(2 * np.pi * t / 20)
    v = judge(Series.from_arrays(t, 20 * MB + _noise(t.size, 20e3), fds=np.round(wave)))
    assert v.verdict != "fd-leak"
    assert any(e.startswith("fds not growing (154–199, ") for e in v.evidence), v.evidence


def test_a_jump_under_the_material_bar_is_no_step() -> None:
    # A quiet C program (1.5 MiB, in whole pages) that took 39 pages more at 100 s: "RSS
    # jumped (156 KiB)" had been a `step`; a leak needs 384 KiB, and so does a step.
    t = np.arange(180.0)
    pages = 384 + 39 * (t >= 100) + (np.arange(t.size) % 11 == 0)
    v = judge(Series.from_arrays(t, 4096.0 * pages))
    assert v.verdict == "stable", v.evidence
    # The same jump ten times larger is one.
    assert judge(Series.from_arrays(t, 4096.0 * (384 + 390 * (t >= 100)))).verdict == "step"


def test_live_allocations_falling_while_rss_grows_are_said_to_fall() -> None:
    # "live allocations grew -70.5 MiB/h (-80% of RSS's growth)" had been printed.
    t = _t(1.0)
    rss = 200 * MB + 80 * MB * t / HOUR + _noise(t.size, MB)
    live = 150 * MB - 60 * MB * t / HOUR + _noise(t.size, MB, seed=2)
    v = judge(Series.from_arrays(t, rss, live_bytes=live))
    assert v.verdict == "fragmentation"
    [said] = [e for e in v.evidence if e.startswith("memory in use (RSS less what malloc")]
    assert said.startswith("memory in use (RSS less what malloc holds free) fell 5"), said
    assert "MiB/h while RSS grew" in said, said


def test_flat_memory_with_rising_latency_is_degradation() -> None:
    # Seed 001: memory flat, the last cycles 14x slower than the first.
    t = np.arange(1000.0)
    latency = 0.0016 * (1 + 13 * t / t[-1]) * np.exp(_noise(1000, 0.1))
    v = judge(Series.from_arrays(t, 80 * MB + _noise(1000, 0.2 * MB), latency_s=latency))
    assert v.verdict == "degradation"
    assert v.latency_ratio == pytest.approx(8.1, rel=0.1)
    assert v.is_problem


def test_a_soaks_significant_but_immaterial_rise_is_not_called_insignificant() -> None:
    # A 1.4 s soak whose server grew three pages: the trend is significant (its interval
    # excludes zero) but far under the material bar. It had read "no significant trend:
    # +30.4 MiB/h (95% CI +24.0 – +38.2 MiB/h)", and the headline quoted that rate for a
    # verdict that says memory stays flat.
    pages = np.repeat(
        [4932, 4962, 4964, 4965, 4966, 4967, 4968, 4969, 4970, 4971, 4967],
        [1, 1, 1, 2, 2, 3, 3, 16, 18, 3, 1],
    )
    t = np.linspace(0.0, 1.38, pages.size) ** 1.3 / 1.38**0.3  # requests slowing down
    rss = 4096.0 * pages
    latency = 0.001 * (1 + 3 * t / t[-1])
    v = judge(Series.from_arrays(t, rss, latency_s=latency))
    assert v.verdict == "degradation", v.evidence
    assert v.evidence[0].startswith("RSS rose only "), v.evidence
    assert "too little to count as growth" in v.evidence[0]
    assert headline(v).startswith("Latency grows while memory stays flat: latency "), headline(v)
    assert "MiB/h" not in headline(v)


def test_a_weak_trend_is_inconclusive_with_the_time_needed() -> None:
    t = _t(0.5, 5.0)
    rss = 500 * MB + 6 * MB * t / HOUR + _noise(t.size, 2 * MB, seed=11)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "inconclusive"
    assert v.more_time_s is not None and 0 < v.more_time_s < 10 * HOUR
    assert any("more of recording" in w for w in v.would_change)


def test_the_time_to_decide_counts_the_material_bar() -> None:
    # A C program leaking a clean 2,000 B/s in pages, recorded from its exec: significant at
    # once, but 384 KiB is only reached after ~200 s. It had said "record 0 s more" at 20,
    # 30, 45 and 100 s.
    def leak(seconds: float) -> Series:
        t = np.arange(0.0, seconds)
        rss = 1.5e6 + 2000 * t
        rss[0] = 4096  # sampled before its exec
        return Series.from_arrays(t, rss // 4096 * 4096)

    v = judge(leak(30))
    assert v.verdict == "inconclusive"
    assert v.more_time_s == pytest.approx(200 - 30, rel=0.05)
    # Within the slope's error (pages round it up at first): decided a few seconds later.
    assert judge(leak(30 + 1.1 * v.more_time_s)).verdict == "leak"


def test_a_fill_that_stopped_levels_off_where_memory_stands() -> None:
    # An S-shaped cache fill, 50 -> 80 MiB, done by 440 s and flat since: the exponential
    # fitted to the whole rise had put the ceiling at 102 MiB, and a 90 MiB limit that
    # memory will never reach "reached in 55 s".
    t = np.arange(1200.0)
    c = 1 / (1 + np.exp(-(t - 240.0) / 50.0))
    mib = 50 + 30 * (c - c[0]) / (1 - c[0])
    series = Series.from_arrays(t, mib * MIB + _noise(t.size, 100e3, seed=5))
    for until in (600, 700, 800):
        v = judge(series.prefix(until), limit_bytes=90 * MIB)
        assert v.verdict == "plateau", v.evidence
        assert v.ceiling_bytes == pytest.approx(80 * MIB, rel=0.01)
        assert v.time_to_limit_s is None


def test_the_time_to_the_limit_counts_from_the_busy_peaks() -> None:
    # A 20 kB/s leak under a busy/idle cycle (+20 MiB for 30 s of every 60 s): the limit is
    # first reached in a busy phase at 1,949 s. Judged in an idle phase, the last samples had
    # put it at 2,479 s.
    t = np.arange(4000.0)
    busy = (t % 60) < 30
    rss = 100 * MIB + 20e3 * t + 20 * MIB * busy + _noise(t.size, 100e3, seed=3)
    limit = int(100 * MIB + 20e3 * 3000)
    cross = float(t[np.argmax(rss >= limit)])
    for at in (990, 1005, 1020):  # idle, idle, busy
        v = judge(Series.from_arrays(t, rss).prefix(at), limit_bytes=limit)
        assert v.verdict == "leak" and v.time_to_limit_s is not None
        assert at + v.time_to_limit_s == pytest.approx(cross, abs=30)


def test_the_interval_of_a_leak_in_whole_pages_holds_its_true_rate() -> None:
    # Readings rounded to pages: the pairwise slopes agree to the page and the interval had
    # been zero-width, missing the true rate in 15 of 200 such leaks.
    held = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        rate, seconds = rng.uniform(1500, 2500), int(rng.integers(60, 600))
        t = np.arange(0.0, seconds)
        rss = (30e6 + rng.uniform(0, 4096) + rate * t) // 4096 * 4096
        ci = judge(Series.from_arrays(t, rss)).growth_ci_bytes_per_hour
        assert ci is not None
        held += ci[0] <= rate * HOUR <= ci[1]
    assert held >= 95


def test_a_step_drawn_as_a_ramp_is_named_in_its_evidence() -> None:
    # A jump the regimes drew as a three-bin ramp makes a `step` too; its evidence had read
    # "RSS jumped (); over the last 22 s since ...".
    t = np.arange(0.0, 80.0)
    rss = 50 * MIB + np.where(t >= 40, 12 * MIB, 0.0) + np.where(t == 40, -6 * MIB, 0.0)
    v = judge(Series.from_arrays(t, rss + _noise(t.size, 30e3, seed=2)))
    assert v.verdict == "step", v.evidence
    assert "jumped ()" not in v.evidence[0] and "at 40 s" in v.evidence[0], v.evidence
    # What each jump added, signed, not a level: "jumped (3.99 MiB at 19 s, 195 MiB at 21 s)"
    # had read as levels in one run and as sizes in another.
    assert v.evidence[0].startswith("RSS jumped (+"), v.evidence


def test_heap_top_steps_too_small_to_matter_are_no_staircase_leak() -> None:
    # A bounded C program churning a fixed table, recorded from its exec (KiB, one a second):
    # its heap top moved by ~100 KB steps. It had read `leak` by the staircase rule at 30-40
    # and 78-94 s (95% CI from 0 B/h, 160 KiB in all), exit 3.
    runs = [(1876, 1), (13076, 1), (14916, 1), (15128, 1), (15700, 1), (15896, 4), (16316, 3)]
    runs += [(16368, 1), (16424, 14), (16500, 47), (16588, 10), (16536, 3), (16604, 2)]
    runs += [(16584, 2), (16536, 4)]
    kib = np.concatenate([np.full(n, v, dtype=float) for v, n in runs])
    series = Series.from_arrays(np.arange(float(kib.size)), kib * 1024)
    for until in range(30, kib.size, 2):
        v = judge(series.prefix(until))
        assert v.verdict != "leak", (until, v.evidence)


def _leak_under_busy_idle() -> tuple[Series, np.ndarray]:
    """A C leak of 100 kB/s under a busy/idle cycle, recorded from its exec: RSS climbs while
    busy and is flat while idle (the freed busy memory is reused), after one early fall. The
    series, and its MiB a second."""
    t = np.arange(241.0)
    climb = 45.2 + 3.8 * ((t - 41) // 40) + 0.095 * np.minimum((t - 41) % 40, 19)
    mib = np.where(t < 21, 41.5 + 0.085 * (t - 1), np.where(t < 41, 3.3 + 0.085 * (t - 21), climb))
    mib[0] = 1.9
    return Series.from_arrays(t, np.round(mib * MIB / 4096) * 4096), mib


def test_no_ceiling_below_where_memory_stands() -> None:
    # It had read "levels off near 57.3 MiB" at 62.2 MiB, exit 0.
    series, mib = _leak_under_busy_idle()
    for until in range(150, 242, 5):
        v = judge(series.prefix(until))
        if v.ceiling_bytes is not None:
            assert v.ceiling_bytes >= mib[until - 1] * MIB, (until, v.evidence)


def test_a_jump_larger_than_all_other_growth_since_a_fall_begins_a_new_level() -> None:
    # The same C leak: after the early fall, the next busy phase jumped 40 MB, and the leak
    # added ~4 MB a cycle. Trended across that jump (as a resize inside steady growth would
    # be), the window was a jump and a slow rise, which an exponential fits: `plateau` and
    # `inconclusive` until the end. The jump is most of the rise since the fall: a new level.
    series, _ = _leak_under_busy_idle()
    said = [judge(series.prefix(until)).verdict for until in range(150, 241, 5)]
    # (A prefix ending on 20 s of idle tread still reads as a step: the ramps are no jumps.)
    assert said.count("leak") >= 17 and "plateau" not in said, said


def test_a_fall_that_never_came_again_is_no_load_cycle() -> None:
    # A C program leaking while busy (20 s busy holding 30 MB, then idle): only the first
    # idle phase gave memory back. That one fall had held the verdict at `plateau` and
    # `inconclusive` ("memory came down this far before") for six minutes of a 360 MB/h leak.
    t = np.arange(241.0)
    later = 35.2 + 3.8 * ((t - 41) // 40) + 0.19 * np.minimum((t - 41) % 40, 20)
    mib = np.where(t < 21, 31.5 + 0.18 * (t - 1), np.where(t < 41, 5.0, later))
    mib[0] = 8.5
    series = Series.from_arrays(t, np.round(mib * MIB / 4096) * 4096)
    for until in (160, 200, 240):
        v = judge(series.prefix(until))
        assert v.verdict == "leak", (until, v.evidence)
        assert v.growth_bytes_per_hour == pytest.approx(0.095 * MIB * HOUR, rel=0.15)


def test_a_leak_in_bursts_stays_a_leak_just_after_each_burst() -> None:
    # 3 MB kept every 30 s (a Python program run for 4 min): just after a burst, the last two
    # steps are drawn as one ramp with no tread of its own, and the staircase had seemed to
    # stop: `step` at a third of the prefixes between 2.5 and 3.5 min, each a flip of an alert.
    t = np.arange(241.0)
    mib = 15.4 + 2.86 * np.floor((t - 1) / 30.0)
    mib[0] = 1.1
    series = Series.from_arrays(t, np.round(mib * MIB / 4096) * 4096)
    said = [judge(series.prefix(until)).verdict for until in range(120, 241, 3)]
    assert set(said) == {"leak"}, said


def test_too_few_samples_are_inconclusive() -> None:
    v = judge(Series.from_arrays([0.0, 10.0, 20.0], [1e8, 2e8, 3e8]))
    assert v.verdict == "inconclusive"
    assert v.more_time_s == pytest.approx(30.0)


def test_growth_per_unit_of_work() -> None:
    # Seed 002: about 117 bytes per frame at 700 frames a second.
    t = _t(2.0)
    frames = 700.0 * t
    rss = 1e9 + 117.0 * frames + _noise(t.size, 3 * MB)
    v = judge(Series.from_arrays(t, rss, work=frames))
    assert v.verdict == "leak"
    assert v.growth_per_work == pytest.approx(117.0, rel=0.05)
    assert v.growth_bytes_per_hour == pytest.approx(117.0 * 700 * HOUR, rel=0.05)


def test_time_to_limit() -> None:
    t = _t(2.0)
    rss = 1e9 + 100 * MB * t / HOUR + _noise(t.size, MB)
    v = judge(Series.from_arrays(t, rss), limit_bytes=int(2e9))
    # 1.2 GB now, 100 MB/h: the last 800 MB take about 8 h.
    assert v.time_to_limit_s == pytest.approx(8 * HOUR, rel=0.1)
    assert v.limit_bytes == int(2e9)
    assert judge(Series.from_arrays(t, rss)).time_to_limit_s is None


def test_a_slow_leak_still_too_small_to_call_is_undecided_not_a_plateau() -> None:
    # One 16 KiB malloc a second, sampled twice a second: 320 KiB in 20 s, all of it rising.
    t = np.arange(0.0, 20.5, 0.5)
    rss = 1.2 * 2**20 + 16384 * np.floor(t)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "inconclusive" and v.ceiling_bytes is None  # no "levels off near"
    assert v.growth_bytes_per_hour == pytest.approx(16384 * 3600, rel=0.01)
    # About 4 s more reach 384 KiB: then it is a leak.
    assert v.more_time_s == pytest.approx(4.0, abs=1.5)
    longer = np.arange(0.0, 26.0, 0.5)
    later = judge(Series.from_arrays(longer, 1.2 * 2**20 + 16384 * np.floor(longer)))
    assert later.verdict == "leak"
    # Its one-a-second pattern never gives memory back: bursts of allocation, not a load cycle.
    assert "allocations in bursts every 1.0 s: each point averages whole bursts" in later.evidence


def test_an_idle_program_recorded_from_its_exec_is_stable() -> None:
    # `record -- python app.py`: 4 KiB at exec, 13 MiB once the interpreter has loaded (0.6 s
    # of 15), then idle. Its start-up is not a cache filling to a ceiling.
    t = np.arange(0.0, 15.0, 0.2)
    rss = np.full(t.size, 13.2 * 2**20) + 4096 * np.random.default_rng(1).integers(0, 2, t.size)
    rss[:3] = (4096, 600e3, 9e6)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "stable" and v.ceiling_bytes is None
    assert v.warmup_end_s == pytest.approx(0.6)


def test_a_program_sampled_once_before_its_exec_then_flat_is_stable() -> None:
    # `record -- sleep 20`: 0 B before exec, then 1.74 MiB flat. The first regime's line runs
    # through that one sample and the flat ones after it, and starts well above nothing: it
    # had read `plateau`, "levels off near 1.74 MiB".
    t = np.arange(0.0, 21.0)
    rss = np.full(t.size, 1.74 * 2**20)
    rss[0] = 0.0
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "stable" and v.ceiling_bytes is None, v.evidence


def test_under_a_gc_sawtooth_the_time_to_decide_is_at_least_a_period() -> None:
    # +4 MB/s, collected every 5.2 s, its floor up 256 KiB a cycle; sampled every 0.5 s, the
    # sampled minima wander by up to 2 MB: after 85 s the floor's rise is not decided yet.
    t = np.arange(0.0, 85.5, 0.5)
    rss = 30e6 + 262144 * np.floor(t / 5.2) + 4e6 * (t % 5.2) + _noise(t.size, 50e3, seed=3)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "inconclusive"
    assert v.more_time_s is not None and v.more_time_s >= 5.2  # its floor shows once a period


def test_a_single_sample_says_how_many_are_needed_and_claims_no_flat_count() -> None:
    v = judge(Series.from_arrays([0.0], [1e6], threads=[1.0], fds=[3.0]))
    assert v.verdict == "inconclusive"
    assert "1 sample: at least 6 are needed to trend" in v.evidence
    assert not any("flat" in e for e in v.evidence)  # one reading is no trend
    assert v.would_change == ("a recording of at least 6 samples",)
    three = judge(Series.from_arrays([0.0, 1.0, 2.0], [1e6] * 3))
    assert three.would_change == ("about 3.0 s more of recording",)


def test_a_stable_series_that_only_fell_asks_for_a_sustained_rise() -> None:
    t = _t(1.0)
    v = judge(Series.from_arrays(t, 500 * MB - 20 * MB * t / HOUR + _noise(t.size, 0.5 * MB)))
    assert v.verdict == "stable" and v.growth_ci_bytes_per_hour is not None
    assert v.growth_ci_bytes_per_hour[1] < 0
    assert v.would_change == ("a sustained rise",)  # not "faster than 0 B/h"


def test_a_cache_filling_after_start_up_is_still_a_plateau() -> None:
    # examples/bounded_cache.py from its exec: 14 MiB loaded in one sample, then 30 MiB of
    # cache over 7 s, then flat. Only the loading is start-up.
    t = np.arange(0.0, 40.0, 0.5)
    rss = np.minimum(14.0 + 4.3 * np.maximum(t - 0.5, 0.0), 44.0) * 2**20
    rss[0] = 4096
    rss += 4096 * np.random.default_rng(2).integers(0, 2, t.size)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "plateau" and v.ceiling_bytes == pytest.approx(44 * 2**20, rel=0.02)


def test_a_steady_leak_whose_last_sample_jumps_is_still_a_leak() -> None:
    # 5 MiB a second for 24 s, then 40 MiB more at the last sample (dicts resizing together):
    # the short last regime, steepened by the jump, had shown a "fall" where it began, and the
    # window after it was too short to call: `plateau`, exit 0.
    t = np.arange(0.0, 25.5, 1.0)
    rss = 18 * 2**20 + 5 * 2**20 * np.minimum(t, 24.0) + 40 * 2**20 * (t >= 24.5)
    rss += 4096 * np.random.default_rng(1).integers(0, 3, t.size)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "leak" and v.is_problem
    assert v.growth_bytes_per_hour == pytest.approx(5 * 2**20 * 3600, rel=0.05)


def test_pending_tasks_that_keep_growing_are_a_task_leak() -> None:
    # 20 a second, never done: memory barely moves (a task is a few KiB), the count does.
    t = np.arange(0.0, 20.0, 0.2)
    rss = 22e6 + 3e5 * t + _noise(t.size, 1e5)
    v = judge(Series.from_arrays(t, rss, tasks=np.floor(20 * t)))
    assert v.verdict == "task-leak" and v.is_problem
    assert v.task_growth_per_hour == pytest.approx(20 * 3600, rel=0.05)
    assert v.would_change == ("the pending tasks returning to 0",)
    # Its rate in the box, as a thread or fd leak's is; counts with thousands separators.
    assert ("tasks", "+72.0k tasks/h") in [(k.label, k.value) for k in key_numbers(v)]
    more = judge(Series.from_arrays(t, rss, tasks=1000 + np.floor(20 * t)))
    assert "tasks grew from 1,000 to 1,396 (+72.0k tasks/h)" in more.evidence
    assert more.would_change == ("the pending tasks returning to 1,000",)
    flat = judge(Series.from_arrays(t, rss, tasks=np.full(t.size, 3.0)))
    assert flat.verdict != "task-leak" and "tasks flat (3)" in flat.evidence


def test_a_step_with_a_flat_slope_after_it_has_no_time_to_limit() -> None:
    t = _t(2.0)
    rss = 1e9 + 100 * MB * (t > HOUR) + _noise(t.size, 2 * MB, seed=0)
    v = judge(Series.from_arrays(t, rss), limit_bytes=int(2e9))
    assert v.verdict == "step" and v.growth_bytes_per_hour is not None
    assert v.growth_bytes_per_hour > 0 and v.growth_ci_bytes_per_hour is not None
    assert v.growth_ci_bytes_per_hour[0] < 0  # not significant: no "limit in 110 d"
    assert v.time_to_limit_s is None
    # A slope since the jump significant at 95% but no leak: still none ("Memory jumped,
    # then stayed flat: limit reached in 6.0 h" had been said).
    rss = rss + 2 * MB * np.clip(t - HOUR, 0, None) / HOUR
    v = judge(Series.from_arrays(t, rss), limit_bytes=int(2e9))
    assert v.verdict == "step" and v.growth_ci_bytes_per_hour is not None
    assert v.growth_ci_bytes_per_hour[0] > 0 and v.time_to_limit_s is None


def test_rss_growing_while_live_bytes_stay_flat_is_fragmentation() -> None:
    t = _t(2.0)
    rss = 600 * MB + 40 * MB * t / HOUR + _noise(t.size, MB)
    live = 36 * MB + _noise(t.size, 0.2 * MB, seed=2)
    cols = {"rss_bytes": rss, "live_bytes": live}
    v = judge(Series(t, cols))
    assert v.verdict == "fragmentation"
    assert any("memory in use (RSS less what malloc holds free)" in e for e in v.evidence)
    assert headline(v).startswith("RSS grows mostly in memory malloc holds free")
    assert not [e for e in v.evidence if "data the program keeps" in e], v.evidence
    # Data kept beneath it, under the fragmentation bar (a quarter), is said: a Rust program
    # keeping every 200th block had read only "RSS grows while live allocations do not".
    cols["live_bytes"] = 36 * MB + 6 * MB * t / HOUR
    kept = judge(Series(t, cols))
    assert kept.verdict == "fragmentation"
    assert [e for e in kept.evidence if e.endswith("a leak of its own if it goes on")]
    cols["live_bytes"] = 36 * MB + 40 * MB * t / HOUR
    assert judge(Series(t, cols)).verdict == "leak"


def test_the_headline_rate_has_the_digits_of_its_interval() -> None:
    # "+13.5 GiB/h" in the headline beside "95% CI +13.45 – +13.47 GiB/h" in the box.
    gib = float(1 << 30)
    v = replace(
        judge(Series.from_arrays(_t(1.0), 400 * MB + 13 * gib * _t(1.0) / HOUR)),
        growth_bytes_per_hour=13.464 * gib,
        growth_ci_bytes_per_hour=(13.461 * gib, 13.468 * gib),
    )
    assert headline(v).startswith("Memory grows without bound: +13.46 GiB/h")
    assert ("RSS growth", "+13.46 GiB/h") in [(k.label, k.value) for k in key_numbers(v)]


def test_missing_samples_are_skipped() -> None:
    t = _t(3.0)
    rss = 400 * MB + 50 * MB * t / HOUR + _noise(t.size, MB)
    rss[::7] = np.nan
    rss[300:500] = np.nan  # the recorder stopped for a while
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "leak"
    assert v.growth_bytes_per_hour == pytest.approx(50 * MB, rel=0.1)


def test_no_rss_at_all_is_inconclusive() -> None:
    t = _t(0.1)
    v = judge(Series.from_arrays(t, np.full(t.size, np.nan)))
    assert v.verdict == "inconclusive"
    assert v.evidence


def test_culprits_pass_through_and_evidence_is_plain_words() -> None:
    t = _t(2.0)
    rss = 400 * MB + 41 * MB * t / HOUR + _noise(t.size, MB)
    culprit = Culprit(
        "module app, global CACHE (dict)", "container", "+9.8k/min", 588e3, "entries", 0.9
    )
    v = judge(Series.from_arrays(t, rss), culprits=(culprit,))
    assert v.culprits == (culprit,)
    assert v.samples == t.size
    assert v.span_s == pytest.approx(t[-1])
    assert 0.5 <= v.confidence <= 1.0
    assert v.evidence[0].startswith("RSS rose +39.1 MiB/h")  # 41 MB/h in binary units
    assert v.would_change


def test_an_exponential_warm_up_is_stable_but_a_capped_fill_of_the_same_size_a_plateau() -> None:
    # Same rise (+30% of base) reaching 90% within the first fifth: the exponential relaxation
    # is a warm-up; a square-root fill that stops dead at its cap is a cache reaching its bound.
    t = _t(8.0, 30.0)
    noise = _noise(t.size, 0.3 * MB)
    warm = 300 * MB + 90 * MB * (1 - np.exp(-t / (0.06 * t[-1]))) + noise
    capped = 300 * MB + 90 * MB * np.sqrt(np.minimum(t / (0.22 * t[-1]), 1.0)) + noise
    assert judge(Series.from_arrays(t, warm)).verdict == "stable"
    assert judge(Series.from_arrays(t, capped)).verdict == "plateau"


def test_a_jump_inside_one_bin_is_a_step_not_a_plateau() -> None:
    # 20,000 samples: a bin holds many, and the jump lands mid-bin, drawn as a short ramp.
    t = np.arange(20_000) * 1.0
    rss = 300 * MB + np.where(t >= 7_777.0, 80 * MB, 0.0) + _noise(t.size, 1 * MB)
    assert judge(Series.from_arrays(t, rss)).verdict == "step"


def test_memory_given_back_again_and_again_is_trended_across_the_cycles() -> None:
    # A slow load cycle that rises gradually and falls at once, on a flat base: the rise after
    # the last fall is one phase of the cycle, not a leak.
    t = _t(8.0, 10.0)
    phase = (t % (1.6 * HOUR)) / (1.6 * HOUR)
    rss = 300 * MB + 40 * MB * phase + _noise(t.size, 1 * MB)
    cut = t < 7.8 * HOUR  # late in a rising phase
    assert judge(Series.from_arrays(t[cut], rss[cut])).verdict != "leak"


def test_the_rising_half_of_a_load_cycle_seen_falling_before_is_not_a_leak() -> None:
    # A 3 h load cycle seen for 4 h: memory fell by 200 MB, now climbs back past its old peak.
    t = _t(4.0)
    rss = 800 * MB + 100 * MB * np.sin(2 * np.pi * t / (3 * HOUR)) + _noise(t.size, 2 * MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict != "leak"
    if v.verdict == "inconclusive":
        assert v.more_time_s is not None and v.more_time_s > 0
    assert any("load cycle" in e for e in v.evidence)


def test_a_leak_under_a_load_cycle_with_rising_minima_is_a_leak() -> None:
    # Every 40 min memory comes down 20 MB, but each trough and each peak is higher.
    t = _t(4.0)
    cycle = 10 * MB * np.sin(2 * np.pi * t / (2400.0))
    rss = 800 * MB + 50 * MB * t / HOUR + cycle + _noise(t.size, 2 * MB)
    assert judge(Series.from_arrays(t, rss)).verdict == "leak"


def test_small_steps_inside_a_steady_rise_do_not_cut_the_trended_window() -> None:
    # seed 003: a dict growing linearly, RSS stepping up a little more when it resizes.
    t = np.arange(0.0, 40.0, 0.5)
    steps = sum(np.where(t >= at, size * MB, 0.0) for at, size in ((8, 0.5), (16, 1), (33, 2)))
    rss = 20 * MB + 0.35 * MB * t + steps + _noise(t.size, 0.05 * MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "leak"
    assert v.trend is not None and v.trend.t0_s < 10.0


def test_a_quiet_creep_under_three_heap_steps_is_not_a_leak() -> None:
    """Flat to the page, then +300 KiB over 30 s (an allocator settling its arenas): steady
    and significant, but under three of glibc's 128 KiB heap steps. 1 MiB is a leak."""
    t = np.arange(60) * 0.5
    base = 49 * 2**20
    for grown, verdict in ((300 * 1024, "stable"), (2**20, "leak")):
        rss = base + np.floor(grown * t / t[-1] / 4096) * 4096
        v = judge(Series.from_arrays(t, rss))
        assert (v.verdict == "leak") == (verdict == "leak"), (grown, v.verdict, v.evidence)


def test_a_swing_after_a_step_up_is_measured_at_the_new_level() -> None:
    # A deep dip before a step up of 300 MB; after it, memory falls 40 MB and climbs 60 MB,
    # past where it stood but by less than the fall. The climb is one phase of a swing at the
    # new level, not a leak: the old dip's peak, which the step left far below, is no bar.
    t = _t(4.0)
    h = t / HOUR
    dip_before = -80 * MB * np.exp(-(((h - 0.8) / 0.2) ** 2))
    step = np.where(h >= 1.5, 300 * MB, 0.0)
    swing = np.interp(h, [0.0, 2.0, 2.8, 4.0], [0.0, 0.0, -40.0, 20.0]) * MB
    rss = 500 * MB + dip_before + step + swing + _noise(t.size, 1 * MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict != "leak", v.evidence


def test_a_rise_smaller_than_a_fall_seen_before_is_not_a_leak() -> None:
    # A load cycle fell 60 MB early on; after a step up of 300 MB memory climbs 40 MB and has
    # not come down yet. No fall has been seen at the new level, but the climb is smaller than
    # one that memory already gave back: it may be the next rising phase of the same cycle.
    t = _t(4.0)
    h = t / HOUR
    cycle = np.interp(h, [0.0, 0.6, 1.4, 2.0, 4.0], [0.0, 60.0, 0.0, 0.0, 0.0]) * MB
    step = np.where(h >= 1.7, 300 * MB, 0.0)
    climb = np.interp(h, [0.0, 2.2, 4.0], [0.0, 0.0, 40.0]) * MB
    rss = 500 * MB + cycle + step + climb + _noise(t.size, 1 * MB)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict != "leak", v.evidence
    # The same climb by more than the fall is a leak.
    bigger = 500 * MB + cycle + step + 2.5 * climb + _noise(t.size, 1 * MB)
    assert judge(Series.from_arrays(t, bigger)).verdict == "leak"


def test_a_square_wave_over_a_slowing_rise_is_not_a_staircase() -> None:
    # A busy/idle load cycle (25 MB every hour) over a fill that slows down (+120 MB, square
    # root, still creeping at the end): more transitions than regimes, so the idle phases are
    # drawn as treads sliding down. Each busy phase is a jump up, but memory gives it back:
    # not a leak's staircase (it was called one, at -19 MiB/h). The cycle taken out, the fill
    # reads as it does without one (then it read `plateau` beside the bare fill's `leak`: the
    # line fitted to memory alone had left a saw of the fill's growth in the cycle's shape).
    t = _t(6.0)
    h = t / HOUR
    fill = 150 * MB + 120 * MB * np.sqrt(h / 7.0) + _noise(t.size, 1 * MB)
    wave = np.where((h % 1.0) < 0.5, 25 * MB, 0.0)
    v = judge(Series.from_arrays(t, fill + wave))
    bare = judge(Series.from_arrays(t, fill))
    assert "memory rises in repeated steps" not in v.evidence
    assert v.verdict == bare.verdict, (v.evidence, bare.evidence)
    assert v.growth_bytes_per_hour == pytest.approx(bare.growth_bytes_per_hour, rel=0.1)


def test_a_flat_start_before_a_steep_rise_is_not_a_warm_up() -> None:
    # Flat for an hour, then a leak of 60 MB/h for five hours that paused for the last ten
    # minutes. The flat first regime has a slope (noise): the rise after it is far steeper,
    # so it was no warm-up, and the six hours up to the pause are not "warm-up, not trended".
    t = np.arange(0.0, 6 * HOUR + 600.0, 30.0)
    leak = np.interp(t, [0.0, HOUR, 6 * HOUR, 6 * HOUR + 600.0], [0.0, 0.5, 300.0, 300.0]) * MB
    rss = 200 * MB + leak + _noise(t.size, 0.5 * MB, seed=0)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "leak", v.evidence
    assert v.warmup_end_s is None or v.warmup_end_s < HOUR + 600.0


def _weekly(cycle: str, leak: float, seed: int) -> Series:
    """A week of minute samples as 120 step means (a fleet scan's view): 1 GB, a daily load
    cycle of +-100 MB, `leak` bytes gained over the week."""
    t = np.arange(10080) * 60.0
    phase = 2 * np.pi * t / (24 * HOUR) + seed
    swing = {
        "sine": np.sin(phase),
        "busy/idle": np.sign(np.sin(phase)),
        "nightly batch": np.where(np.sin(phase) > 0.7, 1.5, -0.5),  # up a quarter of the day
    }[cycle]
    y = 1000 * MB + 100 * MB * swing + leak * t / t[-1] + _noise(t.size, 10 * MB, seed)
    return Series.from_arrays(t.reshape(120, 84)[:, 0], y.reshape(120, 84).mean(axis=1))


@pytest.mark.parametrize("cycle", ["sine", "busy/idle", "nightly batch"])
def test_a_leak_under_a_daily_load_cycle_is_a_leak(cycle: str) -> None:
    # 200 MB a week under a 200 MB daily swing: each day's fall hides the day's growth, and
    # before load cycles were taken out this read as a plateau or steps in 34-40 of 40 weeks.
    verdicts = [judge(_weekly(cycle, 200 * MB, seed)) for seed in range(5)]
    assert sum(v.verdict == "leak" for v in verdicts) >= 4
    found = next(v for v in verdicts if v.verdict == "leak")
    assert found.growth_bytes_per_hour == pytest.approx(200 * MB / 168, rel=0.2)
    assert any("load cycle every 24 h" in e for e in found.evidence)


def test_a_nightly_batch_with_no_growth_is_not_a_step_or_a_leak() -> None:
    verdicts = [judge(_weekly("nightly batch", 0.0, seed)).verdict for seed in range(10)]
    assert sum(v in ("step", "leak") for v in verdicts) <= 1, verdicts


def test_bursts_every_six_bins_are_taken_out_and_the_leak_under_them_found() -> None:
    # 10 minutes at 1 s: 120 bins of 5 s, a 30 s burst cycle is exactly six of them. Phase
    # bins centred on whole bins keep each bin in its place; on their edges rounding flipped
    # bins between neighbours and left half the bursts behind (4 of 10 found).
    found = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        t = np.arange(0.0, 600.0)
        busy = ((t / 30 + rng.uniform()) % 1) < 0.3
        y = 100 * MB + 20 * MB * busy + 60 * MB * t / HOUR + rng.normal(0, 0.5 * MB, t.size)
        found += judge(Series.from_arrays(t, y)).verdict == "leak"
    assert found >= 8


@pytest.mark.parametrize("leak", [0.0, 0.5 * MB])
def test_a_cycle_faster_than_six_bins_is_averaged_out(leak: float) -> None:
    # Two minutes at 1 s of 40 MB taken and given back every 4 s: the verdict used to read
    # the half-cycle bins as a plateau, or leave a 0.5 MB/s leak under them inconclusive.
    rng = np.random.default_rng(3)
    t = np.arange(120.0)
    busy = ((t / 4 + 0.3) % 1) < 0.5
    y = 20 * MB + 40 * MB * busy + leak * t + rng.normal(0, 0.2 * MB, t.size)
    v = judge(Series.from_arrays(t, y))
    assert v.verdict == ("leak" if leak else "stable"), v.evidence
    assert any(
        "a load cycle every 4.0 s: each point averages whole cycles" in e for e in v.evidence
    )
    if leak:
        assert v.growth_bytes_per_hour == pytest.approx(leak * 3600, rel=0.1)


def test_a_leak_whose_treads_rise_between_its_jumps_is_a_leak_to_its_last_jump() -> None:
    # A dict filling without end (seed 003's dedup map): RSS climbs steadily, and jumps when
    # the table resizes. Trended from its last resize alone (8 s), the leak had read
    # "levels off near 24.3 MiB", a plateau, while it rose through the last sample.
    t = np.arange(81.0)
    rss = 18.9 * MB + 0.045 * MB * t
    for at, size in ((32.5, 0.4 * MB), (60.5, 0.3 * MB), (72.5, 0.96 * MB)):
        rss += np.where(t > at, size, 0.0)
    rss[:3] = (3.6 * MB, 17.8 * MB, 18.3 * MB)  # the program starting
    v = judge(Series.from_arrays(t, rss + _noise(t.size, 0.03 * MB)))
    assert v.verdict == "leak", v.evidence
    assert v.growth_bytes_per_hour == pytest.approx((0.045 * 80 + 1.66) * MB / 80 * HOUR, rel=0.3)


def test_a_leak_past_the_level_a_drop_left_is_not_a_plateau_below_it() -> None:
    # 1 GiB growing 10 MiB/h for three days, a 300 MiB cache drop at 36 h: the one fall made
    # the rise "one phase of a load cycle", and the verdict read `plateau`, "levels off near
    # 1.24 GiB", with memory at 1.41 GiB and rising. Until it passes the swing it is undecided.
    t = np.arange(120) * 2160.0  # a fleet scan's 36-minute means
    rss = 2**30 + 10 * 2**20 * t / HOUR - 300 * 2**20 * (t >= 36 * HOUR)
    v = judge(Series.from_arrays(t, rss + _noise(t.size, 2**20)))
    assert v.verdict == "inconclusive" and v.ceiling_bytes is None, v.evidence
    assert v.more_time_s is not None and v.more_time_s > 0


@pytest.mark.parametrize("fill_s", [8.0, 12.0])
def test_a_native_cache_filling_from_its_first_sample_is_a_plateau(fill_s: float) -> None:
    # examples/native_cache.c, its first sample taken just after exec: 3 MiB, then 32 MiB
    # more at a steady rate, then flat. Drawn as two regimes, the steady fill was taken for
    # the process starting and the run read `stable` (seen in CI, where the fill was slower).
    t = np.arange(0.5, 30.01, 0.5)
    rss = np.minimum(1.2e6 + 32 * 2**20 * t / fill_s, 1.2e6 + 32 * 2**20)
    rss += 4096 * np.random.default_rng(1).integers(0, 2, t.size)
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "plateau", v.evidence
    assert v.ceiling_bytes == pytest.approx(1.2e6 + 32 * 2**20, rel=0.02)


def test_a_rise_at_its_highest_in_its_last_bins_has_not_levelled_off() -> None:
    # Ten samples a minute apart, rising in bursts to the highest yet at the last: the rise
    # reached 90% of itself only in its last bin, and had read `plateau`, "levels off near
    # 204 MiB", at 242 MiB. Nothing levelled; the trend is not decided yet.
    t = np.arange(0.0, 600.0, 60.0)
    rss = np.array([170, 170, 166, 213, 182, 194, 215, 215, 224, 242]) * 2**20
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "inconclusive" and v.ceiling_bytes is None, v.evidence
    assert v.more_time_s is not None and v.more_time_s > 0


def test_a_count_that_is_not_leaking_has_no_rate() -> None:
    # A soak's server held four more handler threads for 0.4 s and had let them go by its
    # last two samples: the box had read "-402k threads/h" beside "threads flat (1)".
    t = np.linspace(0.0, 0.4464, 52)
    threads = np.full(t.size, 5.0)
    threads[[0, -2, -1]] = 1.0
    v = judge(Series.from_arrays(t, np.full(t.size, 20.5e6), threads=threads))
    assert v.thread_growth_per_hour == 0.0 and "threads not growing (1–5, 1 now)" in v.evidence
    leak = judge(Series.from_arrays(_t(1.0), np.full(_t(1.0).size, 30e6), threads=_t(1.0) // 60))
    assert leak.thread_growth_per_hour == pytest.approx(60.0, rel=0.05)


def _cache(
    share: float,
    bound: float | None,
    name: str = "lru_cache of render() (dict)",
    queue: bool = False,
) -> Culprit:
    return Culprit(
        name=name,
        kind="container",
        growth="",
        growth_per_hour=36_000.0,
        unit="entries",
        share=share,
        bytes_estimate=20e6,
        points=((0.0, 0.0), (60.0, 10_000.0)),
        bound=bound,
        queue=queue,
    )


def test_a_rise_bounded_containers_explain_is_a_cache_filling() -> None:
    # Rising steadily, as a leak would: the probe says the growth is a cache a quarter full.
    t = np.arange(0.0, 60.0, 0.5)
    rss = 30e6 + 20e6 * t / 60 + _noise(t.size, 20e3)
    series = Series.from_arrays(t, rss)
    assert judge(series).verdict == "leak"
    v = judge(series, culprits=(_cache(0.95, 40_000),))
    assert v.verdict == "plateau" and not v.is_problem
    assert v.ceiling_bytes == pytest.approx(50e6 + 30_000 * 2_000, rel=0.02)  # 2 kB an entry
    assert "bounded at 40,000 entries and 25% full" in v.evidence[0]
    assert v.time_to_limit_s is None
    # Full, it would pass the limit: a problem still.
    assert judge(series, culprits=(_cache(0.95, 40_000),), limit_bytes=100 << 20).verdict == (
        "leak"
    )
    # ... or what the machine has, with no limit known: a cache of maxsize 10**9 had been
    # "levels off near 6.84 TiB", exit 0, on a 23 GiB machine.
    huge = (_cache(0.95, 10**9),)
    assert judge(series, culprits=huge, memory_bytes=23 << 30).verdict == "leak"
    assert judge(series, culprits=(_cache(0.95, 40_000),), memory_bytes=23 << 30).verdict == (
        "plateau"
    )
    # An unbounded container growing as much, or no bound at all: a leak.
    both = (_cache(0.5, 40_000), _cache(0.5, None, "module app, global SEEN (dict)"))
    assert judge(series, culprits=both).verdict == "leak"
    assert judge(series, culprits=(_cache(0.95, None),)).verdict == "leak"
    # A cache already full has stopped: memory still rising is something else's (a capped
    # dict the probe cannot read a bound of had read "a cache filling ... 100% full").
    full = _cache(0.7, 10_000)
    assert judge(series, culprits=(full, _cache(0.3, None, "module app, global SEEN"))).verdict == (
        "leak"
    )
    assert judge(series, culprits=(full,)).verdict == "leak"


def test_a_leak_in_a_work_queue_is_a_backlog() -> None:
    # Seed 000: a per-client outbound queue that a slow consumer drains more slowly than the
    # server fills it. Still a leak (it grows while the load lasts), but said to be a
    # backlog, with the queue draining as what would change it.
    t = np.arange(0.0, 60.0, 0.5)
    series = Series.from_arrays(t, 30e6 + 20e6 * t / 60 + _noise(t.size, 20e3))
    outbound = _cache(0.7, None, "ClientSession.outbound (Queue)", queue=True)
    v = judge(series, culprits=(outbound,))
    assert v.verdict == "leak" and v.is_problem and v.cause == "backlog"
    assert v.evidence[0].startswith("the growth is a backlog in ClientSession.outbound (Queue)")
    assert v.would_change[0].startswith("ClientSession.outbound (Queue) draining")
    assert headline(v).startswith("A backlog grows without bound")
    # Its entries' bytes are sampled: a queue that carries a third of the growth, and more
    # than every other container together, is still the backlog.
    assert judge(series, culprits=(replace(outbound, share=0.35),)).cause == "backlog"
    # A dict nobody prunes growing more than the queue: a leak, not a backlog; nor a queue
    # that explains too little of the growth to name it.
    seen = _cache(0.6, None, "module app, global SEEN (dict)")
    assert judge(series, culprits=(seen, replace(outbound, share=0.4))).cause is None
    assert judge(series, culprits=(replace(outbound, share=0.15),)).cause is None
    # A bounded queue filling is a plateau: it stops at its bound.
    full = judge(series, culprits=(_cache(0.95, 40_000, "Pipe.inbox (Queue)", queue=True),))
    assert full.verdict == "plateau" and full.cause == "bounded-fill"
    assert "a queue filling to its bound, not a leak" in full.evidence[0]
    assert headline(full).startswith("Memory fills a bounded cache or queue, and levels off")
    # Without the probe, nothing is said of a cause.
    assert judge(series).cause is None


def test_a_backlog_that_drained_is_given_back_not_a_ceiling() -> None:
    # A queue fed faster than it is served for 22 s, then slower: RSS 18.5 → 45.6 MiB, held,
    # then back to 21.6 MiB. It had read `plateau`, "levels off near 21.6 MiB", the peak said
    # nowhere.
    t = np.arange(0.0, 61.0)
    mib = np.concatenate(
        [[0.8, 15.2, 16.8], np.linspace(18.2, 45.6, 23), np.full(15, 45.6), np.full(7, 32.3)]
    )
    mib = np.concatenate([mib, np.full(t.size - mib.size, 21.6)])
    v = judge(Series.from_arrays(t, mib * 2**20 + 4096 * (np.arange(t.size) % 2)))
    assert v.verdict == "stable" and v.ceiling_bytes is None, v.evidence
    assert "rose to 45.6 MiB at 25 s and came back down to 21.6 MiB" in v.evidence[1]
    # Still up at the end: the rise is held, a plateau.
    held = judge(Series.from_arrays(t[:45], mib[:45] * 2**20 + 4096 * (np.arange(45) % 2)))
    assert held.verdict == "plateau", held.evidence


def test_a_dip_in_the_last_samples_of_a_leak_does_not_end_it() -> None:
    # seed000's slow client on a loaded machine, as recorded (pages, every 0.25 s, its exec
    # sample dropped): +0.9 GiB/h, and a dip of 160 KiB three samples from the end (its
    # writer freed a few packets). The dip had begun a "new level" of 3 samples: "levels off
    # near 28.2 MiB; over the last 0.5 s, since it levelled: +1.13 GiB/h", exit 0.
    pages = [5796, 6027, 6234, 6238, 6238, 6345, 6370, 6370, 6370, 6370, 6494, 6525, 6525]
    pages += [6567, 6567, 6567, 6583, 6608, 6650, 6650, 6650, 6654, 6690, 6738, 6738, 6755]
    pages += [6755, 6775, 6796, 6838, 6838, 6838, 6846, 6879, 6921, 6921, 6921, 6921, 6961]
    pages += [7003, 7003, 7003, 7003, 7015, 7040, 7082, 7095, 7095, 7099, 7135, 7156, 7156]
    pages += [7164, 7156, 7196, 7238, 7246, 7246, 7206, 7218, 7247]
    t = np.arange(1, len(pages) + 1) * 0.25
    v = judge(Series.from_arrays(t, np.array(pages) * 4096.0))
    assert v.verdict == "leak" and v.is_problem, v.evidence
    lo, hi = v.growth_ci_bytes_per_hour  # type: ignore[misc]
    assert lo < 0.9 * 2**30 < hi


def test_growth_in_mapped_files_pages_is_judged_without_them() -> None:
    t = np.arange(0.0, 600.0, 5.0)
    files = 2 * MB + t * (3 * MB / 60)  # a file read through mmap: 3 MB a minute
    own = 50 * MB + _noise(t.size, 0.1 * MB)
    v = judge(Series.from_arrays(t, own + files, file_bytes=files), limit_bytes=int(1e9))
    assert (v.verdict, v.metric, v.time_to_limit_s) == ("stable", "rss_less_file_bytes", None)
    assert v.trend is None  # a line of RSS less mapped files is not drawn over RSS
    assert v.evidence[0].startswith("RSS grew +172 MiB/h, 100% of it pages of mapped files")
    assert v.evidence[1].startswith("RSS less mapped files has no significant trend")
    assert key_numbers(v)[1].label == "RSS less mapped files growth"
    # A leak of the program's own memory beside it is still one, at its own rate.
    leak = judge(Series.from_arrays(t, own + files + t * 20e3, file_bytes=files))
    assert (leak.verdict, leak.metric) == ("leak", "rss_less_file_bytes")
    assert leak.growth_bytes_per_hour == pytest.approx(72e6, rel=0.05)
    # File pages carrying under half of a leak's growth leave RSS judged as it is.
    most = judge(Series.from_arrays(t, own + files + t * 60e3, file_bytes=files))
    assert (most.verdict, most.metric) == ("leak", "rss_bytes")


def test_a_significant_rise_under_the_noise_bar_says_which_bar() -> None:
    # A C leak of 38 MiB/h under mmap'd work buffers of 1-8 MB taken and given back, as
    # recorded for 86 s (pages, every second). The rise is significant but under 3 sigma of
    # those swings; it had read "rose only 902 KiB ...: too little to count as growth", a
    # rise over the 384 KiB bar that the words named.
    pages = [533, 2158, 881, 1651, 2422, 633, 1915, 2430, 1665, 386, 389, 392, 1163, 398, 1426]
    pages += [1428, 1991, 970, 460, 463, 465, 468, 2008, 474, 477, 2528, 482, 485, 488, 747]
    pages += [2542, 2288, 1011, 1782, 760, 506, 2558, 512, 1283, 517, 519, 2571, 2574, 1552]
    pages += [530, 533, 536, 2331, 541, 2081, 1059, 1830, 552, 1323, 814, 560, 2611, 1590, 567]
    pages += [827, 830, 576, 1859, 1350, 1352, 586, 1358, 849, 595, 598, 600, 603, 1374, 865]
    pages += [611, 613, 1129, 2412, 1902, 1393, 626, 1142, 1913, 1916, 2175, 641]
    t = np.arange(len(pages), dtype=float)
    v = judge(Series.from_arrays(t, np.array(pages) * 4096.0))
    assert v.verdict == "stable", v.evidence
    assert v.evidence[0].startswith("RSS rose only 914 KiB over the last 1.4 min"), v.evidence
    assert v.evidence[0].endswith(
        "less than 3 times the noise around the trend (σ 3.15 MiB), too little to tell from it"
    )


def test_jumps_memory_came_back_down_from_are_no_steps() -> None:
    # A flat Python program churning reference cycles, as recorded (pages, every second, its
    # exec sample dropped): a 2 MB start-up, then 16 MiB, bumped 213 KiB at 81 s and 420 KiB
    # at 93 s for a few seconds each, and back. It had read "Memory jumped, then stayed
    # flat", `step`, at every look from 30 s.
    pages = [3568, 3830, 3876, 3894, 3894, 3928, 3926, 3926, 3926, 3931, 3935, 3958, 3991]
    pages += [3973, 3973, 4045, 4078, 4093, 4070, 4069, 4069, 4062, 4057, 4076, 4072, 4076]
    pages += [4068, 4068, 4085, 4085, 4085, 4067, 4067, 4067, 4020, 4045, 4045, 4045, 4046]
    pages += [4076, 4050, 4073, 4069, 4068, 4132, 4163, 4097, 4097, 4097, 4097, 4097, 4085]
    pages += [4085, 4135, 4148, 4080, 4134, 4134, 4084, 4087, 4092, 4092, 4064, 4089, 4089]
    pages += [4089, 4092, 4092, 4103, 4071, 4075, 4078, 4083, 4088, 4096, 4103, 4065, 4068]
    pages += [4075, 4082, 4147, 4147, 4147, 4063, 4070, 4077, 4093, 4093, 4094, 4059, 4067]
    pages += [4075, 4154, 4155, 4155, 4155, 4070, 4093, 4093, 4093]
    t = np.arange(1, len(pages) + 1, dtype=float)
    v = judge(Series.from_arrays(t, np.array(pages) * 4096.0))
    assert v.verdict in ("stable", "plateau") and not v.is_problem, v.evidence
    assert not any("jumped" in e for e in v.evidence), v.evidence


def test_a_significant_rise_since_a_jump_claims_no_level() -> None:
    # A C leak of 11 KiB/s (39 MiB/h), as recorded for 45 s (pages, every second, its exec
    # sample dropped). The 13 s since its last jump rose significantly but by less than
    # 384 KiB: it had read "levels off near 9.82 MiB; over the last 13 s, since it levelled:
    # +35.2 MiB/h (95% CI +29.5 – +38.7 MiB/h)", a level memory had passed.
    pages = [1091, 2373, 2373, 2373, 2373, 2385, 2385, 2385, 2385, 2396, 2399, 2399, 2405]
    pages += [2405, 2452, 2452, 2452, 2452, 2462, 2462, 2462, 2471, 2471, 2475, 2481, 2481]
    pages += [2481, 2481, 2481, 2481, 2498, 2500, 2502, 2502, 2508, 2511, 2513, 2516, 2516]
    pages += [2522, 2523, 2523, 2523, 2532]
    t = np.arange(1, len(pages) + 1, dtype=float)
    v = judge(Series.from_arrays(t, np.array(pages) * 4096.0))
    assert v.ceiling_bytes is None and not v.is_problem, v.evidence
    assert not any("levels off" in e or "since it levelled" in e for e in v.evidence)
    # Nor does its headline ("Memory jumped, then stayed flat" had headed such a rise).
    assert headline(v).startswith("Memory grew and still rises, not yet told from a leak: +")
    assert v.more_time_s is not None and "more of recording" in v.would_change[0]


def test_a_filled_caches_tail_creeping_by_pages_has_levelled() -> None:
    # `make demo`'s bounded cache, as recorded (pages, every 0.5 s, its exec sample dropped):
    # filled to 49 MiB in 7 s, then crept 6 pages in 33 s. A rise that slow, ten windows from
    # the leak's bars, had been headed "Memory grew and still rises, not yet told from a leak".
    pages = [4280, 5159, 5792, 6418, 6986, 7545, 8074, 8585, 9158, 9667, 10287, 10845, 11390]
    pages += [11931, 12402, 12404, 12405, 12408, 12409, 12409, 12409, 12409]
    pages += [12545] * 14 + [12546] * 9 + [12549] * 12 + [12550] * 17 + [12551] * 6
    t = 0.5 * np.arange(1, len(pages) + 1)
    v = judge(Series.from_arrays(t, np.array(pages) * 4096.0))
    assert v.verdict == "plateau" and v.more_time_s is None, v.evidence
    assert v.ceiling_bytes == pytest.approx(12_550 * 4096, rel=0.01)
    assert headline(v).startswith("Memory grows to a ceiling and no further (bounded): ceiling")


def _jittered_busy_idle(seed: int, leak_per_cycle: float) -> Series:
    """5 min at 0.5 s of a 30 s busy/idle load (9 MB held while busy) whose edges jitter by
    0.7 s, as a real program's do, over 29 MB, with a steady leak of `leak_per_cycle`."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 300.0, 0.5)
    busy = np.zeros(t.size)
    for start in np.arange(0.0, 300.0, 30.0):
        on, off = start + rng.normal(0, 0.7), start + 15.0 + rng.normal(0, 0.7)
        busy[(t >= on) & (t < off)] = 1.0
    held = busy * 9 * MB * (1 + 0.05 * rng.standard_normal(t.size))
    rss = 29 * MB + held + leak_per_cycle * t / 30.0 + rng.normal(0, 0.1 * MB, t.size)
    return Series.from_arrays(t, rss)


def test_a_steady_leak_under_a_jittered_busy_idle_load_is_a_leak_from_its_fourth_cycle() -> None:
    # 1.1 MB a cycle under 9 MB swings. The cycle's shape had been the mean at each phase,
    # about a line fitted to memory alone: that line tilts with the phase a recording ends
    # in, the shape took in a saw of one cycle's growth, and the leak was left as a staircase,
    # flat within each cycle. It read `plateau` ("levels off; over the last 16 s, since it
    # levelled") or `step` at 21 of these 60 looks; a jittered edge in the last period made
    # the rest.
    looks = [
        (seed, at, judge(_jittered_busy_idle(seed, 1.1 * MB).prefix(at)))
        for seed in range(1, 11)
        for at in (120, 150, 180, 210, 240, 270)
    ]
    wrong = [(seed, at, v.verdict, v.evidence[0]) for seed, at, v in looks if v.verdict != "leak"]
    assert wrong == []
    rates = [v.growth_bytes_per_hour for _, at, v in looks if at >= 180 and v.verdict == "leak"]
    assert np.median(rates) == pytest.approx(1.1 * MB * 120, rel=0.05)  # type: ignore[arg-type]


def test_the_same_busy_idle_load_without_a_leak_is_never_one() -> None:
    for seed in range(1, 11):
        series = _jittered_busy_idle(seed, 0.0)
        for at in (120, 150, 180, 210, 240, 270, 300):
            v = judge(series.prefix(at))
            assert v.verdict != "leak", (seed, at, v.evidence)


def test_a_bump_given_back_seconds_ago_claims_no_level_at_its_top() -> None:
    # Three 50 MB bumps of 15 s each on 20 MB, the last given back 5 s before the look: the
    # fall, too recent for a regime of its own, was drawn as one steep line with the bump's
    # top, and the verdict read `plateau`, "levels off near 66.8 MiB", with memory at 20 MB.
    t = np.arange(0.0, 150.5, 0.5)
    rss = 20 * MB + _noise(t.size, 0.1 * MB, seed=3)
    for start in (30.0, 80.0, 130.0):
        rss[(t >= start) & (t < start + 15.0)] += 50 * MB
    v = judge(Series.from_arrays(t, rss))
    assert v.verdict == "stable", v.evidence
    assert v.ceiling_bytes is None


def test_a_peak_between_samples_that_grows_is_said() -> None:
    # 16 threads' bursts, trimmed between samples: VmHWM went from 1 to 98 MiB while sampled
    # RSS stayed at 1-2 MiB, and the verdict (`stable`, right for RSS) said nothing of it.
    t = np.arange(0.0, 120.0, 0.5)
    rss = 2 * MIB + _noise(t.size, 50e3, seed=4)
    hwm = np.maximum.accumulate(2 * MIB + 96 * MIB * t / t[-1])
    v = judge(Series(t, {"rss_bytes": rss, "hwm_bytes": hwm}))
    assert v.verdict == "stable"
    [said] = [e for e in v.evidence if e.startswith("RSS peaked at")]
    assert said.startswith("RSS peaked at 98.0 MiB between samples (VmHWM, 2.00 MiB at the first)")
    # A peak the samples saw says nothing new.
    seen = np.maximum.accumulate(rss)
    v = judge(Series(t, {"rss_bytes": rss, "hwm_bytes": seen}))
    assert not any(e.startswith("RSS peaked at") for e in v.evidence)


def _registry(entries: np.ndarray, t: np.ndarray, bound: float | None = None) -> Culprit:
    return Culprit(
        name="class __main__.Registry, attribute by_user (dict)",
        kind="container",
        growth="",
        growth_per_hour=0.0,
        unit="entries",
        share=1.0,
        bytes_estimate=float(entries[-1]) * 6250.0,
        points=tuple(zip(t.tolist(), entries.tolist(), strict=True)),
        bound=bound,
    )


def test_an_allocation_site_growing_in_a_collected_heaps_slack_is_a_leak() -> None:
    # A Go program keeping 8 KiB every 100 ms amid 40 MB/s of garbage: RSS sat under the
    # collector's heap goal and read `plateau`, exit 0, while the heap profiles' site grew.
    t = np.arange(0.0, 120.0, 1.0)
    rss = 16 * MIB + 11 * MIB * (1 - np.exp(-t / 15.0)) + _noise(t.size, 20e3, seed=6)
    at = np.arange(0.0, 120.0, 5.0)
    site = Culprit(
        name="allocations at main.slowLeak (leaks/main.go:44)",
        kind="allocation-site",
        growth="",
        growth_per_hour=0.0,
        unit="bytes",
        share=1.0,
        bytes_estimate=1.5 * MIB + 80e3 * at[-1],
        points=tuple(zip(at.tolist(), (1.5 * MIB + 80e3 * at).tolist(), strict=True)),
    )
    assert judge(Series.from_arrays(t, rss)).verdict == "plateau"
    v = judge(Series.from_arrays(t, rss), culprits=(site,))
    assert v.verdict == "leak" and v.cause == "in-slack" and v.metric == "heap_inuse_bytes"
    assert v.growth_bytes_per_hour == pytest.approx(80e3 * 3600, rel=0.01)
    assert "(1.50 MiB → 10.3 MiB in use) while RSS does not" in v.evidence[0]
    assert headline(v).startswith("The heap in use grows without bound in memory already held")
    # A site taken up as it appeared starts at 0 B: a leak starting 30 s in had read `plateau`.
    late = replace(site, points=((0.0, 0.0), *site.points[1:]))
    assert judge(Series.from_arrays(t, rss), culprits=(late,)).cause == "in-slack"
    # A site tracemalloc's snapshot diff named (no points over time) is no such evidence.
    assert judge(Series.from_arrays(t, rss), culprits=(replace(site, points=()),)).verdict == (
        "plateau"
    )


def test_python_objects_growing_in_memory_already_held_are_a_leak() -> None:
    # A dict gaining 40 entries of 6 KiB a second (~850 MiB/h) inside a 16 MiB ctypes buffer
    # churned each loop: RSS stayed flat after one jump, and the run read `step`, exit 0,
    # beside the probe's culprit at 100%.
    t = np.arange(0.0, 120.0, 0.5)
    rss = 67 * MIB + 16 * MIB * (t >= 72) + _noise(t.size, 20e3, seed=5)
    entries = 50 + 40.0 * t
    v = judge(Series.from_arrays(t, rss), culprits=(_registry(entries, t),))
    assert v.verdict == "leak" and v.is_problem and v.cause == "in-slack"
    assert v.growth_bytes_per_hour == pytest.approx(40 * 6250 * 3600, rel=0.01)
    assert v.evidence[0].startswith("class __main__.Registry, attribute by_user (dict) grows +8")
    assert "while RSS does not" in v.evidence[0]
    assert v.metric == "python_object_bytes"
    assert headline(v).startswith("Python objects grow without bound in memory already held")
    # Not in a tree that replaces its workers: a recycled pool's workers each grew a dict
    # until replaced, and the tree had read `leak`, exit 3.
    assert (
        judge(Series.from_arrays(t, rss), culprits=(_registry(entries, t),), recycled=True).verdict
        != "leak"
    )
    # Nor when the process that held it is gone: its last reading long before the others'.
    early = t < 60
    gone = replace(_registry(entries[early], t[early]), name="gone (pid 7)")
    alive = replace(_registry(np.full(t.size, 40.0), t), name="alive (pid 8)")
    assert judge(Series.from_arrays(t, rss), culprits=(gone, alive)).cause != "in-slack"
    # A bounded container filling is no leak, nor is a few KiB of growth.
    bounded = _registry(entries, t, bound=10_000)
    assert judge(Series.from_arrays(t, rss), culprits=(bounded,)).verdict == "step"
    small = _registry(50 + 0.5 * t, t)
    assert judge(Series.from_arrays(t, rss), culprits=(small,)).verdict == "step"
    # Nor is a cache that filled once and stopped: 1,000 to 3,400 entries between 40 and 52 s
    # of 150, flat since, had read `leak`, "grows +226 MiB/h".
    t = np.arange(0.0, 150.0, 0.5)
    rss = 162 * MIB + _noise(t.size, 20e3, seed=5)
    filled = np.interp(t, [0, 40, 52, 150], [1000, 1000, 3400, 3400])
    assert judge(Series.from_arrays(t, rss), culprits=(_registry(filled, t),)).verdict == "stable"


def test_memory_falling_after_a_fill_is_said_to_fall_from_its_peak() -> None:
    # A pool filled to 76 MiB, held, and now draining: "levels off near 61.0 MiB; since it
    # levelled: -3.87 GiB/h", the ceiling lower at every look.
    t = np.arange(0.0, 120.0, 0.5)
    mib = np.interp(t, [0, 40, 95, 120], [30, 76, 76, 61])
    v = judge(Series.from_arrays(t, mib * MIB + _noise(t.size, 30e3, seed=6)))
    assert v.verdict == "plateau", v.evidence
    assert v.ceiling_bytes == pytest.approx(76 * MIB, rel=0.01)
    assert v.evidence[0].startswith("RSS grew to a peak of 76.0 MiB and is falling; over the last")
    assert v.growth_bytes_per_hour is not None and v.growth_bytes_per_hour < 0


def test_a_rise_held_back_by_an_earlier_fall_says_so_not_that_it_is_small() -> None:
    # A helper's sine load with a leak beside it, 1.4 cycles recorded: the 78.6 MiB rise is
    # no more than memory fell before (the cycle's last fall), and had been called "too
    # little to count as growth" beside a 384 KiB bar.
    v = judge(_recorded("sine_load_leak.json"))
    assert v.verdict == "stable"  # too few cycles to take the load out (docs §10)
    assert v.evidence[0].startswith("RSS rose 78.6 MiB over the last 2.6 min"), v.evidence
    assert v.evidence[0].endswith("no more than it fell before")
    assert "the rise may be one phase of a load cycle" in v.evidence[1]


def test_busy_phases_given_back_seen_too_few_times_are_no_step() -> None:
    # A helper's Python program: 60 s busy holding ~85 MB, 60 s idle at 14 MB, recorded for
    # 5 min (2.5 cycles, ending busy). It read `step`, "jumped (65.2 MiB at 2.0 min, 72.5 MiB
    # at 4.0 min)", exit 0, with memory back at 14 MiB between: a load cycle seen too few
    # times to take out (4 are needed), so undecided until then.
    t = np.arange(0.0, 300.0, 0.5)
    busy = (t % 120.0) < 60.0
    rss = 14 * MIB + busy * 85 * MIB * (1 + 0.1 * np.random.default_rng(7).standard_normal(t.size))
    v = judge(Series.from_arrays(t, rss + _noise(t.size, 50e3, seed=7)))
    assert v.verdict == "inconclusive", v.evidence
    assert any(
        e.startswith("memory rose and came back down 2 times (every 2.0 min or so): a load cycle")
        for e in v.evidence
    ), v.evidence
    assert v.more_time_s == pytest.approx(180.0, abs=15.0)


def test_a_leak_that_slows_down_is_not_said_to_go_on_without_slowing_down() -> None:
    # "without slowing down" had been said of every leak: of a pool filling to its bound, its
    # rate down from 4.7 to 1.0 GiB/h across looks, too. 10 MB/min, then 3 MB/min.
    t = np.arange(0.0, 600.0)
    rss = 100 * MB + np.where(t < 300, 10 * MB * t / 60, 50 * MB + 3 * MB * (t - 300) / 60)
    v = judge(Series.from_arrays(t, rss + _noise(t.size, 2 * MB, seed=8)))
    assert v.verdict == "leak"
    assert v.evidence[0].endswith("slowing down: +169 MiB/h in its recent half"), v.evidence[0]
    steady = 100 * MB + 10 * MB * t / 60 + _noise(t.size, 2 * MB, seed=8)
    assert judge(Series.from_arrays(t, steady)).evidence[0].endswith(", without slowing down")


def test_a_rise_over_the_bars_held_back_by_autocorrelation_says_so() -> None:
    # A helper's pool, filled by 60 MB, held and draining, after a 150 MB start-up buffer was
    # freed: `stable` had said "rose only 76.2 MiB …: too little to count as growth". What
    # held it back is the trend test that allows for its points moving together.
    v = judge(_recorded("fill_hold_drain.json"))
    assert v.verdict == "stable"
    first = v.evidence[0]
    assert first.startswith("RSS rose 76.2 MiB over the last 1.1 min"), first
    assert "too little" not in first and "not significant once that is allowed for" in first


def test_a_queue_growing_in_memory_already_held_is_a_backlog_first() -> None:
    # Seed 000's outbound queue, growing while RSS did not: the in-slack sentence had come
    # before the backlog's, which names what the growth is.
    t = np.arange(0.0, 120.0, 0.5)
    rss = 67 * MIB + _noise(t.size, 20e3, seed=5)
    queue = replace(_registry(50 + 40.0 * t, t), name="ClientSession.outbound (Queue)", queue=True)
    v = judge(Series.from_arrays(t, rss), culprits=(queue,))
    assert v.verdict == "leak" and v.cause == "backlog"
    assert v.evidence[0].startswith("the growth is a backlog in ClientSession.outbound (Queue)")
    assert v.evidence[1].startswith("ClientSession.outbound (Queue) grows +")


def _forked(private: np.ndarray, rss: np.ndarray) -> Series:
    """A process after fork, sampled every second, USS read every 2 s (smaps_rollup's budget)."""
    t = np.arange(private.size, dtype=float)
    uss = np.where(np.arange(t.size) % 2 == 0, private, np.nan)
    return Series(t, {"rss_bytes": rss, "uss_bytes": uss})


def test_memory_coming_unshared_after_fork_is_copy_on_write() -> None:
    # A worker rewriting 192 MiB of its parent's state, 10 MiB a second, then idle: its RSS
    # never moves, and RSS alone had read `stable`.
    n = 60
    rss = np.full(n, 193 * MIB)
    private = np.clip(2 * MIB + 10 * MIB * np.maximum(np.arange(n) - 5, 0), 0, 192 * MIB)
    v = judge(_forked(private, rss))
    assert (v.verdict, v.cause, v.metric) == ("plateau", "copy-on-write", "uss_bytes")
    assert v.ceiling_bytes == 193 * MIB and not v.is_problem
    assert v.evidence[0].startswith("private memory (USS) grew 190 MiB"), v.evidence
    assert "copy-on-write" in headline(v)
    # Still being copied: the private part's rate is the growth.
    early = judge(_forked(private[:24], rss[:24]))
    assert early.cause == "copy-on-write"
    assert early.growth_bytes_per_hour == pytest.approx(10 * MIB * 3600, rel=0.1)


def test_a_trees_copy_on_write_counts_what_its_pss_added() -> None:
    # Recorded with --children, the columns are the tree's sums. Two workers share 200 MiB;
    # as one rewrites it, each copied page becomes private to both, so the USS sum rises
    # twice what the tree adds; the PSS sum counts each page once (a helper's tree: USS sum
    # +1.20 GiB, PSS sum +920 MiB, and the words had said "up to 1.20 GiB more").
    n = 60
    copied = np.clip(10 * MIB * np.maximum(np.arange(n) - 5, 0), 0, 200 * MIB)
    rss = np.full(n, 420 * MIB)  # each worker's RSS: 10 MiB of its own + the 200 MiB shared
    series = _forked(20 * MIB + 2 * copied, rss)
    pss = np.where(np.isnan(series.get("uss_bytes")), np.nan, 220 * MIB + copied)
    tree = Series(series.t, {**series.columns, "pss_bytes": pss})
    v = judge(tree, tree=True)
    assert v.cause == "copy-on-write", v.evidence
    assert v.evidence[0].startswith("the tree's private memory (USS, summed) grew 400 MiB")
    assert "so the tree holds 200 MiB more (its PSS, each page counted once)" in v.evidence[0]
    # One process alone: the others holding its pages are not read, so it says "up to".
    assert "together they hold up to 400 MiB more" in judge(tree).evidence[0]


@pytest.mark.parametrize(
    "case",
    ["sharers exit at once", "workers exit one by one", "shared pages dropped", "memory allocated"],
)
def test_private_memory_that_was_not_copied_is_no_copy_on_write(case: str) -> None:
    n = 60
    i = np.arange(n)
    workers = None
    if case == "workers exit one by one":  # 8 workers, each sharing 25 MiB, gone every 5 s
        gone = np.clip((i - 10) // 5 + 1, 0, 8)
        rss, private, workers = np.full(n, 210 * MIB), 10 * MIB + 25 * MIB * gone, 8.0 - gone
    elif case == "sharers exit at once":  # the other workers end: their pages are now ours alone
        rss, private = np.full(n, 193 * MIB), np.where(i < 30, 2 * MIB, 192 * MIB)
    elif case == "shared pages dropped":  # RSS falls, USS stays: nothing was added
        rss, private = 193 * MIB - 3 * MIB * np.minimum(i, 50), np.full(n, 20 * MIB)
    else:  # USS and RSS grow together: the process allocates (judged on RSS: a leak)
        rss, private = 100 * MIB + 2 * MIB * i, 20 * MIB + 2 * MIB * i
    series = _forked(private.astype(float), rss.astype(float))
    if workers is not None:  # counted every few seconds by the recorder (`descendants`)
        series = Series(series.t, {**series.columns, "descendants": workers.astype(float)})
    v = judge(series)
    assert v.cause != "copy-on-write", v.evidence


def _staircase(n: int, slip_at: int) -> Series:
    """A leak stepping every 2 s, a little more each step, sampled every second; from
    `slip_at` the sampling slips a second against the steps (one tread read three times)."""
    steps = [(i // 2) if i < slip_at else ((i - 1) // 2) for i in range(n)]
    rss = [11 * MIB + sum(int((3.3 + 0.02 * k) * MIB) for k in range(s)) for s in steps]
    return Series(np.arange(n, dtype=float), {"rss_bytes": np.array(rss, dtype=float)})


@pytest.mark.parametrize("n", [66, 70, 74, 80])
def test_a_staircase_leak_that_speeds_up_is_a_leak_at_every_look(n: int) -> None:
    # A Rust program keeping every 200th block, 3.5 MiB more every 2 s: treads flat to the
    # page, so its steps are jumps, and its bend swamped the 2-sample swing around a line.
    # At 70 s, one tread read three times had made "the first 1.1 min were warm-up", `plateau`.
    v = judge(_staircase(n, slip_at=67))
    assert v.verdict == "leak", v.evidence
    assert v.warmup_end_s is None, v.evidence
    assert "allocations in bursts every 2.0 s" in v.evidence[1]


def test_a_smooth_leak_whose_rises_alternate_by_a_page_is_not_in_bursts() -> None:
    # A Rust program building 500 Rc cycles a second: RSS rose 2,080 then 2,076 KiB, and
    # so on, and read "allocations in bursts every 2.0 s" (a swing of one page is none).
    rises = np.where(np.arange(50) % 2 == 0, 2080 * 1024, 2076 * 1024)
    rss = 8 * MIB + np.concatenate([[0], np.cumsum(rises)]).astype(float)
    v = judge(Series(np.arange(51, dtype=float), {"rss_bytes": rss}))
    assert v.verdict == "leak"
    assert not [e for e in v.evidence if "bursts" in e or "load cycle" in e], v.evidence


@pytest.mark.parametrize("n", [9, 12, 24, 25, 30])
def test_a_staircase_seen_for_a_few_steps_is_no_plateau(n: int) -> None:
    # A C program stepping every 2 s, 2 MiB and 128 KiB more each step, sampled every second:
    # bins of whole bursts left four or five of one rising line, and it had read "levels off
    # near 22.1 MiB" at 30 MiB (24 s), exit 0, its bursts "every 4.0 s".
    t = np.arange(n, dtype=float)
    steps = np.floor((t - 1.5) / 2.0 + 1.0).clip(min=0).astype(int)
    rss = 1.1 * MIB + np.array([sum(2 * MIB + k * 128 * 1024 for k in range(s)) for s in steps])
    v = judge(Series(t, {"rss_bytes": rss.astype(float)}))
    assert v.verdict in (("leak",) if n >= 25 else ("inconclusive", "leak")), v.evidence
    assert not [e for e in v.evidence if "every 4.0 s" in e], v.evidence


def test_a_step_partly_given_back_names_its_fall() -> None:
    # A C program touching 40 MiB at 8 s and giving 25 MiB back at 18 s: "RSS jumped
    # (+40.0 MiB at 8.1 s)" alone had left a reader 40 MiB up when memory stood 15 up.
    t = np.arange(0.0, 30.0, 0.1)
    rss = 20 * MIB + np.where(t >= 8, 40 * MIB, 0.0) - np.where(t >= 18, 25 * MIB, 0.0)
    v = judge(Series(t, {"rss_bytes": rss + _noise(t.size, 20e3, seed=4)}))
    assert v.verdict == "step", v.evidence
    assert "(+40.0 MiB at 8.1 s, -25.0 MiB at 18 s)" in v.evidence[0], v.evidence


def test_where_a_staircase_began_is_never_below_what_was_seen() -> None:
    # Its line drawn back to the window's start had said "a fall back to -1.97 MiB".
    t = np.arange(40, dtype=float)
    steps = np.floor((t - 1.5) / 2.0 + 1.0).clip(min=0).astype(int)
    rss = 1.1 * MIB + np.array([sum(2 * MIB + k * 128 * 1024 for k in range(s)) for s in steps])
    v = judge(Series(t, {"rss_bytes": rss.astype(float)}))
    [back] = [w for w in v.would_change if w.startswith("a fall back to")]
    assert not back.startswith("a fall back to -"), back


def test_lazily_freed_pages_that_only_swing_are_not_taken_out_of_a_leak() -> None:
    # A C program touching 60 MiB and freeing it with MADV_FREE every 4 s, beside a malloc
    # leak of 454 MiB/h, as recorded for 50 s (pages, every second): LazyFree, read on a
    # budget (None: not read), swings between 0 and 60 MiB and does not grow. A least-squares
    # line through its readings had called 54% of the leak lazily freed, and the leak `stable`.
    lazy = [0, 0, 15314, None, 2568, None, 15360, None, 15360, 0, 0, None, None, 0, 15360]
    lazy += [15360, None, None, 15360, 15360, 2560, 0, 15360, 15360, None, 0, None, 15360]
    lazy += [9593, 0, None, None, 3267, None, 15360, None, 2830, None, 15360, None, 2611, None]
    lazy += [15360, None, 2956, None, 15360, 15360, None, 0, None]
    late_ms = [0, 2, 9, 0, 9, 0, 1, 1, 2, 6, 1, 0, 8, 2, 7, 1, 0, 1, 4, 3, 9, 2, 3, 7, 4, 1, 4]
    late_ms += [2, 7, 1, 0, 2, 4, 2, 3, 2, 5, 2, 3, 2, 5, 2, 3, 2, 5, 1, 1, 2, 1, 2, 4]
    t = np.arange(0.0, len(lazy)) + np.array(late_ms) / 1000  # when each sample was taken
    rss = np.r_[681, 15795 + 129 * ((t[1:] - 1) // 4)] * 4096.0  # 129 pages every 4 s
    read = np.array([np.nan if x is None else x * 4096.0 for x in lazy])
    v = judge(Series.from_arrays(t, rss, lazyfree_bytes=read))
    assert (v.verdict, v.metric) == ("leak", "rss_bytes"), v.evidence
    assert not any("MADV_FREE" in line for line in v.evidence)
    # The same leak's chunks freed with MADV_FREE and never reused: LazyFree grows with it.
    freed = np.where(np.isnan(read), np.nan, rss - rss[1])
    gone = judge(Series.from_arrays(t, rss, lazyfree_bytes=freed))
    assert gone.metric == "rss_less_lazyfree_bytes" and gone.verdict != "leak", gone.evidence


def test_a_rise_more_than_a_warm_up_adds_is_not_called_one() -> None:
    mib = float(1 << 20)
    # A Go goroutine leak climbing 3 to 33 mib in 3 min, jumping as a GC copied its stacks,
    # then flat for 30 s, had read "the first 3.0 min were warm-up, not trended".
    t = np.arange(0.0, 211.0)
    rss = np.where(t < 180, 3 * mib + t * (30 * mib / 180), 48.7 * mib + (t - 180) * 8e3)
    v = judge(Series.from_arrays(t, np.round(rss / 4096) * 4096))
    assert not any("were warm-up" in line for line in v.evidence), v.evidence
    assert any(
        line.startswith("the first 3.0 min, a rise of ")
        and line.endswith(
            "(more than a warm-up adds), are not trended: growth is judged after them"
        )
        for line in v.evidence
    ), v.evidence
    # A modest one still is: 5% of the level, settled in the first minute, then flat.
    warm = 100 * mib + 5 * mib * (1 - np.exp(-t / 15.0)) + _noise(t.size, 0.05 * mib)
    assert any("were warm-up" in line for line in judge(Series.from_arrays(t, warm)).evidence)


def test_cpu_rising_under_flat_memory_is_said() -> None:
    # A Go program under GOMEMLIMIT leaking behind its collector: RSS crept 22 -> 25 MiB and
    # read `plateau`, while its CPU went from 3% of a core to 90%; nothing said so.
    t = np.arange(0.0, 240.0)
    rss = 22 * MB + _noise(t.size, 0.05 * MB)
    cpu = np.where(t < 160, 0.03 * t, 0.03 * 160 + 0.9 * (t - 160))
    v = judge(Series.from_arrays(t, rss, cpu_s=cpu))
    assert v.verdict in ("stable", "plateau"), v.evidence
    assert v.evidence[-1].startswith("CPU use rose from 3% of a core to 90% (the recording's")
    steady = judge(Series.from_arrays(t, rss, cpu_s=0.5 * t))
    assert not any(line.startswith("CPU use") for line in steady.evidence)
    leak = judge(Series.from_arrays(t, rss + t * 50e3, cpu_s=cpu))  # a leak says its own
    assert leak.verdict == "leak" and not any("CPU use" in line for line in leak.evidence)


def test_a_steps_words_leave_out_jumps_under_the_material_bar() -> None:
    t = np.arange(0.0, 200.0)
    rss = 20 * MB + np.where(t >= 12, 227 * 1024, 0) + np.where(t >= 100, 15 * MB, 0)
    v = judge(Series.from_arrays(t, np.round(rss / 4096) * 4096))
    assert v.verdict == "step", v.evidence
    assert v.evidence[0].startswith("RSS jumped (+14.3 MiB at 1.7 min); over the last"), v.evidence


def test_a_rise_too_small_to_call_gets_no_time_to_the_limit() -> None:
    # RSS less lazily freed pages, rising 11 KiB in 44 s with a significant trend: "a steady
    # rise, still under 384 KiB in all: too small to call yet", and "limit in 45 days".
    t = np.arange(0.0, 45.0, 0.5)
    rss = 20 * MB + np.round(t * 250 / 4096) * 4096
    v = judge(Series.from_arrays(t, rss), limit_bytes=1 << 30)
    assert v.verdict == "inconclusive" and v.growth_ci_bytes_per_hour[0] > 0, v.evidence
    assert v.time_to_limit_s is None
