"""What a fleet scan asks Prometheus beside the listing: each batch's series (their NaN means
asked again), their processes' start times, and what refines the problems' first verdicts."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from memsleuth.errors import SourceError
from memsleuth.fleet.judging import (
    MIN_LIFE_POINTS,
    FleetEntry,
    Judge,
    Labels,
    confirm_on_floor,
    judge_series,
)
from memsleuth.fleet.promql import (
    BASE_STEP_S,
    FLOOR,
    JUDGE_POINTS,
    LATEST,
    MEAN,
    exact_selector,
    parse_selector,
    step_expr,
)
from memsleuth.model import FloatArray
from memsleuth.sources.prometheus import PrometheusClient, RangeSeries

if TYPE_CHECKING:
    from memsleuth.fleet.scan import ScanSpec

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
# A series whose step means are NaN for more than this share is fetched again without its NaN
# samples (a cheap second query for the few series that need it).
MAX_NAN_SHARE = 0.1


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


class Refiner:
    """One scan's questions after the listing, and what they share: the client, the spec, the
    judge, the restart times found, the time spent judging here, and what could not be asked.

    `fetch_batch` (and what it asks with) runs in the scan's fetching threads; `judged` and
    `refine` in the thread that scans.
    """

    def __init__(self, client: PrometheusClient, spec: ScanSpec, judge: Judge) -> None:
        self.client = client
        self.spec = spec
        self.judge = judge
        parsed = parse_selector(spec.query)
        self.name = parsed[0] if parsed else ""
        # Restart times by series labels: filled by the fetching threads, read by the scan's.
        self.restarts: dict[Labels, FloatArray] = {}
        self.judge_s = 0.0  # judging in the scan's thread (judged, and what the scan adds)
        # What could not be asked, why, and so what -> batches.
        self.unrefined: Counter[str] = Counter()
        self._unrefined_lock = threading.Lock()  # the fetching threads add to it too

    def _unrefined(self, message: str) -> None:
        with self._unrefined_lock:
            self.unrefined[message] += 1

    def fetch(self, template: str, query: str, window_s: float | None = None) -> list[RangeSeries]:
        spec = self.spec
        expr = step_expr(template, query, spec.step_s, window_s)
        # A nameless selector is neither aggregated (scan()) nor floored (with_floors).
        assert expr is not None
        series = self.client.query_range(expr, spec.start, spec.end, spec.step_s)
        return _with_name(series, self.name) if self.name else series

    def judged(self, series: list[RangeSeries], basis: str) -> list[FleetEntry]:
        t0 = time.perf_counter()
        out = [
            judge_series(
                s.labels,
                s.t,
                s.values,
                step_s=self.spec.step_s,
                judge=self.judge,
                basis=basis,
                restarts=self.restarts.get(s.labels),
            )
            for s in series
        ]
        self.judge_s += time.perf_counter() - t0
        return out

    def fetch_batch(self, query: str) -> list[RangeSeries]:
        spec, name = self.spec, self.name
        if not spec.aggregate:
            got = self.client.query_range(query, spec.start, spec.end, spec.step_s)
        else:
            got = self.fetch(MEAN, query)
            if name:
                got = [
                    self.finite_means(s) if _nan_share(s.values) > MAX_NAN_SHARE else s for s in got
                ]
            elif any(_nan_share(s.values) > MAX_NAN_SHARE for s in got):
                # An expression's series cannot be selected one by one: the whole expression
                # again, its NaN samples dropped (`(e) == (e)`), for the series that need it.
                again = {r.labels: r for r in self.fetch(MEAN, f"({query}) == ({query})")}
                got = [
                    again.get(s.labels, s) if _nan_share(s.values) > MAX_NAN_SHARE else s
                    for s in got
                ]
        if name and name != START_TIME:
            self.restarts.update(self.fetch_restarts(query, got))
        return got

    def fetch_restarts(self, query: str, got: list[RangeSeries]) -> dict[Labels, FloatArray]:
        # A fall back to the first level is a restart or a flush: the start times tell. Asked
        # at the range's two ends (instant queries read one sample a series); the whole range
        # only for the series whose start time moved. A series without start times (another
        # metric, a server that fails to answer) is left to its falls.
        spec, client = self.spec, self.client
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
            self._unrefined(
                f"could not ask for start times ({exc.message}): restarts are told by falls alone"
            )
            return {}
        return out

    def finite_means(self, s: RangeSeries) -> RangeSeries:
        # One NaN sample makes its step's mean NaN: a series that exports NaN now and then
        # loses most of its means. `x == x` drops NaN samples before they are averaged.
        sel = exact_selector(self.name, s.labels)
        again = [r for r in self.fetch(MEAN, f"{sel} == {sel}") if r.labels == s.labels]
        return again[0] if again else s

    def refine(self, query: str, got: list[FleetEntry]) -> list[FleetEntry]:
        """A batch's verdicts, refined by what is asked after them."""
        # What is asked after the verdicts only refines them: one that fails leaves the batch's
        # verdicts as they were, said once a reason. A failed floor query had thrown the whole
        # batch away, its leaks with it ("the 180 judged show no problem").
        refining = (
            ("their step floors", lambda g: self.with_floors(query, g)),
            ("their last lives at finer steps", self.with_lives),
            ("their step peaks for the time to the limit", self.with_peaks),
        )
        for what, refine in refining:
            try:
                got = refine(got)
            except SourceError as exc:
                self._unrefined(
                    f"could not ask for {what} ({exc.message}): the problems' verdicts "
                    "stand as first judged"
                )
        return got

    def with_floors(self, query: str, out: list[FleetEntry]) -> list[FleetEntry]:
        # Raw ranges too: a sample a step lands anywhere on a sawtooth faster than the step,
        # and its lows between falls rise as the peaks grow. 5- and 12-minute sawtooths scraped
        # every 15 s, floors flat and peaks growing 3 MiB/h, had read `leak` at 0.99 over a
        # day, `stable` over two (aggregated, confirmed on its floors). A raw step's floor is
        # the least sample of the last RAW_FLOOR_S (a twentieth of the range at most, which it
        # would flatten): a 60 s window holds one sample of a 2-minute scrape, or none.
        spec, name = self.spec, self.name
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
                for s in self.fetch(FLOOR, exact_selector(name, e.labels), window)
                if s.labels == e.labels
            ]
        else:
            want = {e.labels for e in problems}
            floors = [s for s in self.fetch(FLOOR, query, window) if s.labels in want]
        by_labels = {e.labels: e for e in self.judged(floors, "floor")}
        return [
            confirm_on_floor(e, by_labels[e.labels]) if e.labels in by_labels else e for e in out
        ]

    def with_lives(self, out: list[FleetEntry]) -> list[FleetEntry]:
        # A process restarted every few hours has lives of a few step means in a long range
        # (a 7-day scan: 84-minute steps, 4 to a 6-hour life), too few to judge a life: its
        # last lives are fetched again at steps that give each MIN_LIFE_POINTS and more. A
        # leak restarted every 6 h had read `inconclusive` over 7 days, `leak` over one.
        spec, name = self.spec, self.name
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
            got = self.client.query_range(expr, start, spec.end, step)
            again = [r for r in _with_name(got, name) if r.labels == e.labels]
            if not again:
                continue
            one = again[0]
            new = judge_series(
                e.labels, one.t, one.values, step_s=step, judge=self.judge, basis="mean",
                restarts=self.restarts.get(e.labels),
            )  # fmt: skip
            if new.verdict is not None and new.verdict.is_problem:
                redone[e.labels] = replace(
                    e,
                    verdict=new.verdict,
                    segment_start_s=new.segment_start_s,
                    segment_end_s=new.segment_end_s,
                )
        return [redone.get(e.labels, e) for e in out]

    def with_peaks(self, out: list[FleetEntry]) -> list[FleetEntry]:
        # A step's mean lies under the peaks a sawtooth faster than the step reaches, and the
        # limit is hit at a peak: a leak sawing 200 MiB above its mean had been given 13 h to
        # a 4 GiB limit its peaks reach in 6.8. The time to the limit is taken from the step
        # peaks now (the median of the last PEAK_STEPS), for the problems that have one.
        spec, name = self.spec, self.name
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
            got = self.fetch(LATEST, exact_selector(name, e.labels))
            peaks = [r.values[-PEAK_STEPS:] for r in got if r.labels == e.labels]
            if not peaks or not np.isfinite(peaks[0]).any():
                continue
            above = float(np.nanmedian(peaks[0])) - e.last_bytes
            if above > 0:
                ttl = max(0.0, v.time_to_limit_s - above / rate)
                redone[e.labels] = replace(e, verdict=replace(v, time_to_limit_s=ttl))
        return [redone.get(e.labels, e) for e in out]
