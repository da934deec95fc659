"""Growth that stops or slows: a recent half that does not grow, levelling toward a ceiling, a
rate decaying like a warm-up's (section 5 of docs/verdicts.md)."""

from __future__ import annotations

import math

import numpy as np

from memsleuth.analysis.shape import Saturation, Segment
from memsleuth.analysis.thresholds import ALPHA_LEAK, KNEE_F, MIN_GROWTH_SIGMAS
from memsleuth.analysis.trend import TrendFit, z_for
from memsleuth.model import FloatArray

# The recent half of a leak's window must grow too, at this weaker level.
ALPHA_RECENT = 0.05
# Deceleration: the regime's rate is within this factor of a decaying warm-up's prediction.
SEQ_FACTOR = 3.0
# ... and only while the rate still falls: the last regime under this share of the one before.
DECAY_GOES_ON = 0.75


def recent_flat(recent: TrendFit | None) -> str | None:
    """Growth must go on in the recent half of the window too (`recent`, its trend), if only
    at the 10% level: a rise that stopped halfway is not a leak however strong the window's
    overall trend."""
    if recent is not None and recent.z < z_for(ALPHA_RECENT):
        return "the recent half of the window does not grow"
    return None


def levelling_off(tw: FloatArray, sat: Saturation | None, sigma: float) -> str | None:
    """An exponential approach to a ceiling fits clearly better than a line, with no steady
    growth left beside it: a warm-up or plateau still levelling off."""
    window = float(tw[-1] - tw[0])
    if sat is None or sat.f_curve < KNEE_F or sat.tau_s >= 0.5 * window:
        return None
    steady = sat.line_slope * window
    if sat.line_z < z_for(ALPHA_LEAK) or steady < MIN_GROWTH_SIGMAS * sigma:
        return "growth is levelling off toward a ceiling"
    return None


def decaying(regimes: tuple[Segment, ...]) -> str | None:
    """The last regime's slope is what the decaying slopes of the rising regimes before it
    predict, and below the slope just before it: the tail of a warm-up or of a plateau's
    approach, not a steady leak. (A rate that has stopped falling is a leak's.)"""
    last = regimes[-1]
    run: list[Segment] = []
    for r in reversed(regimes[:-1]):
        if r.slope <= 0:
            break
        run.insert(0, r)
    if not run or last.slope >= DECAY_GOES_ON * run[-1].slope:
        return None
    predicted = _predicted_slope(run, 0.5 * (last.t0 + last.t1))
    if predicted is not None and last.slope < SEQ_FACTOR * predicted:
        return "the growth rate keeps decaying like a warm-up's"
    return None


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
