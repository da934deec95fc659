"""The verdict on a series, with its evidence: `judge`, the one entry point of the analysis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsleuth.analysis.growth import STILL_RISING, SWING_NOTE, Growth, read_growth
from memsleuth.analysis.history import WARMUP_RISE
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
from memsleuth.analysis.thresholds import (
    ALPHA_HINT,
    ALPHA_LEAK,
    MIN_GROWTH_BYTES,
    MIN_GROWTH_SIGMAS,
    MIN_SAMPLES,
    PAGE_BYTES,
)
from memsleuth.analysis.trend import bin_series, fit_trend, read_no_more, z_for
from memsleuth.analysis.work import (
    IDLE_SHARE,
    WorkClock,
    decides,
    read_by_work,
    went_back,
    work_clock,
    work_rate,
)
from memsleuth.model import (
    PROBLEM_VERDICTS,
    Cause,
    Culprit,
    FloatArray,
    Series,
    Trend,
    Verdict,
    VerdictName,
)
from memsleuth.units import (
    format_bytes,
    format_count,
    format_duration,
    format_estimate,
    format_per_hour,
    format_rate,
    format_ratio,
)

# RSS that never fell by more than this between two samples never gave memory back (two pages:
# the kernel's accounting moves by a page or so on its own).
MONOTONE_SLACK_BYTES = 8192
# A leak-shaped rise is a cache filling when containers that cannot hold more than a bound
# (an lru_cache's maxsize, a deque's maxlen, a queue's maxsize) carry at least this share of
# it, more than any unbounded container does, and their bound leaves memory under the limit.
BOUNDED_SHARE = 0.5
# A leak is a backlog when unbounded work queues carry more of its growth than all other
# containers together, and at least this share of it: what a queue's entries are estimated
# to hold is sampled, and seed 000's one queue measured 57-69% of RSS's growth from run to
# run (more than half had been asked, which a loaded machine came close to missing).
BACKLOG_SHARE = 0.25
# An fd count that climbed to the open-files limit and stays there is a leak stopped by the
# limit: as sure as any reading gets (the count is exact, the limit read from the kernel).
FULL_CONFIDENCE = 0.95
# An fd count that came this close to the open-files limit is said to have, leak or not.
NEAR_LIMIT = 0.9
# A leak whose growth is at least this share pages the kernel takes back when memory is short
# is judged without them: pages of mapped files (RssFile: a file read through mmap, a
# program's code paged in; clean ones are dropped, dirty ones written back), and pages freed
# with MADV_FREE (LazyFree). A C program reading a 400 MB file through mmap, its anonymous
# memory flat, had read "leak, +10.3 GiB/h, limit reached in 4.3 min"; one freeing every
# chunk with MADV_FREE, "leak +14.1 GiB/h" at 99%. Half: the pages then carry more of the
# growth than everything else.
MAPPED_SHARE = 0.5
# Copy-on-write: memory shared with another process (a parent after fork, its other workers)
# comes unshared as this one writes it, a page copied for each page written. The processes
# then hold that much more between them while neither's RSS moves: a pre-fork server's worker
# rewriting 192 MiB of its parent's state had read `stable`. Said when the private part of RSS
# (USS) rose, against RSS, by this share of RSS at least (and MIN_GROWTH_BYTES), gradually:
# sharers exiting make their pages private at once, a jump, and no memory is added then.
UNSHARED_SHARE = 0.05
# ... and only when those pages grow themselves, at this one-sided level (ALPHA_HINT): the
# claim is about their trend, and a claim made once per recording, not at every sample.
RECLAIMABLE_ALPHA = ALPHA_HINT
# The columns of such pages: (column, what they are, the judged memory's name).
RECLAIMABLE = (
    (
        "file_bytes",
        "pages of mapped files (a file read or written through mmap, code paged in)",
        "RSS less mapped files",
    ),
    (
        "lazyfree_bytes",
        "pages freed with MADV_FREE (an allocator returning memory lazily: jemalloc, mimalloc, "
        "Go before 1.16)",
        "RSS less lazily freed pages",
    ),
)
# The time to the limit counts from the peaks: the trend now plus this quantile of how far
# the samples stood above the trend (a busy phase, a sawtooth's tops; not one spike).
PEAK_QUANTILE = 0.95

LIVE = "memory in use (RSS less what malloc holds free)"
# Under fragmentation, memory in use growing by this share of RSS's growth or more is said to be
# data kept (a twentieth: beneath it, the allocator's own bookkeeping and rounding).
LIVE_KEPT_SHARE = 0.05


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
) -> Verdict:
    """Judge a recording: what its memory (and threads, fds, latency) did, and why we think so.

    Pure: the series in, a Verdict out. Pass `limit_bytes` for the time to the limit (and
    `fd_limit`, the target's open-files limit, for an fd leak's), the
    probe's `culprits` to carry them into the verdict, and `measured`: evidence the series
    cannot show (the probe's malloc_trim test), added to the verdict's own. `shared_bytes`:
    what RSS counts more than once (a process tree's copy-on-write pages, RSS less PSS at the
    end), taken off the level the time to the limit starts from. `tree`: the columns sum a
    process tree (recorded with --children). `recycled`: the tree replaces its workers
    (attribution.recycled_workers), so Python objects a worker keeps are not memory the tree
    holds for good (no `in-slack` leak).
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
    reclaimable = _reclaimable(series, by_clock)
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
    tasks = read_count(series, "tasks")
    latency = read_latency(series)
    fit = g.fit
    per_hour = fit.slope * 3600.0 if fit is not None else None
    live = None
    if g.kind == "leak" and fit is not None and per_hour is not None:
        live = read_live(series, _real(worked, fit.t0), per_hour)
    name, confidence = _name(g, threads, fds, tasks, latency, live, full)
    fill = _bounded_fill(g, culprits, limit_bytes) if name == "leak" else None
    if fill is not None:
        name, confidence = "plateau", 0.6
    slack = _in_slack(culprits) if name in ("stable", "step", "plateau") and not recycled else None
    if slack is not None:
        name, confidence = "leak", 0.7
    backlog = _backlog(culprits) if name == "leak" else None
    cow = _unshared(series, tree) if name in ("stable", "step", "plateau") and not slack else None
    if cow is not None:
        name, confidence = "plateau", 0.6
    steps = np.diff(rss[~np.isnan(rss)])
    monotone = bool(steps.size) and float(steps.min()) > -MONOTONE_SLACK_BYTES

    if clock is not None and by_work is not None and by_work.fit is not None:
        per_work: float | None = by_work.fit.slope / clock.rate  # on the work clock: exact
    else:
        rate = work_rate(series, fit.t0) if fit is not None else None
        per_work = fit.slope / rate if fit is not None and rate else None
    more = _more_time(g)
    lines = _evidence(g, name, threads, fds, tasks, latency, live, monotone, worked, subject)
    cpu = read_cpu(series) if name not in PROBLEM_VERDICTS else None
    if cpu is not None:
        lines.append(
            f"CPU use rose from {cpu.first:.0%} of a core to {cpu.last:.0%} (the recording's "
            "first quarter against its last) while memory did not grow: a garbage collector "
            "holding memory under a limit (Go's GOMEMLIMIT, a JVM's heap size) works harder "
            "as live data grows, and hides a leak that way; or the load rose"
        )
    fd_words = _fd_limit_words(fds, full, fd_limit)
    fd_rate = fds.per_hour if fds is not None else None
    if full is not None:  # first; and at the limit the count is not "flat": it cannot grow
        lines = [*fd_words, *(ln for ln in lines if not ln.startswith(("fds flat", "fds not")))]
        fd_rate = fd_rate if fds is not None and fds.leaking else full.per_hour
    else:
        lines.extend(fd_words)
    t_judged, rss_judged = (worked.t, worked.rss) if worked else (series.t, rss)
    to_limit = (
        None if fill else _time_to_limit(g, t_judged, rss_judged, limit_bytes, name, shared_bytes)
    )
    if fill is not None:
        changes: tuple[str, ...] = (
            f"growth past {format_bytes(fill[0])}",
            "an unbounded container growing",
        )
    elif cow is not None:
        changes = ("RSS itself growing: memory this process allocates, not copies",)
    else:
        changes = tuple(_would_change(g, name, threads, fds, tasks, more, worked, subject))
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
            *((_backlog_words(backlog),) if backlog else ()),
            *((slack[1],) if slack else ()),
            *((cow.why,) if cow else ()),
            *((mapped,) if mapped else ()),
            *lines,
            *((_clock_words(by_clock, g, worked),) if worked else ()),
            *_counter_words(series),
            *_peak_words(series),
            *measured,
        ),
        growth_bytes_per_hour=slack[0] if slack else cow.per_hour if cow else per_hour,
        growth_ci_bytes_per_hour=None
        if slack or cow
        else (fit.lo * 3600.0, fit.hi * 3600.0)
        if fit
        else None,
        warmup_end_s=_real(worked, g.warmup_end_s) if g.warmup_end_s else None,
        ceiling_bytes=ceiling,
        time_to_limit_s=to_limit,
        limit_bytes=limit_bytes,
        more_time_s=more if name in ("inconclusive", g.kind) and not cow else None,
        would_change=changes,
        cause=cause,
        metric="python_object_bytes" if slack else "uss_bytes" if cow else metric,
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
        culprits=culprits,
        samples=n,
        span_s=span,
    )


