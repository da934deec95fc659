"""Memory against a work counter: growth per unit of work, and work as the clock.

A leak per request grows only while requests come. By the clock it climbs in a busy phase and
treads flat while idle, so a recording that ends idle reads `step` or `plateau`; when the load
stops for good, memory "levels off". Against the work done it is one straight line. A cache
that fills levels off against work too, so work as the clock tells the two apart whatever the
load did, where the clock alone cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsleuth.analysis.growth import Growth, read_growth
from memsleuth.analysis.thresholds import MIN_SAMPLES
from memsleuth.model import FloatArray, Series

BoolArray = npt.NDArray[np.bool_]

# Memory that rose while no work was done by more than this share of its whole rise has a life
# of its own (a timer, a background thread): the clock judges it, not the work done.
IDLE_RISE_SHARE = 0.25
# A counter that did not change for up to this many of its usual intervals between changes is
# stale (written every few seconds), not idle.
STALE_UPDATES = 2.0
# A target idle this share of the recording or more is judged against its work whenever that
# reading is decided.
IDLE_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class WorkClock:
    """Memory sampled at equal steps of work, on a time axis that runs at the mean work rate.

    `t` are seconds from the first sample had the work been done at `rate` throughout: the
    span is the recording's, and a slope per second of `t` is bytes per unit times `rate`.
    """

    t: FloatArray
    rss: FloatArray
    rate: float  # units of work per second, over the whole recording
    idle_s: float  # seconds of the recording in which no work was done
    quiet_s: float  # seconds since the counter last moved
    idle_rise: float  # bytes memory rose by while no work was done (falls count against)
    rise: float  # bytes memory rose by from the first samples to the last
    levels: FloatArray  # the counter's distinct values, ascending
    reached_s: FloatArray  # when the counter first reached each of them

    def real_time(self, work_s: float) -> float:
        """The time of the recording at which the work done reached `work_s` on this clock."""
        level = self.levels[0] + work_s * self.rate
        return float(np.interp(level, self.levels, self.reached_s))

    def units(self, work_s: float) -> float:
        """Units of work in `work_s` seconds of this clock."""
        return work_s * self.rate


def recording_time(clock: WorkClock | None, t: float) -> float:
    """A time of the reading as a time of the recording (they differ on the work clock)."""
    return clock.real_time(t) if clock else t


def went_back(series: Series) -> int:
    """How many times the work counter went down: a gauge (frames this second) or a restart,
    not a running total; growth per unit of work is then not given."""
    col = series.get("work")
    if col is None:
        return 0
    w = col[~np.isnan(col)]
    return int(np.count_nonzero(np.diff(w) < 0))


def work_rate(series: Series, start_s: float) -> float | None:
    """Units of work per second over [start_s, end], from a cumulative `work` counter."""
    col = series.get("work")
    if col is None or went_back(series):
        return None
    ok = ~np.isnan(col) & (series.t >= start_s)
    t, w = series.t[ok], col[ok]
    if t.size < 2 or t[-1] <= t[0]:
        return None
    r = float(w[-1] - w[0]) / float(t[-1] - t[0])
    return r if r > 0 else None


def _between_updates(t: FloatArray, w: FloatArray) -> tuple[FloatArray, float, BoolArray]:
    """The counter between the writes that changed it, how often they came (seconds), and
    which samples it tells anything of.

    A target that writes its counter every few seconds leaves the samples in between reading
    the last value: they are not idle. Where the counter changed again within STALE_UPDATES of
    its usual interval between changes, it is read as rising in a line from one change to the
    next. A longer wait is idle but for its last interval, in which the work that the next
    change counts began at a time the counter does not tell: those samples are left out (a
    burst after a pause had "risen while no work was done"; spread over the interval, it had
    drawn a flat stretch of work and read as a warm-up). (Samples sharing a value had all been
    idle: a leak of 256 B a unit, its counter written every 2 s, read `plateau` once its load
    stopped.)
    """
    known = np.ones(w.size, dtype=bool)
    first = np.concatenate(([0], np.flatnonzero(np.diff(w) != 0) + 1))
    if first.size < 3:
        return w, 0.0, known
    tk, wk = t[first], w[first]
    gaps = np.diff(tk)
    cadence = float(np.median(gaps))
    stretch = np.searchsorted(first, np.arange(w.size), side="right") - 1
    ends = stretch < gaps.size  # samples before a later change
    k = np.minimum(stretch, gaps.size - 1)
    fresh = ends & (gaps <= STALE_UPDATES * cadence)[k]
    known &= ~(ends & ~fresh & (t > (tk[1:] - cadence)[k]))
    out = w.astype(np.float64, copy=True)
    kf = k[fresh]
    out[fresh] = wk[kf] + (wk[kf + 1] - wk[kf]) * (t[fresh] - tk[kf]) / gaps[kf]
    return out, cadence, known


def work_clock(series: Series, rss: FloatArray) -> WorkClock | None:
    """RSS against the work done, or None without a usable counter.

    Usable: a cumulative counter that never goes back (a restart resets it, and memory after a
    restart is another process's) and took at least MIN_SAMPLES distinct values. Read between
    its writes (_between_updates), samples taken while no work was done share one value of
    the counter: they collapse into their median, since memory that moved while idle did not
    move with work. The collapsed points are then read at as many equal steps of work as there
    were samples with work in them, so that busy and idle stretches weigh by the work they held.
    """
    col = series.get("work")
    if col is None or went_back(series):
        return None
    ok = ~np.isnan(col) & ~np.isnan(rss)
    t, x = series.t[ok], rss[ok]
    if t.size < MIN_SAMPLES:
        return None
    w, cadence, known = _between_updates(t, col[ok])
    t, w, x = t[known], w[known], x[known]
    levels, first = np.unique(w, return_index=True)
    if levels.size < MIN_SAMPLES or t[-1] <= t[0]:
        return None
    ends = np.append(first[1:], w.size)
    at = np.array([float(np.median(x[a:b])) for a, b in zip(first, ends, strict=True)])
    grid = np.linspace(levels[0], levels[-1], levels.size)
    rate = float(levels[-1] - levels[0]) / float(t[-1] - t[0])
    idle = float(np.sum(np.diff(t)[np.diff(w) == 0]))
    quiet = float(t[-1] - t[first[-1]])
    held = x[ends - 1] - x[first]  # how memory moved while the counter held each value
    if quiet <= STALE_UPDATES * cadence:
        # Since the last write, work is not known: not idle, and memory stands where it was
        # at that write (what it gained since is work the counter has not counted yet).
        held[-1] = 0.0
        at[-1] = float(x[first[-1]])
    k = max(1, min(5, x.size // 10))  # a few samples at each end: one is noise
    return WorkClock(
        t=(grid - levels[0]) / rate,
        rss=np.interp(grid, levels, at),
        rate=rate,
        idle_s=idle,
        quiet_s=quiet if quiet > STALE_UPDATES * cadence else 0.0,
        idle_rise=float(np.sum(held)),
        rise=float(np.median(x[-k:]) - np.median(x[:k])),
        levels=levels.astype(np.float64),
        reached_s=t[first],
    )


def read_by_work(clock: WorkClock | None) -> Growth | None:
    """The reading of memory against the work done; None without a usable counter, or when
    memory rose while no work was done (IDLE_RISE_SHARE): then it does not move with work alone.
    """
    if clock is None:
        return None
    if clock.rise > 0 and clock.idle_rise > IDLE_RISE_SHARE * clock.rise:
        return None
    return read_growth(clock.t, clock.rss)


def decides(by_clock: Growth, by_work: Growth | None, clock: WorkClock | None) -> bool:
    """Whether the work clock's reading is the verdict's: a decided reading (not
    `inconclusive`) that differs from the clock's, or any decided reading when the target was
    idle for IDLE_SHARE of the recording or more (the clock's window and rate then mix busy and
    idle: a first busy phase had read as a warm-up and the rate as twice the mean). On a steady
    load the two agree, and the clock's reading is kept, with its line in time."""
    if by_work is None or clock is None or by_work.kind == "inconclusive":
        return False
    span = float(clock.t[-1]) if clock.t.size else 0.0
    return by_work.kind != by_clock.kind or clock.idle_s >= IDLE_SHARE * span
