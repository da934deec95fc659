"""What lies ahead of a verdict: the time to the memory limit, how much longer to record, and
what would change it."""

from __future__ import annotations

import numpy as np

from memsleuth.analysis.evidence import memory_name
from memsleuth.analysis.growth import STILL_RISING, Growth
from memsleuth.analysis.signals import CountReading
from memsleuth.analysis.thresholds import MIN_GROWTH_BYTES, MIN_GROWTH_SIGMAS, MIN_SAMPLES
from memsleuth.analysis.work import WorkClock
from memsleuth.model import PROBLEM_VERDICTS, VerdictName
from memsleuth.units import format_bytes, format_count, format_duration, format_rate

# The time to the limit counts from the peaks: the trend now plus this quantile of how far
# the samples stood above the trend (a busy phase, a sawtooth's tops; not one spike).
PEAK_QUANTILE = 0.95


def time_to_limit(
    g: Growth,
    t: np.ndarray,
    rss: np.ndarray,
    limit_bytes: int | None,
    name: VerdictName,
    shared_bytes: float = 0.0,
) -> float | None:
    """Seconds until the limit at the current slope, from the peaks (OOM hits at peaks).

    The level the limit is measured from is the trend at the end plus how far the samples
    stood above the trend in the window (its PEAK_QUANTILE): a busy/idle cycle's busy level,
    a GC sawtooth's tops. The last samples alone had said 2,479 s instead of 1,950 s when a
    recording ended in an idle phase. Never for a step (it says memory holds after its jumps).
    For another verdict that is not a problem, only when the growth is significant (its 95%
    interval above zero): a cycle's flat-ish slope had ranked it "limit in 7.9 d"; and
    material (section 4's bars): "a steady rise, still under 384 KiB in all: too small to
    call yet" had been given a limit 45 days away, in one recording of three of a program
    whose memory did not grow."""
    fit = g.fit
    if limit_bytes is None or fit is None or fit.slope <= 0 or name == "stable":
        return None
    material = max(MIN_GROWTH_SIGMAS * g.sigma, MIN_GROWTH_BYTES)
    if name not in PROBLEM_VERDICTS and (fit.lo <= 0 or fit.growth < material):
        return None
    if name == "step":
        # "Memory jumped, then stayed flat: limit reached in 6.0 h" had been said: a step
        # says memory holds after its jumps; a slope since that is significant but no leak
        # is no time to a limit.
        return None
    if name == "plateau" and g.more_time_s is not None:
        # Still rising over too few bins since the rise to tell (STILL_RISING): "jumped, then
        # stayed flat: limit reached in 2.7 min" had been said from 5 s after a jump.
        return None
    if g.kind == "plateau" and g.ceiling is not None and g.ceiling < limit_bytes:
        return None  # it levels off below the limit: never
    ok = ~np.isnan(rss)
    t, rss = t[ok], rss[ok]
    window = t >= fit.t0
    above = rss[window] - (fit.intercept + fit.slope * (t[window] - fit.t0))
    peak = float(np.quantile(above, PEAK_QUANTILE)) if above.size else 0.0
    recent = rss[-max(1, g.binned.per_bin if g.binned else 1) :]
    now = max(float(fit.at(float(t[-1]))) + max(peak, 0.0), float(recent.max()))
    # A tree's shared pages count once against a limit (a cgroup's): a pre-fork server with
    # 300 MB shared by four workers had read "limit reached in 46 min" for a true 150.
    return max(0.0, (limit_bytes - (now - max(shared_bytes, 0.0))) / fit.slope)


def more_time(g: Growth) -> float | None:
    """How much longer to record: under a GC sawtooth at least one more period, since the
    floor it trends shows once a period ("3.6 s more" under a 5 s sawtooth was no answer)."""
    more, b = g.more_time_s, g.binned
    if more is None or b is None or b.sawtooth_period_s is None:
        return more
    return max(more, b.sawtooth_period_s)


def would_change(
    g: Growth,
    name: VerdictName,
    threads: CountReading | None,
    fds: CountReading | None,
    tasks: CountReading | None,
    more: float | None,
    clock: WorkClock | None,
    subject: str,
) -> list[str]:
    fit, what = g.fit, memory_name(g, subject)
    if fit is None:
        if more is not None:
            return [f"about {format_duration(more)} more of recording"]
        return [f"a recording of at least {MIN_SAMPLES} samples"]
    half = format_duration(max((fit.t1 - fit.t0) / 2, 1.0))
    if clock is not None:
        half = f"{format_count(clock.units(max((fit.t1 - fit.t0) / 2, 1.0)))} units of work"
    if STILL_RISING in g.notes and more is not None and name == g.kind:
        return [
            f"about {format_duration(more)} more of recording: a leak keeps rising, "
            "a warm-up's tail levels off"
        ]
    if name in ("leak", "fragmentation"):
        return [
            f"{what} staying flat {'over' if clock else 'for'} the next {half}",
            f"a fall back to {format_bytes(_began(g))} (where the growth began)",
        ]
    if name == "thread-leak" and threads is not None:
        return [f"the thread count returning to {threads.first:,.0f}"]
    if name == "fd-leak" and fds is not None:
        return [f"the fd count returning to {fds.first:,.0f}"]
    if name == "task-leak" and tasks is not None:
        what = "pending tasks" if tasks.name == "tasks" else tasks.name
        return [f"the {what} returning to {tasks.first:,.0f}"]
    if name == "degradation":
        return ["latency returning to its first values", "memory growing as latency does"]
    if name == "plateau":
        top = format_bytes(g.ceiling) if g.ceiling else "its ceiling"
        return [f"growth resuming above {top}"]
    if name == "step":
        return ["another jump, or a steady rise after the last one"]
    if name == "stable":
        if fit.hi <= 0:  # "faster than 0 B/h" said nothing
            return ["a sustained rise"]
        return [f"a sustained rise faster than {format_rate(fit.hi * 3600)}"]
    if more is not None and np.isfinite(more):
        return [f"about {format_duration(more)} more of recording at this slope"]
    return ["a longer recording"]


def _began(g: Growth) -> float:
    """Where the judged growth began: its line at the window's start, but never below the
    lowest level the bins held (a staircase's line, drawn back, had said "a fall back to
    -1.97 MiB")."""
    assert g.fit is not None
    start = g.fit.at(g.fit.t0)
    if g.binned is not None and g.binned.level.size:
        start = max(start, float(np.min(g.binned.level)))
    return start
