"""The probe thread: light readings every tick, heap censuses within an overhead budget,
periodic flushes to the store, and the fork/exit handling that keeps the host unharmed."""

from __future__ import annotations

import _thread
import gc
import os
import signal
import sys
import threading
import time

from memsleuth.probe import host
from memsleuth.probe.heap import (
    EXACT_LEN,
    HeapCensus,
    container_traits,
    estimate_bytes,
    forget_types,
)
from memsleuth.probe.host import (
    HostCollections,
    Native,
    fd_kinds,
    install_hooks,
    own_objects,
    self_status,
    task_groups,
    thread_groups,
    uninstall_hooks,
)
from memsleuth.probe.naming import OWN_IDS, global_containers, name_containers
from memsleuth.probe.writer import ProbeWriter

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 MB of RSS
if TYPE_CHECKING:  # typing and tracemalloc cost ~4 MB of RSS in every host: not at run time
    from collections.abc import Callable
    from typing import Any

    from memsleuth.probe.tracing import AllocationWindow

# The file whose appearance asks the probe to stop now: the recorder creates it before it ends
# the target with SIGTERM, which runs no atexit hook (the malloc_trim test and the probe's last
# record had been lost whenever `run --duration` or Ctrl-C ended a host without a handler).
STOP_FILE_ENV = "MEMSLEUTH_PROBE_STOP_FILE"
MAX_GROUPS = 20  # thread/task groups written per tick
MAX_LABELS = 50  # named containers written per census
# The hooks (noting where threads start and tasks are created) may take this share of the
# budget between two light readings; past it, task sites are noted for half as many tasks.
HOOK_SHARE = 0.25