def _bounded_fill(
    g: Growth, culprits: tuple[Culprit, ...], limit_bytes: int | None
) -> tuple[float, str] | None:
    """(ceiling, why) when the growth is bounded containers still filling (BOUNDED_SHARE): the
    probe knows what the series cannot (an lru_cache of 30,000 pages a third full had read
    `leak`, and a bounded cache is never a leak). The ceiling adds what each still has room
    for, at its bytes per entry so far, to the level now."""
    fit = g.fit
    containers = [c for c in culprits if c.kind == "container" and c.points]
    # Only a container with room left can be what memory is still filling: a full one has
    # stopped (a full lru_cache had been "the growth" of a capped dict still growing at
    # 400 MiB/h, its ceiling the level of that moment).
    bounded = [c for c in containers if c.bound and not c.full]
    if fit is None or not bounded:
        return None
    share = sum(c.share for c in bounded)
    unbounded = max((c.share for c in containers if not c.bound), default=0.0)
    if share < BOUNDED_SHARE or unbounded >= share:
        return None
    room = 0.0
    for c in bounded:
        held = c.points[-1][1]
        per_entry = (c.bytes_estimate or 0.0) / held if held else 0.0
        room += max((c.bound or 0.0) - held, 0.0) * per_entry
    ceiling = float(fit.at(fit.t1)) + room
    if limit_bytes is not None and ceiling >= limit_bytes:
        return None  # full, it would pass the limit: still a problem, and said as a leak
    top = bounded[0]
    held = top.points[-1][1]
    what = "a queue filling to its bound" if top.queue else "a cache filling"
    why = (
        f"the growth is {top.name}, bounded at {top.bound:,.0f} entries and "
        f"{held / (top.bound or 1):.0%} full: {what}, not a leak; full, memory "
        f"levels off near {format_bytes(ceiling)}"
    )
    return ceiling, why


