"""The target's process tree: its processes' RSS read beside the samples, as named points, and
the processes it started that outlive it (found after it exits, and named as left running)."""

from __future__ import annotations

import contextlib
import os
import time

import psutil

from memsleuth.model import PROCESS_PREFIX
from memsleuth.sources.procfs import (
    CHILDREN_EVERY_S,
    CLOCK_TICKS,
    LEFT_OUT_COUNT,
    LEFT_OUT_RSS,
    ProcIdentity,
    ProcSampler,
    descendants,
    summed_rss,
)
from memsleuth.write_buffer import WriteBuffer

# How often a tree's processes' own RSS is stored (at most; one point each).
PROCESS_EVERY_S = 1.0


class TreeReadings:
    """What the target's descendants hold, read beside its samples into the held points."""

    def __init__(self, held: WriteBuffer) -> None:
        self._held = held
        self._read_at = 0.0  # when the processes were last read
        self.descendants: list[psutil.Process] = []  # the processes it started, as last seen
        self._names: dict[int, str] = {}  # of a tree's processes, by pid

    def _due(self, every_s: float = CHILDREN_EVERY_S) -> bool:
        """Whether `every_s` have passed since the processes were last read."""
        now = time.monotonic()
        if now - self._read_at < every_s:
            return False
        self._read_at = now
        return True

    def add_processes(self, t: float, sampler: ProcSampler) -> None:
        """Every PROCESS_EVERY_S, each process's RSS in a tree recorded with --children (read
        with the sample anyway): the culprits name the worker that grows (`process:<pid>
        <name>` points). Every 5 s had left a 22 s recording under load too few points."""
        if not self._due(PROCESS_EVERY_S):
            return
        for pid, rss in sampler.rss_by_pid.items():
            name = self._names.get(pid)
            if name is None:
                with contextlib.suppress(psutil.Error):
                    name = self._names[pid] = psutil.Process(pid).name()
            series = f"{PROCESS_PREFIX}{pid} {name or '?'}"
            self._held.add_point(series, t, rss)

    def add_left_out(self, t: float, pid: int) -> None:
        """Every CHILDREN_EVERY_S, the descendants' RSS a recording without --children does not
        sum: `analyze` judges the tree when they grow and the process does not (a launcher
        script, a pre-fork master: `stable`, exit 0, while a worker leaked 686 MiB/h)."""
        if not self._due():
            return
        self.descendants = descendants(pid)
        count, rss = summed_rss(self.descendants)
        self._held.add_point(LEFT_OUT_RSS, t, float(rss))
        self._held.add_point(LEFT_OUT_COUNT, t, float(count))


# How long what the target started may take to exit after it before it is named as left running.
SURVIVOR_GRACE_S = 1.0


def wait_for_survivors(procs: list[psutil.Process]) -> tuple[tuple[int, str], ...]:
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


def orphans(target: ProcIdentity) -> list[psutil.Process]:
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
