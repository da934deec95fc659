"""How a memory column grows: leak, plateau, stable, step or undecided, and the fits behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from memsleuth.analysis.season import MIN_CYCLES, LoadCycle, find_load_cycle
from memsleuth.analysis.shape import (
    MIN_SEGMENT,
    PARAMS_PER_SEGMENT,
    STEP_SIGMAS,
    TAU_GRID,
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
    median,
    robust_sigma,
    z_for,
)
from memsleuth.model import FloatArray
from memsleuth.units import format_duration

GrowthKind = Literal["leak", "plateau", "stable", "step", "inconclusive"]

# Significance of growth: one-sided, after the autocorrelation correction. A verdict is taken
# at many checkpoints of many series, so the per-test level is strict.
ALPHA_LEAK = 1e-3
# Weaker evidence than ALPHA_LEAK but more than chance: say `inconclusive`, not `stable`.
ALPHA_HINT = 1e-2
# The recent half of a leak's window must grow too, at this weaker level.
ALPHA_RECENT = 0.05
MIN_SAMPLES = 6
# Memory the kernel reports comes in pages: residuals within a page are rounding, not noise.
PAGE_BYTES = 4096.0
MIN_REGIME_BINS = 6
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
# A staircase of at least this many rises, still climbing, is a leak, not a step.
STAIRCASE_RISES = 3
STAIRCASE_LIKE = 0.25  # "of like size": at least this share of the median rise
# Growth under this many noise standard deviations over the window is not worth a leak.
MIN_GROWTH_SIGMAS = 3.0
# ... nor growth of memory under three of glibc's heap steps (M_TOP_PAD, 128 KiB: the least a
# heap grows by when malloc needs room): a quiet process's RSS is flat to the page, but an
# allocator settling its arenas (or an in-process tool's bookkeeping) moves it by such steps.
MIN_GROWTH_BYTES = 3 * 128 * 1024
# Deceleration: the regime's rate is within this factor of a decaying warm-up's prediction.
SEQ_FACTOR = 3.0
# ... and only while the rate still falls: the last regime under this share of the one before.
DECAY_GOES_ON = 0.75
# The warm-up ends with the first regime whose slope is under this share of the first regime's.
WARMUP_DROP = 0.25
# A rise is one phase of a load cycle or wandering baseline unless it passes the peak before the
# largest fall seen by this share of that fall (or the trough after the fall sits this much above
# the lowest level before it): 1, because the one fall seen is a single draw of the swing's size.
CYCLE_MARGIN = 1.0
# A fall that did not come again within this many times its own rise-and-fall, nor anything
# half its size since, is no load cycle's turn (a start-up's, a one-off batch's): a cycle a
# recording can confuse with a leak is longer than the recording, and cannot fit twice its
# rise-and-fall after its fall.
NO_RECUR = 2.0
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
    steps = _steps(regimes, jumps)
    shifts = _steps(regimes, jumps, both=True)
    w0, warmup_end = _window_start(regimes, jumps, _new_levels(shifts, regimes, sigma), tb)
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
        if stopped is None and (stopped := _recent_flat(recent)):
            flat_since = float(tw[h])
        levelling = _levelling(tw, sat, sigma)
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
            or _decaying(regimes)
            or _below_high_water(y[:w0], fit, sigma)
        )
        bar = None if stopped else _swing(y, w0, fit, sigma)
        if bar is None and stopped is None and w_level > 0:
            # Swings at the current level: a fall before a step up is measured from a peak
            # the step has left far below.
            bar = _swing(y[w_level:], w0 - w_level, fit, sigma)
        if bar is None and stopped is None:
            bar = _outsized(y, fit, sigma)  # and a rise smaller than any fall seen before
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
    first_rise = _staircase(steps, regimes, float(tb[-1]))
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
    abrupt = _abrupt(regimes, y, sigma)
    past = _history(regimes, shifts + abrupt, tb, y, sigma, flat_now, material)
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
    last = regimes[-1].start
    if past.kind == "plateau" and last > w0:
        # Its rate too is the level it stays at, not the window's with the rise in it.
        settled = fit_trend(tb[last:], y[last:], b.bins_per_cycle, resolution)
    if settled is not None:
        common["fit"] = settled
    if past.kind == "step":
        undecided = _unconfirmed_cycle(jumps, float(tb[-1] - tb[0]))
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
        ceiling = float(np.max(_smooth3(y))) if y.size >= 3 else ceiling
    return Growth(
        past.kind,
        confidence,
        warmup_end_s=warm,
        ceiling=ceiling,
        given_back=past.given_back,
        flat_since_s=float(tb[last]) if settled is not None else None,
        **common,
    )


def _new_levels(shifts: list[Jump], regimes: tuple[Segment, ...], sigma: float) -> list[Jump]:
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


def _window_start(
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


def _recent_flat(recent: TrendFit | None) -> str | None:
    """Growth must go on in the recent half of the window too (`recent`, its trend), if only
    at the 10% level: a rise that stopped halfway is not a leak however strong the window's
    overall trend."""
    if recent is not None and recent.z < z_for(ALPHA_RECENT):
        return "the recent half of the window does not grow"
    return None


def _levelling(tw: FloatArray, sat: Saturation | None, sigma: float) -> str | None:
    """An exponential approach to a ceiling fits clearly better than a line, with no steady
    growth left beside it: a warm-up or plateau still levelling off."""
    window = float(tw[-1] - tw[0])
    if sat is None or sat.f_curve < KNEE_F or sat.tau_s >= 0.5 * window:
        return None
    steady = sat.line_slope * window
    if sat.line_z < z_for(ALPHA_LEAK) or steady < MIN_GROWTH_SIGMAS * sigma:
        return "growth is levelling off toward a ceiling"
    return None


def _decaying(regimes: tuple[Segment, ...]) -> str | None:
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


def _below_high_water(y_before: FloatArray, fit: TrendFit, sigma: float) -> str | None:
    """Growth that only takes memory back up to where it already was is reuse, not a leak.

    Before the window, memory stood higher and came down (a fall, a load cycle, a wandering
    baseline): it must climb past that high-water mark (of the 3-bin running median, so not
    one noisy bin), by more than the noise, before the growth counts as new.
    """
    if y_before.size < 3:
        return None
    if fit.at(fit.t1) < float(_smooth3(y_before).max()) + MIN_GROWTH_SIGMAS * sigma:
        return "memory stood this high before and came down: the rise has not passed it"
    return None


def _swing(y: FloatArray, w0: int, fit: TrendFit, sigma: float) -> float | None:
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


def _smooth3(y: FloatArray) -> FloatArray:
    """The 3-bin running median (s[k] is at y[k+1]): levels and falls, not one noisy bin."""
    return np.median(np.lib.stride_tricks.sliding_window_view(y, 3), axis=1)


def _falls(y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The smoothed level and how far it stands below its running peak."""
    s = _smooth3(y)
    return s, np.maximum.accumulate(s) - s


def _outsized(y: FloatArray, fit: TrendFit, sigma: float) -> float | None:
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


def _steps(regimes: tuple[Segment, ...], jumps: list[Jump], both: bool = False) -> list[Jump]:
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


def _abrupt(regimes: tuple[Segment, ...], y: FloatArray, sigma: float) -> list[Jump]:
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


def _staircase(steps: list[Jump], regimes: tuple[Segment, ...], t_end: float) -> float | None:
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


@dataclass(frozen=True, slots=True)
class History:
    """What came before a flat (or slowly creeping) present."""

    kind: GrowthKind  # stable, plateau or step
    rose: bool  # memory rose (warm-up, plateau or steps) before levelling
    t90_s: float | None  # when the smooth part of the rise reached 90% of itself
    ceiling: float | None
    given_back: tuple[float, float, float] | None = None  # a rise that came back down
    quiet: bool = False  # a rise under the material bar: too small to say when a warm-up ended


def _history(
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
        # `_abrupt`): the first regime is the process starting (`record -- CMD` samples it
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
        past = _history(after, later, tb[k:], y[k:], sigma, flat_now, material)
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


def _unconfirmed_cycle(jumps: list[Jump], span: float) -> tuple[str, float] | None:
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
