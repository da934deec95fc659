"""`soak(fn, cycles=...)`: call a function many times and judge whether memory, threads, fds,
tasks or latency fail to return to their baseline."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats  # noqa: F401 - imported before tracemalloc starts: tracing an import is slow

from memsleuth.soak.census import Census, site_growth
from memsleuth.soak.limits import check_soak_args
from memsleuth.soak.resources import ResourceWatch
from memsleuth.soak.result import SoakLimits, SoakResult, build_result

log = logging.getLogger(__name__)

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# tracemalloc frames kept per allocation: enough to get past asyncio/threading frames to the
# user's line (a task is allocated three frames below asyncio.create_task).
TRACE_FRAMES = 8
DEFAULT_BATCHES = 40


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def _traced_bytes() -> int:
    return tracemalloc.get_traced_memory()[0]


# The interpreter's attribute cache keeps a strong reference to every name it has looked up, up
# to 4,096 of them, each until another lookup takes its slot. Names built at run time (method
# names C code makes for each call; `getattr(obj, "on_" + verb)`) fill it slowly, and a clean
# test that wrote a text file had read "leaks ~66 bytes per call" from 18-character strings
# kept there. CPython's own leak hunt (regrtest -R) clears it before each count, as we do.
_clear_interpreter_caches: Callable[[], None] = getattr(
    sys, "_clear_internal_caches", getattr(sys, "_clear_type_cache", lambda: None)
)


def _settle() -> None:
    """Before a heap reading: garbage collected, and nothing held by interpreter caches."""
    _clear_interpreter_caches()
    gc.collect()


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the soak left pending (already reported), so closing the loop is quiet."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _describe_fn(fn: Callable[..., Any]) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    mod = getattr(inner, "__module__", None) or ""
    name = getattr(inner, "__qualname__", None) or repr(inner)
    return f"{mod}.{name}" if mod and mod != "builtins" else name


def _note_cycle(exc: BaseException, cycle: int, warm: int, measured: int) -> None:
    """Say on the exception which cycle raised it: an order-dependent failure had shown a bare
    `assert 37 != 37`, nothing saying it came on the 57th call of 220."""
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        phase = "a warm-up cycle" if cycle <= warm else "a measured cycle"
        add_note(
            f"memsleuth soak: raised on call {cycle:,} of {warm + measured:,} ({phase}; the "
            f"first {warm:,} are warm-up)"
        )


def soak(
    fn: Callable[..., Any],
    cycles: int = 1000,
    *,
    warmup: int | None = None,
    setup: Callable[[], Any] | None = None,
    teardown: Callable[..., Any] | None = None,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    max_bytes_per_cycle: float = 0.0,
    max_latency_ratio: float | None = None,
    max_retained_bytes: int = 256 << 10,
    threads: bool = True,
    fds: bool = True,
    tasks: bool = True,
    children: bool = True,
    grace_s: float = 1.0,
    batches: int = DEFAULT_BATCHES,
    store: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> SoakResult:
    """Call `fn(*args, **kwargs)` `cycles` times after `warmup` more, and judge the growth.

    `setup()` runs once before; when it returns something, that value is passed to `fn` as
    its first argument and to `teardown`. A coroutine function is run on a private event loop.
    Fails when the lower 95% bound of the Python heap's growth per cycle (after the warm-up,
    detected or given) exceeds `max_bytes_per_cycle`, when RSS grows by more than 1 MiB at that
    bound, when memory does not return to its floor after `teardown`, when threads, fds, tasks
    or child processes stay above the baseline after `grace_s`, or when the last cycles are
    slower than the first by more than `max_latency_ratio`. Nonsense limits (a negative
    warm-up, a ratio under 1 or not finite, a negative or nan byte bound) raise ValueError
    before the first cycle: a guard that cannot fail is worse than none.
    """
    check_soak_args(
        cycles=cycles,
        warmup=warmup,
        max_bytes_per_cycle=max_bytes_per_cycle,
        max_latency_ratio=max_latency_ratio,
        grace_s=grace_s,
        max_retained_bytes=max_retained_bytes,
        batches=batches,
    )
    warm = max(1, cycles // 10) if warmup is None else int(warmup)
    limits = SoakLimits(
        max_bytes_per_cycle=float(max_bytes_per_cycle),
        max_latency_ratio=max_latency_ratio,
        max_retained_bytes=max_retained_bytes if teardown is not None else None,
    )
    label = name or _describe_fn(fn)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(TRACE_FRAMES)
    # Objects older than the soak cannot be its garbage: freezing them makes the gc.collect()
    # after every batch cost what the soak allocated, not what the whole process holds. Left
    # alone when someone else (a pre-forking server) froze objects already.
    froze = gc.get_freeze_count() == 0
    if froze:
        gc.freeze()
    is_async = inspect.iscoroutinefunction(fn)
    loop = asyncio.new_event_loop() if is_async else None
    watch = ResourceWatch(threads=threads, fds=fds, children=children, loop=loop if tasks else None)
    try:
        return _run(
            fn,
            cycles,
            warm,
            setup,
            teardown,
            tuple(args),
            dict(kwargs or {}),
            limits,
            watch,
            loop,
            grace_s,
            max(3, batches),
            label,
            store,
        )
    finally:
        watch.close()
        if loop is not None:
            _close_loop(loop)
        if froze:
            gc.unfreeze()
        if not was_tracing:
            tracemalloc.stop()


def _tear(teardown: Callable[..., Any], resource: Any) -> None:
    if resource is None:
        teardown()
    else:
        teardown(resource)


def _run(
    fn: Callable[..., Any],
    cycles: int,
    warm: int,
    setup: Callable[[], Any] | None,
    teardown: Callable[..., Any] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    limits: SoakLimits,
    watch: ResourceWatch,
    loop: asyncio.AbstractEventLoop | None,
    grace_s: float,
    batches: int,
    label: str,
    store: str | os.PathLike[str] | None,
) -> SoakResult:
    started = time.time()
    before = watch.counts()  # its first call imports psutil: before the floor, not retained
    watch.start()
    measured = cycles
    bounds = np.linspace(0, measured, min(batches, measured) + 1).astype(np.int64)
    n_points = bounds.size
    # Everything the loop writes is allocated up front so the harness itself never grows, and
    # before the floor, so that what teardown must give back is the code's alone.
    durations = np.zeros(measured, dtype=np.float64)
    done = np.zeros(n_points, dtype=np.float64)
    heap = np.zeros(n_points, dtype=np.float64)
    rss = np.zeros(n_points, dtype=np.float64)
    wall = np.zeros(n_points, dtype=np.float64)
    blocks = np.zeros(n_points, dtype=np.float64)
    census = Census()
    _settle()
    floor = _traced_bytes()
    resource = setup() if setup is not None else None
    call_args = args if resource is None else (resource, *args)
    call: Callable[[], Any] = functools.partial(fn, *call_args, **kwargs)
    if loop is not None:
        coro_fn = call
        call = lambda: loop.run_until_complete(coro_fn())  # noqa: E731

    try:  # teardown runs whatever happens, as a fixture's would
        perf = time.perf_counter
        for w in range(warm):
            try:
                call()
            except BaseException as exc:
                _note_cycle(exc, w + 1, warm, measured)
                raise
        watch.rebase()  # a pool or thread started once on first use is warm-up, not a leak
        # ... and the counts shown start there too ("threads 3 → 1103" had sat beside
        # "1000 threads left behind" for a leak of one a cycle after 100 warm-up cycles).
        before = watch.counts()

        census.take()
        _settle()
        snap_before = tracemalloc.take_snapshot()
        heap[0], rss[0], wall[0] = _traced_bytes(), _rss_bytes(), time.time()
        blocks[0] = sys.getallocatedblocks()
        for b in range(1, n_points):
            for i in range(int(bounds[b - 1]), int(bounds[b])):
                t0 = perf()
                try:
                    call()
                except BaseException as exc:
                    _note_cycle(exc, warm + i + 1, warm, measured)
                    raise
                durations[i] = perf() - t0
            _settle()
            done[b] = bounds[b]
            heap[b], rss[b], wall[b] = _traced_bytes(), _rss_bytes(), time.time()
            blocks[b] = sys.getallocatedblocks()
        snap_after = tracemalloc.take_snapshot()
        # Both read and let go of their records before teardown: what stays is a few lines.
        containers, full = census.growth(measured)
        sites, traced_blocks = site_growth(snap_before, snap_after, measured)
        del snap_before, snap_after
    except BaseException:
        if teardown is not None:
            _tear(teardown, resource)
        raise

    if teardown is not None:
        _tear(teardown, resource)
    leftovers = watch.leftovers(grace_s)
    _settle()
    retained = _traced_bytes() - floor if teardown is not None else None
    after = watch.counts()

    result = build_result(
        label=label,
        cycles=cycles,
        warmup=warm,
        limits=limits,
        done=done,
        heap=heap,
        blocks=blocks,
        rss=rss,
        wall=wall,
        durations=durations,
        containers=containers,
        sites=sites,
        traced_blocks_per_cycle=traced_blocks,
        full_caches=full,
        leftovers=leftovers,
        before=before,
        after=after,
        retained_bytes=retained,
        started=started,
    )
    if store is not None:
        from memsleuth.soak.saving import save_result

        save_result(Path(store), result)
    return result


__all__ = ["SoakResult", "soak"]
