"""Watch one process (started or attached) and write its samples into the store as they come."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np
import psutil

from memsleuth.errors import ExitCode, StoreWriteError, TargetError, UsageError
from memsleuth.model import PROCESS_PREFIX, Run, RunKind, Sample, Series, Verdict
from memsleuth.probe.agent import STOP_FILE_ENV
from memsleuth.sources import mallstats
from memsleuth.sources.procfs import (
    CHILDREN_EVERY_S,
    CLOCK_TICKS,
    LEFT_OUT_COUNT,
    LEFT_OUT_RSS,
    ProcIdentity,
    ProcSampler,
    cgroup_limit,
    command_line,
    descendants,
    fd_limit,
    identify,
    program,
    summed_rss,
)
from memsleuth.store import Store, run_ref
from memsleuth.target import check_command, command_name, start_target, stop_target

log = logging.getLogger(__name__)

# How often a tree's processes' own RSS is stored (at most; one point each).
PROCESS_EVERY_S = 1.0

# Samples are committed at least this often, so a SIGKILLed recorder loses at most this much.
COMMIT_EVERY_S = 1.0
# While the store cannot take writes (its disk full, its write lock held by another process),
# samples are held in memory and written at the next commit: at most this many (an hour at the
# default interval; a few MiB), and this many named points with them. Past either, recording
# stops: an attached target is left running, one memsleuth started is left to run to its end.
MAX_HELD_SAMPLES = 3600
MAX_HELD_POINTS = 100_000
# How long a write waits for another writer's lock while recording: the usual 10 s would
# leave that long without samples. Once a write has failed, the next tries do not wait.
RECORDING_LOCK_WAIT_S = COMMIT_EVERY_S
# The reason a recording ends with when the store took nothing more.
STORE_FAILED = "store not writable"
# How often the live line re-judges the series so far.
LIVE_VERDICT_EVERY_S = 5.0
# How long the target's probes get to finish (last readings, the malloc_trim test, a flush)
# once asked, before the target is stopped: their exit timeout is 2 s, and a trim of a large
# heap takes a fraction of a second.
PROBE_STOP_WAIT_S = 8.0
# Without a terminal, the status is a plain line this often (logs stay readable).
PLAIN_LINE_EVERY_S = 5.0
# The live verdict looks at no more points than this (evenly thinned), to stay cheap.
LIVE_MAX_POINTS = 20_000


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """What `record` (and `run`, `soak`) were asked to do."""

    store_path: Path
    interval_s: float = 1.0
    duration_s: float | None = None
    name: str | None = None
    limit_bytes: int | None = None
    children: bool = False
    work_file: Path | None = None
    malloc_stats: bool = False  # preload the allocator reader (sources/mallstats.py)
    pid: int | None = None
    quiet: bool = False  # no live line (tests, scripts)
    stop_grace_s: float = 5.0  # SIGTERM → SIGKILL delay when stopping a target we started


@dataclass(frozen=True, slots=True)
class RecordResult:
    run_id: int
    samples: int
    exit_status: int | None  # the target's when memsleuth started it, 128 + N after signal N
    reason: str  # "target exited", "interrupted", "duration reached", "target vanished"
    killed_by: int | None = None  # the signal that ended the target, when one did
    # Processes the target started that still ran when it exited on its own (a daemon, a
    # child sent to the background): not stopped, and said.
    survivors: tuple[tuple[int, str], ...] = ()
    unstored: int = 0  # samples taken that the store never took (its disk full, locked)
    store_failure: StoreWriteError | None = None  # the first write the store refused, if any

    @property
    def stored(self) -> int:
        return self.samples - self.unstored

    @property
    def target_failed(self) -> bool:
        """The target memsleuth started ended by itself, and not with status 0. (Stopped by
        memsleuth at --duration or on Ctrl-C, it ended as asked: that is no failure.)"""
        return self.reason == "target exited" and bool(self.exit_status)


class _Stop(Exception):
    """Raised in the main thread by SIGTERM so recording ends as cleanly as on Ctrl-C."""


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _status_words(result: RecordResult) -> str:
    """ "exit status 143" alone, after --duration, had read as the target failing."""
    if result.reason in ("duration reached", "interrupted"):
        return f"stopped by memsleuth: exit status {result.exit_status}"
    return f"exit status {result.exit_status}"


# How long what the target started may take to exit after it before it is named as left running.
SURVIVOR_GRACE_S = 1.0


def _survivors(procs: list[psutil.Process]) -> tuple[tuple[int, str], ...]:
    """(pid, name) of those still running SURVIVOR_GRACE_S after the target ended (not the same
    pid reused, not a zombie), once each: multiprocessing's resource tracker and forkserver
    exit a moment after their program, and had been named as left running."""
    if not procs:
        return ()
    with contextlib.suppress(psutil.Error, OSError):
        _, procs = psutil.wait_procs(procs, timeout=SURVIVOR_GRACE_S)
    out: dict[int, str] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out[proc.pid] = proc.name()
    return tuple(out.items())


def _orphans(target: ProcIdentity) -> list[psutil.Process]:
    """Processes the target started, found after it exited: orphans are reparented, but a
    child it sent to the background keeps its process group, which is memsleuth's (the
    target was started in it). Orphans of that group started since the target (not a
    `| tee` beside memsleuth), other than memsleuth's own. A daemon that left the group
    (setsid) is not found."""
    try:
        started = psutil.boot_time() + target.start_ticks / CLOCK_TICKS - 0.01
        mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
        group = os.getpgrp()
        out = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if (
                    proc.pid not in mine
                    and os.getpgid(proc.pid) == group
                    and proc.create_time() >= started
                    and proc.pid != target.pid
                    and _reparented(proc, group)
                ):
                    out.append(proc)
        return out
    except (psutil.Error, OSError):
        return []


def _reparented(proc: psutil.Process, group: int) -> bool:
    """An orphan: its parent is init or a subreaper outside the group, not a shell of the
    same script (a CI script's other commands, another memsleuth and its target, had been
    named as started by the target)."""
    parent = proc.ppid()
    if parent <= 1:
        return True
    try:
        return os.getpgid(parent) != group
    except OSError:
        return True


def still_running(survivors: tuple[tuple[int, str], ...]) -> str:
    listed = ", ".join(f"{pid} {name}" for pid, name in survivors[:3])
    more = f" and {len(survivors) - 3} more" if len(survivors) > 3 else ""
    which = (
        "1 process it started still runs"
        if len(survivors) == 1
        else (f"{len(survivors)} processes it started still run")
    )
    return f"{which}: {listed}{more}"


class Recorder:
    """Samples a target at a fixed interval into one run of the store."""

    def __init__(
        self,
        store: Store,
        options: RecordOptions,
        *,
        on_sample: Callable[[Run, Sample, int], None] | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.on_sample = on_sample
        self._pending: list[Sample] = []
        # Named points to write with the samples: malloc's free bytes (--malloc-stats), and
        # the RSS of the processes a recording without --children leaves out.
        self._pending_points: dict[str, list[tuple[float, float]]] = {}
        self._stats_dir: Path | None = None  # where the allocator reader writes (--malloc-stats)
        self._children_at = 0.0  # when the left-out processes were last read
        self._program: tuple[str, bytes] | None = None  # what the target runs (procfs.program)
        self._command = ""  # and its command line
        self._descendants: list[psutil.Process] = []  # the processes it started, as last seen
        self._names: dict[int, str] = {}  # of a tree's processes, by pid
        self._last_commit = 0.0
        self.count = 0
        # Run updates and events the store could not take yet, written before the samples.
        self._deferred: list[Callable[[], object]] = []
        self._failing: StoreWriteError | None = None  # why the store takes nothing now
        self._failed: StoreWriteError | None = None  # the first such failure of the recording

    def record(
        self,
        argv: Sequence[str] = (),
        *,
        kind: RunKind = "record",
        env_for_run: Callable[[Run], dict[str, str]] | None = None,
    ) -> RecordResult:
        opts = self.options
        if not argv and opts.pid is None:
            raise UsageError("nothing to record", "give a command after `--` or --pid PID")
        attached: ProcIdentity | None = identify(opts.pid) if opts.pid is not None else None
        if attached is None:
            check_command(argv)  # no empty run left behind to become the newest
        if opts.malloc_stats and attached is not None:
            raise UsageError(
                "--malloc-stats cannot attach to a running process",
                "its reader is loaded when the program starts: record -- CMD instead of --pid",
            )
        shim = mallstats.build() if opts.malloc_stats else None
        if opts.name:
            name = opts.name
        elif attached is not None:
            name = command_name(attached.cmdline, attached.name)
        else:
            name = command_name(argv)
        run = self.store.create_run(
            name=name,
            kind=kind,
            command=list(argv) if argv else list(attached.cmdline if attached else ()),
            pid=attached.pid if attached else None,
            interval_s=opts.interval_s,
            limit_bytes=opts.limit_bytes,
            meta={"children": opts.children, "attached": attached is not None},
        )
        proc: subprocess.Popen[bytes] | None = None
        env_run: dict[str, str] = {}
        reason = "recorder stopped by an error"
        exit_status: int | None = None
        killed_by: int | None = None
        survivors: tuple[tuple[int, str], ...] = ()
        unstarted = False
        unstored = 0  # samples the store never took
        try:
            with _sigterm_stops(), self.store.lock_wait(RECORDING_LOCK_WAIT_S):
                try:
                    if attached is None:
                        env_run = {} if env_for_run is None else env_for_run(run)
                        if shim is not None:
                            self._stats_dir = Path(tempfile.mkdtemp(prefix="memsleuth-malloc-"))
                            env_run |= mallstats.preload_env(shim, self._stats_dir, opts.interval_s)
                        proc = start_target(argv, env=os.environ | env_run if env_run else None)
                        attached = identify(proc.pid)
                    limit = opts.limit_bytes or cgroup_limit(attached.pid)
                    run = dataclasses.replace(run, pid=attached.pid, limit_bytes=limit)
                    self._write(
                        functools.partial(
                            self.store.update_run, run.id, pid=run.pid, limit_bytes=limit
                        )
                    )
                    self._note_fd_limit(run.id, attached.pid)
                    sampler = ProcSampler(
                        attached, children=opts.children, work_file=opts.work_file
                    )
                    reason = self._loop(run, sampler, proc)
                    if opts.children:
                        self._descendants = sampler.descendants
                    # Again at the end: a wrapper (`sh -c 'ulimit -n 300; exec prog'`) sets it
                    # after the target starts.
                    self._note_fd_limit(run.id, attached.pid)
                except (KeyboardInterrupt, _Stop):
                    reason = "interrupted"
                except TargetError:
                    if proc is None:
                        unstarted = attached is None
                        raise
                    reason = "target exited"  # exited before its first sample
        finally:
            if self._stats_dir is not None:
                shutil.rmtree(self._stats_dir, ignore_errors=True)
                self._stats_dir = None
            if unstarted:  # it never ran: no run left behind (as for a command not found)
                self.store.delete_run(run.id)
            else:
                unstored = self._last_flush(run.id)
                if proc is not None:
                    if env_run.get(STOP_FILE_ENV):
                        self._stop_probes(run.id, Path(env_run[STOP_FILE_ENV]), proc)
                    exit_status = stop_target(proc, opts.stop_grace_s)
                    killed_by = -proc.returncode if proc.returncode < 0 else None
                if reason == "target exited" and proc is not None and attached is not None:
                    survivors = _survivors([*self._descendants, *_orphans(attached)])
                note = f"{reason}; {still_running(survivors)}" if survivors else reason
                if unstored:
                    note += f"; {_samples(unstored)} could not be stored"
                self._finish(run.id, exit_status, note, killed_by)
        return RecordResult(
            run.id, self.count, exit_status, reason, killed_by, survivors, unstored, self._failed
        )

    def _finish(self, run_id: int, exit_status: int | None, note: str, killed: int | None) -> None:
        """Close the run in the store; when it cannot take that, the run stays open (`runs`
        shows it as "recording or killed"), and the target's status is still returned."""
        try:
            if killed is not None:  # 128 + N alone is also what exit(128 + N) gives
                self.store.set_run_meta(run_id, killed_by=killed)
            self.store.finish_run(run_id, exit_status=exit_status, note=note)
        except StoreWriteError as exc:
            self._failed = self._failed or exc
            _say(
                f"memsleuth: warning: the end of run {run_id} could not be written either "
                "(`runs` shows it as recording or killed)"
            )

    def _last_flush(self, run_id: int) -> int:
        """Write what is held, waiting the usual time for a lock; how many samples the store
        could not take (then dropped)."""
        if self._flush(run_id):
            return 0
        unstored = len(self._pending)
        self._pending, self._pending_points, self._deferred = [], {}, []
        return unstored

    def _write(self, write: Callable[[], object]) -> None:
        """A run update or event, now; or, while the store cannot take writes, with the held
        samples at the next commit (in order)."""
        if self._failing is None:
            try:
                write()
                return
            except StoreWriteError as exc:
                self._store_failed(exc)
        self._deferred.append(write)

    def _store_failed(self, exc: StoreWriteError) -> None:
        """Said once a recording (not once a sample): what failed, and what to do."""
        if self._failed is None:
            _say(
                f"memsleuth: warning: {exc.message}; samples are held in memory (up to "
                f"{MAX_HELD_SAMPLES}) and written once it takes them again: {exc.remedy}"
            )
            self._failed = exc
        self._failing = exc

    def _held_too_many(self) -> bool:
        points = sum(map(len, self._pending_points.values())) + len(self._deferred)
        return len(self._pending) >= MAX_HELD_SAMPLES or points >= MAX_HELD_POINTS

    def _outlast(
        self, pid: int, proc: subprocess.Popen[bytes] | None, deadline: float | None
    ) -> str:
        """The store took nothing while the most samples were held: stop sampling. An
        attached target is left running, as at Ctrl-C; one memsleuth started is left to run
        to its end (or --duration): memsleuth's disk is no reason to stop the user's command."""
        assert self._failing is not None
        why = (
            f"memsleuth: the store still takes nothing ({self._failing.message}) with "
            f"{len(self._pending)} samples held: recording stops here"
        )
        if proc is None:
            _say(f"{why}; process {pid} goes on running")
            return STORE_FAILED
        _say(f"{why}; the command goes on running, and memsleuth waits for it to end")
        try:
            proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return "duration reached"
        return "target exited"

    def _note_fd_limit(self, run_id: int, pid: int) -> None:
        limit = fd_limit(pid)
        if limit is not None:
            self._write(functools.partial(self.store.set_run_meta, run_id, fd_limit=limit))

    def _stop_probes(self, run_id: int, stop_file: Path, proc: subprocess.Popen[bytes]) -> None:
        """Ask the target's probes to finish (`stop_file`) and wait until each one that said
        "probe started" has said "probe stopped", the target exits, or PROBE_STOP_WAIT_S."""
        if proc.poll() is not None:
            return
        try:
            stop_file.touch()
        except OSError:
            return  # the probes finish at exit if they can; nothing else is lost
        try:
            deadline = time.monotonic() + PROBE_STOP_WAIT_S
            while time.monotonic() < deadline and proc.poll() is None:
                events = self.store.load_events(run_id, "probe.status")
                said = [payload.get("message", "") for _, _, payload in events]
                started = sum(m.startswith("probe started") for m in said)
                if started <= sum(m == "probe stopped" for m in said):
                    return
                time.sleep(0.1)
        finally:
            with contextlib.suppress(OSError):
                stop_file.unlink()

    def _loop(self, run: Run, sampler: ProcSampler, proc: subprocess.Popen[bytes] | None) -> str:
        opts = self.options
        start = time.monotonic()
        deadline = None if opts.duration_s is None else start + opts.duration_s
        next_at = start
        while True:
            sample = sampler.sample()
            if sample is None:
                return "target exited" if proc is not None else "target vanished"
            if not self._add(run, sample):
                return self._outlast(sampler.identity.pid, proc, deadline)
            self._note_exec(run.id, sample.t, sampler.identity.pid)
            if self._stats_dir is not None:
                self._add_malloc_stats(sample.t, sampler.identity.pid, sampler.pids)
            if not opts.children:
                self._add_left_out(sample.t, sampler.identity.pid)
            else:
                self._add_processes(sample.t, sampler)
            next_at += opts.interval_s
            now = time.monotonic()
            if next_at < now:  # we fell behind (suspended, overloaded): don't burst
                next_at = now + opts.interval_s
            if deadline is not None and next_at > deadline:
                if deadline > now:
                    self._wait(proc, deadline - now)
                return "duration reached"
            if self._wait(proc, next_at - now):
                return "target exited"

    @staticmethod
    def _wait(proc: subprocess.Popen[bytes] | None, seconds: float) -> bool:
        """Sleep; True when the target we started exited meanwhile."""
        if proc is None:
            time.sleep(max(0.0, seconds))
            return False
        try:
            proc.wait(timeout=max(0.0, seconds))
        except subprocess.TimeoutExpired:
            return False
        return True

    def _add(self, run: Run, sample: Sample) -> bool:
        """Hold a sample and commit what is held when due; False when the store has taken
        nothing while the most samples were held (recording stops)."""
        self._pending.append(sample)
        self.count += 1
        now = time.monotonic()
        if now - self._last_commit >= COMMIT_EVERY_S or self.options.interval_s >= COMMIT_EVERY_S:
            self._last_commit = now
            if self._failing is not None:  # a held lock: try without waiting, sample on time
                with self.store.lock_wait(0.0):
                    stored = self._flush(run.id)
            else:
                stored = self._flush(run.id)
            if not stored and self._held_too_many():
                return False
        if self.on_sample is not None:
            self.on_sample(run, sample, self.count)
        return True

    def _add_malloc_stats(self, t: float, pid: int, pids: Sequence[int]) -> None:
        """What the allocator readers last wrote: the bytes malloc holds free and in use in the
        processes whose RSS the sample summed (with `--children`, every one that wrote), as the
        same points the Python probe writes under the main pid (`analyze` turns them into live
        bytes). Committed with the samples."""
        assert self._stats_dir is not None
        read = [mallstats.read(self._stats_dir, p) for p in pids]
        if read and read[0] is not None:  # the main process has written
            got = [r for r in read if r is not None]
            points = self._pending_points
            points.setdefault(f"native:malloc_free [pid {pid}]", []).append(
                (t, sum(f for f, _ in got))
            )
            points.setdefault(f"native:malloc_inuse [pid {pid}]", []).append(
                (t, sum(u for _, u in got))
            )

    def _note_exec(self, run_id: int, t: float, pid: int) -> None:
        """An event when the target exec()s another program: what came before was another
        program's memory (`analyze` judges from the last exec on)."""
        now = program(pid)
        if now is None or now == self._program:
            return
        command = command_line(pid)
        if self._program is None:
            if command:  # an exec() under way has no command line yet: not the program's start
                self._program, self._command = now, command
            return
        payload = {"exe": now[0], "command": command, "was": self._command}
        self._write(functools.partial(self.store.add_event, run_id, "target.exec", payload, t=t))
        self._program, self._command = now, command

    def _children_due(self, every_s: float = CHILDREN_EVERY_S) -> bool:
        """Whether `every_s` have passed since the processes were last read."""
        now = time.monotonic()
        if now - self._children_at < every_s:
            return False
        self._children_at = now
        return True

    def _add_processes(self, t: float, sampler: ProcSampler) -> None:
        """Every PROCESS_EVERY_S, each process's RSS in a tree recorded with --children (read
        with the sample anyway): the culprits name the worker that grows (`process:<pid>
        <name>` points). Every 5 s had left a 22 s recording under load too few points."""
        if not self._children_due(PROCESS_EVERY_S):
            return
        for pid, rss in sampler.rss_by_pid.items():
            name = self._names.get(pid)
            if name is None:
                with contextlib.suppress(psutil.Error):
                    name = self._names[pid] = psutil.Process(pid).name()
            series = f"{PROCESS_PREFIX}{pid} {name or '?'}"
            self._pending_points.setdefault(series, []).append((t, rss))

    def _add_left_out(self, t: float, pid: int) -> None:
        """Every CHILDREN_EVERY_S, the descendants' RSS a recording without --children does not
        sum: `analyze` judges the tree when they grow and the process does not (a launcher
        script, a pre-fork master: `stable`, exit 0, while a worker leaked 686 MiB/h)."""
        if not self._children_due():
            return
        self._descendants = descendants(pid)
        count, rss = summed_rss(self._descendants)
        self._pending_points.setdefault(LEFT_OUT_RSS, []).append((t, float(rss)))
        self._pending_points.setdefault(LEFT_OUT_COUNT, []).append((t, float(count)))

    def _flush(self, run_id: int) -> bool:
        """Write what is held: False when the store cannot take it now (a full disk, a lock:
        held for the next flush, and said once)."""
        try:
            while self._deferred:
                self._deferred[0]()
                self._deferred.pop(0)
            if self._pending:
                self.store.add_samples(run_id, self._pending)
                held, self._pending = len(self._pending), []
            else:
                held = 0
            for name, points in list(self._pending_points.items()):
                self.store.add_points(run_id, name, points)
                del self._pending_points[name]
        except StoreWriteError as exc:
            self._store_failed(exc)
            return False
        if self._failing is not None:
            self._failing = None
            _say(f"memsleuth: the store takes writes again: the {_samples(held)} held are written")
        return True


