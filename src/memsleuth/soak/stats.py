"""Pure statistics of a soak: growth per cycle with a confidence interval, warm-up, latency.

Model in, numbers out: no clocks, no gc, no I/O, so every rule is testable on made-up series.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsleuth.analysis.signals import is_degrading, latency_reading
from memsleuth.analysis.signals import latency_ratio as latency_ratio  # one rule for both

# Tails the warm-up search tries, as fractions of the measured batches: the earliest flat tail
# marks where the warm-up (a cache filling) ended. The last one keeps half the data, so a steady
# leak is still measured on many points while a cache that fills in the first half passes.
TAIL_STARTS = (0.0, 0.25, 0.5)
CONFIDENCE = 0.95
NOISE_FACTOR = 3.0
# The fewest batches a tail is fitted on; a leak needs the last (half-length) tail to have them,
# so that a warm-up that stops (a lazy init, a cache filling) can show as a flat tail.
MIN_POINTS = 6


@dataclass(frozen=True, slots=True)
class Growth:
    """Robust growth of a quantity per cycle over a window of the soak."""

    per_cycle: float  # Theil-Sen slope, units per cycle
    ci: tuple[float, float]  # CONFIDENCE interval of the slope
    start_index: int  # first batch of the window used
    start_cycle: float  # cycles done when that window starts
    warmup_growth: float  # growth before the window (a plateau's height), units
    points: int  # batches in the window
    noise: float = 0.0  # robust spread of the points around the fitted line (1.4826 × MAD)
    span: float = 0.0  # cycles covered by the window

    def grows(self, allowance: float) -> bool:
        """Growth beyond allowance at the lower 95% bound, and more than the noise can explain.

        Theil-Sen's interval assumes independent points; a stationary but autocorrelated
        series (a cache whose values are replaced by others of random size) can give a narrow
        interval around a tiny slope. Growth counts only when, at the lower bound, it adds more
        than NOISE_FACTOR times the spread of the points around the line over the window: a
        leak's growth outruns any bounded noise as cycles accumulate; noise does not.
        """
        lo = self.ci[0]
        return lo > allowance and lo * self.span > NOISE_FACTOR * self.noise


def slope_ci(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float, float]:
    """Theil-Sen slope of y on x and its confidence interval: (slope, low, high)."""
    from scipy.stats import theilslopes

    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.size < 3 or float(np.ptp(xa)) == 0.0:
        return 0.0, -np.inf, np.inf
    with warnings.catch_warnings():  # degenerate points: scipy warns on stderr, gives NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        res = theilslopes(ya, xa, alpha=CONFIDENCE)
    lo, hi = float(res[2]), float(res[3])
    return float(res[0]), lo if math.isfinite(lo) else -np.inf, hi if math.isfinite(hi) else np.inf


def growth(
    cycles: npt.ArrayLike,
    values: npt.ArrayLike,
    allowance: float,
    *,
    min_points: int = MIN_POINTS,
) -> Growth:
    """Growth per cycle after the warm-up: the earliest tail whose slope is within allowance.

    A leak grows in every tail, so the last (half-length) tail is reported for it: the least
    disturbed by a warm-up that happened before. A cache that fills and stops is flat in a
    later tail: that tail is reported and the growth before it is the warm-up.
    """
    x = np.asarray(cycles, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    starts: list[int] = []
    for frac in TAIL_STARTS:
        s = round(frac * n)
        if n - s >= min(min_points, n) and s not in starts:
            starts.append(s)
    if not starts:
        starts = [0]
    fits: list[Growth] = []
    for s in starts:
        slope, lo, hi = slope_ci(x[s:], y[s:])
        resid = y[s:] - slope * x[s:]
        noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) if n - s else 0.0
        fits.append(
            Growth(
                per_cycle=slope,
                ci=(lo, hi),
                start_index=s,
                start_cycle=float(x[s]) if n else 0.0,
                warmup_growth=float(y[s] - y[0]) if n else 0.0,
                points=n - s,
                noise=noise,
                span=float(x[-1] - x[s]) if n - s else 0.0,
            )
        )
    # Earliest tail that is flat (even its estimate within the allowance): the warm-up ends
    # there. Else the earliest tail whose interval reaches the allowance: not shown to grow.
    # Else it grows in every tail: report the last one.
    for g in fits:
        if not g.grows(allowance) and g.per_cycle <= allowance:
            return g
    for g in fits:
        if not g.grows(allowance):
            return g
    return fits[-1]


def too_few_to_tell(points: int) -> bool:
    """Too few batches for the last tail to hold MIN_POINTS: growth over them cannot be told
    from a warm-up that stops. Six plugins registered lazily, one a call, had failed a 5-cycle
    soak as a leak, "+493 B per cycle (95% CI +453 to +533)"."""
    return points < 2 * MIN_POINTS


def slowing(durations: npt.ArrayLike) -> bool:
    """Seed 001 by `analyze`'s own rule (`is_degrading`): the last cycles at least twice as slow
    as the first, and the rise a trend at the leak's significance (not one slow spell)."""
    d = np.asarray(durations, dtype=np.float64)
    return is_degrading(latency_reading(np.arange(d.size, dtype=np.float64), d))


def slower_than(durations: npt.ArrayLike, limit: float | None) -> bool:
    """The last cycles slower than the first by more than `limit` (max_latency_ratio), and the
    rise a trend at the leak's significance, as for `slowing`: a cycle sleeping 1 ms on 5% of
    calls, with no trend, had failed 1 soak in 10 at "1.91× slower (allowed 1.5×)"."""
    if limit is None:
        return False
    d = np.asarray(durations, dtype=np.float64)
    reading = latency_reading(np.arange(d.size, dtype=np.float64), d)
    return reading is not None and reading.rising and reading.ratio > limit


def percentiles(durations: npt.ArrayLike, qs: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    """Latency percentiles ("p50", "p90", "p99", "max") in seconds; empty when no durations."""
    d = np.asarray(durations, dtype=np.float64)
    if d.size == 0:
        return {}
    out = {f"p{q:g}": float(np.percentile(d, q)) for q in qs}
    out["max"] = float(d.max())
    return out
