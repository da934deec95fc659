"""Judging a stored run: its series loaded with the columns the probe and recorder add, the
target's teardown and exec()s left out, and the verdict with the run's culprits."""

from __future__ import annotations

import math
import signal
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from memsleuth.columns import (
    with_descendants,
    with_goroutines,
    with_left_out,
    with_live_bytes,
    with_tasks,
)
from memsleuth.errors import MemsleuthError, UsageError
from memsleuth.model import Culprit, Run, Series, Verdict
from memsleuth.store import Store
from memsleuth.units import format_bytes, format_duration

if TYPE_CHECKING:  # analysis is imported when a run is judged, not with this module
    from memsleuth.analysis.steadiness import Event, Points

PROBE_PREFIXES = (
    "container:",
    "container_bytes:",
    "container_bound:",
    "container_queue:",
    "type:",
    "threads:",
    "tasks:",
    "fds:",
    "native:",
)


def probe_culprits(
    store: Store, run: Run, series: Series, events: list[Event], until_s: float | None = None
) -> tuple[Culprit, ...]:
    """The culprits the probe's readings name, from the run's start to `until_s` (all of it
    by default); `series` is the run's samples over the same span, `events` all its events."""
    from memsleuth.analysis.attribution import ProbeData, attribute
    from memsleuth.analysis.steadiness import floor_growth

    first = store.first_sample_time(run.id)
    t0 = first if first is not None else run.started_at
    end = math.inf if until_s is None else t0 + until_s
    points = {
        k: tuple(p for p in v if p[0] <= end)
        for k, v in store.load_points(run.id).items()
        if k.startswith(PROBE_PREFIXES)
    }
    rss = series.get("rss_bytes")
    data = ProbeData(
        points={k: v for k, v in points.items() if v},
        events=[e for e in events if e[0] <= end],
        t0=t0,
        rss_growth_bytes=None if rss is None else floor_growth(series.t, rss),
    )
    return attribute(data)


def how_it_ended(run: Run, meta: dict[str, Any]) -> str | None:
    """How a target memsleuth started failed: "killed by SIGKILL", "exited with status
    101"; None when it did not fail, or memsleuth stopped it. A signal is named only when the
    recorder saw one (`killed_by`): exit(255) had read "killed by signal 127"."""
    status = run.exit_status
    if not status or run.stopped_by_memsleuth:
        return None
    signum = meta.get("killed_by")
    if not isinstance(signum, int):
        return f"exited with status {status}"
    try:
        return f"killed by {signal.Signals(signum).name}"
    except ValueError:
        return f"killed by signal {signum}"


def _ended(run: Run, meta: dict[str, Any]) -> tuple[str, ...]:
    """How a target memsleuth started ended, when it failed: the verdict reads memory up to
    then (a stack overflow killed by SIGSEGV at 2.2 min had read only "limit reached in 4.3 h",
    the exit status on the report's header alone)."""
    how = how_it_ended(run, meta)
    if how is None:
        return ()
    if how.startswith("killed"):
        who = " (sent by the OOM killer, or by hand)" if how == "killed by SIGKILL" else ""
        how = f"was {how}{who}: exit status {run.exit_status}"
    return (f"the target {how}; the verdict reads its memory up to then",)


# A process frees its memory as it ends, and a tree's workers exit before their parent: the
# samples taken then read its teardown, not its life. Samples within this many sampling
# intervals (and a second at least) of the end that fell by TEARDOWN_SHARE of memory from the
# one before are left out: a leaking pre-fork tree whose workers exited 0.2 s before the end
# had read `plateau` ("levels off near 906 MiB … since it levelled: -700 GiB/h"), exit 0.
TEARDOWN_INTERVALS = 2
TEARDOWN_SHARE = 0.25


