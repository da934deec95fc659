"""Cheap per-tick readings of the host: threads and asyncio tasks grouped by where they were
created, open fds by kind, and memory outside Python objects (RSS, glibc mallinfo2, blocks);
the hooks they need, and the gc callback that keeps the probe from delaying the host's frees."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import os
import sys
import threading
import time
import weakref

from memsleuth.sources.status import parse_status

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 MB of RSS
if TYPE_CHECKING:
    from typing import Any

_PROBE_DIR = os.path.dirname(os.path.abspath(__file__))
_SKIP_DIRS = (_PROBE_DIR, threading.__file__)
_ASYNCIO_DIR = os.path.join(os.path.dirname(threading.__file__), "asyncio") + os.sep
_PAGE = os.sysconf("SC_PAGE_SIZE")
_SITES: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
_installed: dict[str, Any] = {}
# Seconds the hooks took on the host's own threads: part of what the probe costs the host.
HOOK_COST = [0.0]
MAX_FDS_CLASSIFIED = 512  # readlink()s per reading; beyond, a strided sample is scaled up
# Task creation sites are noted for one task in SITE_STRIDE[0]: the probe raises it while
# noting them costs more than its share of the budget (an asyncio server creating 1,300 tasks a
# second had spent 1.6% of its run in the hook, and the 2% budget left the census 3 looks in
# 40 s: no culprit). A task not noted is named by the site last noted for a task of the same
# coroutine (CORO_SITES, bounded).
SITE_STRIDE = [1]
_CREATED = [0]
CORO_SITES: dict[str, str] = {}
MAX_CORO_SITES = 1_000
# What noting a creation site can raise (an object that takes no weakref, a shallow stack).
# Nothing broader: an exception a host's signal handler raises while a hook runs is the host's
# (a SIGALRM timeout had been swallowed 1,218 times in a loop creating tasks).
_SITE_ERRORS = (TypeError, ValueError, AttributeError)


def _caller_site(skip_asyncio: bool = False) -> str:
    """file:line of the first caller outside the probe, threading and asyncio."""
    f = sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_SKIP_DIRS) and not (skip_asyncio and fn.startswith(_ASYNCIO_DIR)):
            return f"{os.path.basename(fn)}:{f.f_lineno}"
        f = f.f_back  # type: ignore[assignment]
    return "?"


def install_hooks() -> None:
    """Record where threads are started and asyncio tasks created (one frame walk each).
    The asyncio hook waits until the host imports asyncio: call again on every tick."""
    if "thread" not in _installed:
        _hook_threads()
    if "task" not in _installed and "asyncio.base_events" in sys.modules:
        _hook_tasks()


def _hook_threads() -> None:
    orig_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        t = time.perf_counter()
        with contextlib.suppress(*_SITE_ERRORS):
            _SITES[self] = _caller_site()
        HOOK_COST[0] += time.perf_counter() - t
        orig_start(self)

    start.__wrapped__ = orig_start  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]
    _installed["thread"] = orig_start


def _hook_tasks() -> None:
    try:
        be: Any = sys.modules["asyncio.base_events"]

        orig_create = be.BaseEventLoop.create_task

        def create_task(self: Any, coro: Any, **kw: Any) -> Any:
            task = orig_create(self, coro, **kw)
            _CREATED[0] += 1
            if _CREATED[0] % SITE_STRIDE[0]:
                return task
            t = time.perf_counter()
            with contextlib.suppress(*_SITE_ERRORS):
                _SITES[task] = _caller_site(skip_asyncio=True)
            HOOK_COST[0] += time.perf_counter() - t
            return task

        create_task.__wrapped__ = orig_create  # type: ignore[attr-defined]
        be.BaseEventLoop.create_task = create_task
        _installed["task"] = orig_create
    except Exception:
        pass


def uninstall_hooks() -> None:
    if "thread" in _installed:
        threading.Thread.start = _installed.pop("thread")  # type: ignore[method-assign]
    if "task" in _installed:
        be: Any = sys.modules["asyncio.base_events"]
        be.BaseEventLoop.create_task = _installed.pop("task")


# Generation 0's threshold while a census holds the heap: no automatic collection starts.
HOLD_THRESHOLD = 1 << 30


class HostCollections:
    """Notes the collections other threads run while the probe holds the host's objects.

    What the probe holds is reachable (a census holds the whole heap: gc.get_objects(), the
    containers it follows and names; a light reading, the asyncio tasks): a full collection the
    host runs meanwhile (its gc.collect(), or the automatic collector's oldest generation) frees
    none of it, and nothing does until the next full collection; with gc disabled, the host's
    next gc.collect(). `redo()` runs the collection again once the probe has let go, so the
    host's memory is what it would be without the probe.
    """

    __slots__ = ("_held", "_ident", "_saved", "_seen", "_whole", "oldest")

    def __init__(self) -> None:
        # The oldest generation another thread started collecting inside the window (-1: none).
        self.oldest = -1
        self._ident = 0
        # The window holds the whole heap (a census, quiet()): young collections count, and
        # the automatic collector is held off.
        self._whole = False
        self._saved: tuple[int, ...] | None = None  # the host's thresholds, while held off
        self._held: tuple[int, ...] = ()  # the thresholds the window set
        self._seen = self._note  # one bound method: the one appended is the one removed

    def _note(self, phase: str, info: dict[str, int]) -> None:
        # Runs in the collecting thread. In a census's window young collections count too
        # (the host's own gc.collect(0), as automatic ones are held off): what they could not
        # free is promoted, and an older generation meets it only when the host's allocations
        # trigger one, which a growing heap makes rare. A light reading holds only the host's
        # asyncio tasks: only a full collection is run again after it.
        if phase == "start" and threading.get_ident() != self._ident:
            generation = int(info.get("generation", 0))
            if generation == 2 or self._whole:
                self.oldest = max(self.oldest, generation)

    def __enter__(self) -> HostCollections:
        self.oldest = -1
        self._ident = threading.get_ident()
        gc.callbacks.append(self._seen)
        if self._whole:
            self._hold_off()
        return self

    def quiet(self) -> HostCollections:
        """The next window also holds the automatic collector off (a census's): its own
        allocations had triggered ~90 young collections in 30 s inside its windows, each
        promoting every young object of the host's, garbage too (a host at 33 MiB stood at
        76 MiB). The host's allocations meanwhile are collected as soon as the window closes."""
        self._whole = True
        return self

    def _hold_off(self) -> None:
        # By generation 0's threshold, not gc.disable(): a host that turns the collector off
        # (or sets thresholds) during the window keeps what it set, since the window puts back
        # only thresholds that are still its own. gc.disable() then enable() had turned a
        # host's collector back on.
        now = gc.get_threshold()
        if not gc.isenabled() or now[0] == 0:  # off already (0 turns it off too)
            return
        self._saved, self._held = now, (HOLD_THRESHOLD, *now[1:])
        gc.set_threshold(*self._held)

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def detach(self) -> None:
        """Close the window: the collector back on, collections no longer noted (also in a
        forked child, whose window the fork cut short: it would have kept gc off for good)."""
        self._whole = False
        if self._saved is not None:
            if gc.get_threshold() == self._held:
                gc.set_threshold(*self._saved)
            self._saved = None
        with contextlib.suppress(ValueError):  # the host cleared gc.callbacks, or never added
            gc.callbacks.remove(self._seen)

    def redo(self) -> bool:
        """After the window, once the probe holds nothing of the host's: the collections it
        defeated, run again, one generation older (what they kept went there); True when
        there was one."""
        if self.oldest < 0:
            return False
        generation, self.oldest = min(self.oldest + 1, 2), -1
        gc.collect(generation)
        return True


def own_objects() -> list[object]:
    return [_SITES]


def _func_name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(type(fn), "__qualname__", "?"))


