"""Steps: jumps onto flat treads, a staircase of them, a load cycle seen too few times, and the
window they leave to trend (sections 2, 3 and 5 of docs/verdicts.md)."""

from __future__ import annotations

import math

import numpy as np

from memsleuth.analysis.season import MIN_CYCLES
from memsleuth.analysis.shape import MIN_SEGMENT, STEP_SIGMAS, Jump, Segment
from memsleuth.analysis.thresholds import MIN_GROWTH_SIGMAS
from memsleuth.model import FloatArray
from memsleuth.units import format_duration

MIN_REGIME_BINS = 6
# The warm-up ends with the first regime whose slope is under this share of the first regime's.
WARMUP_DROP = 0.25
# A staircase of at least this many rises, still climbing, is a leak, not a step.
STAIRCASE_RISES = 3
STAIRCASE_LIKE = 0.25  # "of like size": at least this share of the median rise


def find_steps(regimes: tuple[Segment, ...], jumps: list[Jump], both: bool = False) -> list[Jump]:
    """The jumps onto a flat tread: each larger than the change within the regime after it
    (and, with `both`, within the regime before it: a shift between two flat levels).

    Jumps inside a steep warm-up or ramp are where its fitted lines meet, not steps; jumps
    inside steady growth are its bursts, not shifts between regimes.
    """
    out = []
    for j in jumps:
        after = next(r for r in regimes if r.t0 >= j.t)
        sides = (after, next(r for r in reversed(regimes) if r.t1 <= j.t)) if both else (after,)
        if all(abs(r.level1 - r.level0) < abs(j.size) for r in sides):
            out.append(j)
    return out


def abrupt_steps(regimes: tuple[Segment, ...], y: FloatArray, sigma: float) -> list[Jump]:
    """Steps the regimes drew as a ramp: a regime as short as a regime can be (MIN_SEGMENT
    bins) that rises by STEP_SIGMAS or more, at least half of it between two neighbouring bins
    (a jump blurred over one bin boundary, not a fast but gradual rise), and more than the
    regimes on either side change within themselves."""
    out = []
    for i in range(1, len(regimes) - 1):
        r = regimes[i]
        size = r.level1 - r.level0
        if r.bins > MIN_SEGMENT or size < STEP_SIGMAS * sigma:
            continue
        if float(np.max(np.diff(y[r.start - 1 : r.stop + 1]))) < 0.5 * size:
            continue
        sides = (regimes[i - 1], regimes[i + 1])
        if all(abs(q.level1 - q.level0) < size for q in sides):
            out.append(Jump(0.5 * (r.t0 + r.t1), size, size / sigma))
    return out


def staircase(steps: list[Jump], regimes: tuple[Segment, ...], t_end: float) -> float | None:
    """Several rises of like size and no fall of like size since the first of them, the last
    rise no longer ago than the gaps between them: a leak that grows in steps. A fall is a
    jump down of like size, or a tread that slides down by half the median rise (a fitted
    line tilts on a noisy tread, so more is asked of it): a leak's staircase keeps what it
    climbed, a square-wave load cycle over a slow rise gives it back between its rises.
    Returns when the staircase's first rise was, or None when there is no staircase."""
    rises = [j for j in steps if j.size > 0]
    if len(rises) < STAIRCASE_RISES:
        return None
    like = STAIRCASE_LIKE * float(np.median([j.size for j in rises]))
    falls = [j.t for j in steps if j.size < -like]
    falls += [r.t1 for r in regimes if r.level1 - r.level0 < -2 * like]
    rises = [j for j in rises if j.size >= like and (not falls or j.t > max(falls))]
    if len(rises) < STAIRCASE_RISES:
        return None
    gaps = np.diff([j.t for j in rises])
    last = rises[-1].t
    final = regimes[-1]
    if final.t0 >= last and final.level1 - final.level0 >= like:
        # The last regime climbs by a step's worth itself: the latest steps, too close to
        # the end for a tread of their own, drawn as one ramp (a 3 MB burst every 30 s had
        # flipped to `step` just after each burst).
        last = final.t1
    return rises[0].t if t_end - last <= 1.5 * float(np.median(gaps)) else None


