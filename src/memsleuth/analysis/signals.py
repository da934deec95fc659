"""The other columns a verdict weighs: thread and fd counts, latency, live allocations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsleuth.analysis.growth import Growth, read_growth
from memsleuth.analysis.thresholds import ALPHA_LEAK
from memsleuth.analysis.trend import bin_series, fit_trend, z_for
from memsleuth.model import FloatArray, Series

# A count that never moves by more than this is flat (a thread pool breathing by one or two).
COUNT_FLICKER = 2.0
# A leaking count must have grown by at least this many in its final regime: a leak of fewer
# threads or fds than this is within what pools legitimately add.
MIN_COUNT_GROWTH = 3.0
# A count released in batches this many times, back to the same floor, is no leak.
RELEASES = 2
# A count this close to its limit has reached it (a leak of three fds a request stops short).
LIMIT_SLACK = 3.0
# Seed 001's rule: the latency of the last N units of work over the first N (medians).
LATENCY_N = 100
# Latency that at least doubled, with a trend at the leak's significance, is a degradation.
DEGRADATION_RATIO = 2.0
# CPU that rose this many times over, from the first quarter of a recording to its last, and by
# this share of a core at least, is said beside memory that does not grow: a collector holding
# memory under a limit works ever harder as live data grows (a Go program under GOMEMLIMIT went
# from 3% of a core to 90% while RSS crept 22 -> 25 MiB and read `plateau`, the leak unsaid).
CPU_RISE = 3.0
CPU_RISE_CORES = 0.25
# Live allocations that grew less than this share of RSS's growth leave the rest to the allocator.
FRAGMENTATION_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class CountReading:
    """A count column (threads, fds): is it leaking, how fast, and its reading."""

    name: str
    leaking: bool
    per_hour: float  # growth per hour of a count that leaks; 0 otherwise (said "flat")
    growth: Growth | None
    first: float
    last: float
    low: float = 0.0
    high: float = 0.0
    floors: tuple[float, ...] = ()  # what it fell back to each time it was released in a batch


def read_count(series: Series, name: str) -> CountReading | None:
    """Judge a count column with the memory machinery; None when it was not recorded."""
    col = series.get(name)
    if col is None:
        return None
    ok = ~np.isnan(col)
    if int(ok.sum()) < 2:  # one reading says nothing of a trend ("threads flat (1)")
        return None
    first = float(col[ok][0])
    last = float(col[ok][-1])
    low, high = float(np.nanmin(col)), float(np.nanmax(col))
    if high - low <= COUNT_FLICKER:
        return CountReading(name, False, 0.0, None, first, last, low, high)
    g = read_growth(series.t, col, resolution=1.0)
    fit = g.fit
    leaking = g.kind == "leak" and fit is not None and fit.growth >= MIN_COUNT_GROWTH
    floors = _releases(col[ok])
    if len(floors) >= RELEASES and floors[-1] <= floors[0] + MIN_COUNT_GROWTH:
        # Released in batches, back to the same floor each time: pending asyncio tasks that
        # the collector destroys had read `task-leak` at 0.97 between two collections.
        leaking = False
    # The slope of a count that is not leaking is no rate: four handler threads for a
    # 36 ms soak run, gone at its last sample, had shown "-402k threads/h" beside "flat".
    per_hour = fit.slope * 3600.0 if leaking and fit is not None else 0.0
    return CountReading(name, leaking, per_hour, g, first, last, low, high, floors)


def _releases(c: FloatArray) -> tuple[float, ...]:
    """The levels a count fell back to, each time it fell to half its peak or lower (and by
    MIN_COUNT_GROWTH at least): a batch released."""
    peak = np.maximum.accumulate(c)
    if not bool(np.any((c <= 0.5 * peak) & (peak - c >= MIN_COUNT_GROWTH))):
        return ()
    floors: list[float] = []
    top, low = float(c[0]), None
    for v in map(float, c):
        if low is not None:
            if v < low:
                low = v
            elif v > low + MIN_COUNT_GROWTH:  # rising again: that fall is over
                floors.append(low)
                top, low = v, None
        elif v > top:
            top = v
        elif top - v >= MIN_COUNT_GROWTH and v <= 0.5 * top:
            low = v
    if low is not None:
        floors.append(low)
    return tuple(floors)


@dataclass(frozen=True, slots=True)
class AtLimit:
    """A count that climbed to its OS limit and stays there (an fd leak at `ulimit -n`)."""

    limit: int
    reached_s: float  # when it got there, seconds from the first sample
    per_hour: float  # how fast it climbed to it


def at_limit(series: Series, name: str, limit: int | None) -> AtLimit | None:
    """The count `name` at its limit now, having climbed there from under half of it; None
    otherwise. "At" allows LIMIT_SLACK: a leak of three fds a request stops up to two short."""
    col = series.get(name)
    if col is None or limit is None or limit <= 0:
        return None
    ok = ~np.isnan(col)
    t, c = series.t[ok], col[ok]
    if c.size < 2 or c[0] > limit / 2:
        return None
    near = c >= limit - max(LIMIT_SLACK, 0.01 * limit)
    if not near[-1]:
        return None
    i = int(np.argmax(near))
    if t[i] <= t[0]:
        return None
    # It climbed there: the count up to then reads as a leak (a pool of 195 fds opened at
    # once at start-up, two short of the limit, had been "an fd leak at its limit").
    climb = read_count(series.prefix(float(t[i])), name)
    if climb is None or not climb.leaking:
        return None
    return AtLimit(limit, float(t[i]), float(c[i] - c[0]) / float(t[i] - t[0]) * 3600.0)


@dataclass(frozen=True, slots=True)
class LatencyReading:
    ratio: float  # last-N median over first-N median
    n: int
    rising: bool  # a significant upward trend


def _latency_window(n: int) -> int:
    """Seed 001 compares 100 and 100; a shorter record a quarter of itself (at least 2)."""
    return min(LATENCY_N, max(2, n // 4))


def latency_ratio(durations: npt.ArrayLike) -> float | None:
    """Median of the last window over the first; None under 6 values. `analyze` and `soak`.

    Medians, not means: one scheduler hiccup or GC pause in a window of fast cycles would
    otherwise move a mean by orders of magnitude on a busy machine.
    """
    d = np.asarray(durations, dtype=np.float64)
    if d.size < 6:
        return None
    w = _latency_window(d.size)
    first = float(np.median(d[:w]))
    if first <= 0.0:
        return None
    return float(np.median(d[-w:])) / first


def latency_reading(t: FloatArray, x: FloatArray) -> LatencyReading | None:
    """Seed 001's ratio of the last to the first latencies, with a trend test behind it."""
    ratio = latency_ratio(x)
    if ratio is None:
        return None
    b = bin_series(t, x)
    fit = fit_trend(b.t, b.median)
    rising = fit is not None and fit.z >= z_for(ALPHA_LEAK)
    return LatencyReading(ratio, _latency_window(x.size), rising)