def _backlog(culprits: tuple[Culprit, ...]) -> Culprit | None:
    """The unbounded work queue the growth is a backlog in: queues carrying at least
    BACKLOG_SHARE of it, and more than all other containers together. Entries a consumer
    takes out and that still pile up are a producer outpacing its consumer (seed 000's slow
    client), not entries nobody removes: the fix is a bound or a faster consumer, not a
    missing delete."""
    containers = [c for c in culprits if c.kind == "container" and c.points]
    queues = [c for c in containers if c.queue and not c.bound]
    share = sum(c.share for c in queues)
    others = sum(c.share for c in containers) - share
    return queues[0] if queues and share >= BACKLOG_SHARE and share > others else None


def _in_slack(culprits: tuple[Culprit, ...]) -> tuple[float, str, str] | None:
    """(bytes per hour, why, the culprit's name) when Python objects grow without bound while
    RSS does not: the heap had room (memory freed elsewhere and reused, a buffer churned),
    and RSS grows once it is used. Registry.by_user gaining 850 MiB/h of entries inside a
    churned 16 MiB ctypes buffer had read `step`, exit 0, beside the probe's culprit at 100%.
    The growth must be material (MIN_GROWTH_BYTES), and the culprit the probe's steady one
    (still growing, not levelled off), not a bounded container."""
    # Still growing: its last third of the time added a sixth of its growth at least (a cache
    # that filled once, between flat stretches, and stopped 98 s before had read `leak`). And
    # still read: a container in a process that has exited holds nothing now (a recycled
    # pool's workers, each growing a dict until replaced, had read `leak`, exit 3).
    latest = max((c.points[-1][0] for c in culprits if c.points), default=0.0)
    growing = [
        c
        for c in culprits
        if c.kind in ("container", "type")
        and c.bound is None
        and c.bytes_estimate
        and len(c.points) >= 2
        and c.points[-1][1] > c.points[0][1] > 0
        and c.points[-1][0] > c.points[0][0]
        and _grows_lately(c.points)
        and not read_no_more(c.points, latest)
    ]
    if not growing:
        return None
    top = max(growing, key=lambda c: c.bytes_estimate or 0.0)
    (t0, first), (t1, last) = top.points[0], top.points[-1]
    per_entry = (top.bytes_estimate or 0.0) / last
    grown = (last - first) * per_entry
    if grown < MIN_GROWTH_BYTES:
        return None
    per_hour = grown / (t1 - t0) * 3600.0
    why = (
        f"{top.name} grows {format_rate(per_hour)} ({first:,.0f} → {last:,.0f} "
        f"{top.unit}, ~{format_bytes(top.bytes_estimate or 0.0)} retained) while RSS does "
        "not: Python objects fill memory the process already held (freed elsewhere and "
        "reused), and RSS grows once that room is used"
    )
    return per_hour, why, top.name