def unconfirmed_cycle(jumps: list[Jump], span: float) -> tuple[str, float] | None:
    """(note, time to record) when the jumps of a `step` are a load cycle seen too few times
    to be taken out: two falls or more as large as half the median rise (memory given back
    each time). A C program's busy phases over 2.5 cycles had read `step`,
    "jumped (65.2 MiB at 2.0 min, 72.5 MiB at 4.0 min)", with memory back at 14 MiB between.
    The time is until MIN_CYCLES rises are seen at their mean spacing."""
    rises = [j for j in jumps if j.size > 0]
    if len(rises) < 2:
        return None
    half = 0.5 * float(np.median([j.size for j in rises]))
    falls = [j for j in jumps if j.size < -half]
    if len(falls) < 2:
        return None
    every = float(rises[-1].t - rises[0].t) / (len(rises) - 1)
    more = max(every, MIN_CYCLES * every - span)
    note = (
        f"memory rose and came back down {len(falls)} times (every {format_duration(every)} or "
        f"so): a load cycle, seen too few times yet ({MIN_CYCLES} are needed) to take it out "
        "and trend across it"
    )
    return note, more


def new_levels(shifts: list[Jump], regimes: tuple[Segment, ...], sigma: float) -> list[Jump]:
    """The shifts that begin a new level: not a jump up inside growth that has gone on ever
    since, every regime from the one before the jump to the last rising by MIN_GROWTH_SIGMAS
    itself (a dict resizing in a leak that keeps growing: trended from its last resize, the
    leak had been called a plateau). A level a jump reached and then left flat or falling,
    as a load cycle's turn does, is still a new level."""
    k = len(regimes)
    while k > 0 and regimes[k - 1].level1 - regimes[k - 1].level0 >= MIN_GROWTH_SIGMAS * sigma:
        k -= 1
    growing_since = regimes[k].t0 if k < len(regimes) else math.inf
    return [
        j
        for j in shifts
        if j.size < 0 or j.t < growing_since or j.size > _other_rise(j, shifts, regimes)
    ]


def _other_rise(j: Jump, shifts: list[Jump], regimes: tuple[Segment, ...]) -> float:
    """All that memory rose by, but jump j, since it last fell before j."""
    since = max((f.t for f in shifts if f.size < 0 and f.t < j.t), default=-math.inf)
    rises = sum(r.level1 - r.level0 for r in regimes if r.t0 >= since)
    return rises + sum(k.size for k in shifts if k is not j and k.size > 0 and k.t > since)


def window_start(
    regimes: tuple[Segment, ...], jumps: list[Jump], steps: list[Jump], tb: FloatArray
) -> tuple[int, float | None]:
    """The first bin worth trending, and where the warm-up ended (None if there was none).

    Skip the warm-up (the first regimes, until the slope falls under WARMUP_DROP of the first
    one's) and everything before the last fall or step: the level before a shift belongs to
    another regime; unless memory shifted up and down repeatedly (a busy/idle load cycle), whose
    shifts are noise to trend across. The window keeps at least MIN_REGIME_BINS bins.
    """
    start, warm_end = 0, None
    first = regimes[0]
    if first.slope > 0:
        for r in regimes[1:]:
            if WARMUP_DROP * r.slope > first.slope:
                break  # far steeper than the first: that was a flat start, not a warm-up
            if r.slope < WARMUP_DROP * first.slope:
                start, warm_end = r.start, float(tb[r.start])
                break
    downs = sum(j.size < 0 for j in jumps)
    # Memory given back more than once (falls, with rises sudden or gradual): a load cycle,
    # trend right across it; the level after the last fall is one phase of the cycle.
    cyclic = downs >= 2
    # A fall begins a level once MIN_REGIME_BINS bins follow it: a dip of two samples near
    # the end of a leak (a queue's writer freeing a few packets) had moved the window past
    # all the growth, and the leak read "levels off; over the last 0.5 s, since it levelled:
    # +1.13 GiB/h".
    falls = [
        j for j in jumps if j.size < 0 and tb.size - np.searchsorted(tb, j.t) >= MIN_REGIME_BINS
    ]
    shifts = [] if cyclic else falls + steps
    if shifts:
        last = max(j.t for j in shifts)
        start = max(start, int(np.searchsorted(tb, last)))
    return min(start, max(0, tb.size - MIN_REGIME_BINS)), warm_end
