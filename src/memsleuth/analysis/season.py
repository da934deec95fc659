"""Load cycles: a periodic swing of memory (daily traffic, a nightly batch, busy and idle hours)
taken out before trending, so that growth is measured across cycles, not within one phase.

A cycle is believed only when it repeats: its shape, averaged over the odd cycles, must match
its shape averaged over the even ones. Wander and a leak's bursts do not repeat on a schedule.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from memsleuth.analysis.trend import CYCLE_BINS, less_line, z_for
from memsleuth.model import FloatArray

# A period must be seen this many times: with two groups of cycles of two or more each, a
# shape that repeats is told from wander that happened to look alike twice.
MIN_CYCLES = 4
# ... and span this many bins: a shorter cycle is noise to a trend over the bins (it averages
# out inside a few bins), and a profile of fewer points says little about its shape.
MIN_CYCLE_BINS = CYCLE_BINS
# The odd and even cycles' shapes must agree at this level (one-sided, Fisher's z of their
# correlation): strict, since a verdict is taken on many series.
ALPHA_CYCLE = 1e-3
# The cycle must swing this many noise standard deviations, peak to peak, to be worth taking out.
MIN_SWING_SIGMAS = 3.0
# The cycle must be most of what moves memory besides a straight trend: averaged over C cycles,
# a wander that happened to repeat once leaves a shape that explains about 1/C of it.
MIN_EXPLAINED = 0.5
# A load cycle gives memory back: in the median whole cycle, memory falls from its running
# high by at least this share of the cycle's swing (a leak's growth per cycle may eat the rest).
GIVE_BACK = 0.5
# The periodogram is evaluated on a grid this many times finer than the Fourier frequencies:
# a recording rarely holds a whole number of cycles.
PAD = 8
# ... and around its peak on one this many times finer again.
ZOOM = 16


@dataclass(frozen=True, slots=True)
class LoadCycle:
    """A repeating swing: its period, size, how well it repeats, and the part taken out."""

    period_s: float
    swing: float  # peak to peak of the averaged shape, in the column's unit
    agreement: float  # correlation of the odd cycles' shape with the even cycles'
    component: FloatArray  # the averaged shape at each bin (mean zero): what was taken out


def _profile(phase_bin: np.ndarray, r: FloatArray, mask: np.ndarray, size: int) -> FloatArray:
    """The mean of `r` at each phase bin over the masked points (NaN where there are none)."""
    sums = np.bincount(phase_bin[mask], r[mask], size)
    counts = np.bincount(phase_bin[mask], None, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(sums / counts, dtype=np.float64)


def _median_profile(phase_bin: np.ndarray, r: FloatArray, size: int) -> FloatArray:
    """The median of `r` at each phase bin (NaN where there are none). At an edge of a
    busy/idle cycle, whose timing jitters by a sample or two, a bin's members are busy in some
    cycles and idle in others: their mean is neither, and would leave a residual in every
    cycle; their median is the usual one, and leaves the odd cycle out as a spike."""
    order = np.argsort(phase_bin, kind="stable")
    bounds = np.searchsorted(phase_bin[order], np.arange(size + 1))
    vals = r[order]
    return np.array(
        [np.median(vals[a:b]) if b > a else np.nan for a, b in itertools.pairwise(bounds)]
    )


def _gives_back(y: FloatArray, cycle: np.ndarray, size: int, swing: float) -> bool:
    """Does memory fall back in each cycle (counted from its peak), by GIVE_BACK of the swing
    (in the median whole cycle, smoothed over three bins)? A staircase leak has a rhythm too,
    but keeps every step."""
    smooth = np.convolve(y, np.full(3, 1.0 / 3.0), mode="same")
    smooth[0], smooth[-1] = y[0], y[-1]
    falls = []
    for c in np.unique(cycle):
        part = smooth[cycle == c]
        if part.size >= 0.8 * size:  # a whole cycle (the first and last are often cut)
            falls.append(float(np.max(np.maximum.accumulate(part) - part)))
    return bool(falls) and float(np.median(falls)) >= GIVE_BACK * swing


def _harmonic_explained(t: FloatArray, r: FloatArray, freqs: FloatArray) -> FloatArray:
    """For each frequency, the squares of `r` (a line's residual) that one sinusoid explains
    when it is fitted together with the line: the periodogram of the residual alone leans
    towards a phase-dependent neighbour of the true frequency."""
    tc = t - t.mean()
    tc = tc / (math.sqrt(float(tc @ tc)) or 1.0)
    arg = 2.0 * np.pi * np.outer(freqs, t - t[0])
    cos, sin = np.cos(arg), np.sin(arg)
    for w in (cos, sin):  # less their own line: what a sinusoid adds beside one
        w -= w.mean(axis=1, keepdims=True)
        w -= np.outer(w @ tc, tc)
    a, b = cos @ r, sin @ r
    cc, ss, cs = (cos * cos).sum(axis=1), (sin * sin).sum(axis=1), (cos * sin).sum(axis=1)
    det = cc * ss - cs * cs
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * a * ss - 2.0 * a * b * cs + b * b * cc) / det
    return np.asarray(np.where(det > 0, out, 0.0), dtype=np.float64)


def find_load_cycle(t: FloatArray, y: FloatArray, sigma: float) -> LoadCycle | None:
    """The dominant repeating cycle of binned (t, y), or None.

    The series less its least-squares line is searched for the strongest period between
    MIN_CYCLE_BINS bins and a MIN_CYCLES-th of the recording; its shape (the mean at each
    phase) from the odd cycles must correlate with the shape from the even cycles at
    ALPHA_CYCLE, swing MIN_SWING_SIGMAS or more and explain MIN_EXPLAINED of what the line
    leaves; and memory must fall back in each cycle. What is taken out is the median at each
    phase, about a line fitted together with it.
    """
    n = int(y.size)
    if n < MIN_CYCLES * MIN_CYCLE_BINS or sigma <= 0:
        return None
    span = float(t[-1] - t[0])
    if span <= 0:
        return None
    dt = span / (n - 1)
    r = less_line(t, y)
    power = np.abs(np.fft.rfft(r, PAD * n)) ** 2
    freq = np.arange(power.size) / (PAD * n * dt)  # cycles a second
    lo, hi = MIN_CYCLES / span, 1.0 / (MIN_CYCLE_BINS * dt)
    ok = np.nonzero((freq >= lo) & (freq <= hi))[0]
    if ok.size == 0:
        return None
    peak = int(ok[np.argmax(power[ok])])
    found = _cycle_at(1.0 / float(freq[peak]), t, y, sigma, dt)
    if found is None:
        return None
    # Between grid points: the periodogram itself on a grid ZOOM times finer, one grid step
    # either side. A period off by half a step (0.5% of a day on a week of 85-minute bins)
    # drifts the phase by most of an hour over the week, and the shape taken out then leaves
    # a trend behind (a week of daily cycles read as a plateau at one --step, not another).
    # Only for a cycle found: it costs as much as the search.
    fine = freq[peak] + np.linspace(-1.0, 1.0, 2 * ZOOM + 1) * float(freq[1])
    fine = fine[fine > 0]
    better = 1.0 / float(fine[np.argmax(_harmonic_explained(t, r, fine))])
    return _cycle_at(better, t, y, sigma, dt) or found


def _less_within_line(phase_bin: np.ndarray, t: FloatArray, y: FloatArray, size: int) -> FloatArray:
    """y less the line fitted together with the cycle (centred): its slope is taken within
    each phase bin, across cycles, the least-squares slope beside one mean per phase bin. The
    line of y alone tilts with the phase a recording ends in, and the trend it leaves would be
    taken for the cycle's shape, a saw holding one cycle's growth: a steady leak under a
    busy/idle load had been left as a staircase, flat within each cycle."""
    counts = np.maximum(np.bincount(phase_bin, None, size), 1)
    t_mean = (np.bincount(phase_bin, t, size) / counts)[phase_bin]
    y_mean = (np.bincount(phase_bin, y, size) / counts)[phase_bin]
    dt, dy = t - t_mean, y - y_mean
    stt = float(dt @ dt)
    slope = float(dt @ dy) / stt if stt > 0 else 0.0
    r = y - slope * t
    return np.asarray(r - r.mean(), dtype=np.float64)


def _cycle_at(
    period: float, t: FloatArray, y: FloatArray, sigma: float, dt: float
) -> LoadCycle | None:
    """The cycle of this period, if it repeats, swings and gives memory back (see
    find_load_cycle); `dt` is the time between bins."""
    n = int(y.size)
    size = round(period / dt)
    cycles = (t - t[0]) / period
    phase = np.mod(cycles, 1.0)
    # Rounded, not floored: when a period is a whole number of bins, every bin sits at the
    # centre of its phase bin rather than on an edge where rounding error flips it.
    phase_bin = np.rint(phase * size).astype(np.intp) % size
    r = _less_within_line(phase_bin, t, y, size)
    odd = np.floor(cycles).astype(np.intp) % 2 == 1  # the odd cycles against the even
    a = _profile(phase_bin, r, odd, size)
    b = _profile(phase_bin, r, ~odd, size)
    both = np.isfinite(a) & np.isfinite(b)
    m = int(both.sum())
    if m < MIN_CYCLE_BINS:
        return None
    a, b = a[both] - a[both].mean(), b[both] - b[both].mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    agreement = float(a @ b) / den if den > 0 else 0.0
    need = z_for(ALPHA_CYCLE)  # Fisher's z of the correlation; atanh(-1) would raise
    if agreement <= 0 or math.atanh(min(agreement, 0.999999)) * math.sqrt(m - 3) < need:
        return None
    every = np.ones(n, dtype=bool)
    shape = _median_profile(phase_bin, r, size)
    # Where in the cycle each mean stands: its phase bin's centre plus the mean offset of its
    # members (phase bin 0 straddles the cycle's start, so offsets are taken round the circle).
    offset = np.mod(phase * size - phase_bin + size / 2, size) - size / 2
    at = (np.arange(size) + _profile(phase_bin, offset, every, size)) / size
    known = np.isfinite(shape)
    swing = float(shape[known].max() - shape[known].min())
    if swing < MIN_SWING_SIGMAS * sigma:
        return None
    # Cycles counted from the shape's peak, so that each holds a whole fall from the peak.
    from_peak = np.floor(cycles - float(at[known][np.argmax(shape[known])])).astype(np.intp)
    if not _gives_back(y, from_peak, size, swing):
        return None
    # The shape at each bin: its phase bin's mean, or interpolated between the phase means
    # (round the cycle), whichever leaves less. A smooth swing many times the noise would keep a
    # saw of phase-bin steps; a busy/idle pulse a few bins wide would lose its edges.
    smooth = np.interp(phase, at[known], shape[known], period=1.0)
    stepped = np.where(known[phase_bin], shape[phase_bin], smooth)
    component, left_ss = stepped, math.inf
    for candidate in (smooth - smooth.mean(), stepped - stepped.mean()):
        ss = float((r - candidate) @ (r - candidate))
        if ss < left_ss:
            component, left_ss = candidate, ss
    if left_ss > (1.0 - MIN_EXPLAINED) * float(r @ r):
        return None
    return LoadCycle(period, swing, agreement, component)