@dataclass(frozen=True, slots=True)
class Unshared:
    """Memory coming unshared (copy-on-write), read from USS against RSS."""

    per_hour: float  # the private part's rate now (0 once it levelled off)
    ceiling: float  # RSS: all of it private, the most USS can reach
    why: str


def _unshared(series: Series, tree: bool = False) -> Unshared | None:
    """Copy-on-write (UNSHARED_SHARE): USS less RSS, how much of RSS is shared, negated,
    read from its lowest point (most shared; a fork) at the samples that read USS (smaps_rollup,
    on a budget). A gradual rise there is pages copied as they are written; one jump, half the
    rise between two readings, is not, nor a rise while processes it had started exited
    (`descendants` falling: their pages became its own, and no memory was added).

    What the copies add: for one process, up to the rise (the others holding its pages are
    not read); for a tree, what its PSS sum rose by (each page counted once; its USS sum
    counts a page copied between two workers twice, as both copies become private)."""
    rss, uss = series.get("rss_bytes"), series.get("uss_bytes")
    if rss is None or uss is None:
        return None
    read = ~np.isnan(rss) & ~np.isnan(uss)
    if int(np.count_nonzero(read)) < MIN_SAMPLES:
        return None
    t, own, held = series.t[read], uss[read], rss[read]
    private = own - held
    low = int(np.argmin(private))
    rise = float(private[-1] - private[low])
    if t.size - low < MIN_SAMPLES or rise < max(MIN_GROWTH_BYTES, UNSHARED_SHARE * held[-1]):
        return None
    if own[-1] - own[low] < 0.5 * rise:  # RSS fell (shared pages dropped): nothing was added
        return None
    if float(np.max(np.diff(private[low:]))) >= 0.5 * rise:  # at once, between two readings
        return None
    others = series.get("descendants")
    if others is not None:  # processes it had started exited meanwhile: their pages, not copies
        since = others[(series.t >= t[low]) & ~np.isnan(others)]
        if since.size and bool(np.any(np.diff(since) < 0)):
            return None
    g = read_growth(t[low:], private[low:])
    if g.kind not in ("leak", "plateau"):
        return None
    pss = series.get("pss_bytes")
    both = pss[read] if tree and pss is not None else None
    if both is not None and not (np.isnan(both[low]) or np.isnan(both[-1])):
        added = (
            f"the tree holds {format_bytes(max(float(both[-1] - both[low]), 0.0))} more (its "
            "PSS, each page counted once)"
        )
    else:
        added = f"together they hold up to {format_bytes(rise)} more"
    subject = "the tree's private memory (USS, summed)" if tree else "private memory (USS)"
    shared = max(float(-private[-1]), 0.0)
    still = (
        f"{format_bytes(shared)} of it still shared"
        if shared >= MIN_GROWTH_BYTES
        else "all of it private now"
    )
    why = (
        f"{subject} grew {format_bytes(rise)} in the "
        f"{format_duration(t[-1] - t[low])} since it was most shared "
        f"({format_bytes(own[low])} → {format_bytes(own[-1])}) while RSS stayed "
        f"near {format_bytes(held[-1])}: pages it shares with another process (its parent or "
        "workers after fork) are copied as either of them writes to them (copy-on-write), so "
        f"{added}, which no RSS shows. It stops at RSS "
        f"({still}); in Python, reference counts write to every object read, and gc.freeze() "
        "before fork spares what the collector writes"
    )
    rate = g.fit.slope * 3600.0 if g.kind == "leak" and g.fit is not None else 0.0
    return Unshared(rate, float(held[-1]), why)


