"""The fleet scan: list the series, fetch them in batches with bounded concurrency, judge each.

A batch that fails (timeout, HTTP error, malformed answer) is reported and the scan goes on.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

import numpy as np

from memsleuth.errors import SourceError
from memsleuth.fleet.judging import (
    MIN_LIFE_POINTS,
    FleetEntry,
    Judge,
    Labels,
    confirm_on_floor,
    is_gone,
    judge_all,
    judge_series,
    rank,
)
from memsleuth.fleet.promql import (
    BASE_STEP_S,
    FLOOR,
    JUDGE_POINTS,
    LATEST,
    MEAN,
    RAW_POINTS,
    exact_selector,
    matchers,
    parse_selector,
    plan_batches,
    plan_step,
    step_expr,
)
from memsleuth.model import FloatArray, Series, Verdict
from memsleuth.sources.prometheus import PrometheusClient, RangeSeries

# What other modules and the tests import from here; what moved to fleet/promql.py is
# re-exported, so callers need not know where it lives.
__all__ = [
    "BASE_STEP_S",
    "FLOOR",
    "GIVE_UP_AFTER",
    "JOBS_MAX",
    "JUDGE_POINTS",
    "LATEST",
    "LIVES_AGAIN",
    "MAX_NAN_SHARE",
    "MEAN",
    "PARALLEL_FROM",
    "PEAK_STEPS",
    "RAW_FLOOR_S",
    "RAW_POINTS",
    "START_JITTER_S",
    "START_TIME",
    "BatchFailure",
    "ScanResult",
    "ScanSpec",
    "default_judge",
    "exact_selector",
    "matchers",
    "parse_selector",
    "plan_batches",
    "plan_jobs",
    "plan_step",
    "restart_times",
    "scan",
    "step_expr",
]

# The least window a raw range's floors are taken over (with_floors): Prometheus' lookback, as
# long as a scrape interval is likely to be.
RAW_FLOOR_S = 300.0
# A restarting series' last lives fetched again (with_lives): this many times its mean life.
LIVES_AGAIN = 2.5
# The step peaks a problem's time to the limit is taken from (with_peaks): the median of the
# last so many, as the level it stands at is its last step means'.
PEAK_STEPS = 3
# What every Prometheus client library exports beside process_resident_memory_bytes: when the
# process started. Asked for at both ends of the range, once a batch (fetch_restarts).
START_TIME = "process_start_time_seconds"
# A start time that moves by this little is the same process: client libraries derive it from
# the boot time, which the kernel reports to the second and may adjust (a restart moves it on
# by the whole previous life).
START_JITTER_S = 10.0
# Batches failing one after another (timeouts, refused connections) before the scan stops
# asking: at the defaults a stuck server would otherwise hold the scan for hours.
GIVE_UP_AFTER = 3
# A series whose step means are NaN for more than this share is fetched again without its NaN
# samples (a cheap second query for the few series that need it).
MAX_NAN_SHARE = 0.1

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScanSpec:
    """What to scan: a PromQL expression over [start, end] at `step_s`."""

    query: str
    start: float
    end: float
    step_s: float
    batch_size: int = 200  # series per query_range call
    concurrency: int = 2  # query_range calls in flight
    limit_bytes: int | None = None
    # True: each point is the mean of the raw samples in its step (see plan_step); False:
    # the query's value at each step, as query_range gives it.
    aggregate: bool = False
    # Processes judging the series: 0 picks (one for a small scan, else up to JOBS_MAX by
    # CPU count); 1 judges in the calling thread.
    jobs: int = 0


# Judging processes start in ~0.4 s (numpy, scipy): worth it from this many series (at
# 1,000 on 2 cores they made the scan 0.27 s slower; at 10,000, 1.4 s faster).
PARALLEL_FROM = 3000
JOBS_MAX = 8


def plan_jobs(jobs: int, series: int) -> int:
    if jobs > 0:
        return jobs
    if series < PARALLEL_FROM:
        return 1
    return max(1, min(JOBS_MAX, os.cpu_count() or 1))


def _nan_share(values: FloatArray) -> float:
    return float(np.isnan(values).mean()) if values.size else 0.0


def _key(labels: Labels) -> Labels:
    """Labels without the metric name: how a series finds its process' start times."""
    return tuple(kv for kv in labels if kv[0] != "__name__")


