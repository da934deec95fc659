"""The exporter's core: sample chosen processes in the background, judge each from a bounded
history, and hand prometheus_client the latest values at scrape time (a scrape reads no /proc).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from memsleuth.errors import TargetError
from memsleuth.model import VERDICT_NAMES, Sample, Series, Verdict
from memsleuth.sources import procfs

log = logging.getLogger(__name__)

JudgeFn = Callable[[Series, int | None], Verdict]


class History:
    """At most `cap` samples; when full, every other one is dropped and the stride doubles, so
    the history keeps covering the whole life of the process at a coarser resolution."""

    def __init__(self, cap: int = 1024) -> None:
        self.cap = max(8, cap)
        self.stride = 1
        self._seen = 0
        self.t: list[float] = []
        self.rss: list[float] = []
        self.threads: list[float] = []
        self.fds: list[float] = []

    def add(self, s: Sample) -> None:
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        self.t.append(s.t)
        self.rss.append(float(s.rss_bytes))
        self.threads.append(math.nan if s.threads is None else float(s.threads))
        self.fds.append(math.nan if s.fds is None else float(s.fds))
        if len(self.t) >= self.cap:
            for col in (self.t, self.rss, self.threads, self.fds):
                del col[-2::-2]  # keep the newest, drop every other one before it
            self.stride *= 2

    def __len__(self) -> int:
        return len(self.t)

    def series(self) -> Series:
        t0 = self.t[0]
        return Series.from_arrays(
            [x - t0 for x in self.t], self.rss, threads=self.threads, fds=self.fds
        )


@dataclass
class Watched:
    """One watched process: its sampler, history, last values and last verdict."""

    identity: procfs.ProcIdentity
    sampler: procfs.ProcSampler
    history: History
    last: Sample | None = None
    known: dict[str, int] = field(default_factory=dict)  # last read of the costly fields
    verdict: Verdict | None = None
    judged_at: float = 0.0
    limit_bytes: int | None = None


def default_judge(series: Series, limit_bytes: int | None) -> Verdict:
    from memsleuth.analysis.verdict import judge

    return judge(series, limit_bytes=limit_bytes)


class ProcessWatcher:
    """Samples every `interval_s`; finds new matching processes every `discover_s`."""

    def __init__(
        self,
        *,
        match: re.Pattern[str] | None = None,
        pids: tuple[int, ...] = (),
        interval_s: float = 5.0,
        history: int = 1024,
        judge_every_s: float = 30.0,
        limit_bytes: int | None = None,
        judge: JudgeFn = default_judge,
    ) -> None:
        self.match = match
        self.pids = pids
        self.interval_s = interval_s
        self.history_cap = history
        self.judge_every_s = judge_every_s
        self.limit_bytes = limit_bytes
        self._judge = judge
        self._lock = threading.Lock()
        self._procs: dict[tuple[int, int], Watched] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_discover = -math.inf
        self.sweeps = 0
        self.sweep_s = 0.0
        self.judge_errors = 0

    def _wanted(self) -> list[int]:
        pids = set(self.pids)
        if self.match is not None or not self.pids:
            me = psutil.Process().pid
            for p in psutil.process_iter(["pid", "name", "cmdline"]):
                info = p.info
                text = " ".join([info.get("name") or "", *(info.get("cmdline") or ())])
                if info["pid"] == me:  # its own command line names what --match asks for
                    continue
                if self.match is None or self.match.search(text):
                    pids.add(info["pid"])
        return sorted(pids)

    def _discover(self) -> None:
        known = {k[0] for k in self._procs}
        for pid in self._wanted():
            if pid in known:
                continue
            try:
                ident = procfs.identify(pid)
            except TargetError:
                continue  # gone, or another user's: not ours to watch
            limit = self.limit_bytes or procfs.cgroup_limit(pid)
            w = Watched(
                ident, procfs.ProcSampler(ident), History(self.history_cap), limit_bytes=limit
            )
            with self._lock:
                self._procs[(ident.pid, ident.start_ticks)] = w

    def sweep(self) -> None:
        """One round: discover, sample every process, judge those due."""
        started = time.perf_counter()
        now = time.monotonic()
        if now - self._last_discover >= max(self.interval_s * 6, 10.0):
            self._discover()
            self._last_discover = now
        for key, w in list(self._procs.items()):
            s = w.sampler.sample()
            if s is None:
                with self._lock:
                    self._procs.pop(key, None)
                continue
            w.history.add(s)
            for name in ("pss_bytes", "uss_bytes"):
                value = getattr(s, name)
                if value is not None:
                    w.known[name] = value
            verdict = w.verdict
            if len(w.history) >= 3 and now - w.judged_at >= self.judge_every_s:
                try:
                    verdict = self._judge(w.history.series(), w.limit_bytes)
                except Exception:  # a bug in one judgement must not stop the exporter
                    log.exception("judging pid %d failed", w.identity.pid)
                    self.judge_errors += 1
                w.judged_at = now
            with self._lock:
                w.last, w.verdict = s, verdict
        self.sweeps += 1
        self.sweep_s = time.perf_counter() - started

    def start(self) -> None:
        self.sweep()
        self._thread = threading.Thread(target=self._loop, name="memsleuth-exporter", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sweep()
            except Exception:
                log.exception("sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def snapshot(self) -> list[Watched]:
        with self._lock:
            return [w for w in self._procs.values() if w.last is not None]


_GAUGES = (
    ("resident_memory_bytes", "Resident set size (RSS)", "rss_bytes"),
    ("proportional_memory_bytes", "Proportional set size (PSS), from smaps_rollup", "pss_bytes"),
    ("unique_memory_bytes", "Unique set size (USS: private pages), from smaps_rollup", "uss_bytes"),
    ("anonymous_memory_bytes", "Resident anonymous memory (RssAnon)", "anon_bytes"),
    ("swap_bytes", "Swapped-out memory (VmSwap)", "swap_bytes"),
    ("threads", "Number of threads", "threads"),
    ("open_fds", "Number of open file descriptors", "fds"),
)


class ExporterCollector(Collector):
    """prometheus_client collector over a ProcessWatcher's latest state."""

    def __init__(self, watcher: ProcessWatcher) -> None:
        self.watcher = watcher

    def collect(self) -> Iterator[Metric]:
        procs = self.watcher.snapshot()
        labels = ["pid", "name"]
        fams = {
            attr: GaugeMetricFamily(f"memsleuth_process_{name}", doc, labels=labels)
            for name, doc, attr in _GAUGES
        }
        score = GaugeMetricFamily(
            "memsleuth_process_leak_score",
            "memsleuth's confidence that the process leaks memory (0..1; 0 unless the verdict "
            "is a leak)",
            labels=labels,
        )
        growth = GaugeMetricFamily(
            "memsleuth_process_memory_growth_bytes_per_second",
            "Memory growth rate memsleuth estimates from the process's history",
            labels=labels,
        )
        ttl = GaugeMetricFamily(
            "memsleuth_process_time_to_limit_seconds",
            "Seconds until memory reaches the limit at the estimated growth (absent if none)",
            labels=labels,
        )
        verdict = GaugeMetricFamily(
            "memsleuth_process_verdict",
            "1 for memsleuth's current verdict on the process (label verdict)",
            labels=[*labels, "verdict"],
        )
        for w in procs:
            assert w.last is not None
            lv = [str(w.identity.pid), w.identity.name]
            for attr, fam in fams.items():
                value = w.known.get(attr) if attr in w.known else getattr(w.last, attr)
                if value is not None:
                    fam.add_metric(lv, float(value))
            v = w.verdict
            if v is None:
                continue
            leaky = v.verdict in ("leak", "thread-leak", "task-leak", "fd-leak")
            score.add_metric(lv, float(v.confidence) if leaky else 0.0)
            if v.growth_bytes_per_hour is not None and math.isfinite(v.growth_bytes_per_hour):
                growth.add_metric(lv, v.growth_bytes_per_hour / 3600)
            if v.time_to_limit_s is not None and math.isfinite(v.time_to_limit_s):
                ttl.add_metric(lv, v.time_to_limit_s)
            for name in VERDICT_NAMES:
                verdict.add_metric([*lv, name], 1.0 if name == v.verdict else 0.0)
        yield from fams.values()
        yield from (score, growth, ttl, verdict)
        yield GaugeMetricFamily(
            "memsleuth_exporter_watched_processes",
            "Processes the exporter watches",
            value=len(procs),
        )
        yield GaugeMetricFamily(
            "memsleuth_exporter_sweep_duration_seconds",
            "Time the last sampling sweep over all watched processes took",
            value=self.watcher.sweep_s,
        )
