"""The verdict's evidence in words: what memory did over the window, the warm-up, cycles, the
handles (threads, fds, tasks), latency, memory in use, the work clock, peaks between samples."""

from __future__ import annotations

import numpy as np

from memsleuth.analysis.growth import SWING_NOTE, Growth
from memsleuth.analysis.history import WARMUP_RISE
from memsleuth.analysis.signals import AtLimit, CountReading, LatencyReading, LiveReading
from memsleuth.analysis.thresholds import ALPHA_LEAK, MIN_GROWTH_BYTES, MIN_GROWTH_SIGMAS
from memsleuth.analysis.trend import z_for
from memsleuth.analysis.work import IDLE_SHARE, WorkClock, recording_time, went_back
from memsleuth.model import Series, VerdictName
from memsleuth.units import (
    format_bytes,
    format_count,
    format_duration,
    format_estimate,
    format_per_hour,
    format_rate,
    format_ratio,
)

# An fd count that came this close to the open-files limit is said to have, leak or not.
NEAR_LIMIT = 0.9
LIVE = "memory in use (RSS less what malloc holds free)"
# Under fragmentation, memory in use growing by this share of RSS's growth or more is said to be
# data kept (a twentieth: beneath it, the allocator's own bookkeeping and rounding).
LIVE_KEPT_SHARE = 0.05
# A leak is said to slow down when its recent half's rate is, at 95%, under this share of its
# window's, and not to when it is, at 95%, over it.
SLOWING = 0.5
# The peak between samples is worth saying when it rose by this share of the highest sample
# (and by the material bar) and stands that far above it.
PEAK_SHARE = 0.25


def evidence_lines(
    g: Growth,
    name: VerdictName,
    threads: CountReading | None,
    fds: CountReading | None,
    tasks: CountReading | None,
    latency: LatencyReading | None,
    live: LiveReading | None,
    monotone: bool,
    clock: WorkClock | None,
    subject: str,
) -> list[str]:
    out = [_memory_sentence(g, clock, subject)]
    if g.given_back is not None:
        peak, when, now = g.given_back
        out.append(
            f"{memory_name(g, subject)} rose to {format_bytes(peak)} at "
            f"{format_duration(recording_time(clock, when))} and came back "
            f"down to {format_bytes(now)}: memory held for a while and given back (a backlog "
            "that drained, a batch that ended), not a leak"
        )
    out.extend(g.notes)
    if g.warmup_end_s:
        warmup = format_duration(recording_time(clock, g.warmup_end_s))
        rise = _warmup_rise(g)
        if rise is not None:
            # Not modest (section 6): a Go goroutine leak climbing 3 min to 16 times its start,
            # then flat, had read "the first 3.0 min were warm-up".
            out.append(
                f"the first {warmup}, a rise of {format_bytes(rise)} (more than a warm-up "
                "adds), are not trended: growth is judged after them"
            )
        elif g.fit is None or g.warmup_end_s <= g.fit.t0:
            out.append(f"the first {warmup} were warm-up, not trended")
        else:  # the rise reached 90% of itself inside the trended window
            start = format_duration(recording_time(clock, g.fit.t0))
            out.append(f"the first {warmup} were warm-up (trended from {start}, as it settled)")
    b = g.binned
    if b is not None and b.sawtooth_period_s is not None:
        # Not "a GC sawtooth": a C program's cache cleared every 10 s saws as well.
        every = format_duration(b.sawtooth_period_s)
        out.append(f"a sawtooth every {every} (memory freed in batches): its floor is trended")
    if b is not None and b.fast_cycle_s is not None:
        every = format_duration(b.fast_cycle_s)
        if monotone:  # a cycle gives memory back; a staircase of allocations never does
            out.append(f"allocations in bursts every {every}: each point averages whole bursts")
        else:
            out.append(f"a load cycle every {every}: each point averages whole cycles")
    if g.cycle is not None:
        out.append(
            f"a load cycle every {format_duration(g.cycle.period_s)} (memory swings "
            f"{format_bytes(g.cycle.swing)} and gives it back): taken out, growth measured "
            "across cycles"
        )
    for c, unit in ((threads, "threads"), (fds, "fds"), (tasks, tasks.name if tasks else "")):
        if c is None:
            continue
        if c.leaking:
            out.append(
                f"{unit} grew from {c.first:,.0f} to {c.last:,.0f} "
                f"({format_per_hour(c.per_hour, unit)})"
            )
        elif len(c.floors) >= 2:
            out.append(
                f"{unit} rose to {c.high:,.0f} but fell back to {_span(c.floors)} "
                f"{len(c.floors)} times: released in batches (a collector, "
                f"a pool), not leaked ({c.last:,.0f} now)"
            )
        elif c.growth is None:
            out.append(f"{unit} flat ({c.last:,.0f})")
        else:  # it moves, without growing: "fds flat (181)" had been said of 154 to 199
            out.append(f"{unit} not growing ({c.low:,.0f}–{c.high:,.0f}, {c.last:,.0f} now)")
    if name == "thread-leak" and threads is not None and g.fit is not None:
        per_thread = _per_thread(g, threads)
        if per_thread is not None:
            out.append(f"RSS grows with them: about {format_bytes(per_thread)} per thread")
    if latency is not None:
        out.append(
            f"latency: median of the last {latency.n} over the first {latency.n} = "
            f"{format_ratio(latency.ratio)}" + (", rising" if latency.rising else "")
        )
    if live is not None and live.per_hour < 0:
        # "live allocations grew -70.5 MiB/h (-80% of RSS's growth)" had been printed.
        out.append(
            f"{LIVE} fell {format_bytes(-live.per_hour)}/h while RSS grew: what RSS gained is "
            "memory malloc keeps, not data"
        )
    elif live is not None:
        # Not "live allocations": memory mapped outside malloc is in use too, and a mmap leak
        # with malloc's books flat had read "live allocations grew +907 MiB/h".
        said = f"{LIVE} grew {format_rate(live.per_hour)} ({live.share:.0%} of RSS's growth)"
        if name == "fragmentation" and live.share >= LIVE_KEPT_SHARE:
            # Under the fragmentation bar, but data kept all the same: a Rust program keeping
            # every 200th block read only "RSS grows while live allocations do not".
            said += ": that part is data the program keeps, a leak of its own if it goes on"
        out.append(said)
    task_unit = tasks.name if tasks is not None else "tasks"
    handle = {"thread-leak": "threads", "fd-leak": "fds", "task-leak": task_unit}.get(name)
    if handle is not None:
        # The count that names the verdict comes first: a thread leak's evidence had opened
        # with "RSS grew and levels off near 16.5 MiB".
        out.sort(key=lambda line: not line.startswith(f"{handle} grew from"))
    return [s for s in out if s]