def _teardown(run: Run, t0: float | None, series: Series) -> tuple[Series, str] | None:
    """The series without the samples a target's ending took (TEARDOWN_SHARE), and the words
    that say so; None when the run has not ended or its last samples did not fall so."""
    from memsleuth.analysis.thresholds import MIN_SAMPLES

    if run.ended_at is None or t0 is None or len(series) <= MIN_SAMPLES:
        return None
    end = run.ended_at - t0
    window = max(TEARDOWN_INTERVALS * run.interval_s, 1.0)
    rss, k = series.rss, len(series)
    while (
        k > MIN_SAMPLES
        and series.t[k - 1] >= end - window
        and rss[k - 1] < (1.0 - TEARDOWN_SHARE) * rss[k - 2]
    ):
        k -= 1
    if k == len(series):
        return None
    # A fall like those the recording made before is the program's own (a sawtooth's drop in
    # the last second of a run memsleuth stopped had read "memory freed as it ended").
    with np.errstate(divide="ignore", invalid="ignore"):  # missed samples are NaN
        before = rss[1:k] / rss[: k - 1]
    before = before[np.isfinite(before)]
    if before.size and rss[k] / rss[k - 1] >= float(before.min()):
        return None
    left = len(series) - k
    what = "the last sample" if left == 1 else f"the last {left} samples"
    words = (
        f"{what}, taken as the target ended ({format_duration(end - series.t[k])} before), "
        f"fell to {format_bytes(rss[-1])} from {format_bytes(rss[k - 1])}: memory freed as it "
        "ended (or its workers exited), left out of the verdict"
    )
    return series.prefix(float(series.t[k - 1])), words


def judge_run(store: Store, run: Run, until_s: float | None = None) -> tuple[Series, Verdict]:
    """Load a run and judge it with its stored culprits: what analyze and report both show."""
    from memsleuth.analysis.profiles import HEAP_EVENT

    events = store.load_events(run.id)
    profiled = any(kind == HEAP_EVENT for _, kind, _ in events)
    series, verdict = _judge_run(store, run, events, until_s, profiled)
    traced = any(kind == "probe.allocations" for _, kind, _ in events)
    where = where_to_look(run, series, verdict, traced, profiled)
    return series, verdict if where is None else replace(
        verdict, evidence=(*verdict.evidence, where)
    )


def where_to_look(
    run: Run, series: Series, verdict: Verdict, traced: bool, profiled: bool = False
) -> str | None:
    """For a leak with no culprit, how to find one: a C relay's leak and a Go arena's had
    ended at "+3.72 GiB/h", no culprits, and nothing to do next. `traced`: the probe already
    traced allocations; `profiled`: the recording asked for heap profiles (then there is
    nothing more to suggest from either)."""
    from memsleuth.target import looks_like_python

    if verdict.verdict != "leak" or verdict.culprits or not run.command or profiled:
        return None
    if run.kind == "run" and not traced:
        # Memory the probe's census cannot reach (a threading.local's dicts, a ContextVar's
        # list) had left a leak with no culprit and no word.
        return (
            "no culprit named: no container the probe follows explains the growth; "
            "`memsleuth run --trace-allocations 60s` names the lines that allocate it"
        )
    if run.kind != "record":
        return None
    if looks_like_python(run.command):
        return (
            "no culprit named from outside: `memsleuth run` (the same command) names the "
            "containers and lines that grow inside a Python program"
        )
    profiles = (
        "a program that serves a pprof heap profile (Go's net/http/pprof, Rust's "
        "jemalloc_pprof) recorded with `--heap-profile URL` has the allocation sites that grow "
        "named; else a heap profiler (heaptrack, jemalloc's profiling) names the allocating stack"
    )
    if series.get("live_bytes") is None:
        return (
            "no culprit named from outside: `record --malloc-stats` tells what malloc holds "
            f"live from what it keeps free (a leak, or fragmentation); {profiles}"
        )
    return f"no culprit named from outside: {profiles}"