def thread_groups() -> dict[str, int]:
    """Live threads counted by 'target() started at file:line' (the probe's is not one)."""
    out: collections.Counter[str] = collections.Counter()
    for th in threading.enumerate():
        if th is threading.main_thread():
            out["main thread"] += 1
            continue
        target = getattr(th, "_target", None)
        what = _func_name(target) if target is not None else type(th).__qualname__ + ".run"
        out[f"{what}() started at {_SITES.get(th, '?')}"] += 1
    return dict(out)


def task_groups() -> dict[str, int]:
    """Pending asyncio tasks (of every loop) counted by 'coroutine created at file:line'."""
    mod = sys.modules.get("asyncio.tasks")
    if mod is None:
        return {}
    # 3.11 keeps every task in _all_tasks; 3.12+ splits it into _scheduled_tasks (+ eager).
    all_tasks = getattr(mod, "_all_tasks", None)
    if all_tasks is None:
        all_tasks = getattr(mod, "_scheduled_tasks", None)
    if all_tasks is None:
        return {}
    tasks: list[Any] = []
    for _ in range(5):  # the WeakSet may change under us when the loop runs
        try:
            tasks = list(all_tasks)
            break
        except RuntimeError:
            continue
    pending: list[tuple[str, str | None]] = []
    for task in tasks:
        try:
            if not task.done():
                pending.append((_func_name(task.get_coro()), _SITES.get(task)))
        except Exception:
            continue
    for what, site in pending:  # first the sites noted, then the tasks not noted
        if site is not None and (len(CORO_SITES) < MAX_CORO_SITES or what in CORO_SITES):
            CORO_SITES[what] = site
    out: collections.Counter[str] = collections.Counter()
    for what, site in pending:
        out[f"{what} created at {site or CORO_SITES.get(what, '?')}"] += 1
    return dict(out)


