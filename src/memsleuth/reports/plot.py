"""Plot geometry without drawing: downsampling that keeps peaks and floors, and nice axis ticks."""

from __future__ import annotations

import math

import numpy as np

from memsleuth import units
from memsleuth.model import FloatArray


def finite_xy(t: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The (t, y) pairs where both are finite: a missed sample is a gap, not a zero."""
    keep = np.isfinite(t) & np.isfinite(y)
    return t[keep], y[keep]


def downsample_minmax(
    t: FloatArray, y: FloatArray, max_points: int
) -> tuple[FloatArray, FloatArray]:
    """At most `max_points` points: per time bucket, the min and the max, in time order.

    A mean or every-n-th sample would erase the sawtooth's peaks and the post-GC floors that
    the verdict rests on; keeping both extremes of each bucket draws the same envelope.
    """
    t, y = finite_xy(t, y)
    n = t.size
    if n <= max_points or max_points < 2:
        return t, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts = edges[:-1]
    starts = starts[np.diff(edges) > 0]
    ends = np.append(starts[1:], n)
    idx_min = np.empty(starts.size, dtype=np.int64)
    idx_max = np.empty(starts.size, dtype=np.int64)
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        seg = y[a:b]
        idx_min[i] = a + int(np.argmin(seg))
        idx_max[i] = a + int(np.argmax(seg))
    first = np.minimum(idx_min, idx_max)
    second = np.maximum(idx_min, idx_max)
    order = np.column_stack((first, second)).ravel()
    # A flat bucket has min == max at the same index: keep it once.
    order = order[np.concatenate(([True], np.diff(order) != 0))]
    return t[order], y[order]


def time_buckets(t: FloatArray, y: FloatArray, span_s: float, buckets: int) -> FloatArray:
    """Means of `y` in `buckets` equal slices of time [0, span_s], for sparklines.

    By time, not by sample, so a column read only every few samples (PSS) lines up with RSS;
    an empty slice repeats the previous value (a gap in reading, not a drop to zero).
    """
    t, y = finite_xy(t, y)
    if t.size == 0 or buckets < 1:
        return np.empty(0, dtype=np.float64)
    if span_s <= 0:
        return np.array([float(y.mean())])
    idx = np.minimum((t / span_s * buckets).astype(np.int64), buckets - 1)
    sums = np.bincount(idx, weights=y, minlength=buckets)
    counts = np.bincount(idx, minlength=buckets)
    means = np.full(buckets, np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    first = int(np.argmax(counts > 0))
    means[:first] = means[first]
    for i in range(first + 1, buckets):
        if counts[i] == 0:
            means[i] = means[i - 1]
    return means


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 × 10^k) giving about `target_ticks` ticks over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target_ticks, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def nice_ticks(lo: float, hi: float, target_ticks: int = 5) -> tuple[float, ...]:
    """Round tick values covering [lo, hi] (inclusive of the round bounds around them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return ()
    if hi <= lo:
        hi = lo + 1.0
    step = nice_step(hi - lo, target_ticks)
    start = math.floor(lo / step) * step
    ticks: list[float] = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    if ticks and ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return tuple(ticks)


def time_unit(span_s: float) -> tuple[float, str]:
    """Divisor and label for a time axis: seconds, minutes, hours or days, by the span."""
    if span_s < 180:
        return 1.0, "s"
    if span_s < 3 * 3600:
        return 60.0, "min"
    if span_s < 3 * 86400:
        return 3600.0, "h"
    return 86400.0, "d"


def byte_axis(lo: float, hi: float, target_ticks: int = 5) -> tuple[tuple[float, ...], str, float]:
    """Ticks in bytes that are round in the display unit, the unit name, and its divisor."""
    divisor, unit = units.binary_scale(max(abs(lo), abs(hi)))
    ticks = nice_ticks(lo / divisor, hi / divisor, target_ticks)
    return tuple(v * divisor for v in ticks), unit, divisor


def tick_label(value: float, step: float) -> str:
    """A tick number with as many decimals as the step needs (0, 0.5, 2.5 ...): a step of
    2.5 had labelled its ticks 0, 2, 5, 8, 10."""
    if step <= 0 or not math.isfinite(step):
        return f"{value:,.0f}"
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > 1e-9 * step:
        decimals += 1
    return f"{value:,.{decimals}f}"
