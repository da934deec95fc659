"""Watch one process (started or attached) and write its samples into the store as they come."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from memsleuth.errors import StoreWriteError, TargetError, UsageError
from memsleuth.model import Run, RunKind, Sample
from memsleuth.probe.agent import STOP_FILE_ENV
from memsleuth.process_tree import TreeReadings, orphans, still_running, wait_for_survivors
from memsleuth.sources import mallstats
from memsleuth.sources.procfs import (
    ProcIdentity,
    ProcSampler,
    cgroup_limit,
    command_line,
    fd_limit,
    identify,
    machine_memory,
    program,
)
from memsleuth.store import Store
from memsleuth.target import check_command, command_name, start_target, stop_target
from memsleuth.write_buffer import WriteBuffer, sample_words, say

if TYPE_CHECKING:
    from memsleuth.profile_watch import ProfileWatch

# Samples are committed at least this often, so a SIGKILLed recorder loses at most this much.
COMMIT_EVERY_S = 1.0
# How long a write waits for another writer's lock while recording: the usual 10 s would
# leave that long without samples. Once a write has failed, the next tries do not wait.
RECORDING_LOCK_WAIT_S = COMMIT_EVERY_S
# The reason a recording ends with when the store took nothing more.
STORE_FAILED = "store not writable"
# How long the target's probes get to finish (last readings, the malloc_trim test, a flush)
# once asked, before the target is stopped: their exit timeout is 2 s, and a trim of a large
# heap takes a fraction of a second.
PROBE_STOP_WAIT_S = 8.0


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
    heap_profile: str | None = None  # a pprof heap profile endpoint's URL (profile_watch.py)
    heap_profile_every_s: float = 5.0  # how often it is read at most (profile_watch.EVERY_S)
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
        self._held = WriteBuffer(store)  # what is yet to be written, or held while it cannot
        self._stats_dir: Path | None = None  # where the allocator reader writes (--malloc-stats)
        self._program: tuple[str, bytes] | None = None  # what the target runs (procfs.program)
        self._command = ""  # and its command line
        self._tree = TreeReadings(self._held)  # what its descendants hold
        self._profiles: ProfileWatch | None = None  # heap profiles (--heap-profile)
        self._last_commit = 0.0
        self.count = 0

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
                    self._held.write(
                        functools.partial(
                            self.store.update_run, run.id, pid=run.pid, limit_bytes=limit
                        )
                    )
                    self._note_fd_limit(run.id, attached.pid)
                    sampler = ProcSampler(
                        attached, children=opts.children, work_file=opts.work_file
                    )
                    if opts.heap_profile is not None:
                        from memsleuth.profile_watch import ProfileWatch  # protobuf: on demand

                        self._profiles = ProfileWatch(
                            opts.heap_profile, attached.pid, opts.heap_profile_every_s
                        ).start()
                    reason = self._loop(run, sampler, proc)
                    if opts.children:
                        self._tree.descendants = sampler.descendants
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
                if self._profiles is not None:
                    self._profiles.stop()
                    self._add_profiles(run.id)
                    self._say_profiles_read(self._profiles)
                unstored = self._held.last_flush(run.id)
                if proc is not None:
                    if env_run.get(STOP_FILE_ENV):
                        self._stop_probes(run.id, Path(env_run[STOP_FILE_ENV]), proc)
                    exit_status = stop_target(proc, opts.stop_grace_s)
                    killed_by = -proc.returncode if proc.returncode < 0 else None
                if reason == "target exited" and proc is not None and attached is not None:
                    survivors = wait_for_survivors([*self._tree.descendants, *orphans(attached)])
                note = f"{reason}; {still_running(survivors)}" if survivors else reason
                if unstored:
                    note += f"; {sample_words(unstored)} could not be stored"
                self._finish(run.id, exit_status, note, killed_by)
        failed = self._held.failed
        return RecordResult(
            run.id, self.count, exit_status, reason, killed_by, survivors, unstored, failed
        )

    def _finish(self, run_id: int, exit_status: int | None, note: str, killed: int | None) -> None:
        """Close the run in the store; when it cannot take that, the run stays open (`runs`
        shows it as "recording or killed"), and the target's status is still returned."""
        try:
            if killed is not None:  # 128 + N alone is also what exit(128 + N) gives
                self.store.set_run_meta(run_id, killed_by=killed)
            self.store.finish_run(run_id, exit_status=exit_status, note=note)
        except StoreWriteError as exc:
            self._held.failed = self._held.failed or exc
            say(
                f"memsleuth: warning: the end of run {run_id} could not be written either "
                "(`runs` shows it as recording or killed)"
            )

    def _outlast(
        self, pid: int, proc: subprocess.Popen[bytes] | None, deadline: float | None
    ) -> str:
        """The store took nothing while the most samples were held: stop sampling. An
        attached target is left running, as at Ctrl-C; one memsleuth started is left to run
        to its end (or --duration): memsleuth's disk is no reason to stop the user's command."""
        assert self._held.failing is not None
        why = (
            f"memsleuth: the store still takes nothing ({self._held.failing.message}) with "
            f"{len(self._held.samples)} samples held: recording stops here"
        )
        if proc is None:
            say(f"{why}; process {pid} goes on running")
            return STORE_FAILED
        say(f"{why}; the command goes on running, and memsleuth waits for it to end")
        try:
            proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return "duration reached"
        return "target exited"

    def _note_fd_limit(self, run_id: int, pid: int) -> None:
        """The target's open-files limit, and the machine's memory (RAM and swap): what a
        bounded cache's ceiling is held to when no --limit or cgroup limit is known."""
        limit = fd_limit(pid)
        known = {"memory_bytes": machine_memory()}
        if limit is not None:
            known["fd_limit"] = limit
        self._held.write(functools.partial(self.store.set_run_meta, run_id, **known))

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
            if self._profiles is not None:
                self._add_profiles(run.id)
            if not opts.children:
                self._tree.add_left_out(sample.t, sampler.identity.pid)
            else:
                self._tree.add_processes(sample.t, sampler)
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
        self._held.samples.append(sample)
        self.count += 1
        now = time.monotonic()
        if now - self._last_commit >= COMMIT_EVERY_S or self.options.interval_s >= COMMIT_EVERY_S:
            self._last_commit = now
            if self._held.failing is not None:  # a held lock: try without waiting, sample on time
                with self.store.lock_wait(0.0):
                    stored = self._held.flush(run.id)
            else:
                stored = self._held.flush(run.id)
            if not stored and self._held.held_too_many():
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
            self._held.add_point(f"native:malloc_free [pid {pid}]", t, sum(f for f, _ in got))
            self._held.add_point(f"native:malloc_inuse [pid {pid}]", t, sum(u for _, u in got))

    def _add_profiles(self, run_id: int) -> None:
        """The heap profiles read since the last sample: their sites' bytes in use as points,
        an event each; a failure said once on stderr (the recording goes on without it)."""
        from memsleuth.analysis.profiles import HEAP_EVENT

        assert self._profiles is not None
        for taken in self._profiles.drain():
            if taken.warning:
                what = "heap" if taken.kind == HEAP_EVENT else "goroutine"
                say(f"memsleuth: warning: {what} profile: {taken.warning}")
            if taken.event is not None:
                add = self.store.add_event
                self._held.write(functools.partial(add, run_id, taken.kind, taken.event, taken.t))
            for name, t, value in taken.points:
                self._held.add_point(name, t, value)

    @staticmethod
    def _say_profiles_read(watch: ProfileWatch) -> None:
        """A recording that asked for heap profiles and read none says so as it ends."""
        heap = watch.heap
        if heap.read == 0:
            why = f": {heap.errors[0]}" if heap.errors else ""
            say(f"memsleuth: no heap profile could be read from {heap.url}{why}")

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
        self._held.write(
            functools.partial(self.store.add_event, run_id, "target.exec", payload, t=t)
        )
        self._program, self._command = now, command
