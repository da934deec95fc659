"""Memory against a work counter: a leak per unit of work stays a leak when the work pauses or
stops, and a cache filling with work stays a plateau under a busy/idle load."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from memsleuth.analysis import judge
from memsleuth.analysis.work import work_clock
from memsleuth.model import Series
from memsleuth.units import format_bytes_ci

PAGE = 4096.0
BASE = 50e6
FRAMES_PER_S = 2000.0
PER_FRAME = 117.0  # seed 002: ~117 bytes a frame


def _recording(
    load: Callable[[np.ndarray], np.ndarray],
    memory: Callable[[np.ndarray], np.ndarray],
    seconds: int = 300,
    seed: int = 1,
) -> Series:
    """One sample a second of a target doing `load(t)` of its full rate, whose memory above
    its base is `memory(work done)`, rounded to pages as the kernel reports it."""
    rng = np.random.default_rng(seed)
    t = np.arange(float(seconds))
    frames = np.cumsum(
        FRAMES_PER_S * load(t) * np.clip(1 + 0.1 * rng.standard_normal(t.size), 0, None)
    )
    rss = BASE + memory(frames) + 20e3 * rng.standard_normal(t.size)
    return Series.from_arrays(t, np.round(rss / PAGE) * PAGE, work=np.floor(frames))


def _busy_idle(t: np.ndarray) -> np.ndarray:
    return ((t // 40) % 2 == 0).astype(float)  # 40 s busy, 40 s idle


def _leak(frames: np.ndarray) -> np.ndarray:
    return PER_FRAME * frames


def _cache(frames: np.ndarray) -> np.ndarray:
    return 10e6 * (1 - np.exp(-frames / (10e6 / PER_FRAME)))  # 10 MB at most


def test_a_leak_per_frame_read_in_an_idle_phase_is_a_leak() -> None:
    # By the clock, 40 s of flat memory after a busy phase read `plateau`.
    v = judge(_recording(_busy_idle, _leak).prefix(150))
    assert v.verdict == "leak"
    assert v.growth_per_work == pytest.approx(PER_FRAME, rel=0.02)
    assert "judged against the work done, not the clock" in " ".join(v.evidence)
    assert "by the clock alone it reads plateau" in " ".join(v.evidence)
    assert v.evidence[0].startswith("RSS rose +117.0 B/unit over the last")
    assert v.trend is None  # a line on the work clock is no line in time


def test_a_leak_per_frame_after_the_load_stopped_is_still_a_leak() -> None:
    def stops(t: np.ndarray) -> np.ndarray:
        return (t < 200).astype(float)

    v = judge(_recording(stops, _leak), limit_bytes=200_000_000)
    assert v.verdict == "leak"
    assert v.growth_per_work == pytest.approx(PER_FRAME, rel=0.01)
    assert "no work was done for the last 1.7 min" in " ".join(v.evidence)
    # Rates per hour, and the time to the limit, are at the mean work rate.
    mean_rate = 200 * FRAMES_PER_S / 299
    assert v.growth_bytes_per_hour == pytest.approx(PER_FRAME * mean_rate * 3600, rel=0.02)
    assert v.time_to_limit_s is not None and v.time_to_limit_s > 0
    assert any("units of work" in w for w in v.would_change)


def test_a_leak_whose_load_tapers_off_is_a_leak() -> None:
    def tapers(t: np.ndarray) -> np.ndarray:
        return np.clip(1.2 - t / 250, 0, 1)

    series = _recording(tapers, _leak)
    for end in (220, 300):
        v = judge(series.prefix(end))
        assert v.verdict == "leak", end
        assert v.growth_per_work == pytest.approx(PER_FRAME, rel=0.01)


def test_a_cache_filling_with_work_under_a_busy_idle_load_is_no_leak() -> None:
    # By the clock, the third busy phase's climb read `leak`: against work, it slows down.
    series = _recording(_busy_idle, _cache)
    for end in (150, 220, 300):
        assert judge(series.prefix(end)).verdict == "plateau", end


def test_memory_that_grows_while_idle_is_judged_by_the_clock() -> None:
    # A timer's leak, whatever the load: memory rising in idle phases is not work's.
    t = np.arange(300.0)
    frames = np.floor(np.cumsum(FRAMES_PER_S * _busy_idle(t)))
    rss = BASE + 30e3 * t + np.random.default_rng(2).normal(0, 20e3, t.size)
    v = judge(Series.from_arrays(t, np.round(rss / PAGE) * PAGE, work=frames))
    assert v.verdict == "leak"
    assert not any("judged against the work done" in e for e in v.evidence)
    assert v.trend is not None


def test_a_steady_load_gives_the_same_verdict_by_either_clock() -> None:
    v = judge(_recording(lambda t: np.ones_like(t), _leak))
    assert v.verdict == "leak"
    assert v.trend is not None  # nothing to choose: judged by the clock, drawn in time
    assert v.growth_per_work == pytest.approx(PER_FRAME, rel=0.01)


def test_a_counter_that_went_back_is_not_a_clock() -> None:
    # A restart resets the counter; memory after it is another process's.
    series = _recording(_busy_idle, _leak)
    work = series.columns["work"].copy()
    work[200:] -= work[199]
    assert work_clock(Series(series.t, {**series.columns, "work": work}), series.rss) is None
    assert work_clock(series, series.rss) is not None


def test_an_interval_per_unit_shows_the_digits_that_tell_its_ends_apart() -> None:
    assert format_bytes_ci((116.97, 117.05), "/unit") == "+116.97 – +117.05 B/unit"
    assert format_bytes_ci((38.1 * 2**20, 44.0 * 2**20), "/h") == "+38.1 – +44.0 MiB/h"


def test_a_counter_written_every_few_seconds_is_still_a_clock() -> None:
    # A target that writes its counter every 2, 3 or 5 s: the samples in between read the
    # last value and had all been idle, so memory rose "while no work was done" and a leak
    # whose load stopped read `plateau`.
    def stops(t: np.ndarray) -> np.ndarray:
        return (t < 200).astype(float)

    series = _recording(stops, _leak)
    frames = series.columns["work"]
    for every in (2, 3, 5):
        held = frames[(np.arange(frames.size) // every) * every]  # the last value written
        v = judge(Series(series.t, {**series.columns, "work": held}))
        assert v.verdict == "leak", every
        assert v.growth_per_work == pytest.approx(PER_FRAME, rel=0.01)
        assert "no work was done for the last" in " ".join(v.evidence)


def test_a_target_idle_half_the_time_is_measured_against_its_work() -> None:
    # Both clocks say leak, but by the clock the first busy phase had read as a warm-up and
    # the rate as the busy phases' alone (twice the mean): the time to the limit halved.
    series = _recording(_busy_idle, _leak)
    v = judge(series, limit_bytes=1 << 30)
    mean_rate = float(series.columns["work"][-1]) / 299
    assert v.verdict == "leak"
    assert v.warmup_end_s is None
    assert v.growth_bytes_per_hour == pytest.approx(PER_FRAME * mean_rate * 3600, rel=0.05)
    assert "judged against the work done" in " ".join(v.evidence)


def test_a_gauge_instead_of_a_running_total_gives_no_growth_per_unit() -> None:
    # Frames a second, not frames so far: "10.8 kB per unit of work" had been said.
    series = _recording(lambda t: np.ones_like(t), _leak)
    gauge = np.diff(series.columns["work"], prepend=0.0)
    v = judge(Series(series.t, {**series.columns, "work": gauge}))
    assert v.verdict == "leak"
    assert v.growth_per_work is None
    assert any(e.startswith("the work counter went down ") for e in v.evidence)


def test_a_counter_written_every_3_s_under_bursts_and_pauses_holds_the_leak() -> None:
    # A helper's C program (2,000 B a request) under random bursts and pauses, its counter
    # written every 3 s when it changed. The counter's wait after each pause had counted as
    # idle, and so the start of each burst: the verdict fell to `inconclusive` 10 s after the
    # load came back (75 s) and again at 145 s, and judged by the clock alone at the end.
    doc = json.loads((Path(__file__).parent / "data" / "work_every_3s.json").read_text())
    series = Series.from_arrays(doc["t"], doc["rss"], work=doc["work"])
    for end in (30, 65, 75, 90, 130, 145, float(series.t[-1])):
        v = judge(series.prefix(end))
        assert v.verdict == "leak", end
    # Per request, once a few bursts are in (the first one began before the first write).
    for end in (75, 90, 130, 145, float(series.t[-1])):
        assert judge(series.prefix(end)).growth_per_work == pytest.approx(2000, rel=0.05), end
    assert "judged against the work done" in " ".join(v.evidence)