def _memory_sentence(g: Growth, clock: WorkClock | None = None, subject: str = "RSS") -> str:
    """What memory did over the window, in time, or in units of work when it was read on the
    work clock."""
    fit, what = g.fit, memory_name(g, subject)
    if fit is None:
        return f"{what}: too few samples to trend"
    if clock is None:
        window = format_duration(fit.t1 - fit.t0)
        per_hour, ci = format_estimate(fit.slope * 3600, (fit.lo * 3600, fit.hi * 3600), "/h")
        grew = "grew"
    else:
        window = f"{format_count(clock.units(fit.t1 - fit.t0))} units of work"
        per_unit = (fit.lo / clock.rate, fit.hi / clock.rate)
        per_hour, ci = format_estimate(fit.slope / clock.rate, per_unit, "/unit")
        grew = "grew with the work done"
    ci = f"95% CI {ci}"
    if g.kind == "leak":
        # Said when it holds: a pool filling to its bound, its rate down from 4.7 to 1.0 GiB/h
        # across looks, had read "without slowing down" at each.
        recent = g.recent
        if recent is not None and recent.hi < SLOWING * fit.slope:
            rate = f"{format_rate(recent.slope * 3600.0)} in its recent half"
            if clock is not None:
                rate = f"{format_bytes(recent.slope / clock.rate)}/unit in its recent half"
            return f"{what} rose {per_hour} over the last {window} ({ci}), slowing down: {rate}"
        steady = recent is None or recent.lo >= SLOWING * fit.slope
        return f"{what} rose {per_hour} over the last {window} ({ci})" + (
            ", without slowing down" if steady else ""
        )
    if g.kind == "plateau" and g.ceiling and fit.hi < 0:
        # Falling, not levelling: "levels off near 61.0 MiB; since it levelled: -3.87 GiB/h".
        top = f" to a peak of {format_bytes(g.ceiling)} and is falling"
        return f"{what} {grew}{top}; over the last {window}: {per_hour} ({ci})"
    if g.kind == "plateau":
        top = f" and levels off near {format_bytes(g.ceiling)}" if g.ceiling else ""
        since = ", since it levelled" if g.flat_since_s is not None else ""
        return f"{what} {grew}{top}; over the last {window}{since}: {per_hour} ({ci})"
    if g.kind == "step":
        # Signed: how much each jump added, not a level ("jumped (3.99 MiB at 19 s, 195 MiB
        # at 21 s)" had read as levels in one run and sizes in another).
        # Falls too, once memory has risen: a step given back in part had read "+40.0 MiB at
        # 8.1 s" alone while 25 MiB of it had gone again at 18 s.
        first_up = next((j.t for j in g.jumps if j.size > 0), None)
        said = [j for j in g.jumps if j.size > 0 or (first_up is not None and j.t > first_up)]
        # Jumps under the material bar beside one over it are noise: "+227 KiB at 12 s" had
        # been listed before a Go program's 14.3 MiB.
        if any(abs(j.size) >= MIN_GROWTH_BYTES for j in said):
            said = [j for j in said if abs(j.size) >= MIN_GROWTH_BYTES]
        steps = ", ".join(
            f"{format_bytes(j.size, signed=True)} at {format_duration(recording_time(clock, j.t))}"
            for j in said
        )
        return f"{what} jumped ({steps}); over the last {window} since: {per_hour} ({ci})"
    if g.kind == "stable" and fit.lo > 0 and fit.growth > 0:
        # Significant, but too small to count (section 4's bars). Which bar: "rose only
        # 902 KiB: too little to count as growth" had been said of a rise over the 384 KiB
        # bar, under 1 MiB swings that set the other.
        swings = MIN_GROWTH_SIGMAS * g.sigma
        why = (
            f"less than {MIN_GROWTH_SIGMAS:.0f} times the noise around the trend "
            f"(σ {format_bytes(g.sigma)}), too little to tell from it"
            if fit.growth < swings and swings > MIN_GROWTH_BYTES
            else "too little to count as growth"
        )
        if fit.growth >= max(swings, MIN_GROWTH_BYTES):
            # Over both bars: what held it back is said next (a fall seen before, a level it
            # stood at before), not its size. "rose only 78.6 MiB … too little to count as
            # growth" had been said beside a 384 KiB bar.
            held = ", no more than it fell before" if SWING_NOTE in g.notes else ""
            if not held and fit.z < z_for(ALPHA_LEAK):
                # Its interval is above zero, but its points move together: the trend test
                # that allows for that does not find the rise significant.
                held = (
                    f", in few independent stretches ({fit.n_eff:.0f} effective points of "
                    f"{fit.n}): not significant once that is allowed for"
                )
            return (
                f"{what} rose {format_bytes(fit.growth)} over the last {window} ({per_hour}, "
                f"{ci}){held}"
            )
        return (
            f"{what} rose only {format_bytes(fit.growth)} over the last {window} ({per_hour}, "
            f"{ci}): {why}"
        )
    if g.kind == "stable" and fit.hi < 0:
        # Falling, significantly: "no significant trend ... -85.8 MiB/h (95% CI -90.1 – -84.9
        # MiB/h)" had been said of memory given back.
        return f"{what} fell {format_bytes(-fit.growth)} over the last {window} ({per_hour}, {ci})"
    if g.kind == "stable":
        return f"{what} has no significant trend over the last {window}: {per_hour} ({ci})"
    return f"{what} trend over the last {window} is {per_hour} ({ci}): not decided yet"