def _judge_run(
    store: Store, run: Run, events: list[Event], until_s: float | None, profiled: bool
) -> tuple[Series, Verdict]:
    from memsleuth.analysis.processes import recycled_workers
    from memsleuth.analysis.reclaim import gc_evidence, trim_evidence
    from memsleuth.analysis.verdict import judge
    from memsleuth.sources.procfs import CHILDREN_EVERY_S, machine_memory

    meta = store.run_meta(run.id)
    series = with_tasks(store, run, with_live_bytes(store, run, store.load_series(run.id)))
    series = with_goroutines(store, run, with_descendants(store, run, series))
    if meta.get("attached") is False and len(series) > 2:
        # A command memsleuth started is first sampled at its exec, half loaded: the loader's
        # memory, not the program's (a flat Python program, 7.2 MB then 14.4 MB for good, had
        # read `plateau`, "grows to a ceiling").
        series = series.since(float(series.t[1]))
    t0 = store.first_sample_time(run.id)
    ending = _teardown(run, t0, series)
    if ending is not None and (until_s is None or until_s >= float(series.t[-1])):
        series = ending[0]
    else:
        ending = None
    first = float(series.t[0]) if len(series) else None  # the first sample judged
    if until_s is not None:
        series = series.prefix(until_s)
    if len(series) == 0:
        # Bad usage only when --until asked for too little; a run that holds nothing is not.
        error = MemsleuthError if until_s is None else UsageError
        hint = "the target may have exited at once; record it again, or pick another run"
        if first is not None:  # it has samples, all after --until
            least = math.ceil(first * 1000) / 1000
            hint = f"its first sample judged is at {least:g} s: ask for --until {least:g}s or more"
        raise error(
            f"run {run.id} ({run.name}) has no samples"
            + ("" if until_s is None else f" in its first {until_s:g} s"),
            hint,
        )
    culprits = store.load_culprits(run.id) if until_s is None else ()
    if not culprits and any(kind == "probe.status" for _, kind, _ in events):
        # Named from the probe's readings now: while the target still runs (`run` stores
        # them when it exits), for a probe started from code (nothing stores them), and at
        # --until from what was known by then (it had shown the culprits at the run's end).
        culprits = probe_culprits(store, run, series, events, until_s)
    processes = _process_points(store, run, series, t0) if meta.get("children") else {}
    if processes and t0 is not None:
        culprits = (*culprits, *_process_culprits(processes, t0, series))
    said: tuple[str, ...] = ()
    if t0 is not None and profiled:  # record --heap-profile
        found, said = _profiles(store, run, series, events, t0)
        culprits = (*culprits, *found)
    span_from, span_until, exec_words = _program_span(store, run, events, series)

    def one_program(s: Series) -> Series:
        if span_until is not None:
            s = s.prefix(float(np.nextafter(span_until, -np.inf)))
        return s if span_from is None else s.since(span_from)

    shared = _shared_bytes(series) if meta.get("children") else 0.0
    # What the probe had seen by then (at --until, a later event was not known yet).
    end = None if until_s is None or t0 is None else t0 + float(series.t[-1])
    seen = [e for e in events if end is None or e[0] <= end]

    recycling = recycled_workers(processes) if processes else None

    def judged(s: Series) -> Verdict:
        v = judge(
            one_program(s),
            limit_bytes=run.limit_bytes,
            fd_limit=meta.get("fd_limit"),
            # Runs recorded before it was stored are held to this machine's.
            memory_bytes=meta.get("memory_bytes") or machine_memory(),
            culprits=culprits,
            measured=(
                *gc_evidence(seen, t0),
                *said,
                *(  # measured at exit: not known yet at --until
                    (*trim_evidence(events), *_ended(run, meta), *((ending[1],) if ending else ()))
                    if until_s is None
                    else ()
                ),
            ),
            shared_bytes=shared,
            tree=bool(meta.get("children")),
            recycled=recycling is not None,
        )
        return v if exec_words is None else replace(v, evidence=(exec_words, *v.evidence))

    verdict = judged(series)
    if recycling is not None and not verdict.is_problem:
        # Bounded, but only because the workers that leak are replaced.
        return series, replace(
            verdict, cause="recycled-workers", evidence=(recycling.words(), *verdict.evidence)
        )
    tree = None if verdict.is_problem or meta.get("children") else with_left_out(store, run, series)
    if tree is not None:
        # Recorded without --children, and the process's descendants are where memory grows
        # (a launcher script, a pre-fork master): judged with them, and said so.
        series_tree, count = tree
        whole = judged(series_tree)
        if whole.is_problem:
            what, their = ("process", "its") if count == 1 else (f"{count:,} processes", "their")
            words = (
                f"judged with the {what} pid {run.pid} started (recorded without --children: "
                f"{their} RSS, read every {format_duration(CHILDREN_EVERY_S)}, grew while its "
                f"own did not; alone it reads {verdict.verdict})"
            )
            return series_tree, replace(whole, evidence=(words, *whole.evidence))
    return series, verdict


