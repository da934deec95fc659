"""How a memory column grows: leak, plateau, stable, step or undecided, and the fits behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from memsleuth.analysis.history import read_history
from memsleuth.analysis.season import LoadCycle, find_load_cycle
from memsleuth.analysis.shape import (
    MIN_SEGMENT,
    Jump,
    Saturation,
    Segment,
    find_regimes,
    fit_knee,
    fit_saturation,
    jumps_between,
)
from memsleuth.analysis.slowdown import decaying, levelling_off, recent_flat
from memsleuth.analysis.steps import (
    MIN_REGIME_BINS,
    WARMUP_DROP,
    abrupt_steps,
    find_steps,
    new_levels,
    staircase,
    unconfirmed_cycle,
    window_start,
)
from memsleuth.analysis.swing import below_high_water, outsized, smooth3, swing
from memsleuth.analysis.thresholds import (
    ALPHA_HINT,
    ALPHA_LEAK,
    KNEE_F,
    MIN_GROWTH_BYTES,
    MIN_GROWTH_SIGMAS,
    MIN_SAMPLES,
    PAGE_BYTES,
)
from memsleuth.analysis.trend import (
    Binned,
    TrendFit,
    bin_series,
    despike,
    fit_trend,
    median,
    robust_sigma,
    z_for,
)
from memsleuth.model import FloatArray

GrowthKind = Literal["leak", "plateau", "stable", "step", "inconclusive"]

STILL_RISING = (
    "still rising since, over too few points or by too little yet to tell its tail from a "
    "leak: record longer"
)
SWING_NOTE = "memory came down this far before: the rise may be one phase of a load cycle"
PAST_CEILING = (
    "memory has passed the level its rise seemed to be levelling toward: growth that goes on "
    "for another half window is a leak"
)
IMMATERIAL = "a steady rise, still under 384 KiB in all: too small to call yet"


@dataclass(frozen=True, slots=True)
class Growth:
    """The reading of one memory column: its kind and everything the evidence quotes."""

    kind: GrowthKind
    confidence: float
    binned: Binned | None
    sigma: float
    regimes: tuple[Segment, ...] = ()
    jumps: tuple[Jump, ...] = ()
    fit: TrendFit | None = None  # trend of the judged window
    warmup_end_s: float | None = None
    ceiling: float | None = None
    saturation: Saturation | None = None
    more_time_s: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    cycle: LoadCycle | None = None  # a repeating load cycle, taken out before trending
    given_back: tuple[float, float, float] | None = None  # (peak, its time, level now)
    flat_since_s: float | None = None  # growth stopped then: `fit` is of what came after
    recent: TrendFit | None = None  # of a leak: the trend of the recent half of its window

    @property
    def uses_floor(self) -> bool:
        return self.binned is not None and self.binned.sawtooth_period_s is not None


def _more_time(fit: TrendFit, sigma: float, material: float) -> float | None:
    """How much longer to record, at the slope seen so far, for it to be decided.

    Four needs: the trend must reach ALPHA_LEAK (with the noise fixed, z grows like the
    window's length to the power 3/2), the window must have the bins for Mann–Kendall to
    reach it at all (_too_short: "0.6 s more" had been said of 6 bins, which need 8), and the
    growth must reach both MIN_GROWTH_SIGMAS of noise and the `material` bar in bytes (a
    clean 7.45 MB/h leak had been told "record 0 s more" four times over 100 s, and was
    decided at 200 s). Never less than one more bin: an undecided window needs more of it.
    """
    if fit.z <= 0.1 or fit.slope <= 0:
        return None
    window = fit.t1 - fit.t0
    step = window / max(fit.n - 1, 1)
    need = z_for(ALPHA_LEAK)
    for_z = window * ((need / fit.z) ** (2.0 / 3.0) - 1.0) if fit.z < need else 0.0
    enough = next(k for k in range(fit.n, fit.n + 64) if not _too_short(k, need))
    for_bins = (enough - fit.n) * step
    for_growth = max(MIN_GROWTH_SIGMAS * sigma, material) / fit.slope - window
    return float(max(for_z, for_bins, for_growth, step))


def _too_short(n: int, need: float) -> bool:
    """Whether n points rising without a single fall would still fall short of z = need
    (Mann–Kendall's largest S, n(n-1)/2, over its standard deviation): 7 bins or fewer at
    ALPHA_LEAK. Such a window cannot tell a leak from a warm-up's tail; only more time can."""
    s_max = n * (n - 1) / 2.0
    return (s_max - 1.0) / math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0) < need


def _confidence(z: float, need: float) -> float:
    """0.5 at the threshold, approaching 1 as the evidence grows past it."""
    return float(min(0.99, max(0.5, 1.0 - 0.5 * math.exp(-(z - need) / 2.0))))


def read_growth(t: FloatArray, x: FloatArray, resolution: float = PAGE_BYTES) -> Growth:
    """Judge one column (NaN allowed) over time `t` in seconds; `resolution` is its quantum
    (a page for memory read from the kernel, 1 for counts of threads or fds)."""
    ok = ~np.isnan(x)
    t, x = t[ok], x[ok]
    n = int(x.size)
    if n < MIN_SAMPLES:
        dt = float(np.median(np.diff(t))) if n >= 2 else None
        more = (MIN_SAMPLES - n) * dt if dt else None
        note = f"{n} sample{'' if n == 1 else 's'}: at least {MIN_SAMPLES} are needed to trend"
        return Growth("inconclusive", 0.0, None, 0.0, more_time_s=more, notes=(note,))
    b = bin_series(t, x, sawtooth=resolution > 1.0, resolution=resolution)  # counts: no GC
    tb, y = b.t, b.level
    if tb.size < MIN_SAMPLES:
        # Whole cycles a bin leave too few to trend: a staircase leak stepping every 2 s, seen
        # for 9 s, four bins of one line, had read "levels off near 6.34 MiB".
        every = float(tb[-1] - tb[0]) / max(tb.size - 1, 1)
        note = f"{tb.size} whole cycles: at least {MIN_SAMPLES} are needed to trend"
        return Growth(
            "inconclusive", 0.0, b, 0.0, more_time_s=(MIN_SAMPLES - tb.size) * every,
            notes=(note,),
        )  # fmt: skip

    def noise(y: FloatArray) -> float:
        # None below the column's own resolution: a quiet series moves in pages (or counts).
        return max(robust_sigma(y), resolution, 1e-9 * abs(median(y)))

    sigma = noise(y)
    cycle = find_load_cycle(tb, y, sigma) if resolution > 1.0 else None
    if cycle is not None:  # growth is what is left across cycles
        y = y - cycle.component
        sigma = noise(y)
    y = despike(y, sigma)
    regimes = find_regimes(tb, y, sigma)
    jumps = jumps_between(regimes, tb, y, sigma)
    steps = find_steps(regimes, jumps)
    shifts = find_steps(regimes, jumps, both=True)
    w0, warmup_end = window_start(regimes, jumps, new_levels(shifts, regimes, sigma), tb)
    bent = 3  # bins a bend needs after it (fit_knee's least)
    if cycle is not None:
        # Under a load cycle, a level that began (or a bend) in the last period may be the
        # cycle's phase, taken out imperfectly where its edges jitter by a sample or two. The
        # present spans two periods (so that its recent half, the check of growth going on,
        # spans one), and growth stopping at a bend is told across a period. A leak of 1.1 MB
        # a 30 s busy/idle cycle had read `plateau`, "levels off; over the last 16 s, since it
        # levelled", 5 cycles in.
        last = int(np.searchsorted(tb, tb[-1] - 2 * cycle.period_s))
        if w0 > last:
            w0 = last
            warmup_end = min(warmup_end, float(tb[w0])) if warmup_end else None
        bent = max(bent, tb.size - int(np.searchsorted(tb, tb[-1] - cycle.period_s)))
    w_level = w0  # where the current level began (after the warm-up, the last shift)
    tw, yw = tb[w0:], y[w0:]
    fit = fit_trend(tw, yw, b.bins_per_cycle, resolution)
    common: dict[str, Any] = dict(
        binned=b, sigma=sigma, regimes=regimes, jumps=tuple(jumps), cycle=cycle
    )
    if fit is None:
        return Growth("inconclusive", 0.0, **common)
    knee = fit_knee(tw, yw, bent)
    stopped = None
    flat_since = None  # when a flat present began, once a check has found one
    if knee is not None and knee.f_stat >= KNEE_F:
        if knee.after < knee.before:
            grown = knee.after * (float(tw[-1]) - knee.t_knee)
            if knee.after_z < z_for(ALPHA_HINT) or grown < MIN_GROWTH_SIGMAS * sigma:
                stopped = "growth stopped: a bend, and no significant rise after it"
                flat_since = knee.t_knee
        elif knee.before < WARMUP_DROP * knee.after:
            # Growth began inside the window (after a flat stretch): trend it from there. A
            # rise that only steepened (a same-direction step inside steady growth, like a
            # hash table's resize) is all one growth and keeps its whole window.
            k0 = int(np.searchsorted(tw, knee.t_knee))
            if tw.size - k0 >= MIN_REGIME_BINS:
                w0 += k0
                tw, yw = tb[w0:], y[w0:]
                fit = fit_trend(tw, yw, b.bins_per_cycle, resolution) or fit
    common["fit"] = fit
    need, hint = z_for(ALPHA_LEAK), z_for(ALPHA_HINT)
    material = MIN_GROWTH_BYTES if resolution == PAGE_BYTES else 0.0
    final_up = (
        fit.z >= need and fit.lo > 0 and fit.growth >= max(MIN_GROWTH_SIGMAS * sigma, material)
    )
    sat = fit_saturation(tw, yw, sigma) if final_up else None
    common["saturation"] = sat
    bar = None
    if final_up:
        h = tw.size // 2
        recent = fit_trend(tw[h:], yw[h:], b.bins_per_cycle, resolution)
        if stopped is None and (stopped := recent_flat(recent)):
            flat_since = float(tw[h])
        levelling = levelling_off(tw, sat, sigma)
        # Memory already stands past the ceiling the exponential gives: no levelling, but
        # no leak either while nothing else explains the rise (wander after a warm-up does
        # this too). A C leak under a busy/idle cycle, climbing in steps, had read "levels
        # off near 58.0 MiB" at 62.2 MiB, exit 0, for 75 s.
        past_ceiling = (
            levelling is not None
            and sat is not None
            and median(yw[-MIN_SEGMENT:]) > sat.ceiling + 2.0 * sigma
        )
        stopped = (
            stopped
            or (None if past_ceiling else levelling)
            or decaying(regimes)
            or below_high_water(y[:w0], fit, sigma)
        )
        bar = None if stopped else swing(y, w0, fit, sigma)
        if bar is None and stopped is None and w_level > 0:
            # Swings at the current level: a fall before a step up is measured from a peak
            # the step has left far below.
            bar = swing(y[w_level:], w0 - w_level, fit, sigma)
        if bar is None and stopped is None:
            bar = outsized(y, fit, sigma)  # and a rise smaller than any fall seen before
        if stopped is None and bar is None and past_ceiling:
            more = max(0.5 * (fit.t1 - fit.t0), float(tw[1] - tw[0]))
            return Growth("inconclusive", 0.3, more_time_s=more, notes=(PAST_CEILING,), **common)
        if stopped is None and bar is None:
            return Growth(
                "leak",
                _confidence(fit.z, need),
                warmup_end_s=warmup_end,
                recent=recent,
                **common,
            )
        stopped = stopped or (SWING_NOTE if bar is not None else None)
    if (
        not final_up
        and stopped is None
        and w0 == 0
        and fit.z >= need
        and fit.lo > 0
        and fit.growth < material
    ):
        # The whole recording is one significant rise, still under the material bar: not a
        # plateau whose "ceiling" is the middle of that rise (a 16 KiB/s leak recorded for
        # 20 s had read "levels off near" a level it had passed). Record until it is material.
        more = (material - fit.growth) / fit.slope
        return Growth("inconclusive", 0.3, more_time_s=more, notes=(IMMATERIAL,), **common)
    first_rise = staircase(steps, regimes, float(tb[-1]))
    if first_rise is not None:
        # The rate is the staircase's, from the tread before its first rise: the last tread
        # alone is flat (a leak in steps had read "grows without bound: 0 B/h").
        k = max((r.start for r in regimes if r.t1 <= first_rise), default=0)
        climb = fit_trend(tb[k:], y[k:], b.bins_per_cycle, resolution) or fit
        # Held to a leak's bars too: a bounded C program's heap top moving by 100 KB steps on
        # 17 MB had read `leak` (95% CI from 0 B/h, 160 KiB in all), exit 3.
        if climb.lo > 0 and climb.growth >= max(MIN_GROWTH_SIGMAS * sigma, material):
            common["fit"] = climb
            return Growth("leak", 0.7, notes=("memory rises in repeated steps",), **common)
    # A rise given back is a reading of a flat present only: not while the window trends up.
    flat_now = not (fit.z >= hint and fit.slope > 0)
    abrupt = abrupt_steps(regimes, y, sigma)
    past = read_history(regimes, shifts + abrupt, tb, y, sigma, flat_now, material)
    if past.kind == "step":  # the jumps it was named for, those drawn as ramps too
        common["jumps"] = tuple(sorted((*jumps, *abrupt), key=lambda j: j.t))
    # A warm-up ends when its rise reached 90% of itself; a rise of a few pages has no such
    # time (flat memory, its bins moving by 0.2 MiB under a GC sawtooth, had read "the first
    # 53 s were warm-up").
    warm = (None if past.quiet else past.t90_s) if past.kind == "stable" else warmup_end
    ceiling = sat.ceiling if sat is not None and sat.f_curve >= KNEE_F else past.ceiling
    if flat_since is not None:
        # Memory has stopped: the ceiling is where it stands, not where an exponential fitted
        # to the whole rise would lead (an S-shaped fill held at 80.0 MiB had read "levels off
        # near 102 MiB", and a 90 MiB limit "reached in 55 s").
        after = yw[tw >= flat_since]
        ceiling = median(after[after.size // 2 :])
    # A swing explains the rise, but the rise is already above any ceiling the past gives:
    # "levels off near 1.24 GiB" had been said of a leak standing at 1.41 GiB, one cache
    # drop behind it. Not a plateau, then: undecided until it passes the swing.
    passed = ceiling is None or fit.at(fit.t1) > ceiling + MIN_GROWTH_SIGMAS * sigma
    if bar is not None and (not past.rose or passed):
        # As large as a swing seen before: record until it passes that swing or comes down.
        more = (bar - fit.at(fit.t1)) / fit.slope
        return Growth("inconclusive", 0.3, more_time_s=more, notes=(SWING_NOTE,), **common)
    if final_up:
        # Growing, but as a warm-up or plateau still approaching its ceiling.
        kind: GrowthKind = "stable" if past.kind == "stable" and past.rose else "plateau"
        notes = (stopped or "growth is slowing down",)
        flat = None
        if flat_since is not None:
            # Its rate is what memory does since it stopped, not the window's, rise and all
            # (an fd leak's process, flat for 40 s at its limit, had read "levels off near
            # 9.98 MiB; over the last 1.6 min: +60.5 MiB/h", its line drawn above it).
            since = tw >= flat_since
            flat = fit_trend(tw[since], yw[since], b.bins_per_cycle, resolution)
        if flat is not None:
            common["fit"] = flat
        return Growth(
            kind,
            0.6,
            warmup_end_s=warm,
            ceiling=ceiling,
            notes=notes,
            flat_since_s=flat_since if flat is not None else None,
            **common,
        )
    # A rise that reached 90% of itself only in its last bins has not been seen to level off:
    # no shorter stretch than a regime shows a level (a leak of 10 samples had read "levels
    # off near 204 MiB" at 242 MiB, its highest yet).
    levelled = past.t90_s is None or np.count_nonzero(tb > past.t90_s) >= MIN_SEGMENT
    if fit.z >= hint and fit.slope > 0 and not (past.rose and levelled):
        return Growth("inconclusive", 0.3, more_time_s=_more_time(fit, sigma, material), **common)
    # Or rising significantly since, but not yet by a leak's bars, and by a quarter of them
    # already (WARMUP_DROP): at that pace four windows reach them. A C leak of 39 MiB/h, 13 s
    # past a jump, had read "levels off near 9.82 MiB; over the last 13 s, since it levelled:
    # +35.2 MiB/h (95% CI +29.5 – +38.7 MiB/h)". A cache's tail creeping by pages (36 KB in
    # 33 s, ten windows from the bar) has levelled, for all a recording can show.
    paced = fit.growth >= WARMUP_DROP * max(MIN_GROWTH_SIGMAS * sigma, material)
    unfinished = fit.z >= need and fit.lo > 0 and paced
    if fit.z >= hint and fit.slope > 0 and (_too_short(fit.n, need) or unfinished):
        # Still rising since the rise levelled, over a window too short for any rise to reach
        # the leak's bar: named for the past, but no ceiling is claimed, and the time to tell
        # is given (a leak seen for 6 s after a fast start had read "levels off near" a level
        # it had already passed).
        more = _more_time(fit, sigma, material)
        return Growth(
            past.kind,
            0.5,
            warmup_end_s=warm,
            more_time_s=more,
            notes=(STILL_RISING,),
            given_back=past.given_back,
            **common,
        )
    confidence = 0.8 if fit.z < hint else 0.6
    settled = None
    # Its rate too is the level it stays at, not the window's with the rise in it: over the
    # last regimes after the rise, as many as make a stretch long enough to show a trend. The
    # last one alone was at times three bins (a page touched at the end): "since it levelled:
    # +141 MiB/h (95% CI +56.0 – +226 MiB/h)", fitted over 2 s of a 90 s flat stretch.
    last = regimes[-1].start
    for regime in reversed(regimes[:-1]):
        if regime.start <= w0 or not _too_short(tb.size - last, need):
            break
        last = regime.start
    if past.kind == "plateau" and last > w0 and not _too_short(tb.size - last, need):
        settled = fit_trend(tb[last:], y[last:], b.bins_per_cycle, resolution)
    if settled is not None:
        common["fit"] = settled
    if past.kind == "step":
        undecided = unconfirmed_cycle(jumps, float(tb[-1] - tb[0]))
        if undecided is not None:
            return Growth(
                "inconclusive", 0.3, more_time_s=undecided[1], notes=(undecided[0],), **common
            )
    now: TrendFit = common["fit"]
    ceiling = past.ceiling
    if (
        ceiling is not None
        and now.hi < 0
        and -now.growth >= max(MIN_GROWTH_SIGMAS * sigma, material)
    ):
        # Falling now, by a material amount: the level it fills to is the peak it reached, not
        # the middle of its fall (a pool that filled to 76 MiB twice and was draining had read
        # "levels off near 61.0 MiB; since it levelled: -3.87 GiB/h").
        ceiling = float(np.max(smooth3(y))) if y.size >= 3 else ceiling
    return Growth(
        past.kind,
        confidence,
        warmup_end_s=warm,
        ceiling=ceiling,
        given_back=past.given_back,
        flat_since_s=float(tb[last]) if settled is not None else None,
        **common,
    )
