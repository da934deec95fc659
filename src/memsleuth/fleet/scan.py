"""The fleet scan: list the series, fetch them in batches with bounded concurrency, judge each.

A batch that fails (timeout, HTTP error, malformed answer) is reported and the scan goes on.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

from memsleuth.errors import SourceError
from memsleuth.fleet.judging import FleetEntry, Judge, Labels, is_gone, judge_all, rank
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
from memsleuth.fleet.refine import (
    LIVES_AGAIN,
    MAX_NAN_SHARE,
    PEAK_STEPS,
    RAW_FLOOR_S,
    START_JITTER_S,
    START_TIME,
    Refiner,
    restart_times,
)
from memsleuth.model import FloatArray, Series, Verdict
from memsleuth.sources.prometheus import PrometheusClient, RangeSeries

# What other modules and the tests import from here; what moved to fleet/promql.py and
# fleet/refine.py is re-exported, so callers need not know where it lives.
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

# Batches failing one after another (timeouts, refused connections) before the scan stops
# asking: at the defaults a stuck server would otherwise hold the scan for hours.
GIVE_UP_AFTER = 3
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
    refiner = Refiner(client, spec, judge)
    entries: list[FleetEntry] = []
    failures: list[BatchFailure] = []
    done = 0

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
                return _Judging.in_processes(procs, series, jobs, spec, basis, refiner.restarts)
            except (BrokenProcessPool, RuntimeError) as exc:
                give_up_on_processes(exc)
        return _Judging(series, entries=refiner.judged(series, basis))

    def finish(i: int, query: str, n: int, judging: _Judging) -> None:
        t0 = time.perf_counter()
        try:
            got = judging.result()
        except BrokenProcessPool as exc:  # a worker died (the OOM killer): judge it here
            give_up_on_processes(exc)
            got = refiner.judged(judging.series, basis)
        refiner.judge_s += time.perf_counter() - t0
        entries.extend(refiner.refine(query, got))
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
        futures = {
            pool.submit(refiner.fetch_batch, q): (i, q, n) for i, (q, n) in enumerate(batches)
        }
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
        "judge_s": refiner.judge_s,
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
        dict(refiner.unrefined),
    )


def default_judge(limit_bytes: int | None) -> Judge:
    """`analyze`'s verdict code, with the fleet's memory limit."""
    from memsleuth.analysis.verdict import judge

    def run(series: Series) -> Verdict:
        return judge(series, limit_bytes=limit_bytes)

    return run