def restart_times(series: Sequence[RangeSeries]) -> dict[Labels, FloatArray]:
    """When each process restarted: the times at which its start time moved on by more than
    START_JITTER_S, by its labels without the name (each change is seen with the same scrape
    as the new life's memory)."""
    out: dict[Labels, FloatArray] = {}
    for s in series:
        keep = np.isfinite(s.values)
        t, v = s.t[keep], s.values[keep]
        out[_key(s.labels)] = t[1:][np.diff(v) > START_JITTER_S]
    return out


def _with_name(series: list[RangeSeries], name: str) -> list[RangeSeries]:
    """Put back the metric name that `*_over_time` dropped, so labels match the listing."""
    out = []
    for s in series:
        labels = tuple(sorted(dict(s.labels, __name__=name).items()))
        out.append(RangeSeries(labels, s.t, s.values))
    return out


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """A batch that could not be fetched: the scan reports it and goes on."""

    index: int
    series: int  # how many series it held (0 when unknown)
    message: str
    hint: str


@dataclass(frozen=True)
class ScanResult:
    """Ranked entries (worst first), the failed batches, and where the time went."""

    entries: list[FleetEntry]
    failures: tuple[BatchFailure, ...]
    batches: int
    listed: int  # series the listing found (0 when the query is not a plain selector)
    timings: dict[str, float] = field(default_factory=dict)
    spec: ScanSpec | None = None  # what was fetched (a nameless selector is not aggregated)
    # What could not be asked beside the series ("could not ask for their step floors (HTTP 503
    # …): the problems' verdicts stand as first judged"), and in how many batches.
    unrefined: dict[str, int] = field(default_factory=dict)

    @property
    def judged(self) -> list[FleetEntry]:
        return [e for e in self.entries if e.verdict is not None]

    def counts(self) -> Counter[str]:
        return Counter(e.verdict.verdict for e in self.judged if e.verdict is not None)


class _Judging:
    """One batch being judged: by judging processes (a chunk per job), or already judged."""

    def __init__(
        self,
        series: list[RangeSeries],
        futures: Sequence[Future[list[FleetEntry]]] = (),
        entries: list[FleetEntry] | None = None,
    ) -> None:
        self.series = series
        self.futures = futures
        self.entries = entries

    @classmethod
    def in_processes(
        cls,
        procs: ProcessPoolExecutor,
        series: list[RangeSeries],
        jobs: int,
        spec: ScanSpec,
        basis: str,
        restarts: dict[Labels, FloatArray],
    ) -> _Judging:
        items = [(s.labels, s.t, s.values, restarts.get(s.labels)) for s in series]
        size = max(1, math.ceil(len(items) / jobs))
        futures = [
            procs.submit(
                judge_all,
                items[k : k + size],
                step_s=spec.step_s,
                limit_bytes=spec.limit_bytes,
                basis=basis,
            )
            for k in range(0, len(items), size)
        ]
        return cls(series, futures)

    def ready(self) -> bool:
        return self.entries is not None or all(f.done() for f in self.futures)

    def result(self) -> list[FleetEntry]:
        if self.entries is None:
            self.entries = [e for f in self.futures for e in f.result()]
        return self.entries