def read_latency(series: Series) -> LatencyReading | None:
    """The latency column's reading; None when latency was not recorded."""
    col = series.get("latency_s")
    if col is None:
        return None
    ok = ~np.isnan(col)
    return latency_reading(series.t[ok], col[ok])


def is_degrading(lat: LatencyReading | None) -> bool:
    return lat is not None and lat.rising and lat.ratio >= DEGRADATION_RATIO


@dataclass(frozen=True, slots=True)
class CpuReading:
    """CPU use (cores) over the first and the last quarter of a recording, when it rose."""

    first: float
    last: float


def read_cpu(series: Series) -> CpuReading | None:
    """CPU use over the first and last quarters of the recording (from the cumulative `cpu_s`),
    when it rose CPU_RISE times over and by CPU_RISE_CORES at least; None otherwise."""
    col = series.get("cpu_s")
    if col is None:
        return None
    ok = ~np.isnan(col)
    t, c = series.t[ok], col[ok]
    if t.size < 8:
        return None
    quarter = float(t[-1] - t[0]) / 4

    def used(k: npt.NDArray[np.bool_]) -> float:
        tk, ck = t[k], c[k]
        spent = float(tk[-1] - tk[0]) if tk.size > 1 else 0.0
        return float(ck[-1] - ck[0]) / spent if spent > 0 else 0.0

    first, last = used(t <= t[0] + quarter), used(t >= t[-1] - quarter)
    if last >= CPU_RISE * first and last - first >= CPU_RISE_CORES:
        return CpuReading(first, last)
    return None


@dataclass(frozen=True, slots=True)
class LiveReading:
    """Live (allocated, in-use) bytes against RSS: the gap that says fragmentation."""

    per_hour: float
    share: float  # live growth over RSS growth


def read_live(series: Series, start_s: float, rss_per_hour: float) -> LiveReading | None:
    """How live allocations grew over the window RSS grew in; None without a `live_bytes` column.

    The probe fills `live_bytes` (allocator statistics, e.g. mallinfo2's in-use bytes); any source
    that knows what the program still holds may.
    """
    col = series.get("live_bytes")
    if col is None or rss_per_hour <= 0:
        return None
    ok = ~np.isnan(col) & (series.t >= start_s)
    if np.count_nonzero(ok) < 6:
        return None
    b = bin_series(series.t[ok], col[ok])
    fit = fit_trend(b.t, b.median)
    if fit is None:
        return None
    per_hour = fit.slope * 3600.0
    return LiveReading(per_hour, per_hour / rss_per_hour)


def is_fragmenting(live: LiveReading | None) -> bool:
    return live is not None and live.share < FRAGMENTATION_SHARE
