"""The verdict on a series, with its evidence: `judge`, the one entry point of the analysis."""

from __future__ import annotations

import numpy as np

from memsleuth.analysis.causes import backlog_queue, backlog_words, bounded_fill, in_slack
from memsleuth.analysis.evidence import (
    clock_words,
    counter_words,
    evidence_lines,
    fd_limit_words,
    peak_words,
)
from memsleuth.analysis.growth import Growth, read_growth
from memsleuth.analysis.outlook import more_time, time_to_limit, would_change
from memsleuth.analysis.pages import reclaimable_pages, unshared
from memsleuth.analysis.signals import (
    AtLimit,
    CountReading,
    LatencyReading,
    LiveReading,
    at_limit,
    is_degrading,
    is_fragmenting,
    read_count,
    read_cpu,
    read_latency,
    read_live,
)
from memsleuth.analysis.work import decides, read_by_work, recording_time, work_clock, work_rate
from memsleuth.model import PROBLEM_VERDICTS, Cause, Culprit, Series, Trend, Verdict, VerdictName
from memsleuth.units import format_bytes

# RSS that never fell by more than this between two samples never gave memory back (two pages:
# the kernel's accounting moves by a page or so on its own).
MONOTONE_SLACK_BYTES = 8192
# An fd count that climbed to the open-files limit and stays there is a leak stopped by the
# limit: as sure as any reading gets (the count is exact, the limit read from the kernel).
FULL_CONFIDENCE = 0.95


