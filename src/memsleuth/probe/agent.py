"""The probe thread: light readings every tick, heap censuses within an overhead budget,
periodic flushes to the store, and the fork/exit handling that keeps the host unharmed."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, NamedTuple

from memsleuth.probe.heap import EXACT_LEN, HeapCensus, estimate_bytes
from memsleuth.probe.host import (
    Native,
    fd_kinds,
    install_hooks,
    own_objects,
    task_groups,
    thread_groups,
    uninstall_hooks,
)
from memsleuth.probe.naming import OWN_IDS, global_containers, name_containers
from memsleuth.probe.tracing import AllocationWindow
from memsleuth.probe.writer import ProbeWriter

MAX_GROUPS = 20  # thread/task groups written per tick
MAX_LABELS = 50  # named containers written per census


class ProbeOptions(NamedTuple):
    """How the probe samples. Environment twins are read by `from_env` (the injected case)."""

    interval_s: float = 1.0  # light readings (threads, tasks, fds, native memory)
    budget: float = 0.05  # share of wall time the censuses may take
    min_census_s: float = 1.0  # never census more often than this
    max_census_s: float = 300.0  # nor less often than this
    min_len: int = 32  # containers smaller than this are not followed
    flush_s: float = 2.0  # commit buffered rows this often (os._exit loses at most this)
    trace_allocations_s: float | None = None  # tracemalloc window, from probe start
    malloc_trim_test: bool = False  # at stop: malloc_trim(0) and how much RSS it released
    exit_timeout_s: float = 2.0  # how long exit may wait for the probe

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str]) -> ProbeOptions:
        opts = cls()
        interval = _float(env.get("MEMSLEUTH_PROBE_INTERVAL"))
        if interval:
            opts = opts._replace(interval_s=interval, min_census_s=max(interval, 0.05))
        budget = _float(env.get("MEMSLEUTH_PROBE_BUDGET"))
        if budget:
            opts = opts._replace(budget=budget)
        trace = _float(env.get("MEMSLEUTH_TRACE_ALLOCATIONS"))
        if trace:
            opts = opts._replace(trace_allocations_s=trace)
        if env.get("MEMSLEUTH_MALLOC_TRIM_TEST") == "1":
            opts = opts._replace(malloc_trim_test=True)
        return opts


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


class Probe:
    """One per process. `start()` launches the daemon thread; `stop()` flushes and joins."""

    def __init__(self, store_path: str, run_id: int, options: ProbeOptions) -> None:
        self.store_path = store_path
        self.run_id = run_id
        self.options = options
        self.writer = ProbeWriter(store_path, run_id, os.getpid())
        self.census = HeapCensus(min_len=options.min_len)
        self.native = Native()
        self.window = (
            AllocationWindow(options.trace_allocations_s) if options.trace_allocations_s else None
        )
        self._stop = threading.Event()
        self._mono_start = time.monotonic()
        self._thread: threading.Thread | None = None
        self._fork_locked = False
        self.census_s = 0.0  # wall time spent in censuses and naming
        self.cpu_s = 0.0  # CPU time of the probe thread, all work included
        self.census_cpu_s = 0.0  # CPU time of the last census
        self._objects = 0  # objects seen by the last census
        self._per_object_s = 300e-9  # census CPU per object (measured ~150-300 ns here)
        self.started_at = time.time()
        self.period_s = options.min_census_s

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        install_hooks()
        OWN_IDS.update(id(o) for o in own_objects())
        self.writer.event(
            "probe.status",
            {
                "message": f"probe started in pid {os.getpid()}",
                "python": sys.version.split()[0],
                "argv": list(sys.argv)[:20],
                "budget": self.options.budget,
            },
        )
        if self.window is not None:
            self.window.start()
        self._thread = threading.Thread(target=self._run, name="memsleuth-probe", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        timeout = self.options.exit_timeout_s if timeout_s is None else timeout_s
        self._stop.set()
        th = self._thread
        if th is not None and th is not threading.current_thread() and th.is_alive():
            th.join(timeout)
        self._thread = None
        try:
            self._light()
            if self.window is not None and not self.window.done:
                self._finish_window()
            if self.options.malloc_trim_test:
                trim = self.native.trim()
                if trim is not None:
                    self.writer.event("probe.malloc_trim", trim)
            self.writer.event("probe.status", self._status("probe stopped"))
        except Exception as exc:  # reported in the store, never to the host's output
            self.writer.event("probe.error", {"step": "stop", "message": repr(exc)[:500]})
        self.writer.flush(timeout)
        uninstall_hooks()

    def _status(self, message: str) -> dict[str, Any]:
        wall = max(time.time() - self.started_at, 1e-9)
        return {
            "message": message,
            "censuses": self.census.censuses,
            "census_s": round(self.census_s, 4),
            "census_share": round(self.census_s / wall, 5),
            "cpu_s": round(self.cpu_s, 4),
            "overhead": round(self.cpu_s / wall, 5),
            "period_s": round(self.period_s, 3),
            "tracked": len(self.census.tracks),
            "dropped": self.writer.dropped,
            "write_failures": self.writer.failures,
        }

    def before_fork(self) -> None:
        # Hold the writer's lock across fork so no SQLite call is half-done in the child.
        self._fork_locked = self.writer.lock.acquire(timeout=2.0)

    def after_fork_parent(self) -> None:
        if self._fork_locked:
            self._fork_locked = False
            self.writer.lock.release()

    def after_fork_child(self) -> None:
        self._fork_locked = False
        self.writer.abandon()
        self.writer.pid = os.getpid()
        self._stop = threading.Event()
        self.started_at = time.time()
        self.census_s = 0.0
        self.cpu_s = 0.0
        self.window = None  # tracemalloc state is per process; the parent owns the window
        self.writer.event(
            "probe.status",
            {"message": f"probe started in pid {os.getpid()}", "forked_from": os.getppid()},
        )
        self._thread = threading.Thread(target=self._run, name="memsleuth-probe", daemon=True)
        self._thread.start()

    # the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # never reaches the host (nor threading.excepthook)
            try:
                self.writer.event("probe.error", {"message": repr(exc)[:500]})
                self.writer.flush(2.0)
            except BaseException:
                pass

    def _loop(self) -> None:
        opts = self.options
        now = self._mono_start = time.monotonic()
        next_light = now
        next_census = self._next_census(now)
        next_flush = now + min(opts.flush_s, 0.5)
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_light:
                self._guarded(self._light)
                next_light = max(next_light + opts.interval_s, now + opts.interval_s / 2)
            if self.window is not None:
                self._guarded(self._tick_window)
            self.cpu_s = time.thread_time()
            if now >= next_census:
                self._guarded(self._census)
                self.cpu_s = time.thread_time()
                next_census = self._next_census(time.monotonic())
            if now >= next_flush:
                self.writer.flush(5.0)
                next_flush = time.monotonic() + opts.flush_s
            wait = min(next_light, next_census, next_flush) - time.monotonic()
            self._stop.wait(max(0.01, wait))

    def _next_census(self, now: float) -> float:
        """When the next census fits the budget: its predicted cost (objects × cost per object,
        learned; before the first census, Python's allocated blocks stand in for the objects)
        plus all the CPU the probe used so far must stay within budget × time since start."""
        opts = self.options
        objects = self._objects or sys.getallocatedblocks()
        predicted = objects * self._per_object_s
        self.period_s = min(opts.max_census_s, max(opts.min_census_s, predicted / opts.budget))
        by_budget = self._mono_start + (self.cpu_s + predicted) / opts.budget
        return min(now + opts.max_census_s, max(now + opts.min_census_s, by_budget))

    def _guarded(self, fn: Any) -> float:
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:
            self.writer.event(
                "probe.error", {"step": getattr(fn, "__name__", "?"), "message": repr(exc)[:500]}
            )
        return time.perf_counter() - start

    def _light(self) -> None:
        install_hooks()  # the asyncio hook, once the host has imported asyncio
        t = time.time()
        w = self.writer
        for group, n in _top(thread_groups(skip=self._thread)):
            w.point(f"threads:{group}", n, t)
        for group, n in _top(task_groups()):
            w.point(f"tasks:{group}", n, t)
        for kind, n in fd_kinds().items():
            w.point(f"fds:{kind}", n, t)
        for key, value in self.native.read().items():
            w.point(f"native:{key}", value, t)

    def _tick_window(self) -> None:
        assert self.window is not None
        due = self.window.due(time.time())
        if due == "first":
            self.window.snapshot_first()
        elif due == "last":
            self._finish_window()

    def _finish_window(self) -> None:
        assert self.window is not None
        start = time.perf_counter()
        payload = self.window.finish()
        if payload is not None:
            payload["cost_s"] = round(time.perf_counter() - start, 3)
            self.writer.event("probe.allocations", payload)

    def _census(self) -> None:
        start = time.perf_counter()
        cpu0 = time.thread_time()
        extra = global_containers(EXACT_LEN)
        res = self.census.take(extra)
        del extra
        named = self._name(res.to_name)
        cost = time.perf_counter() - start
        self.census_s += cost
        # What the host pays is the time the probe holds the GIL: its CPU time, not the wall
        # time it spent waiting for the GIL behind a busy host.
        self.census_cpu_s = time.thread_time() - cpu0
        self._objects = res.objects
        # Cost per object, smoothed: what the next census of a heap this size will cost.
        per_object = self.census_cpu_s / max(res.objects, 1)
        self._per_object_s = 0.5 * self._per_object_s + 0.5 * per_object
        w, t = self.writer, res.t
        w.event(
            "probe.census",
            {
                "objects": res.objects,
                "duration_s": round(res.duration_s, 4),
                "cost_s": round(cost, 4),
                "period_s": round(self.period_s, 3),
                "tracked": res.containers,
                "named": named,
                "types": [list(x) for x in res.types],
            },
            t,
        )
        for name, count, _ in res.types:
            w.point(f"type:{name}", count, t)
        self._write_containers(t)

    def _name(self, to_name: tuple[tuple[int, object], ...]) -> int:
        if not to_name:
            return 0
        labels = name_containers(list(to_name))
        for oid, obj in to_name:
            track = self.census.tracks.get(oid)
            label = labels.get(oid)
            if track is not None and label is not None:
                track.label = label
                track.bytes_per_entry = estimate_bytes(obj) / max(track.history[-1][1], 1)
        return len(labels)

    def _write_containers(self, t: float) -> None:
        groups = self.census.labelled()
        ranked = sorted(
            groups.items(), key=lambda kv: sum(tr.growth for _, tr in kv[1]), reverse=True
        )[:MAX_LABELS]
        summary: dict[str, list[float]] = {}
        for label, tracks in ranked:
            entries = sum(tr.history[-1][1] for _, tr in tracks)
            nbytes = sum(tr.history[-1][1] * tr.bytes_per_entry for _, tr in tracks)
            summary[label] = [entries, len(tracks), round(nbytes)]
            if label not in self.census.labels_written:
                # First time under this name: write the history the tracks carry.
                self.census.labels_written.add(label)
                past: dict[float, int] = {}
                for _, tr in tracks:
                    for ht, n in tr.history[:-1]:
                        past[ht] = past.get(ht, 0) + n
                for ht, n in sorted(past.items()):
                    self.writer.point(f"container:{label}", n, ht)
            self.writer.point(f"container:{label}", entries, t)
            self.writer.point(f"container_bytes:{label}", nbytes, t)
        if summary:
            self.writer.event("probe.containers", {"containers": summary}, t)


def _top(groups: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(groups.items(), key=lambda kv: kv[1], reverse=True)[:MAX_GROUPS]
