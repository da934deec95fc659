"""The command soak: run a command N times and watch its own peak RSS per run, or the memory
of a long-lived process it talks to (--pid)."""

from __future__ import annotations

import contextlib
import marshal
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from memsleuth.errors import MemsleuthError, StoppedError, TargetError, UsageError, stopped_by
from memsleuth.model import Sample
from memsleuth.soak.outcome import ProcessSoak, judge_process, kept_hint
from memsleuth.sources.procfs import ProcSampler, identify
from memsleuth.store import Store
from memsleuth.target import check_command, command_name


@dataclass(frozen=True, slots=True)
class CommandSoakOptions:
    runs: int
    store_path: Path
    warmup: int | None = None  # default: a tenth of the runs
    pid: int | None = None  # watch this process instead of each run's own peak
    max_bytes_per_run: float = 0.0
    max_latency_ratio: float | None = None
    show_output: bool = False
    name: str | None = None


# Run by a small interpreter of its own (-I -S: no site, no memsleuth): the kernel reports a
# child's peak RSS at exit as at least the memory of the process it was spawned from (exec
# keeps the old address space's high-water mark), and memsleuth's own is tens of MiB.
_SPAWNER = r"""
import marshal, os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the command and for memsleuth
run = 0
def stop(signum, frame):  # memsleuth was stopped (SIGTERM): so is the run in flight
    if run:
        try:
            os.kill(run, signal.SIGTERM)
            for _ in range(50):
                if os.waitpid(run, os.WNOHANG)[0]:
                    break
                time.sleep(0.1)
            else:
                os.kill(run, signal.SIGKILL)
        except (ProcessLookupError, ChildProcessError):
            pass
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
ask, tell = os.fdopen(int(sys.argv[1]), "rb"), os.fdopen(int(sys.argv[2]), "wb")
while True:
    try:
        quiet, argv = marshal.load(ask)
    except EOFError:
        break
    acts = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)] if quiet else []
    started = time.perf_counter()
    try:
        run = os.posix_spawnp(argv[0], argv, os.environ, file_actions=acts,
                              setsigdef=(signal.SIGINT,))
    except OSError as exc:
        answer = ("error", exc.strerror or str(exc))
    else:
        _, status, usage = os.wait4(run, 0)
        run = 0
        seconds = time.perf_counter() - started
        answer = (os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024, seconds)
    try:
        marshal.dump(answer, tell)
        tell.flush()
    except OSError:  # memsleuth stopped listening (Ctrl-C): nothing more to say
        break
"""


class _Spawner:
    """Starts each run from the small _SPAWNER process; its own size is the floor under every
    peak (about 9 MiB: a run that peaks lower reads as that)."""

    def __init__(self) -> None:
        ask_r, self._ask = os.pipe()
        self._tell, tell_w = os.pipe()
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _SPAWNER, str(ask_r), str(tell_w)],
            pass_fds=(ask_r, tell_w),
        )
        os.close(ask_r)
        os.close(tell_w)
        self._answers = os.fdopen(self._tell, "rb")

    def run(self, argv: Sequence[str], quiet: bool) -> tuple[int, int, float]:
        """(exit status, peak RSS bytes, seconds) of one run, from wait4's rusage."""
        os.write(self._ask, marshal.dumps((quiet, list(argv))))
        try:
            answer = marshal.load(self._answers)
        except EOFError:
            raise TargetError(
                "the process that starts each run died", "run the soak again"
            ) from None
        if answer[0] == "error":
            raise TargetError(
                f"cannot start {argv[0]!r}: {answer[1]}",
                "check the command after `--` (use a path like ./tool for local files)",
            )
        status, peak, seconds = answer
        return int(status), int(peak), float(seconds)

    def close(self, stop: bool = False) -> None:
        """End the spawner: once its run is over, or at once with the run in flight (`stop`:
        memsleuth was stopped, and a SIGTERM reaches only memsleuth)."""
        os.close(self._ask)  # the spawner reads end-of-file and exits once its run is over
        self._answers.close()
        if stop:
            with contextlib.suppress(ProcessLookupError):
                self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def soak_command(argv: Sequence[str], options: CommandSoakOptions) -> ProcessSoak:
    """Run argv options.runs times (after the warm-up runs); the run is kept on errors."""
    if not argv:
        raise UsageError("no command to soak", "give the command after `--`")
    check_command(argv)
    watched = ProcSampler(identify(options.pid)) if options.pid is not None else None
    warm = max(1, options.runs // 10) if options.warmup is None else options.warmup
    total = warm + options.runs
    with Store(options.store_path) as store:
        run = store.create_run(
            name=options.name or command_name(argv),
            kind="soak",
            command=list(argv),
            pid=options.pid,
            interval_s=0.0,
            meta={"runs": options.runs, "warmup": warm, "watched_pid": options.pid},
        )
        samples: list[Sample] = []
        durations: list[float] = []
        note = "stopped by an error"
        spawner = _Spawner()
        stopping = False
        try:
            for i in range(total):
                status, peak, seconds = spawner.run(argv, quiet=not options.show_output)
                if status == -signal.SIGINT:
                    raise KeyboardInterrupt  # Ctrl-C reached the run first
                if status != 0:
                    how = (
                        f"killed by {signal.Signals(-status).name}"
                        if status < 0
                        else f"exit status {status}"
                    )
                    raise TargetError(
                        f"the command failed on run {i + 1} of {total} ({how})",
                        f"run it by hand: {shlex.join(argv)}",
                    )
                # Warm-up runs are not timed in the store either: `analyze` reads the same
                # durations as the soak, and gives the same latency ratio.
                timed = seconds if i >= warm else None
                if watched is not None:
                    s = watched.sample()
                    if s is None:
                        raise TargetError(
                            f"the watched process {options.pid} exited during run {i + 1}",
                            "start it again and re-run the soak",
                        )
                    sample = Sample(
                        t=s.t,
                        rss_bytes=s.rss_bytes,
                        hwm_bytes=s.hwm_bytes,
                        threads=s.threads,
                        fds=s.fds,
                        work=float(i + 1),
                        latency_s=timed,
                    )
                else:
                    sample = Sample(
                        t=time.time(),
                        rss_bytes=peak,
                        hwm_bytes=peak,
                        work=float(i + 1),
                        latency_s=timed,
                    )
                samples.append(sample)
                if i >= warm:
                    durations.append(seconds)
            note = f"{total} runs"
        except KeyboardInterrupt as exc:
            note = f"{stopped_by(exc)[0]} after {len(samples)} runs"
            stopping = True
            kept = kept_hint(store.path, run.id) if samples else "nothing had been measured yet"
            raise StoppedError(note, kept, by=exc) from None
        except MemsleuthError as exc:
            note = exc.message
            if samples:
                exc.hint = f"{exc.hint}; the {len(samples)} runs before are kept as run {run.id}"
            raise
        finally:
            spawner.close(stop=stopping)
            if samples:
                store.add_samples(run.id, samples)
                store.finish_run(run.id, note=note)
            else:
                # Nothing measured: no empty run left to be taken for the newest recording
                # (it had been kept and named, "the 0 runs before are kept as run 13").
                store.delete_run(run.id)
        result = judge_process(
            store_path=store.path,
            run_id=run.id,
            samples=samples,
            unit="run",
            warmup=warm,
            allowance=options.max_bytes_per_run,
            durations=durations,
            max_latency_ratio=options.max_latency_ratio,
        )
        store.set_run_meta(run.id, ok=result.ok, bytes_per_run=result.bytes_per_unit)
        return result
