"""Rises a fall seen before explains: memory back under its high-water mark, or one phase of a
load cycle or wandering baseline (section 5 of docs/verdicts.md)."""

from __future__ import annotations

import numpy as np

from memsleuth.analysis.thresholds import MIN_GROWTH_SIGMAS
from memsleuth.analysis.trend import TrendFit
from memsleuth.model import FloatArray

# A rise is one phase of a load cycle or wandering baseline unless it passes the peak before the
# largest fall seen by this share of that fall (or the trough after the fall sits this much above
# the lowest level before it): 1, because the one fall seen is a single draw of the swing's size.
CYCLE_MARGIN = 1.0
# A fall that did not come again within this many times its own rise-and-fall, nor anything
# half its size since, is no load cycle's turn (a start-up's, a one-off batch's): a cycle a
# recording can confuse with a leak is longer than the recording, and cannot fit twice its
# rise-and-fall after its fall.
NO_RECUR = 2.0


def below_high_water(y_before: FloatArray, fit: TrendFit, sigma: float) -> str | None:
    """Growth that only takes memory back up to where it already was is reuse, not a leak.

    Before the window, memory stood higher and came down (a fall, a load cycle, a wandering
    baseline): it must climb past that high-water mark (of the 3-bin running median, so not
    one noisy bin), by more than the noise, before the growth counts as new.
    """
    if y_before.size < 3:
        return None
    if fit.at(fit.t1) < float(smooth3(y_before).max()) + MIN_GROWTH_SIGMAS * sigma:
        return "memory stood this high before and came down: the rise has not passed it"
    return None


def swing(y: FloatArray, w0: int, fit: TrendFit, sigma: float) -> float | None:
    """A rise no larger than a fall memory has already made is what a load cycle or a
    wandering baseline does. A leak under a cycle shows itself in two ways: the level passes
    the peak before the largest fall by CYCLE_MARGIN of that fall, or the trough after that
    fall sits that much above the lowest level trended before it (rising cycle minima).
    Returns the level the rise must pass to count, or None when it is not one phase of a swing.
    """
    if y.size < 5:
        return None
    s, fall = _falls(y)
    j = int(np.argmax(fall))  # the trough of the largest fall
    d = float(fall[j])
    if d < MIN_GROWTH_SIGMAS * sigma or _one_off(s, j, d):
        return None
    i = int(np.argmax(s[: j + 1]))  # its peak
    bar = float(s[i]) + CYCLE_MARGIN * d
    if fit.at(fit.t1) >= bar:
        return None
    before = s[max(w0 - 1, 0) : i]
    if before.size and float(s[j]) >= float(before.min()) + CYCLE_MARGIN * d:
        return None
    return bar


def _one_off(s: FloatArray, j: int, d: float) -> bool:
    """The fall of size d ending at bin j did not come again: a load cycle's would have within
    NO_RECUR of its own rise-and-fall, and nothing since has fallen half as far."""
    i = int(np.argmax(s[: j + 1]))
    k = int(np.argmin(s[: i + 1]))  # where the rise to its peak began
    since = s[j:]
    later = float((np.maximum.accumulate(since) - since).max()) if since.size else 0.0
    return since.size - 1 >= NO_RECUR * max(j - k, 1) and later < 0.5 * d


def smooth3(y: FloatArray) -> FloatArray:
    """The 3-bin running median (s[k] is at y[k+1]): levels and falls, not one noisy bin."""
    return np.median(np.lib.stride_tricks.sliding_window_view(y, 3), axis=1)


def _falls(y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The smoothed level and how far it stands below its running peak."""
    s = smooth3(y)
    return s, np.maximum.accumulate(s) - s


def outsized(y: FloatArray, fit: TrendFit, sigma: float) -> float | None:
    """A rise smaller than a fall memory made anywhere before may be the next rising phase of
    the same load cycle, even where no fall has been seen at the current level yet (after a
    step up). Returns the level the window must reach to count, or None."""
    if y.size < 5:
        return None
    s, fall = _falls(y)
    j = int(np.argmax(fall))
    d = float(fall[j])
    if d < MIN_GROWTH_SIGMAS * sigma or fit.growth >= CYCLE_MARGIN * d or _one_off(s, j, d):
        return None
    return fit.at(fit.t0) + CYCLE_MARGIN * d