class ProbeOptions:
    """How the probe samples. Environment twins are read by `from_env` (the injected case)."""

    __slots__ = (
        "budget",
        "exit_timeout_s",
        "flush_s",
        "interval_s",
        "malloc_trim_test",
        "max_census_s",
        "min_census_s",
        "min_len",
        "stop_file",
        "trace_allocations_s",
    )

    def __init__(
        self,
        interval_s: float = 1.0,  # light readings (threads, tasks, fds, native memory)
        budget: float = 0.02,  # share of wall time everything the probe costs the host may take
        min_census_s: float = 1.0,  # never census more often than this
        max_census_s: float = 300.0,  # nor less often than this
        min_len: int = 32,  # containers smaller than this are not followed
        flush_s: float = 2.0,  # commit buffered rows this often (os._exit loses at most this)
        trace_allocations_s: float | None = None,  # tracemalloc window, from probe start
        malloc_trim_test: bool = False,  # at stop: malloc_trim(0) and how much RSS it released
        exit_timeout_s: float = 2.0,  # how long exit may wait for the probe
        stop_file: str | None = None,  # when it appears: stop now (the recorder is ending the run)
    ) -> None:
        self.interval_s = interval_s
        self.budget = budget
        self.min_census_s = min_census_s
        self.max_census_s = max_census_s
        self.min_len = min_len
        self.flush_s = flush_s
        self.trace_allocations_s = trace_allocations_s
        self.malloc_trim_test = malloc_trim_test
        self.exit_timeout_s = exit_timeout_s
        self.stop_file = stop_file

    def _replace(self, **changes: Any) -> ProbeOptions:
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return ProbeOptions(**values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"ProbeOptions({inner})"

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
        if env.get(STOP_FILE_ENV):
            opts = opts._replace(stop_file=env[STOP_FILE_ENV])
        return opts


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


class Probe:
    """One per process. `start()` launches the daemon thread; `stop()` flushes and joins."""

    def __init__(
        self, store_path: str, run_id: int, options: ProbeOptions, *, sample_self: bool = False
    ) -> None:
        self.store_path = store_path
        self.run_id = run_id
        self.options = options
        # Started from code, with a run of its own: no recorder outside writes the run's
        # samples or ends it, so the probe does (its runs had held no sample to analyze).
        self.sample_self = sample_self
        self.writer = ProbeWriter(store_path, run_id, os.getpid())
        self.census = HeapCensus(min_len=options.min_len)
        self.native = Native()
        self.host_gc = HostCollections()
        self.window: AllocationWindow | None = None
        if options.trace_allocations_s:
            from memsleuth.probe.tracing import AllocationWindow  # imports tracemalloc

            self.window = AllocationWindow(options.trace_allocations_s)
        self._stop = threading.Event()
        self._stopped = False
        self._mono_start = time.monotonic()
        self._thread: _ProbeThread | None = None
        self._fork_locked = False
        self._gc_enabled = True  # as the probe last saw the cyclic collector
        self._hooks_at = (host.HOOK_COST[0], self._mono_start)  # the hooks' cost then, when
        self.census_s = 0.0  # wall time spent in censuses and naming
        self.cpu_s = 0.0  # CPU time of the probe thread, all work included
        self.tracing_cpu_s = 0.0  # of it, tracemalloc's snapshots (--trace-allocations)
        self.startup_s = 0.0  # what starting the probe cost the host (imports, hooks, thread)
        self.census_cpu_s = 0.0  # CPU time of the last census
        self._objects = 0  # objects seen by the last census
        self._blocks = 0  # sys.getallocatedblocks() then: how the heap grew since
        self._per_object_s = 300e-9  # census CPU per object (measured ~150-300 ns here)
        self._light_cpu_s = 0.0  # CPU of the last light reading
        self._last_census = self._mono_start
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
        self._thread = _ProbeThread(self._run)

    def stop(self, timeout_s: float | None = None, *, at_exit: bool = False) -> None:
        """The last readings, the malloc_trim test, "probe stopped", a flush: once, whether the
        host exits (atexit) or the recorder asks first (`stop_file`; its SIGTERM runs no atexit).

        At exit the host's threads and asyncio tasks are not counted: the interpreter has
        joined its threads and asyncio.run has cancelled every pending task, so a census then
        reads teardown. Counted, a program that leaked tasks until its end had read
        "tasks not growing (0–193, 0 now)" and `plateau` whenever that census fell before the
        recorder's last sample."""
        if self._stopped:
            return
        self._stopped = True
        timeout = self.options.exit_timeout_s if timeout_s is None else timeout_s
        self._stop.set()
        th = self._thread
        if th is not None and not th.is_current():
            th.join(timeout)
        self._thread = None
        try:
            # No sample now: the probe has just let go of its last census, and that fall in
            # RSS is its own (a steady leak's last sample had read as levelling off). And no
            # reading at all at exit: the program's main() has returned and its atexit hooks
            # run, so it reads their teardown (native:rss 438 -> 76.7 MiB as a generator's
            # locals went had capped its dict's size at 76.7 MiB and its share at 19%).
            if at_exit:
                self._note_gc(time.time())
            else:
                self._light(sample=False)
            if not self._gc_enabled:  # still off: what it had left unexamined by the end
                self.writer.event("probe.gc", {"enabled": False, "pending": gc.get_count()[0]})
            if self.window is not None and not self.window.done:
                self._finish_window()
            if self.options.malloc_trim_test:
                trim = self.native.trim()
                if trim is not None:
                    self.writer.event("probe.malloc_trim", trim)
            self.writer.event("probe.status", self._status("probe stopped"))
            if self.sample_self:
                self.writer.end_run(time.time())
        except Exception as exc:  # reported in the store, never to the host's output
            self.writer.event("probe.error", {"step": "stop", "message": repr(exc)[:500]})
        self.writer.flush(timeout)
        uninstall_hooks()

    def spent(self) -> float:
        """Seconds the probe has cost the host while it runs: the probe thread's CPU (it holds
        the GIL for it: light readings, censuses, naming, flushes) and the hooks' time on the
        host's own threads. The one-off start-up (imports, ~25 ms) is reported, not charged:
        charged at 2% it would forbid any census in the first seconds of a run. Nor are
        tracemalloc's snapshots, which the user asked for (--trace-allocations) on top of the
        budget: charged, two of them had left a run one census, and its holder unnamed."""
        return self.cpu_s - self.tracing_cpu_s + host.HOOK_COST[0]

    def _status(self, message: str) -> dict[str, Any]:
        wall = max(time.time() - self.started_at, 1e-9)
        return {
            "message": message,
            "censuses": self.census.censuses,
            "census_s": round(self.census_s, 4),
            "census_share": round(self.census_s / wall, 5),
            "cpu_s": round(self.cpu_s, 4),
            "hooks_s": round(host.HOOK_COST[0], 4),
            "startup_s": round(self.startup_s, 4),
            "tracing_s": round(self.tracing_cpu_s, 4),
            "overhead": round((self.spent() + self.tracing_cpu_s + self.startup_s) / wall, 5),
            "period_s": round(self.period_s, 3),
            "tracked": len(self.census.tracks),
            "dropped": self.writer.dropped,
            "write_failures": self.writer.failures,
            "reconnects": self.writer.reconnects,
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
        self.host_gc.detach()  # a window the fork cut short left its gc callback behind
        self.writer.abandon()
        self.writer.pid = os.getpid()
        self._stop = threading.Event()
        self._stopped = False
        self.started_at = time.time()
        self.census_s = 0.0
        self.cpu_s = 0.0
        self.tracing_cpu_s = 0.0
        self.startup_s = 0.0
        host.HOOK_COST[0] = 0.0
        host.SITE_STRIDE[0] = 1
        self._hooks_at = (0.0, time.monotonic())
        self.window = None  # tracemalloc state is per process; the parent owns the window
        self.writer.event(
            "probe.status",
            {"message": f"probe started in pid {os.getpid()}", "forked_from": os.getppid()},
        )
        self._thread = _ProbeThread(self._run)

    # the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
            if self._stop_requested():
                self.stop()  # from this thread: the host goes on, unprobed, until it is stopped
        except BaseException as exc:  # never reaches the host (nor threading.excepthook)
            try:
                self.writer.event("probe.error", {"message": repr(exc)[:500]})
                self.writer.flush(2.0)
            except BaseException:
                pass

    def _loop(self) -> None:
        opts = self.options
        now = self._mono_start = self._last_census = time.monotonic()
        next_light = now
        next_census = self._next_census(now)
        next_flush = now + min(opts.flush_s, 0.5)
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_light and self._stop_requested():
                return
            if now >= next_light:
                cpu0 = time.thread_time()
                with self.host_gc:  # it holds the host's asyncio tasks while it counts them
                    self._guarded(self._light)
                self._light_cpu_s = time.thread_time() - cpu0
                self.host_gc.redo()
                self._thin_hooks(now)
                # Light readings are the budget's too: a host with thousands of threads or
                # tasks gets them less often, at most half the budget.
                every = max(opts.interval_s, 2 * self._light_cpu_s / opts.budget)
                next_light = max(next_light + every, now + every / 2)
                if now >= next_flush - opts.interval_s / 2:
                    next_flush = now  # flush on this wake-up rather than on one of its own
            if self.window is not None:
                cpu0 = time.thread_time()
                self._guarded(self._tick_window)
                self.tracing_cpu_s += time.thread_time() - cpu0
            self.cpu_s = time.thread_time()
            if now >= next_census:
                self._try_census()
                self.cpu_s = time.thread_time()
                next_census = self._next_census(time.monotonic())
            if now >= next_flush:
                self.writer.flush(5.0)
                self.cpu_s = time.thread_time()
                next_flush = time.monotonic() + opts.flush_s
            wait = min(next_light, next_census, next_flush) - time.monotonic()
            self._stop.wait(max(0.01, wait))

    def _thin_hooks(self, now: float) -> None:
        """Note task sites for half as many tasks while the hooks cost more than HOOK_SHARE of
        the budget since the last reading, for twice as many again when they cost under a
        quarter of that."""
        cost, since = host.HOOK_COST[0] - self._hooks_at[0], now - self._hooks_at[1]
        if since <= 0:
            return
        share = cost / since / self.options.budget
        if share > HOOK_SHARE:
            host.SITE_STRIDE[0] *= 2
        elif share < HOOK_SHARE / 4 and host.SITE_STRIDE[0] > 1:
            host.SITE_STRIDE[0] //= 2
        self._hooks_at = (host.HOOK_COST[0], now)

    def _stop_requested(self) -> bool:
        path = self.options.stop_file
        return path is not None and os.path.exists(path)

    def _predicted(self, exact: bool = False) -> float:
        """CPU the next census will take: objects × learned cost per object. The objects are
        those of the last census scaled by how Python's allocated blocks grew since; `exact`
        counts them (a list of the heap's objects, ~1/20 of a census) when there was no census
        yet or the heap more than doubled: blocks count str, int and untracked dicts too, and
        may be 50× the objects a census walks."""
        blocks = sys.getallocatedblocks()
        if exact and (not self._objects or blocks > 2 * self._blocks):
            self._objects, self._blocks = len(gc.get_objects()), blocks
        if self._objects and self._blocks:
            objects = self._objects * max(1.0, blocks / self._blocks)
        else:
            objects = float(blocks)
        return objects * self._per_object_s

    def _census_fits(self, now: float) -> bool:
        """Judged again when the census is due, on the heap as it is now: the heap may have
        grown a lot since the census was scheduled (a server that loads its data at start)."""
        elapsed = now - self._mono_start
        fits = self.spent() + self._predicted(exact=True) <= self.options.budget * elapsed
        return fits or now - self._last_census >= self.options.max_census_s

    def _next_census(self, now: float) -> float:
        """When the next census fits the budget: its predicted cost plus all the probe has cost
        the host so far must stay within budget × time since start."""
        opts = self.options
        predicted = self._predicted()
        self.period_s = min(opts.max_census_s, max(opts.min_census_s, predicted / opts.budget))
        by_budget = self._mono_start + (self.spent() + predicted) / opts.budget
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

    def _light(self, sample: bool = True) -> None:
        install_hooks()  # the asyncio hook, once the host has imported asyncio
        t = time.time()
        w = self.writer
        for group, n in _top(thread_groups()):
            w.point(f"threads:{group}", n, t)
        for group, n in _top(task_groups()):
            w.point(f"tasks:{group}", n, t)
        self._note_gc(t)
        fds = fd_kinds()
        for kind, n in fds.items():
            w.point(f"fds:{kind}", n, t)
        for key, value in self.native.read().items():
            w.point(f"native:{key}", value, t)
        if self.sample_self and sample:
            w.sample(t, self_status(), sum(fds.values()))

    def _note_gc(self, t: float) -> None:
        """The cyclic collector turned off (gc.disable()) or on again, as an event, with the
        objects it would examine next (generation 0's count): while it is off, reference
        cycles are never freed, and that had been a "shallow" 4% type culprit beside a leak."""
        enabled = gc.isenabled()
        if enabled != self._gc_enabled:
            self._gc_enabled = enabled
            self.writer.event("probe.gc", {"enabled": enabled, "pending": gc.get_count()[0]}, t)

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

    def _try_census(self) -> None:
        """A census when it fits the budget. It holds the whole heap for a while (longer when
        the probe thread waits for a CPU): a full collection the host ran meanwhile freed none
        of its garbage, so it is run again once the census has let go."""
        with self.host_gc.quiet():
            if self._census_fits(time.monotonic()):
                self._guarded(self._census)
                self._last_census = time.monotonic()
        self.host_gc.redo()

    def _census(self) -> None:
        start = time.perf_counter()
        cpu0 = time.thread_time()
        self._blocks = sys.getallocatedblocks()
        try:
            extra = global_containers(EXACT_LEN)
            res = self.census.take(extra, own_ids=self.writer.buffer_ids())
            del extra
            named = self._name(res.to_name)
            res.to_name = ()  # nothing of the host's is held until the next census
        finally:
            forget_types()
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
                track.bytes_per_entry = estimate_bytes(obj) / max(track.last, 1)
                track.bound, track.queue = container_traits(obj)
        return len(labels)

    def _write_containers(self, t: float) -> None:
        groups = self.census.labelled()
        ranked = sorted(
            groups.items(), key=lambda kv: sum(tr.growth for _, tr in kv[1]), reverse=True
        )[:MAX_LABELS]
        summary: dict[str, list[float]] = {}
        for label, tracks in ranked:
            entries = sum(tr.last for _, tr in tracks)
            nbytes = sum(tr.last * tr.bytes_per_entry for _, tr in tracks)
            grown = [max(tr.growth, 0) for _, tr in tracks]
            top = round(max(grown) / sum(grown), 3) if sum(grown) else 0.0
            summary[label] = [entries, len(tracks), round(nbytes), top]
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
            bounds = [tr.bound for _, tr in tracks]
            if all(b is not None for b in bounds):
                self.writer.point(f"container_bound:{label}", sum(b or 0 for b in bounds), t)
            if all(tr.queue for _, tr in tracks):
                self.writer.point(f"container_queue:{label}", len(tracks), t)
        if summary:
            self.writer.event("probe.containers", {"containers": summary}, t)


class _ProbeThread:
    """The probe's thread, which the host cannot see: started with `_thread`, it is in no
    `threading.enumerate()` (a host joining every thread but the main one at shutdown had
    waited forever on it), counts in no `active_count()`, gets none of the tracers or
    profilers the host gave `threading` (a coverage tool in a forked child had recorded
    memsleuth's files), and blocks every signal, so that none the host leaves to its own
    threads (one it blocks and takes with `sigwait`) is delivered to it (SIGUSR1 had killed
    such a host). It never calls `threading.current_thread()`, which would enter it there."""

    def __init__(self, run: Callable[[], None]) -> None:
        self.done = threading.Event()
        self.ident: int | None = None

        def main() -> None:
            try:
                self.ident = _thread.get_ident()
                run()
            finally:
                self.done.set()

        # Started with every signal blocked, which the new thread inherits from its first
        # instruction on; the starting thread's mask is put back at once.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            _thread.start_new_thread(main, ())
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def is_current(self) -> bool:
        return self.ident == _thread.get_ident()

    def join(self, timeout: float | None) -> None:
        self.done.wait(timeout)


def _top(groups: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(groups.items(), key=lambda kv: kv[1], reverse=True)[:MAX_GROUPS]