def judge(
    series: Series,
    *,
    limit_bytes: int | None = None,
    fd_limit: int | None = None,
    culprits: tuple[Culprit, ...] = (),
    measured: tuple[str, ...] = (),
    shared_bytes: float = 0.0,
    tree: bool = False,
    recycled: bool = False,
    memory_bytes: int | None = None,
) -> Verdict:
    """Judge a recording: what its memory (and threads, fds, latency) did, and why we think so.

    Pure: the series in, a Verdict out. Pass `limit_bytes` for the time to the limit (and
    `fd_limit`, the target's open-files limit, for an fd leak's), the
    probe's `culprits` to carry them into the verdict, and `measured`: evidence the series
    cannot show (the probe's malloc_trim test), added to the verdict's own. `shared_bytes`:
    what RSS counts more than once (a process tree's copy-on-write pages, RSS less PSS at the
    end), taken off the level the time to the limit starts from. `tree`: the columns sum a
    process tree (recorded with --children). `recycled`: the tree replaces its workers
    (processes.recycled_workers), so Python objects a worker keeps are not memory the tree
    holds for good (no `in-slack` leak). `memory_bytes`: what the machine has (RAM and swap),
    the limit a bounded cache's ceiling is held to when no other is known.
    """
    n = len(series)
    span = float(series.t[-1] - series.t[0]) if n else 0.0
    rss = series.get("rss_bytes")
    if rss is None:
        return Verdict(
            "inconclusive",
            0.0,
            ("no RSS samples were recorded",),
            limit_bytes=limit_bytes,
            would_change=("a recording with RSS samples",),
            culprits=culprits,
            samples=n,
            span_s=span,
        )
    by_clock = read_growth(series.t, rss)
    subject, metric, mapped = "RSS", "rss_bytes", None
    reclaimable = reclaimable_pages(series, by_clock)
    if reclaimable is not None:
        column, pages, mapped, subject = reclaimable
        rss, metric = rss - pages, f"rss_less_{column}"
        by_clock = read_growth(series.t, rss)
    clock = work_clock(series, rss)
    by_work = read_by_work(clock)
    # Judged against the work done, the reading's times are on the work clock (`worked`).
    worked = clock if decides(by_clock, by_work, clock) else None
    g = by_work if worked and by_work else by_clock
    threads = read_count(series, "threads")
    fds = read_count(series, "fds")
    full = at_limit(series, "fds", fd_limit)
    # Pending asyncio tasks (the probe) or a Go program's goroutines (its goroutine profile).
    tasks = read_count(series, "tasks") or read_count(series, "goroutines")
    latency = read_latency(series)
    fit = g.fit
    per_hour = fit.slope * 3600.0 if fit is not None else None
    live = None
    if g.kind == "leak" and fit is not None and per_hour is not None:
        live = read_live(series, recording_time(worked, fit.t0), per_hour)
    name, confidence = _name(g, threads, fds, tasks, latency, live, full)
    cap = limit_bytes if limit_bytes is not None else memory_bytes
    fill = bounded_fill(g, culprits, cap) if name == "leak" else None
    if fill is not None:
        name, confidence = "plateau", 0.6
    slack = in_slack(culprits) if name in ("stable", "step", "plateau") and not recycled else None
    if slack is not None:
        name, confidence = "leak", 0.7
    backlog = backlog_queue(culprits) if name == "leak" else None
    cow = unshared(series, tree) if name in ("stable", "step", "plateau") and not slack else None
    if cow is not None:
        name, confidence = "plateau", 0.6
    steps = np.diff(rss[~np.isnan(rss)])
    monotone = bool(steps.size) and float(steps.min()) > -MONOTONE_SLACK_BYTES

    if clock is not None and by_work is not None and by_work.fit is not None:
        per_work: float | None = by_work.fit.slope / clock.rate  # on the work clock: exact
    else:
        rate = work_rate(series, fit.t0) if fit is not None else None
        per_work = fit.slope / rate if fit is not None and rate else None
    more = more_time(g)
    lines = evidence_lines(g, name, threads, fds, tasks, latency, live, monotone, worked, subject)
    cpu = read_cpu(series) if name not in PROBLEM_VERDICTS else None
    if cpu is not None:
        lines.append(
            f"CPU use rose from {cpu.first:.0%} of a core to {cpu.last:.0%} (the recording's "
            "first quarter against its last) while memory did not grow: a garbage collector "
            "holding memory under a limit (Go's GOMEMLIMIT, a JVM's heap size) works harder "
            "as live data grows, and hides a leak that way; or the load rose"
        )
    fd_words = fd_limit_words(fds, full, fd_limit)
    fd_rate = fds.per_hour if fds is not None else None
    if full is not None:  # first; and at the limit the count is not "flat": it cannot grow
        lines = [*fd_words, *(ln for ln in lines if not ln.startswith(("fds flat", "fds not")))]
        fd_rate = fd_rate if fds is not None and fds.leaking else full.per_hour
    else:
        lines.extend(fd_words)
    t_judged, rss_judged = (worked.t, worked.rss) if worked else (series.t, rss)
    to_limit = (
        None if fill else time_to_limit(g, t_judged, rss_judged, limit_bytes, name, shared_bytes)
    )
    if fill is not None:
        changes: tuple[str, ...] = (
            f"growth past {format_bytes(fill[0])}",
            "an unbounded container growing",
        )
    elif cow is not None:
        changes = ("RSS itself growing: memory this process allocates, not copies",)
    else:
        changes = tuple(would_change(g, name, threads, fds, tasks, more, worked, subject))
        if slack is not None:
            changes = (f"{slack[2]} levelling off, or shrinking",)
        if backlog is not None:
            draining = f"{backlog.name} draining: its consumer catching up, or the load ending"
            changes = (draining, *changes)
    cause: Cause | None = None
    ceiling = g.ceiling if name == "plateau" else None
    if fill is not None:
        cause, ceiling = "bounded-fill", fill[0]
    elif backlog is not None:
        cause = "backlog"
    elif slack is not None:
        cause = "in-slack"
    elif cow is not None:
        cause, ceiling = "copy-on-write", cow.ceiling
    return Verdict(
        verdict=name,
        confidence=round(confidence, 3),
        evidence=(
            *((fill[1],) if fill else ()),
            # A backlog is what the growth is, and says so first; growing in memory already
            # held says why RSS does not show it yet.
            *((backlog_words(backlog),) if backlog else ()),
            *((slack[1],) if slack else ()),
            *((cow.why,) if cow else ()),
            *((mapped,) if mapped else ()),
            *lines,
            *((clock_words(by_clock, g, worked),) if worked else ()),
            *counter_words(series),
            *peak_words(series),
            *measured,
        ),
        growth_bytes_per_hour=slack[0] if slack else cow.per_hour if cow else per_hour,
        growth_ci_bytes_per_hour=None
        if slack or cow
        else (fit.lo * 3600.0, fit.hi * 3600.0)
        if fit
        else None,
        warmup_end_s=recording_time(worked, g.warmup_end_s) if g.warmup_end_s else None,
        ceiling_bytes=ceiling,
        time_to_limit_s=to_limit,
        limit_bytes=limit_bytes,
        more_time_s=more if name in ("inconclusive", g.kind) and not cow else None,
        would_change=changes,
        cause=cause,
        metric=slack[3] if slack else "uss_bytes" if cow else metric,
        # A line on the work clock is no line in time, nor one of RSS less mapped files on RSS
        # (drawn at 368 KB under a 270 MB line): not drawn.
        trend=Trend(fit.t0, fit.t1, fit.intercept, fit.slope)
        if fit and not worked and not mapped
        else None,
        growth_per_work=per_work,
        latency_ratio=latency.ratio if latency is not None else None,
        thread_growth_per_hour=threads.per_hour if threads is not None else None,
        fd_growth_per_hour=fd_rate,
        task_growth_per_hour=tasks.per_hour if tasks is not None else None,
        task_unit=tasks.name if tasks is not None else "tasks",
        culprits=culprits,
        samples=n,
        span_s=span,
    )


def _name(
    g: Growth,
    threads: CountReading | None,
    fds: CountReading | None,
    tasks: CountReading | None,
    latency: LatencyReading | None,
    live: LiveReading | None,
    full: AtLimit | None,
) -> tuple[VerdictName, float]:
    """The verdict's name: leaking handles first (they explain memory), then memory, then time."""
    if threads is not None and threads.leaking and threads.growth is not None:
        return "thread-leak", threads.growth.confidence
    if fds is not None and fds.leaking and fds.growth is not None:
        return "fd-leak", fds.growth.confidence
    if full is not None:  # stopped by its limit, not by a fix: "fds flat (300)" had read stable
        return "fd-leak", FULL_CONFIDENCE
    if tasks is not None and tasks.leaking and tasks.growth is not None:
        return "task-leak", tasks.growth.confidence
    if g.kind == "leak":
        return ("fragmentation" if is_fragmenting(live) else "leak"), g.confidence
    if g.kind != "inconclusive" and is_degrading(latency):
        return "degradation", 0.8
    return g.kind, g.confidence
