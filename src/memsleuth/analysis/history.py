"""Not growing: what came before a flat present, a warm-up, a plateau, steps or a rise given
back (section 6 of docs/verdicts.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from memsleuth.analysis.shape import (
    MIN_SEGMENT,
    PARAMS_PER_SEGMENT,
    STEP_SIGMAS,
    TAU_GRID,
    Jump,
    Saturation,
    Segment,
    fit_saturation,
)
from memsleuth.analysis.thresholds import KNEE_F, MIN_GROWTH_SIGMAS
from memsleuth.analysis.trend import median
from memsleuth.model import FloatArray

PastKind = Literal["stable", "plateau", "step"]

# A rise that reaches 90% of itself within this share of the recording and adds less than
# WARMUP_RISE of the final level is a warm-up (`stable`); a longer or larger one is a `plateau`.
WARMUP_SHARE = 0.25
WARMUP_RISE = 1 / 3
# A first regime that starts under this share of the final level is a process starting from
# nothing, not part of the history.
STARTUP_SHARE = 0.1
# Jumps after a warm-up make a `step` when they add this share of the whole rise (a page run of
# an allocator's arena is not a step).
LATE_STEP_SHARE = 0.2
# A rise that fell back by this share of itself was given back (a backlog drained), not held.
GIVEN_BACK = 0.75


@dataclass(frozen=True, slots=True)
class History:
    """What came before a flat (or slowly creeping) present."""

    kind: PastKind  # stable, plateau or step
    rose: bool  # memory rose (warm-up, plateau or steps) before levelling
    t90_s: float | None  # when the smooth part of the rise reached 90% of itself
    ceiling: float | None
    given_back: tuple[float, float, float] | None = None  # a rise that came back down
    quiet: bool = False  # a rise under the material bar: too small to say when a warm-up ended


def read_history(
    regimes: tuple[Segment, ...],
    steps: list[Jump],
    tb: FloatArray,
    y: FloatArray,
    sigma: float,
    flat_now: bool = True,
    material: float = 0.0,
) -> History:
    """Flat now: was it always (stable), after a warm-up (stable), a plateau, or after steps?

    A warm-up is quick and modest: its rise reaches 90% within the first WARMUP_SHARE of the
    recording and adds under WARMUP_RISE of the final level. A longer or larger rise is a
    plateau (a cache or pool filling to its bound); a rise made mostly of jumps, or with jumps
    after the smooth rise is over worth LATE_STEP_SHARE of it, steps.
    """
    final = regimes[-1]
    level_end = median(y[final.start :])
    if abs(final.level1 - final.level0) > STEP_SIGMAS * sigma:
        # The last regime is no level: a fall (or rise) too recent for a regime of its own,
        # drawn as one steep line with what came before it. Memory stands where its last bins
        # do: three 50 MB bumps, the last given back 5 s before, had read "levels off near
        # 66.8 MiB" at 20 MB.
        level_end = median(y[-MIN_SEGMENT:])
    first = regimes[0]
    start = min(first.level0, float(y[first.start]))
    if len(regimes) > 1 and start <= STARTUP_SHARE * abs(level_end) and first.bins <= MIN_SEGMENT:
        # From (nearly) nothing, as short as a regime can be (a jump drawn as a ramp, as in
        # `abrupt_steps`): the first regime is the process starting (`record -- CMD` samples it
        # from its exec); what came after it is the history. Its first bin says so as well as
        # its line: one sample before exec, then flat, draws a line that starts well above
        # nothing (`sleep 20` had read `plateau`, "levels off near 1.74 MiB"). A longer rise
        # from nothing is no start-up: a native cache filling for 8 s from its first sample
        # had read `stable`.
        k = regimes[1].start
        if len(regimes) == 2:
            # One regime since: what is there now, not a rise that levelled before it (a leak
            # seen for 5 s after Python started had read `plateau`, exit 0).
            return History("stable", False, float(tb[k]), None)
        after = tuple(replace(r, start=r.start - k, stop=r.stop - k) for r in regimes[1:])
        later = [j for j in steps if j.t > regimes[1].t0]
        past = read_history(after, later, tb[k:], y[k:], sigma, flat_now, material)
        return past if past.t90_s is not None else replace(past, t90_s=float(tb[k]))
    back = _given_back(regimes, level_end, sigma) if flat_now else None
    if back is not None:
        return History("stable", True, None, None, back)
    rise = level_end - regimes[0].level0
    if rise <= MIN_GROWTH_SIGMAS * sigma:
        return History("stable", False, None, None)
    # The fitted curve, and the same without its steps: how the smooth part of the rise went.
    curve = np.concatenate(
        [seg.level0 + seg.slope * (tb[seg.start : seg.stop] - seg.t0) for seg in regimes]
    )
    # A jump memory has since come back down from is a bump, not a step (see _stands).
    now = median(y[-MIN_SEGMENT:])
    up = [j for j in steps if j.size > 0 and _stands(j, tb, y, now)]
    for j in up:
        curve[tb > j.t] -= j.size
    stepped = sum(j.size for j in up)
    smooth_rise = float(curve[-1] - curve[0])
    t90 = None
    if smooth_rise > MIN_GROWTH_SIGMAS * sigma:
        reached = np.nonzero(curve - curve[0] >= 0.9 * smooth_rise)[0]
        t90 = float(tb[reached[0]]) if reached.size else None
    span = float(tb[-1] - tb[0]) or 1.0
    late = sum(j.size for j in up if j.t > (t90 or tb[0]))
    if rise <= material:
        # Under the leak's material bar, no step or plateau either: a rise that small is
        # the warm-up of a quiet program ("RSS jumped (156 KiB)" had been a `step`).
        return History("stable", True, t90, None, quiet=True)
    if stepped >= 0.5 * rise or late >= LATE_STEP_SHARE * rise:
        return History("step", True, t90, level_end)
    modest = rise <= WARMUP_RISE * abs(level_end)
    relax = _relaxation(regimes, tb, y, sigma) if modest else None
    if isinstance(
        relax, Saturation
    ):  # an exponential fits: its time constant says how quick it was
        quick = relax.tau_s * math.log(10.0) <= WARMUP_SHARE * span
    else:
        quick = t90 is None or t90 - float(tb[0]) <= WARMUP_SHARE * span
    if quick and modest and relax is not False:
        return History("stable", True, t90, None)
    return History("plateau", True, t90, level_end)


def _stands(j: Jump, tb: FloatArray, y: FloatArray, now: float) -> bool:
    """Whether memory now (its last bins) still stands above where it was before jump j by
    more than the share of it a giving back leaves (1 - GIVEN_BACK): a flat program churning
    its GC, bumped 213 and 420 KiB for a few seconds and back each time, had read "Memory
    jumped, then stayed flat"."""
    k = int(np.searchsorted(tb, j.t))
    before = median(y[max(0, k - MIN_SEGMENT) : k]) if k > 0 else float(y[0])
    return now - before > (1.0 - GIVEN_BACK) * j.size