def memory_name(g: Growth, subject: str = "RSS") -> str:
    return f"{subject} floor (its lows between falls)" if g.uses_floor else subject


def _warmup_rise(g: Growth) -> float | None:
    """What memory rose by before the warm-up's end, when that is more than a warm-up adds
    (WARMUP_RISE of the level it reached); None for a modest one."""
    b = g.binned
    if b is None or g.warmup_end_s is None or b.t.size == 0:
        return None
    y = b.floor if b.sawtooth_period_s is not None else b.median
    k = int(np.searchsorted(b.t, g.warmup_end_s))
    if k <= 0:
        return None
    level = float(y[min(k, y.size - 1)])
    rise = level - float(y[0])
    return rise if rise > WARMUP_RISE * abs(level) else None


def _span(levels: tuple[float, ...]) -> str:
    """ "12" or "9–14": the range of counts a column fell back to ("1–1" had been said)."""
    lo, hi = min(levels), max(levels)
    return f"{lo:,.0f}" if round(lo) == round(hi) else f"{lo:,.0f}–{hi:,.0f}"


def _per_thread(g: Growth, threads: CountReading) -> float | None:
    fit = g.fit
    if fit is None or fit.slope <= 0 or threads.per_hour <= 0:
        return None
    return float(fit.slope * 3600.0 / threads.per_hour)