def _judging_context() -> multiprocessing.context.BaseContext:
    """Judging processes are forked from a fork server that imported the verdict code once:
    a clean process (this one has fetching threads, which plain fork must not copy), and
    each judging process starts in milliseconds instead of importing numpy and scipy anew
    (~0.5 s of CPU each)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["memsleuth.fleet.judging", "memsleuth.analysis.verdict"])
    return ctx


def scan(
    client: PrometheusClient,
    spec: ScanSpec,
    *,
    judge: Judge | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Scan every series of `spec.query`; raises SourceError only when the listing fails."""
    custom_judge = judge
    if judge is None:
        judge = default_judge(spec.limit_bytes)
    if spec.aggregate and step_expr(MEAN, spec.query, spec.step_s) is None:
        log.info("%r has no metric name: fetched at %g s, not aggregated", spec.query, BASE_STEP_S)
        spec = replace(spec, step_s=BASE_STEP_S, aggregate=False)
    parsed = parse_selector(spec.query)
    name = parsed[0] if parsed else ""
    started = time.perf_counter()
    listed: list[Labels] = []
    selector = parse_selector(spec.query)
    if selector is not None:
        listed = client.series(spec.query, spec.start, spec.end)
        if not listed:
            raise SourceError(
                f"no series match {spec.query!r} between the start and end of the range",
                "check the metric name with the Prometheus UI; widen --range or move --end",
            )
    batches = plan_batches(spec.query, listed, spec.batch_size)
    total = len(listed) or len(batches)
    judge_s = 0.0
    entries: list[FleetEntry] = []
    failures: list[BatchFailure] = []
    unrefined: Counter[str] = Counter()  # what could not be asked, why, and so what -> batches
    unrefined_lock = threading.Lock()  # the fetching threads add to it too
    done = 0

    def fetch(template: str, query: str, window_s: float | None = None) -> list[RangeSeries]:
        expr = step_expr(template, query, spec.step_s, window_s)
        assert expr is not None  # checked above
        series = client.query_range(expr, spec.start, spec.end, spec.step_s)
        return _with_name(series, name) if name else series

    def judged(series: list[RangeSeries], basis: str) -> list[FleetEntry]:
        nonlocal judge_s
        t0 = time.perf_counter()
        out = [
            judge_series(
                s.labels,
                s.t,
                s.values,
                step_s=spec.step_s,
                judge=judge,
                basis=basis,
                restarts=restarts.get(s.labels),
            )
            for s in series
        ]
        judge_s += time.perf_counter() - t0
        return out

    # Restart times by series labels: filled by the fetching threads, read by this one.
    restarts: dict[Labels, FloatArray] = {}

    def fetch_batch(query: str) -> list[RangeSeries]:
        if not spec.aggregate:
            got = client.query_range(query, spec.start, spec.end, spec.step_s)
        else:
            got = fetch(MEAN, query)
            if name:
                got = [finite_means(s) if _nan_share(s.values) > MAX_NAN_SHARE else s for s in got]
            elif any(_nan_share(s.values) > MAX_NAN_SHARE for s in got):
                # An expression's series cannot be selected one by one: the whole expression
                # again, its NaN samples dropped (`(e) == (e)`), for the series that need it.
                again = {r.labels: r for r in fetch(MEAN, f"({query}) == ({query})")}
                got = [
                    again.get(s.labels, s) if _nan_share(s.values) > MAX_NAN_SHARE else s
                    for s in got
                ]
        if name and name != START_TIME:
            restarts.update(fetch_restarts(query, got))
        return got

    def fetch_restarts(query: str, got: list[RangeSeries]) -> dict[Labels, FloatArray]:
        # A fall back to the first level is a restart or a flush: the start times tell. Asked
        # at the range's two ends (instant queries read one sample a series); the whole range
        # only for the series whose start time moved. A series without start times (another
        # metric, a server that fails to answer) is left to its falls.
        parsed = parse_selector(query)
        if parsed is None or not got:
            return {}
        sel = f"{START_TIME}{{{parsed[1]}}}"
        try:
            last = {_key(k): v for k, v in client.query(sel, spec.end)}
            if not last:
                return {}
            first = {_key(k): v for k, v in client.query(sel, spec.start)}
            out: dict[Labels, FloatArray] = {}
            moved = []
            for s in got:
                key = _key(s.labels)
                if key not in last:
                    continue
                if key in first and abs(last[key] - first[key]) <= START_JITTER_S:
                    out[s.labels] = np.empty(0)  # one life over the whole range
                else:
                    moved.append(s)
            if moved:
                expr = step_expr(LATEST, sel, spec.step_s) if spec.aggregate else sel
                assert expr is not None
                known = restart_times(client.query_range(expr, spec.start, spec.end, spec.step_s))
                out.update((s.labels, known[k]) for s in moved if (k := _key(s.labels)) in known)
        except SourceError as exc:
            # Said, not only logged: without them a leak restarted every 6 h had turned
            # `stable` in silence.
            with unrefined_lock:
                unrefined[
                    f"could not ask for start times ({exc.message}): restarts are told by "
                    "falls alone"
                ] += 1
            return {}
        return out

    def finite_means(s: RangeSeries) -> RangeSeries:
        # One NaN sample makes its step's mean NaN: a series that exports NaN now and then
        # loses most of its means. `x == x` drops NaN samples before they are averaged.
        sel = exact_selector(name, s.labels)
        again = [r for r in fetch(MEAN, f"{sel} == {sel}") if r.labels == s.labels]
        return again[0] if again else s

    def with_floors(query: str, out: list[FleetEntry]) -> list[FleetEntry]:
        # Raw ranges too: a sample a step lands anywhere on a sawtooth faster than the step,
        # and its lows between falls rise as the peaks grow. 5- and 12-minute sawtooths scraped
        # every 15 s, floors flat and peaks growing 3 MiB/h, had read `leak` at 0.99 over a
        # day, `stable` over two (aggregated, confirmed on its floors). A raw step's floor is
        # the least sample of the last RAW_FLOOR_S (a twentieth of the range at most, which it
        # would flatten): a 60 s window holds one sample of a 2-minute scrape, or none.
        if step_expr(FLOOR, query, spec.step_s) is None:
            return out
        span = spec.end - spec.start
        window = None if spec.aggregate else max(spec.step_s, min(RAW_FLOOR_S, span / 20))
        problems = [e for e in out if e.verdict is not None and e.verdict.is_problem]
        if not problems:
            return out
        # Few series are problems: fetch their floors one by one (a plain selector), or the
        # whole expression's floors once (its series cannot be selected by their labels).
        if name:
            floors = [
                s
                for e in problems
                for s in fetch(FLOOR, exact_selector(name, e.labels), window)
                if s.labels == e.labels
            ]
        else:
            want = {e.labels for e in problems}
            floors = [s for s in fetch(FLOOR, query, window) if s.labels in want]
        by_labels = {e.labels: e for e in judged(floors, "floor")}
        return [
            confirm_on_floor(e, by_labels[e.labels]) if e.labels in by_labels else e for e in out
        ]

    def with_lives(out: list[FleetEntry]) -> list[FleetEntry]:
        # A process restarted every few hours has lives of a few step means in a long range
        # (a 7-day scan: 84-minute steps, 4 to a 6-hour life), too few to judge a life: its
        # last lives are fetched again at steps that give each MIN_LIFE_POINTS and more. A
        # leak restarted every 6 h had read `inconclusive` over 7 days, `leak` over one.
        if not spec.aggregate or not name:
            return out
        redone = {}
        for e in out:
            lives = e.restarts + 1
            life_s = (e.end_s - e.start_s) / lives
            if e.verdict is None or e.verdict.is_problem or e.restarts < 2:
                continue
            if life_s >= MIN_LIFE_POINTS * spec.step_s:
                continue
            start = max(spec.start, spec.end - LIVES_AGAIN * life_s)
            # Whole minutes, about two points a verdict bin.
            minutes = math.ceil((spec.end - start) / BASE_STEP_S / (2 * JUDGE_POINTS))
            step = max(1, minutes) * BASE_STEP_S
            expr = step_expr(MEAN, exact_selector(name, e.labels), step)
            assert expr is not None  # a selector with a metric name
            got = client.query_range(expr, start, spec.end, step)
            again = [r for r in _with_name(got, name) if r.labels == e.labels]
            if not again:
                continue
            one = again[0]
            new = judge_series(
                e.labels, one.t, one.values, step_s=step, judge=judge, basis="mean",
                restarts=restarts.get(e.labels),
            )  # fmt: skip
            if new.verdict is not None and new.verdict.is_problem:
                redone[e.labels] = replace(
                    e,
                    verdict=new.verdict,
                    segment_start_s=new.segment_start_s,
                    segment_end_s=new.segment_end_s,
                )
        return [redone.get(e.labels, e) for e in out]

    def with_peaks(out: list[FleetEntry]) -> list[FleetEntry]:
        # A step's mean lies under the peaks a sawtooth faster than the step reaches, and the
        # limit is hit at a peak: a leak sawing 200 MiB above its mean had been given 13 h to
        # a 4 GiB limit its peaks reach in 6.8. The time to the limit is taken from the step
        # peaks now (the median of the last PEAK_STEPS), for the problems that have one.
        if not spec.aggregate or not name or spec.limit_bytes is None:
            return out
        redone = {}
        for e in out:
            v = e.verdict
            if v is None or not v.is_problem or v.time_to_limit_s is None or e.gone:
                continue
            rate = (v.growth_bytes_per_hour or 0.0) / 3600
            if rate <= 0 or not math.isfinite(e.last_bytes):
                continue
            got = fetch(LATEST, exact_selector(name, e.labels))
            peaks = [r.values[-PEAK_STEPS:] for r in got if r.labels == e.labels]
            if not peaks or not np.isfinite(peaks[0]).any():
                continue
            above = float(np.nanmedian(peaks[0])) - e.last_bytes
            if above > 0:
                ttl = max(0.0, v.time_to_limit_s - above / rate)
                redone[e.labels] = replace(e, verdict=replace(v, time_to_limit_s=ttl))
        return [redone.get(e.labels, e) for e in out]

    basis = "mean" if spec.aggregate else "value"
    jobs = plan_jobs(spec.jobs, total) if custom_judge is None else 1
    procs = ProcessPoolExecutor(jobs, mp_context=_judging_context()) if jobs > 1 else None

    broken = False  # a judging process died: the pool is unusable, judge here from now on

    def give_up_on_processes(exc: BaseException) -> None:
        nonlocal broken
        if not broken:
            log.warning("judging processes failed (%s): judging in this process", exc)
        broken = True

    def start_judging(series: list[RangeSeries]) -> _Judging:
        if procs is not None and not broken:
            try:
                return _Judging.in_processes(procs, series, jobs, spec, basis, restarts)
            except (BrokenProcessPool, RuntimeError) as exc:
                give_up_on_processes(exc)
        return _Judging(series, entries=judged(series, basis))

    def finish(i: int, query: str, n: int, judging: _Judging) -> None:
        nonlocal judge_s
        t0 = time.perf_counter()
        try:
            got = judging.result()
        except BrokenProcessPool as exc:  # a worker died (the OOM killer): judge it here
            give_up_on_processes(exc)
            got = judged(judging.series, basis)
        judge_s += time.perf_counter() - t0
        # What is asked after the verdicts only refines them: one that fails leaves the batch's
        # verdicts as they were, said once a reason. A failed floor query had thrown the whole
        # batch away, its leaks with it ("the 180 judged show no problem").
        refining = (
            ("their step floors", lambda g: with_floors(query, g)),
            ("their last lives at finer steps", with_lives),
            ("their step peaks for the time to the limit", with_peaks),
        )
        for what, refine in refining:
            try:
                got = refine(got)
            except SourceError as exc:
                with unrefined_lock:
                    unrefined[
                        f"could not ask for {what} ({exc.message}): the problems' verdicts "
                        "stand as first judged"
                    ] += 1
        entries.extend(got)
        advance(n)

    def advance(n: int) -> None:
        nonlocal done
        done += n if listed else 1
        if progress is not None:
            progress(done, total)

    def fail(i: int, n: int, exc: SourceError) -> None:
        log.info("batch %d of %d failed: %s", i + 1, len(batches), exc.message)  # the CLI warns
        failures.append(BatchFailure(i, n, exc.message, exc.hint))

    # The pool's threads only fetch (waiting on Prometheus, then parsing); this thread hands
    # each batch to the judging processes as it arrives (or judges it itself with one job).
    # Judging in the fetch threads made them fight for the GIL: 40% more CPU for the same
    # verdicts (docs/fleet.md).
    pending: list[tuple[int, str, int, _Judging]] = []
    pool = ThreadPoolExecutor(max_workers=max(1, spec.concurrency))
    in_a_row = 0  # batches failed one after the other: past GIVE_UP_AFTER, the server is gone
    try:
        futures = {pool.submit(fetch_batch, q): (i, q, n) for i, (q, n) in enumerate(batches)}
        for fut in as_completed(futures):
            i, q, n = futures[fut]
            try:
                series = fut.result()
            except SourceError as exc:
                fail(i, n, exc)
                advance(n)
                in_a_row += 1
                if in_a_row == GIVE_UP_AFTER and len(futures) > GIVE_UP_AFTER:
                    # The rest fail at once as "not fetched", said once by the CLI.
                    client.cancel(f"memsleuth gave up after {in_a_row} batches failed in a row")
                continue
            in_a_row = 0
            pending.append((i, q, n, start_judging(series)))
            while pending and pending[0][3].ready():
                finish(*pending.pop(0))
        for item in pending:
            finish(*item)
    except BaseException:
        client.cancel()  # Ctrl-C: requests in flight end within a poll, not at their timeout
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if procs is not None:
            procs.shutdown(cancel_futures=True)
    timings = {
        "wall_s": time.perf_counter() - started,
        "server_s": client.timings.server_s,
        "busy_s": client.timings.busy_s,
        "parse_s": client.timings.parse_s,
        "judge_s": judge_s,
        "requests": float(client.timings.requests),
        "bytes": float(client.timings.bytes),
        "retries": float(client.timings.retries),
    }
    entries = [
        replace(e, gone=True) if is_gone(e.end_s, spec.end, spec.step_s) else e for e in entries
    ]
    return ScanResult(
        rank(entries),
        tuple(sorted(failures, key=lambda f: f.index)),
        len(batches),
        len(listed),
        timings,
        spec,
        dict(unrefined),
    )


def default_judge(limit_bytes: int | None) -> Judge:
    """`analyze`'s verdict code, with the fleet's memory limit."""
    from memsleuth.analysis.verdict import judge

    def run(series: Series) -> Verdict:
        return judge(series, limit_bytes=limit_bytes)

    return run