def _given_back(
    regimes: tuple[Segment, ...], level_end: float, sigma: float
) -> tuple[float, float, float] | None:
    """(peak, when, level now) for a rise that came back down by GIVEN_BACK of itself: memory
    held for a while and returned (a backlog that drained, a batch that ended), not a ceiling
    it stays at. A queue filled to 45.6 MiB and drained to 21.6 MiB had read `plateau`,
    "levels off near 21.6 MiB", with the peak said nowhere."""
    if len(regimes) < 2:
        return None
    # The peak is before the last regime: a fall must have been seen after it (a burst in
    # the last bins is where memory is now, not a peak it came down from).
    ends = [(r.level0, r.t0) for r in regimes[:-1]] + [(r.level1, r.t1) for r in regimes[:-1]]
    peak = max(level for level, _ in ends)
    t_peak = min(t for level, t in ends if level >= peak - sigma)  # when it first got there
    before = min(level for level, t in ends if t <= t_peak)
    rise = peak - before
    if rise < STEP_SIGMAS * sigma or peak - level_end < GIVEN_BACK * rise:
        return None
    return peak, t_peak, level_end


def _relaxation(
    regimes: tuple[Segment, ...], tb: FloatArray, y: FloatArray, sigma: float
) -> Saturation | Literal[False] | None:
    """A warm-up is an exponential relaxation from the start: the saturating exponential over
    the whole recording, when it fits about as well as the free piecewise regimes (F < KNEE_F,
    the same bar as a knee); False when it fits clearly worse (a fill stopped at a hard cap, an
    S-curve: a plateau's shapes); None when there is too little to tell.
    """
    n = int(y.size)
    p_seg = PARAMS_PER_SEGMENT * len(regimes) - 1
    if len(regimes) < 2 or n - p_seg < 3:
        return None
    sat = fit_saturation(tb, y, sigma)
    if sat is None or sat.tau_s <= 1.01 * TAU_GRID[0] * float(tb[-1] - tb[0]):
        return None  # faster than the fit resolves: a few bins of rise say nothing of shape
    fitted = sat.ceiling - sat.amplitude * np.exp(-(tb - sat.t0) / sat.tau_s)
    sse_exp = float(np.sum((y - fitted) ** 2))
    sse_seg = 0.0
    for r in regimes:
        part = y[r.start : r.stop] - (r.level0 + r.slope * (tb[r.start : r.stop] - r.t0))
        sse_seg += float(part @ part)
    var = max(sse_seg / (n - p_seg), 1e-300)
    f_stat = (sse_exp - sse_seg) / max(p_seg - 3, 1) / var
    return sat if f_stat < KNEE_F else False
