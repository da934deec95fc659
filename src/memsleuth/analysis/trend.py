"""Robust trends of noisy, autocorrelated series: binning, floor tracking, Theil–Sen, Mann–Kendall.

Everything runs on binned data (at most `MAX_BINS` points), so the pairwise statistics cost
O(bins²) whatever the length of the recording.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from memsleuth.model import FloatArray

# Enough bins that the last 10% of a series still holds about a dozen points for a trend test,
# few enough that the O(bins²) pairwise statistics cost microseconds.
MAX_BINS = 120
# A GC sawtooth is told from noise by its drops: large falls, at least SAWTOOTH_MIN_DROPS of
# them, several times more common than rises of the same size (noise and spikes rise and fall
# alike; a sawtooth climbs in small steps and falls at once).
SAWTOOTH_MIN_DROPS = 3
SAWTOOTH_DROP_RATIO = 3.0
# The floor of a bin is a low quantile rather than its minimum: as low as a post-GC trough when
# the bin holds a full sawtooth period, but not set by a single low outlier.
FLOOR_QUANTILE = 0.10
# A bin this many noise standard deviations off its five-bin neighbourhood is a spike.
SPIKE_SIGMAS = 6.0
# A load cycle shorter than this many bins is too fast to take out of the bins (analysis/season.py
# does that for slower ones): instead each bin holds whole cycles and its level is their mean.
# It is one when the samples repeat themselves a period later (autocorrelation FAST_CYCLE_ACF or
# more) after going against themselves inside it (FAST_CYCLE_DIP or less: a swing, not a drift),
# with FAST_CYCLE_MIN periods in the recording. Its period is the shortest lag that repeats as
# well as the best one, within FAST_CYCLE_HARMONIC (a slip of phase can make twice the period
# repeat a hair better: a thread started every 2 s had read "bursts every 4.0 s").
CYCLE_BINS = 6
FAST_CYCLE_ACF = 0.5
FAST_CYCLE_DIP = -0.2
FAST_CYCLE_MIN = 4
FAST_CYCLE_HARMONIC = 0.9
# Differences whiten noise and keep a swing, so the bar there is higher: a swing that repeats
# itself nearly exactly (bursts of allocation at a fixed pace), not one noise shaped.
FAST_CYCLE_ACF_DIFF = 0.8
# The autocorrelation is taken over the latest this many samples at most (its cost stays a
# fraction of a millisecond however long the recording).
FAST_CYCLE_SAMPLES = 4096
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class Binned:
    """A series reduced to equal-count bins: time, median, floor and samples per bin."""

    t: FloatArray  # mean time of each bin's samples, seconds
    median: FloatArray
    floor: FloatArray  # FLOOR_QUANTILE of each bin: the post-GC minima under a sawtooth
    per_bin: int
    sawtooth_period_s: float | None  # None when no sawtooth was seen
    fast_cycle_s: float | None = None  # a load cycle averaged inside each bin (see bin_series)

    @property
    def bins_per_cycle(self) -> float:
        """How many bins one sawtooth period spans (1 without a sawtooth)."""
        if self.sawtooth_period_s is None or self.t.size < 2:
            return 1.0
        width = float(self.t[-1] - self.t[0]) / (self.t.size - 1)
        return max(1.0, self.sawtooth_period_s / width) if width > 0 else 1.0

    @property
    def level(self) -> FloatArray:
        """What to trend: the floor under a sawtooth (peaks mislead), the median otherwise."""
        return self.floor if self.sawtooth_period_s is not None else self.median

    def __len__(self) -> int:
        return int(self.t.size)


# The standard normal, from the standard library: scipy.special cost the watchdog's host
# 25 MiB of RSS to import for two functions.
_NORMAL = NormalDist()


def median(v: FloatArray) -> float:
    """np.median of a 1-D array without NaNs, the same value at a fraction of its overhead
    (the verdict takes a dozen medians of a few hundred points per series)."""
    n = v.size
    k = n // 2
    if n % 2:
        return float(np.partition(v, k)[k])
    part = np.partition(v, (k - 1, k))
    return float((part[k - 1] + part[k]) / 2)


def despike(y: FloatArray, sigma: float) -> FloatArray:
    """Replace isolated outlying bins (one or two wide) by the median of their neighbourhood.

    A Hampel filter of half-width 2 at SPIKE_SIGMAS: a level shift is left alone, because on
    either side of it the five-bin median already sits on the new level.
    """
    n = y.size
    if n < 5 or sigma <= 0:
        return y
    pad = np.concatenate((np.full(2, y[0]), y, np.full(2, y[-1])))
    windows = np.lib.stride_tricks.sliding_window_view(pad, 5)
    med = np.partition(windows, 2, axis=1)[:, 2]  # the median of five, as np.median has it
    out = np.where(np.abs(y - med) > SPIKE_SIGMAS * sigma, med, y)
    return np.asarray(out, dtype=np.float64)


def robust_sigma(y: FloatArray) -> float:
    """The noise of a series from its successive differences: immune to trends and a few steps."""
    if y.size < 3:
        return 0.0
    d = np.diff(y)
    mad = median(np.abs(d - median(d)))
    return _MAD_TO_SIGMA * mad / math.sqrt(2.0)


def sawtooth_period(t: FloatArray, x: FloatArray) -> float | None:
    """The mean time between GC-like drops (slow rises, sudden falls), or None if there are none.

    A drop is a fall of at least half the typical largest fall (the mean of the few largest),
    so the test scales with the sawtooth's own amplitude whatever the noise on top of it, and
    memory must really fall: on a steady climb, a step that only rises less than the others
    (page-size jitter) is not a collection.
    """
    n = x.size
    if n < 4 * SAWTOOTH_MIN_DROPS:
        return None
    d = np.diff(x)
    few = max(SAWTOOTH_MIN_DROPS, n // 200)
    mid = d.size // 2
    part = np.partition(d, (few, mid))  # one pass: the few largest falls and the median
    d = d - part[mid]
    big = -0.5 * float(part[:few].mean() - part[mid])
    if big <= 0:
        return None
    drops = int(np.count_nonzero((d < -big) & (d + part[mid] < 0)))
    rises = int(np.count_nonzero(d > big))
    if drops < SAWTOOTH_MIN_DROPS or drops < SAWTOOTH_DROP_RATIO * rises:
        return None
    return float(t[-1] - t[0]) / drops


def less_line(t: FloatArray, y: FloatArray) -> FloatArray:
    """y less its least-squares line over t."""
    tc = t - t.mean()
    yc = y - y.mean()
    return np.asarray(yc - float(tc @ yc) / float(tc @ tc) * tc, dtype=np.float64)


def fast_cycle_samples(x: FloatArray, longest: int, resolution: float = 0.0) -> int | None:
    """The period, in samples, of a repeating swing of at most `longest` samples, or None.

    Read from the series less its line, then, if none is found there, from its successive
    differences: a trend that bends (a leak speeding up) swamps the swing around a straight
    line, and differences take out any trend. A staircase leak stepping every 2 s, sampled
    every second, had been read as ramps and one flat tread at the end: `plateau`, exit 0.
    A swing within the column's `resolution` (RSS's page) is none: a smooth leak whose
    per-second rises alternated by one page had read "allocations in bursts every 2.0 s"."""
    x = x[-FAST_CYCLE_SAMPLES:]  # a cycle that repeats shows in the latest stretch too
    n = int(x.size)
    if longest < 2 or n < FAST_CYCLE_MIN * 2:
        return None
    longest = min(longest, n // FAST_CYCLE_MIN)
    d = np.diff(x)
    steps = _cycle_in(
        d - d.mean(), min(longest, (n - 1) // FAST_CYCLE_MIN), resolution, FAST_CYCLE_ACF_DIFF
    )
    if steps is not None:
        return steps
    return _cycle_in(less_line(np.arange(n, dtype=np.float64), x), longest, resolution)


def _cycle_in(
    r: FloatArray, longest: int, resolution: float, repeats: float = FAST_CYCLE_ACF
) -> int | None:
    """The period of a repeating swing in the residuals r (see fast_cycle_samples)."""
    if longest < 2 or float(np.std(r)) <= resolution:
        return None
    n = int(r.size)
    spectrum = np.fft.rfft(r, 1 << (2 * n - 1).bit_length())  # zero-padded: no wrap-around
    acf = np.fft.irfft(spectrum.real**2 + spectrum.imag**2)[: longest + 2]
    if acf[0] <= 0:
        return None
    acf /= acf[0]
    against = np.nonzero(acf[1 : longest + 1] <= FAST_CYCLE_DIP)[0]
    if against.size == 0:
        return None
    first = int(against[0]) + 1
    best = first + int(np.argmax(acf[first : longest + 1]))
    # A peak, not the edge of the range still climbing: a slower cycle is season.py's.
    if not (best > first and acf[best] >= acf[best + 1] and acf[best] >= repeats):
        return None
    lags = np.arange(first + 1, best + 1)
    near = (acf[lags] >= FAST_CYCLE_HARMONIC * acf[best]) & (acf[lags] >= acf[lags + 1])
    return int(lags[np.argmax(near)])  # `best` itself is one


def bin_series(
    t: FloatArray,
    x: FloatArray,
    max_bins: int = MAX_BINS,
    min_per_bin: int = 1,
    sawtooth: bool = True,
    resolution: float = 0.0,
) -> Binned:
    """Equal-count bins of (t, x) without NaNs; the oldest n mod k samples are dropped.

    When a sawtooth is seen, a bin holds at least one period so that its floor is a trough.
    When a load cycle faster than CYCLE_BINS bins is seen, a bin holds whole cycles and its
    level is their mean (a median would flicker between the busy and the idle level).
    `sawtooth=False` for counts (threads, fds): they have no collector, and a count that blips
    up by one and back would pass for one.
    """
    n = int(x.size)
    period = sawtooth_period(t, x) if sawtooth else None
    k = max(min_per_bin, math.ceil(n / max_bins))
    if period is not None and n > 1:
        dt = float(t[-1] - t[0]) / (n - 1)
        k = max(k, math.ceil(1.2 * period / dt) if dt > 0 else k)
        k = min(k, max(1, n // 8))
    fast = (
        fast_cycle_samples(x, CYCLE_BINS * k - 1, resolution)
        if sawtooth and period is None
        else None
    )
    if fast is not None:  # whole cycles a bin, averaged: the cycle is gone from the levels
        k = fast * math.ceil(k / fast)
    bins = max(1, n // k)
    r = n - bins * k
    tb = t[r:].reshape(bins, k).mean(axis=1)
    if fast is not None:
        level = x[r:].reshape(bins, k).mean(axis=1)
        every_s = float(t[-1] - t[r]) / (n - r - 1)  # n - r >= k >= fast >= 2 samples
        return Binned(tb, level, level, k, None, every_s * fast)
    if k == 1:
        xb = x[r:].astype(np.float64, copy=True)
        return Binned(tb, xb, xb, 1, period)
    block = x[r:].reshape(bins, k)
    qi = int(FLOOR_QUANTILE * (k - 1))
    mi = (k - 1) // 2
    if period is None:  # no sawtooth: the floor is not used, the median is enough
        med = np.partition(block, mi, axis=1)[:, mi].copy()
        return Binned(tb, med, med, k, period)
    part = np.partition(block, (qi, mi), axis=1)
    return Binned(tb, part[:, mi].copy(), part[:, qi].copy(), k, period)


@dataclass(frozen=True, slots=True)
class TrendFit:
    """A Theil–Sen slope with a Mann–Kendall test corrected for autocorrelation (Hamed–Rao)."""

    slope: float  # per second
    lo: float  # 95% interval of the slope, per second
    hi: float
    intercept: float  # value at t0
    t0: float
    t1: float
    z: float  # Mann–Kendall z with the corrected variance
    p_up: float  # one-sided p-value of "no upward trend"
    n: int
    n_eff: float  # effective sample size after the autocorrelation correction

    def at(self, t: float) -> float:
        return self.intercept + self.slope * (t - self.t0)

    @property
    def growth(self) -> float:
        """Fitted change over the window."""
        return self.slope * (self.t1 - self.t0)


@functools.lru_cache(maxsize=4 * MAX_BINS)
def _pairs(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Index pairs i < j of n points (cached: binned series have at most MAX_BINS points)."""
    iu, ju = np.triu_indices(n, 1)
    return iu, ju


