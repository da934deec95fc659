"""The fleet scan: list the series, fetch them in batches with bounded concurrency, judge each.

A batch that fails (timeout, HTTP error, malformed answer) is reported and the scan goes on.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from memsleuth.errors import SourceError
from memsleuth.fleet.judging import FleetEntry, Judge, Labels, judge_series, rank
from memsleuth.model import Series, Verdict
from memsleuth.sources.prometheus import PrometheusClient

log = logging.getLogger(__name__)

_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.S)
_SIMPLE_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")


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

    @property
    def judged(self) -> list[FleetEntry]:
        return [e for e in self.entries if e.verdict is not None]

    def counts(self) -> Counter[str]:
        return Counter(e.verdict.verdict for e in self.judged if e.verdict is not None)


def parse_selector(query: str) -> tuple[str, str] | None:
    """(metric name, matchers) of a plain selector like `m{job="x"}`, or None for expressions."""
    m = _SELECTOR.match(query)
    if not m or not (m.group(1) or m.group(2)):
        return None
    name, inner = m.group(1) or "", (m.group(2) or "").strip()
    if name and name in {"sum", "avg", "min", "max", "count", "rate", "by", "without"}:
        return None
    # Braces inside quoted values are fine; an unbalanced expression is not a selector.
    if inner.count("{") or inner.count("}"):
        return None
    return name, inner.rstrip(", ")


def _promql_regex_string(values: Sequence[str]) -> str:
    alternatives = "|".join(sorted(re.escape(v) for v in values))
    if "`" not in alternatives:
        return f"`{alternatives}`"  # a raw string: no second level of escaping
    return '"' + alternatives.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan_batches(query: str, listed: Sequence[Labels], batch_size: int) -> list[tuple[str, int]]:
    """(query, series count) per batch: the selector narrowed by the most selective label."""
    parsed = parse_selector(query)
    if parsed is None or not listed:
        return [(query, len(listed))]
    name, inner = parsed
    values: dict[str, Counter[str]] = {}
    for labels in listed:
        for k, v in labels:
            values.setdefault(k, Counter())[v] += 1
    keys = [k for k in values if k != "__name__"] or list(values)
    key = max(keys, key=lambda k: (len(values[k]), k == "instance"))
    per_value = Counter(dict(labels).get(key, "") for labels in listed)
    batches: list[tuple[list[str], int]] = []
    current: list[str] = []
    count = 0
    for value, n in sorted(per_value.items()):
        if current and count + n > batch_size:
            batches.append((current, count))
            current, count = [], 0
        current.append(value)
        count += n
    if current:
        batches.append((current, count))
    out = []
    for vals, n in batches:
        matcher = f"{key}=~{_promql_regex_string(vals)}"
        matchers = f"{inner}, {matcher}" if inner else matcher
        out.append((f"{name}{{{matchers}}}", n))
    return out


class _Clock:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.judge_s = 0.0


def scan(
    client: PrometheusClient,
    spec: ScanSpec,
    *,
    judge: Judge | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Scan every series of `spec.query`; raises SourceError only when the listing fails."""
    if judge is None:
        judge = default_judge(spec.limit_bytes)
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
    clock = _Clock()
    entries: list[FleetEntry] = []
    failures: list[BatchFailure] = []
    done = 0

    def run_batch(query: str) -> list[FleetEntry]:
        series = client.query_range(query, spec.start, spec.end, spec.step_s)
        t0 = time.perf_counter()
        out = [
            judge_series(s.labels, s.t, s.values, step_s=spec.step_s, judge=judge) for s in series
        ]
        with clock.lock:
            clock.judge_s += time.perf_counter() - t0
        return out

    with ThreadPoolExecutor(max_workers=max(1, spec.concurrency)) as pool:
        futures = {pool.submit(run_batch, q): (i, n) for i, (q, n) in enumerate(batches)}
        for fut in as_completed(futures):
            i, n = futures[fut]
            try:
                got = fut.result()
            except SourceError as exc:
                log.warning("batch %d of %d failed: %s", i + 1, len(batches), exc.message)
                failures.append(BatchFailure(i, n, exc.message, exc.hint))
                got = []
            entries.extend(got)
            done += n if listed else 1
            if progress is not None:
                progress(done, total)
    timings = {
        "wall_s": time.perf_counter() - started,
        "server_s": client.timings.server_s,
        "parse_s": client.timings.parse_s,
        "judge_s": clock.judge_s,
        "requests": float(client.timings.requests),
        "bytes": float(client.timings.bytes),
        "retries": float(client.timings.retries),
    }
    return ScanResult(
        rank(entries),
        tuple(sorted(failures, key=lambda f: f.index)),
        len(batches),
        len(listed),
        timings,
    )


def default_judge(limit_bytes: int | None) -> Judge:
    """`analyze`'s verdict code, with the fleet's memory limit."""
    from memsleuth.analysis.verdict import judge

    def run(series: Series) -> Verdict:
        return judge(series, limit_bytes=limit_bytes)

    return run