def _profiles(
    store: Store, run: Run, series: Series, events: list[Event], t0: float
) -> tuple[list[Culprit], tuple[str, ...]]:
    """The allocation sites (and with Go, the goroutines' sites) the profiles name (`record
    --heap-profile`) and what they say of the heap, from what was read up to the series' end
    (at --until, what was known then)."""
    from memsleuth.analysis.profiles import (
        GOROUTINE_SITE,
        INUSE,
        SITE,
        profile_culprits,
        profile_evidence,
    )

    end = t0 + float(series.t[-1])
    points = {
        k: tuple(p for p in v if p[0] <= end)
        for prefix in (INUSE, SITE, GOROUTINE_SITE)
        for k, v in store.load_points(run.id, prefix).items()
    }
    seen = [e for e in events if e[0] <= end]
    known = {k: v for k, v in points.items() if v}
    return profile_culprits(known, seen, t0, series), profile_evidence(known, seen, t0, series)


def _shared_bytes(series: Series) -> float:
    """What a tree's summed RSS counts more than once: RSS less PSS at the last sample that
    read both (copy-on-write pages each worker maps)."""
    rss, pss = series.get("rss_bytes"), series.get("pss_bytes")
    if rss is None or pss is None:
        return 0.0
    both = np.nonzero(~np.isnan(rss) & ~np.isnan(pss))[0]
    return float(rss[both[-1]] - pss[both[-1]]) if both.size else 0.0


def _process_points(store: Store, run: Run, series: Series, t0: float | None) -> dict[str, Points]:
    """Each process's RSS points of a tree recorded with --children, up to the series' end
    (at --until, what was known then); `t0` is the run's first sample time."""
    from memsleuth.model import PROCESS_PREFIX

    if t0 is None or len(series) == 0:
        return {}
    end = t0 + float(series.t[-1])
    return {
        name: tuple(p for p in pts if p[0] <= end)
        for name, pts in store.load_points(run.id, PROCESS_PREFIX).items()
    }


def _process_culprits(points: dict[str, Points], t0: float, series: Series) -> tuple[Culprit, ...]:
    """The processes of a tree recorded with --children whose RSS grows (which worker)."""
    from memsleuth.analysis.processes import process_culprits
    from memsleuth.analysis.steadiness import floor_growth

    rss = series.get("rss_bytes")
    return process_culprits(points, t0, None if rss is None else floor_growth(series.t, rss))


def _program_span(
    store: Store, run: Run, events: list[Event], series: Series
) -> tuple[float | None, float | None, str | None]:
    """(from, until, words): the stretch of the run one program ran, when the target exec()ed
    (seconds from the first sample; None for either end of the run). The last program, unless
    it ran too briefly to judge: then the one before (a leak that ended in an exec of a short
    hook, or a script that re-execs itself, had been judged on its last 2 s, "inconclusive",
    exit 0). Before an exec, the pid held another program's memory: a launcher's 60 MiB peak
    had been "memory stood this high before and came down", and the leaking program it
    became read `plateau`, exit 0."""
    from memsleuth.analysis.thresholds import MIN_SAMPLES

    t0 = store.first_sample_time(run.id)
    if t0 is None or len(series) == 0:
        return None, None, None
    execs = [(t - t0, p) for t, kind, p in events if kind == "target.exec"]
    execs = [(t, p) for t, p in execs if t <= series.t[-1]]
    if not execs:
        return None, None, None
    edges = [-math.inf, *(t for t, _ in execs), math.inf]
    k = len(edges) - 2  # the last program's stretch, unless it is too short to judge
    while k > 0 and np.count_nonzero((series.t >= edges[k]) & (series.t < edges[k + 1])) < (
        MIN_SAMPLES
    ):
        k -= 1
    at, payload = execs[-1]
    became = payload.get("command") or payload.get("exe", "?")
    if k == len(edges) - 2:
        was = execs[-2][1].get("command") if len(execs) > 1 else payload.get("was")
        words = (
            f"pid {run.pid} became `{became}` (exec) at {format_duration(at)}: judged from "
            f"then (it ran `{was or '?'}` before)"
        )
        return at, None, words
    lo, hi = edges[k], edges[k + 1]
    words = (
        f"pid {run.pid} became `{became}` (exec) at {format_duration(at)}, too briefly to "
        f"judge: judged what it ran before, from {format_duration(max(lo, 0.0))} to "
        f"{format_duration(hi)}"
    )
    return (None if lo == -math.inf else lo), hi, words
