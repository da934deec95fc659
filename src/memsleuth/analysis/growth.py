"""How a memory column grows: leak, plateau, stable, step or undecided, and the fits behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from memsleuth.analysis.shape import (
    Jump,
    Saturation,
    Segment,
    find_regimes,
    fit_knee,
    fit_saturation,
    jumps_between,
)
from memsleuth.analysis.trend import (
    Binned,
    TrendFit,
    bin_series,
    despike,
    fit_trend,
    robust_sigma,
    z_for,
)
from memsleuth.model import FloatArray

GrowthKind = Literal["leak", "plateau", "stable", "step", "inconclusive"]

# Significance of growth: one-sided, after the autocorrelation correction. A verdict is taken
# at many checkpoints of many series, so the per-test level is strict.
ALPHA_LEAK = 1e-3
# Weaker evidence than ALPHA_LEAK but more than chance: say `inconclusive`, not `stable`.
ALPHA_HINT = 1e-2
MIN_SAMPLES = 6
MIN_REGIME_BINS = 6
# Growth that ends within this share of the recording is a warm-up (`stable`), later a `plateau`.
WARMUP_SHARE = 0.25
# A staircase of at least this many rises, still climbing, is a leak, not a step.
STAIRCASE_RISES = 3
STAIRCASE_LIKE = 0.25  # "of like size": at least this share of the median rise
# Growth under this many noise standard deviations over the final regime is not worth a leak.
MIN_GROWTH_SIGMAS = 3.0
# Deceleration: the regime's rate is within this factor of a decaying warm-up's prediction.
SEQ_FACTOR = 3.0
# A bend must beat a straight line by this F statistic (about the 99.9% point of its null
# distribution, a line plus independent noise, at 40-120 bins; 99% at 10-20), and the slope
# after it must be insignificant.
KNEE_F = 10.0


@dataclass(frozen=True, slots=True)
class Growth:
    """The reading of one memory column: its kind and everything the evidence quotes."""

    kind: GrowthKind
    confidence: float
    binned: Binned | None
    sigma: float
    regimes: tuple[Segment, ...] = ()
    jumps: tuple[Jump, ...] = ()
    fit: TrendFit | None = None  # trend of the final regime
    warmup_end_s: float | None = None
    ceiling: float | None = None
    saturation: Saturation | None = None
    more_time_s: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def uses_floor(self) -> bool:
        return self.binned is not None and self.binned.sawtooth_period_s is not None


def _more_time(fit: TrendFit, span_s: float) -> float | None:
    """How much longer to record for a slope like this one to reach ALPHA_LEAK.

    With noise fixed, z grows like the recording's length to the power 3/2.
    """
    if fit.z <= 0.1 or fit.slope <= 0:
        return None
    need = z_for(ALPHA_LEAK)
    if fit.z >= need:
        return 0.0
    factor = (need / fit.z) ** (2.0 / 3.0)
    return float(span_s * (factor - 1.0))


def _confidence(z: float, need: float) -> float:
    """0.5 at the threshold, approaching 1 as the evidence grows past it."""
    return float(min(0.99, max(0.5, 1.0 - 0.5 * math.exp(-(z - need) / 2.0))))


def _rising_run(regimes: tuple[Segment, ...], jumps: list[Jump]) -> list[Segment]:
    """The regimes before the final one that rose into it, oldest first, without a fall between."""
    fell = {round(j.t, 6) for j in jumps if j.size < 0}
    run: list[Segment] = []
    for prev, nxt in zip(regimes[-2::-1], regimes[:0:-1], strict=False):
        boundary = [j for j in jumps if prev.t1 <= j.t <= nxt.t0]
        if prev.slope <= 0 or any(round(j.t, 6) in fell for j in boundary):
            break
        run.append(prev)
    return run[::-1]


def _predicted_slope(run: list[Segment], t_mid: float) -> float | None:
    """Where a decaying growth rate would be at t_mid: log-linear in time through the run.

    Needs two or more rising regimes whose slopes fall; None otherwise.
    """
    if len(run) < 2:
        return None
    last = run[-3:]
    tm = np.array([0.5 * (r.t0 + r.t1) for r in last])
    ls = np.log([r.slope for r in last])
    if not np.all(np.diff(ls) < 0):
        return None
    rate, icpt = np.polyfit(tm, ls, 1)
    return float(math.exp(icpt + rate * t_mid))


def read_growth(t: FloatArray, x: FloatArray) -> Growth:
    """Judge one memory column (NaN allowed) over time `t` in seconds."""
    ok = ~np.isnan(x)
    t, x = t[ok], x[ok]
    n = int(x.size)
    if n < MIN_SAMPLES:
        dt = float(np.median(np.diff(t))) if n >= 2 else None
        more = (MIN_SAMPLES - n) * dt if dt else None
        return Growth("inconclusive", 0.0, None, 0.0, more_time_s=more, notes=("too few samples",))
    b = bin_series(t, x)
    tb, y = b.t, b.level
    sigma = robust_sigma(y)
    if sigma <= 0:
        sigma = max(1.0, 1e-9 * float(np.abs(np.median(y))))
    y = despike(y, sigma)
    regimes = find_regimes(tb, y, sigma)
    jumps = jumps_between(regimes, tb, y, sigma)
    final = regimes[-1]
    span = float(tb[-1] - tb[0]) or 1.0
    # The final regime must be long enough to trend; otherwise join it to the one before.
    start = final.start
    if final.bins < MIN_REGIME_BINS and len(regimes) > 1:
        start = regimes[-2].start
    fit = fit_trend(tb[start:], y[start:], b.bins_per_cycle)
    run = _rising_run(regimes, jumps)
    warmup_end = float(tb[final.start]) if run else None
    common: dict[str, Any] = dict(
        binned=b, sigma=sigma, regimes=regimes, jumps=tuple(jumps), fit=fit
    )
    if fit is None:
        return Growth("inconclusive", 0.0, **common)
    need, hint = z_for(ALPHA_LEAK), z_for(ALPHA_HINT)
    final_up = fit.z >= need and fit.lo > 0 and fit.growth >= MIN_GROWTH_SIGMAS * sigma
    sat = fit_saturation(tb[start:], y[start:], sigma) if final_up else None
    slowing = None
    if final_up:
        slowing = _slowing(tb[start:], y[start:], fit, run, sigma, sat) or _below_high_water(
            regimes, run, fit, sigma
        )
    common["saturation"] = sat
    if final_up and slowing is None:
        return Growth("leak", _confidence(fit.z, need), warmup_end_s=warmup_end, **common)
    steps = _steps(regimes, jumps)
    if _staircase(steps, float(tb[-1])):
        return Growth("leak", 0.7, notes=("memory rises in repeated steps",), **common)
    if final_up:
        # Growing, but as a warm-up or plateau still approaching its ceiling.
        ceiling = sat.ceiling if sat is not None and sat.f_curve >= KNEE_F else None
        return Growth(
            "plateau",
            0.6,
            warmup_end_s=warmup_end,
            ceiling=ceiling,
            notes=(slowing or "growth is slowing down",),
            **common,
        )
    if fit.z >= hint and fit.slope > 0:
        return Growth("inconclusive", 0.3, more_time_s=_more_time(fit, span), **common)
    kind, warm, ceiling = _history(regimes, steps, tb, y, sigma)
    return Growth(kind, 0.8, warmup_end_s=warm, ceiling=ceiling, **common)


def _slowing(
    t: FloatArray,
    y: FloatArray,
    fit: TrendFit,
    run: list[Segment],
    sigma: float,
    sat: Saturation | None,
) -> str | None:
    """Why the growth of the final regime looks like a warm-up or plateau ending, or None.

    Three checks: within the regime, an exponential approach to a ceiling fits clearly better
    than a line and leaves no steady growth beside it; or "rose then stopped" (a knee) does; or
    the regime's slope is what the decaying slopes of the regimes before it predict.
    """
    window = float(t[-1] - t[0])
    if sat is not None and sat.f_curve >= KNEE_F and sat.tau_s < 0.5 * window:
        steady = sat.line_slope * window
        if sat.line_z < z_for(ALPHA_LEAK) or steady < MIN_GROWTH_SIGMAS * sigma:
            return "growth is levelling off toward a ceiling"
    knee = fit_knee(t, y)
    if knee is not None and knee.f_stat >= KNEE_F and knee.before > 0:
        grown = knee.after * (float(t[-1]) - knee.t_knee)
        if knee.after_z < z_for(ALPHA_HINT) or grown < MIN_GROWTH_SIGMAS * sigma:
            return "growth stopped within the last regime"
    predicted = _predicted_slope(run, 0.5 * (fit.t0 + fit.t1))
    if predicted is not None and fit.slope < SEQ_FACTOR * predicted:
        return "the growth rate keeps decaying like a warm-up's"
    return None


def _below_high_water(
    regimes: tuple[Segment, ...], run: list[Segment], fit: TrendFit, sigma: float
) -> str | None:
    """Growth that only takes memory back up to where it already was is reuse, not a leak.

    Before the current rise began, memory stood higher and came down (a fall, a load cycle, a
    wandering baseline): it must climb past that high-water mark, by more than the noise,
    before the growth counts as new.
    """
    first = run[0] if run else regimes[-1]
    before = [r for r in regimes if r.t1 < first.t0]
    if not before:
        return None
    peak = max(max(r.level0, r.level1) for r in before)
    if fit.at(fit.t1) < peak + MIN_GROWTH_SIGMAS * sigma:
        return "memory stood this high before and came down: the rise has not passed it"
    return None


def _steps(regimes: tuple[Segment, ...], jumps: list[Jump]) -> list[Jump]:
    """The jumps onto a flat tread: each larger than the change within the regime after it.

    Jumps inside a steep warm-up or ramp are where its fitted lines meet, not steps.
    """
    out = []
    for j in jumps:
        after = next(r for r in regimes if r.t0 >= j.t)
        if abs(after.level1 - after.level0) < abs(j.size):
            out.append(j)
    return out


def _staircase(steps: list[Jump], t_end: float) -> bool:
    """Several rises of like size and no fall since the first of them, the last rise no longer
    ago than the gaps between them: a leak that grows in steps."""
    if any(j.size < 0 for j in steps):
        steps = steps[max(i for i, j in enumerate(steps) if j.size < 0) + 1 :]
    if len(steps) < STAIRCASE_RISES:
        return False
    typical = float(np.median([j.size for j in steps]))
    rises = [j for j in steps if j.size >= STAIRCASE_LIKE * typical]
    if len(rises) < STAIRCASE_RISES:
        return False
    gaps = np.diff([j.t for j in rises])
    return t_end - rises[-1].t <= 1.5 * float(np.median(gaps))


def _history(
    regimes: tuple[Segment, ...], jumps: list[Jump], tb: FloatArray, y: FloatArray, sigma: float
) -> tuple[GrowthKind, float | None, float | None]:
    """Flat now: was it always (stable), after a warm-up (stable), a plateau, or after steps?"""
    final = regimes[-1]
    level_end = float(np.median(y[final.start :]))
    level_start = regimes[0].level0
    rise = level_end - level_start
    if rise <= 3.0 * sigma:
        return "stable", None, None
    # The fitted curve, and the same without its jumps: how the smooth part of the rise went.
    curve = np.concatenate(
        [seg.level0 + seg.slope * (tb[seg.start : seg.stop] - seg.t0) for seg in regimes]
    )
    smooth = curve.copy()
    up = [j for j in jumps if j.size > 0]
    for j in up:
        smooth[tb > j.t] -= j.size
    stepped = sum(j.size for j in up)
    smooth_rise = float(smooth[-1] - smooth[0])
    t90 = None
    if smooth_rise > 3.0 * sigma:
        reached = np.nonzero(smooth - smooth[0] >= 0.9 * smooth_rise)[0]
        t90 = float(tb[reached[0]]) if reached.size else None
    span = float(tb[-1] - tb[0]) or 1.0
    if stepped >= 0.5 * rise:
        return "step", t90, level_end
    if t90 is None or t90 - float(tb[0]) <= WARMUP_SHARE * span:
        return "stable", t90, None
    return "plateau", t90, level_end