def fd_limit_words(
    fds: CountReading | None, full: AtLimit | None, fd_limit: int | None
) -> tuple[str, ...]:
    """An fd leak against the target's open-files limit: reached, or when it will be."""
    if full is not None:
        return (
            f"fds reached the open-files limit ({full.limit:,}) at "
            f"{format_duration(full.reached_s)} and stay there: every open() or socket() "
            "since fails (EMFILE)",
        )
    if fds is None or fd_limit is None:
        return ()
    if not fds.leaking and fds.high >= NEAR_LIMIT * fd_limit:
        return (
            f"fds came within {fd_limit - fds.high:.0f} of the open-files limit ({fd_limit:,})",
        )
    if not fds.leaking or fds.per_hour <= 0:
        return ()
    left = max(0.0, (fd_limit - fds.last) / fds.per_hour * 3600.0)
    return (
        f"at this rate the open-files limit ({fd_limit:,}) is reached in {format_duration(left)}",
    )


def clock_words(by_clock: Growth, by_work: Growth, clock: WorkClock) -> str:
    """Why the verdict was reached against the work done rather than the clock."""
    if clock.quiet_s > IDLE_SHARE * (clock.t[-1] if clock.t.size else 0.0):
        uneven = f"no work was done for the last {format_duration(clock.quiet_s)}"
    elif clock.idle_s > 0:
        uneven = f"no work was done for {format_duration(clock.idle_s)} of the recording"
    else:
        uneven = "the work rate changed"
    if by_work.kind in ("leak", "plateau", "step") and clock.rise > 0:
        # How much of the rise came while idle, not "only with work" (a timer's 9% had been).
        idle = max(clock.idle_rise, 0.0) / clock.rise
        moved = f"memory rose with the work done, {idle:.0%} of its rise while none was"
    else:
        moved = "memory did not grow with it"  # not "moved only with work": it never moved
    return (
        f"judged against the work done, not the clock: {uneven}, and {moved}; by the clock "
        f"alone it reads {by_clock.kind} (rates per hour are at the recording's mean of "
        f"{format_count(clock.rate)} units/s)"
    )


def peak_words(series: Series) -> tuple[str, ...]:
    """VmHWM, the peak RSS the kernel saw, samples or not: when it rose during the recording
    and stands well above every sample, bursts shorter than the interval grew unseen (16
    threads' bursts, trimmed between samples, took it from 1 to 98 MiB while RSS read 1–2 MiB
    and the verdict said nothing of it)."""
    hwm = series.get("hwm_bytes")
    if hwm is None:
        return ()
    peaks = hwm[~np.isnan(hwm)]
    top = float(np.nanmax(series.rss))
    bar = max(MIN_GROWTH_BYTES, PEAK_SHARE * top)
    if peaks.size < 2 or peaks[-1] - peaks[0] < bar or peaks[-1] - top < bar:
        return ()
    return (
        f"RSS peaked at {format_bytes(peaks[-1])} between samples (VmHWM, "
        f"{format_bytes(peaks[0])} at the first), {format_bytes(peaks[-1] - top)} above the "
        f"highest sample ({format_bytes(top)}): bursts shorter than the sampling interval, "
        "which the trend does not see (a shorter --interval catches more of them)",
    )


def counter_words(series: Series) -> tuple[str, ...]:
    """A work counter that went down cannot give growth per unit of work: say why it is missing
    (a gauge of frames a second had given "10.8 kB per unit of work")."""
    back = went_back(series)
    if not back:
        return ()
    return (
        f"the work counter went down {back:,} time{'s' if back > 1 else ''}: growth per unit of "
        "work needs a running total (frames so far, not frames a second), and a restart "
        "starts it again",
    )