def fd_kinds() -> dict[str, int]:
    """Open fds by kind: file, socket, pipe, anon_inode, device ... (from /proc/self/fd).
    Past MAX_FDS_CLASSIFIED fds, a strided sample is classified and scaled to the total: a
    readlink per fd of a server with 50k sockets would cost more than the whole budget."""
    out: collections.Counter[str] = collections.Counter()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return {}
    step = max(1, -(-len(names) // MAX_FDS_CLASSIFIED))
    for name in names[::step]:
        try:
            link = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if link.startswith("socket:"):
            out["socket"] += 1
        elif link.startswith("pipe:"):
            out["pipe"] += 1
        elif link.startswith("anon_inode:"):
            out["anon_inode"] += 1
        elif link.startswith("/dev/"):
            out["device"] += 1
        else:
            out["file"] += 1
    if step > 1:
        seen = sum(out.values())
        return {k: round(n * len(names) / seen) for k, n in out.items()} if seen else {}
    return dict(out)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def self_status() -> dict[str, int]:
    """This process's memory (bytes) and thread count from /proc/self/status."""
    try:
        with open("/proc/self/status", "rb") as f:
            return parse_status(f.read())
    except (OSError, ValueError, IndexError):
        return {}


class Native:
    """glibc's allocator figures (when glibc has mallinfo2) next to RSS and Python's blocks."""

    def __init__(self) -> None:
        self._mallinfo2: Any = None
        self._trim: Any = None
        try:
            libc = ctypes.CDLL(None)
            fn = libc.mallinfo2
            fn.restype = _Mallinfo2
            fn.argtypes = []
            self._mallinfo2 = fn
            self._trim = libc.malloc_trim
            self._trim.argtypes = [ctypes.c_size_t]
            self._trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            pass

    @staticmethod
    def rss_bytes() -> int:
        try:
            with open("/proc/self/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return 0

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {
            "rss": float(self.rss_bytes()),
            "py_blocks": float(sys.getallocatedblocks()),
        }
        if self._mallinfo2 is not None:
            mi = self._mallinfo2()
            # In use: small chunks in the arenas plus big mmap'ed chunks.
            out["malloc_inuse"] = float(mi.uordblks + mi.hblkhd)
            out["malloc_free"] = float(mi.fordblks)
            out["malloc_mmap"] = float(mi.hblkhd)
        return out

    def trim(self) -> dict[str, float] | None:
        """malloc_trim(0): how much RSS was only retained by the allocator (opt-in: it changes
        the host's memory)."""
        if self._trim is None:
            return None
        before = self.read()
        self._trim(0)
        after = self.read()
        return {
            "rss_before": before["rss"],
            "rss_after": after["rss"],
            "released": before["rss"] - after["rss"],
            "malloc_inuse": after.get("malloc_inuse", 0.0),
            "malloc_free_before": before.get("malloc_free", 0.0),
        }