class LiveLine:
    """The line shown while recording: elapsed, RSS, growth so far, verdict so far."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.tty = self.console.is_terminal
        self._t: list[float] = []
        self._rss: list[float] = []
        self._threads: list[float] = []
        self._verdict: Verdict | None = None
        self._judged_at = 0.0
        self._printed_at = 0.0
        self._silenced = False
        self._status = self.console.status("") if self.tty else None
        if self._status is not None:
            self._status.start()

    def __call__(self, run: Run, sample: Sample, count: int) -> None:
        if self._silenced:
            return
        try:
            self._show(run, sample, count)
        except OSError:  # stderr is gone (full, closed): the line must never stop a recording
            self._silenced = True
            log.debug("live line stopped", exc_info=True)

    def _show(self, run: Run, sample: Sample, count: int) -> None:
        self._t.append(sample.t)
        self._rss.append(float(sample.rss_bytes))
        self._threads.append(float("nan") if sample.threads is None else sample.threads)
        now = time.monotonic()
        if now - self._judged_at >= LIVE_VERDICT_EVERY_S and count >= 10:
            self._verdict = self._judge(run)
            self._judged_at = now
        text = self._text(sample)
        if self._status is not None:
            self._status.update(text)
        elif now - self._printed_at >= PLAIN_LINE_EVERY_S:
            self.console.print(text, highlight=False, markup=False)
            self._printed_at = now

    def _judge(self, run: Run) -> Verdict | None:
        from memsleuth.analysis.verdict import judge

        t = np.asarray(self._t)
        step = max(1, t.size // LIVE_MAX_POINTS)
        series = Series.from_arrays(
            (t - t[0])[::step],
            np.asarray(self._rss)[::step],
            threads=np.asarray(self._threads)[::step],
        )
        try:
            return judge(series, limit_bytes=run.limit_bytes)
        except Exception:  # the live line must never stop a recording
            log.debug("live verdict failed", exc_info=True)
            return None

    def _text(self, sample: Sample) -> str:
        from memsleuth.units import format_bytes, format_duration, format_rate

        elapsed = sample.t - self._t[0]
        parts = [f"recording {format_duration(elapsed)}", f"RSS {format_bytes(sample.rss_bytes)}"]
        v = self._verdict
        if v is not None:
            if v.growth_bytes_per_hour is not None:
                parts.append(f"growth {format_rate(v.growth_bytes_per_hour)}")
            parts.append(f"verdict so far: {v.verdict}")
        return " · ".join(parts)

    def close(self) -> None:
        if self._status is not None:
            with contextlib.suppress(OSError):
                self._status.stop()


def record_command(
    argv: Sequence[str],
    options: RecordOptions,
    *,
    kind: RunKind = "record",
    env_for_run: Callable[[Run], dict[str, str]] | None = None,
) -> int:
    """Record, print where the run went, and return the exit code for the CLI: the target's
    own status when it failed (as time(1) does), so scripts and CI see the failure."""
    live = None if options.quiet else LiveLine()
    with Store(options.store_path) as store:
        try:
            result = Recorder(store, options, on_sample=live).record(
                argv, kind=kind, env_for_run=env_for_run
            )
        finally:
            if live is not None:
                live.close()
        worked = (
            options.work_file is None
            or result.stored == 0
            or store.has_values(result.run_id, "work")
        )
    if result.survivors:
        # Said even with --quiet: left running, and perhaps what the user meant to watch (a
        # daemon, a child sent to the background).
        pid = result.survivors[0][0]
        _say(
            f"memsleuth: the target exited; {still_running(result.survivors)} (not stopped: "
            f"`memsleuth record --pid {pid}` watches one)"
        )
    if not worked:
        # Said even with --quiet: the growth per unit of work asked for is not there.
        _say(
            f"memsleuth: warning: the work file {options.work_file} was never read (missing, "
            "not a regular file, or not a number): no growth per unit of work"
        )
    failure = result.store_failure
    lost = result.unstored > 0 or result.reason == STORE_FAILED
    if lost and failure is not None and options.pid is None:
        # Said even with --quiet; the exit status stays the command's own.
        unstored = _samples(result.unstored)
        _say(f"memsleuth: warning: {unstored} could not be stored: {failure.message}")
    line = closing_line(result, options.store_path, options.quiet)
    if line is not None:
        _say(line)
    if lost and failure is not None and options.pid is not None:
        what = f"{_samples(result.unstored)} could not be stored" if result.unstored else ""
        raise StoreWriteError(
            f"{what or 'recording stopped early'}: {failure.message}",
            f"{failure.remedy}, then record again (process {options.pid} goes on running)",
            remedy=failure.remedy,
        )
    if result.target_failed and result.exit_status is not None:
        return result.exit_status
    return ExitCode.OK


def closing_line(result: RecordResult, store_path: Path, quiet: bool) -> str | None:
    """The line `record` ends with: where the run went, and how the target ended. Said even
    with --quiet when the target failed (a non-zero exit needs its reason, and the run is not
    lost) or left no sample (then with nothing to see: `analyze` of it is an error)."""
    see = f"; see: memsleuth analyze {run_ref(store_path, result.run_id)}"
    if result.samples == 0:
        see = "; it ended before its first sample: nothing to analyze"
    elif result.stored == 0:
        see = "; the store took none of its samples: nothing to analyze"
    samples = _samples(result.stored)
    if result.target_failed and result.exit_status is not None:
        return f"memsleuth: run {result.run_id} saved ({samples}); {_target_failure(result)}{see}"
    if quiet and result.stored and not result.unstored:
        return None
    status = "" if result.exit_status is None else f" ({_status_words(result)})"
    return f"memsleuth: run {result.run_id}: {samples}, {result.reason}{status}{see}"


def _samples(count: int) -> str:
    return f"{count} sample{'' if count == 1 else 's'}"


def _say(message: str) -> None:
    """A line on stderr, if stderr can take it: the run is saved whether it can or not."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def _target_failure(result: RecordResult) -> str:
    if result.killed_by is None:
        return f"the target exited with status {result.exit_status}, and so does memsleuth"
    try:
        name = signal.Signals(result.killed_by).name
    except ValueError:
        name = f"signal {result.killed_by}"
    return (
        f"the target was killed by {name}, so memsleuth exits {result.exit_status} "
        f"(128 + {result.killed_by}, as a shell does)"
    )