def _grows_lately(points: tuple[tuple[float, float], ...]) -> bool:
    """Whether the last third of the points' time added a sixth of their whole growth."""
    t = np.array([p[0] for p in points])
    v = np.array([p[1] for p in points])
    cut = t[0] + 2.0 * (t[-1] - t[0]) / 3.0
    before = float(np.interp(cut, t, v))
    return bool(v[-1] - before >= (v[-1] - v[0]) / 6.0)


def _backlog_words(queue: Culprit) -> str:
    return (
        f"the growth is a backlog in {queue.name}: work is put in faster than it is taken "
        "out (a slow consumer), for as long as the load lasts; a bound (maxsize, or "
        "memsleuth.guards' bounded queues with a drop policy) would hold it there"
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


def _fd_limit_words(
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


def _span(levels: tuple[float, ...]) -> str:
    """ "12" or "9–14": the range of counts a column fell back to ("1–1" had been said)."""
    lo, hi = min(levels), max(levels)
    return f"{lo:,.0f}" if round(lo) == round(hi) else f"{lo:,.0f}–{hi:,.0f}"


def _reclaimable(series: Series, g: Growth) -> tuple[str, FloatArray, str, str] | None:
    """(column, its pages at every sample, why, the judged memory's name) when a leak of RSS is
    judged without pages the kernel reclaims (RECLAIMABLE), because they carry at least
    MAPPED_SHARE of its growth over the trended window; None otherwise. A column read on a
    budget (LazyFree, from smaps_rollup) is drawn in a line between its readings, and memory
    is judged up to the last of them."""
    if g.kind != "leak" or g.fit is None or g.fit.slope <= 0:
        return None
    for column, what, subject in RECLAIMABLE:
        pages = series.get(column)
        if pages is None:
            continue
        read = ~np.isnan(pages)
        k = (series.t >= g.fit.t0) & read
        if np.count_nonzero(k) < MIN_SAMPLES:
            continue
        # The pages' own trend, as memory's is read (bins, Theil–Sen, Mann–Kendall): a column
        # that swings (memory freed lazily and reused every cycle) has no slope to give, where
        # a least-squares line through its swings had called 54% of a malloc leak lazily freed.
        binned = bin_series(series.t[k], pages[k], resolution=PAGE_BYTES)
        own = fit_trend(binned.t, binned.median, resolution=PAGE_BYTES)
        if own is None or own.p_up > RECLAIMABLE_ALPHA:
            continue
        share = own.slope / g.fit.slope
        if share < MAPPED_SHARE:
            continue
        why = (
            f"RSS grew {format_rate(g.fit.slope * 3600)}, {min(share, 1.0):.0%} of it {what}, "
            "which the kernel takes back when memory is short: judged without them"
        )
        # Between readings, in a line; outside them, unknown (held flat past the last one, the
        # RSS it had not taken out yet read as growth at the recording's end).
        t_read = series.t[read]
        every = np.interp(series.t, t_read, pages[read])
        every[(series.t < t_read[0]) | (series.t > t_read[-1])] = np.nan
        return column, np.asarray(every, dtype=np.float64), why, subject
    return None


def _what(g: Growth, subject: str = "RSS") -> str:
    return f"{subject} floor (its lows between falls)" if g.uses_floor else subject


def _evidence(
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
            f"{_what(g, subject)} rose to {format_bytes(peak)} at "
            f"{format_duration(_real(clock, when))} and came back "
            f"down to {format_bytes(now)}: memory held for a while and given back (a backlog "
            "that drained, a batch that ended), not a leak"
        )
    out.extend(g.notes)
    if g.warmup_end_s:
        warmup = format_duration(_real(clock, g.warmup_end_s))
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
            start = format_duration(_real(clock, g.fit.t0))
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
    for c, unit in ((threads, "threads"), (fds, "fds"), (tasks, "tasks")):
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
    handle = {"thread-leak": "threads", "fd-leak": "fds", "task-leak": "tasks"}.get(name)
    if handle is not None:
        # The count that names the verdict comes first: a thread leak's evidence had opened
        # with "RSS grew and levels off near 16.5 MiB".
        out.sort(key=lambda line: not line.startswith(f"{handle} grew from"))
    return [s for s in out if s]


def _memory_sentence(g: Growth, clock: WorkClock | None = None, subject: str = "RSS") -> str:
    """What memory did over the window, in time, or in units of work when it was read on the
    work clock."""
    fit, what = g.fit, _what(g, subject)
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
            f"{format_bytes(j.size, signed=True)} at {format_duration(_real(clock, j.t))}"
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


def _real(clock: WorkClock | None, t: float) -> float:
    """A time of the reading as a time of the recording (they differ on the work clock)."""
    return clock.real_time(t) if clock else t


def _clock_words(by_clock: Growth, by_work: Growth, clock: WorkClock) -> str:
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


# A leak is said to slow down when its recent half's rate is, at 95%, under this share of its
# window's, and not to when it is, at 95%, over it.
SLOWING = 0.5

# The peak between samples is worth saying when it rose by this share of the highest sample
# (and by the material bar) and stands that far above it.
PEAK_SHARE = 0.25


def _peak_words(series: Series) -> tuple[str, ...]:
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


def _counter_words(series: Series) -> tuple[str, ...]:
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


def _would_change(
    g: Growth,
    name: VerdictName,
    threads: CountReading | None,
    fds: CountReading | None,
    tasks: CountReading | None,
    more: float | None,
    clock: WorkClock | None,
    subject: str,
) -> list[str]:
    fit, what = g.fit, _what(g, subject)
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
        return [f"the pending tasks returning to {tasks.first:,.0f}"]
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


def _more_time(g: Growth) -> float | None:
    """How much longer to record: under a GC sawtooth at least one more period, since the
    floor it trends shows once a period ("3.6 s more" under a 5 s sawtooth was no answer)."""
    more, b = g.more_time_s, g.binned
    if more is None or b is None or b.sawtooth_period_s is None:
        return more
    return max(more, b.sawtooth_period_s)


def _per_thread(g: Growth, threads: CountReading) -> float | None:
    fit = g.fit
    if fit is None or fit.slope <= 0 or threads.per_hour <= 0:
        return None
    return float(fit.slope * 3600.0 / threads.per_hour)


def _time_to_limit(
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