@functools.lru_cache(maxsize=16)
def _pair_times(key: bytes) -> tuple[FloatArray, npt.NDArray[np.bool_] | None]:
    """t[j] - t[i] over the pairs i < j, and which are positive (None: all of them). Cached by
    the times' bytes: series on one time grid (a fleet's) share them."""
    t = np.frombuffer(key)
    iu, ju = _pairs(t.size)
    dt = t[ju] - t[iu]
    pos = dt > 0
    if pos.all():
        dt.flags.writeable = False
        return dt, None
    dt = dt[pos]
    dt.flags.writeable = False
    return dt, pos


def _tie_term(y: FloatArray) -> float:
    ys = np.sort(y)
    if not bool(np.any(ys[1:] == ys[:-1])):
        return 0.0  # no ties (memory in bytes rarely has any)
    _, counts = np.unique(ys, return_counts=True)
    c = counts[counts > 1].astype(np.float64)
    return float(np.sum(c * (c - 1) * (2 * c + 5)))


def _hamed_rao_ratio(resid: FloatArray) -> float:
    """n/n*: how much autocorrelation of the detrended ranks inflates var(S) (Hamed & Rao 1998).

    Only lags whose autocorrelation is significantly positive at 5% count, and never below 1:
    no credit for negative autocorrelation, which detrending a persistent wander makes at long
    lags (a residual that rises and falls once).
    """
    n = resid.size
    if n < 6:
        return 1.0
    ranks = np.argsort(np.argsort(resid)).astype(np.float64)
    ranks -= ranks.mean()
    denom = float(np.dot(ranks, ranks))
    if denom <= 0:
        return 1.0
    max_lag = max(1, n // 3)
    acf = np.correlate(ranks, ranks, mode="full")[n : n + max_lag] / denom
    k = np.arange(1, max_lag + 1, dtype=np.float64)
    keep = acf > 1.96 / math.sqrt(n)
    if not keep.any():
        return 1.0
    w = (n - k) * (n - k - 1) * (n - k - 2)
    ratio = 1.0 + 2.0 / (n * (n - 1) * (n - 2)) * float(np.sum(w[keep] * acf[keep]))
    return max(1.0, ratio)


def _order_stat(part: FloatArray, k: int, lo_mid: int, hi_mid: int) -> float:
    """The k-th smallest of `part`, already partitioned at lo_mid and hi_mid: only the side
    that holds it is partitioned again."""
    if k < lo_mid:
        return float(np.partition(part[:lo_mid], k)[k])
    if k > hi_mid:
        side = part[hi_mid + 1 :]
        return float(np.partition(side, k - hi_mid - 1)[k - hi_mid - 1])
    return float(part[k])


def fit_trend(
    t: FloatArray, y: FloatArray, min_ratio: float = 1.0, resolution: float = 0.0
) -> TrendFit | None:
    """Theil–Sen slope, its 95% interval and the Mann–Kendall test, on binned (t, y).

    `min_ratio` is a floor on the variance inflation n/n*: when bins are shorter than a known
    cycle (a GC sawtooth), neighbouring bins are not independent whatever their ranks say.
    `resolution` is the column's quantum (1 for counts): residuals within it are rounding, not
    noise, and their pattern says nothing about autocorrelated noise.
    """
    n = int(y.size)
    if n < 3:
        return None
    iu, ju = _pairs(n)
    dt, pos = _pair_times(np.ascontiguousarray(t, dtype=np.float64).tobytes())
    dy = y[ju] - y[iu]
    slopes = (dy if pos is None else dy[pos]) / dt
    m = slopes.size
    if m == 0:
        return None
    s_stat = float(np.sign(dy).sum())
    lo_mid, hi_mid = (m - 1) // 2, m // 2
    part = np.partition(slopes, (lo_mid, hi_mid))
    slope = float(0.5 * (part[lo_mid] + part[hi_mid]))  # the median pairwise slope
    resid = y - slope * (t - t[0])
    intercept = median(resid)
    ties = _tie_term(y) if resolution >= 1 else 0.0  # ties are many only in coarse counts
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    rounding = resolution > 0 and median(np.abs(resid - intercept)) <= resolution
    ratio = max(1.0 if rounding else _hamed_rao_ratio(resid), min_ratio)
    var_s *= ratio
    if var_s <= 0:
        z = 0.0
    else:
        z = (s_stat - math.copysign(1.0, s_stat)) / math.sqrt(var_s) if s_stat != 0 else 0.0
    # Sen's interval: the order statistics of the pairwise slopes around the median, with the
    # same corrected variance as the test, so the interval and the p-value agree.
    c = 1.959964 * math.sqrt(max(var_s, 0.0))
    lo_i = int(min(m - 1, max(0, math.floor((m - c) / 2.0))))
    hi_i = int(min(m - 1, max(0, math.ceil((m + c) / 2.0))))
    # Readings rounded to the quantum leave the slope unknown by a quantum over the window at
    # least: a quiet leak in whole pages had read "+7.03 MiB/h (95% CI +7.03 – +7.03)" for a
    # true 7.11 MiB/h (intervals missed the truth in 17% of such series, all zero-width).
    span = float(t[-1] - t[0])
    quantum = resolution / span if resolution > 0 and span > 0 else 0.0
    return TrendFit(
        slope=slope,
        lo=min(_order_stat(part, lo_i, lo_mid, hi_mid), slope - quantum),
        hi=max(_order_stat(part, hi_i, lo_mid, hi_mid), slope + quantum),
        intercept=intercept,
        t0=float(t[0]),
        t1=float(t[-1]),
        z=z,
        p_up=0.5 * math.erfc(z / math.sqrt(2.0)),  # 1 - Phi(z), exact in the far tail
        n=n,
        n_eff=n / ratio,
    )


@functools.lru_cache(maxsize=32)  # a few constant levels, asked for on every verdict
def z_for(p: float) -> float:
    """The one-sided normal quantile for p: z_for(0.001) = 3.09."""
    return -_NORMAL.inv_cdf(p)


def read_no_more(points: tuple[tuple[float, float], ...], latest: float) -> bool:
    """Its last reading two of its own intervals or more before `latest`, the last reading of
    anything: a process that exited (and whatever the probe followed in it)."""
    every = float(np.median(np.diff([t for t, _ in points]))) if len(points) > 1 else 0.0
    return points[-1][0] < latest - 2.0 * every
