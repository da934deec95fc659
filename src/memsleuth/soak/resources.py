"""Threads, fds, asyncio tasks and child processes left behind, found by creation site (goleak).

A baseline is taken, the work runs, and what is new afterwards is retried for a grace period
(threads finishing, files closed by the garbage collector) before it counts as left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import io
import linecache
import os
import socket
import sys
import sysconfig
import threading
import time
import traceback
import tracemalloc
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_STDLIB = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
_OWN = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True, slots=True)
class Leftover:
    """One resource that did not go back to the baseline."""

    kind: str  # "thread", "fd", "task", "child"
    name: str  # "Thread-3 (poll)", "fd 7 → /tmp/x.log", "Task-2 coro=poll()", "pid 81 sleep 60"
    site: str  # "tests/test_app.py:12 in test_poll: threading.Thread(...)", "" when unknown


@dataclass(frozen=True, slots=True)
class Counts:
    threads: int
    fds: int
    tasks: int
    children: int


# Creation-site hooks shared by all watchers, installed while any is active, removed after.
_sites: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_hook_users = 0
_originals: list[tuple[type, str, Callable[..., Any]]] = []
_hook_lock = threading.Lock()


def is_foreign(filename: str) -> bool:
    return filename.startswith(_STDLIB) or filename.startswith(_OWN) or filename.startswith("<")


def _site_from_frames(frames: Iterable[tuple[str, int, str]]) -> str:
    """The newest frame outside the stdlib and memsleuth, as 'file:line in func: source'."""
    chosen: tuple[str, int, str] | None = None
    for filename, lineno, func in frames:  # oldest first
        if not is_foreign(filename):
            chosen = (filename, lineno, func)
    if chosen is None:
        return ""
    filename, lineno, func = chosen
    where = os.path.relpath(filename) if filename.startswith(os.getcwd()) else filename
    text = f"{where}:{lineno}" + (f" in {func}" if func else "")
    line = linecache.getline(filename, lineno).strip()
    return f"{text}: {line}" if line else text


def _stack_site(stack: Iterable[traceback.FrameSummary]) -> str:
    return _site_from_frames((f.filename, f.lineno or 0, f.name) for f in stack)


def object_site(obj: object) -> str:
    """Where obj was allocated, when tracemalloc was tracing then; '' otherwise."""
    if not tracemalloc.is_tracing():
        return ""
    tb = tracemalloc.get_object_traceback(obj)
    if tb is None:
        return ""
    return _site_from_frames((f.filename, f.lineno, "") for f in tb)


def _hooked_methods() -> list[tuple[type, str]]:
    import subprocess

    # Thread.start: where a thread was started. Popen.__init__: where a child was started
    # (tracemalloc cannot find a Popen's traceback: 3.11 objects with a managed dict).
    return [(threading.Thread, "start"), (subprocess.Popen, "__init__")]


def _install_hooks() -> None:
    global _hook_users
    with _hook_lock:
        _hook_users += 1
        if _hook_users > 1:
            return
        for cls, attr in _hooked_methods():
            original = getattr(cls, attr)
            _originals.append((cls, attr, original))
            setattr(cls, attr, _recording(original))


def _recording(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(TypeError):  # not weak-referenceable: no site, no harm
            _sites[self] = _stack_site(traceback.extract_stack(limit=24)[:-1])
        return original(self, *args, **kwargs)

    return method


def _remove_hooks() -> None:
    global _hook_users
    with _hook_lock:
        _hook_users -= 1
        if _hook_users > 0:
            return
        while _originals:
            cls, attr, original = _originals.pop()
            setattr(cls, attr, original)


def hooks_installed() -> bool:
    return bool(_originals)


def _fd_table() -> dict[int, str]:
    # The directory fd os.listdir used is closed before readlink: it never shows up.
    out: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return out


def _fd_owners(fds: set[int]) -> dict[int, object]:
    """Python objects (files, sockets) holding these fds, to find where they were opened."""
    owners: dict[int, object] = {}
    for obj in gc.get_objects():
        if isinstance(obj, (io.IOBase, socket.socket)):
            try:
                fd = obj.fileno()
            except (OSError, ValueError):
                continue
            if fd in fds and (fd not in owners or isinstance(obj, io.FileIO)):
                owners[fd] = obj
    return owners


def _children() -> dict[int, str]:
    import psutil

    out: dict[int, str] = {}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue  # exited; only its pid entry is left until it is reaped
                out[child.pid] = " ".join(child.cmdline()) or child.name()
    return out


def _child_objects(pids: set[int]) -> dict[int, object]:
    kinds: list[type] = []
    for mod, attr in (("subprocess", "Popen"), ("multiprocessing.process", "BaseProcess")):
        cls = getattr(sys.modules.get(mod), attr, None)
        if isinstance(cls, type):
            kinds.append(cls)
    if not kinds:
        return {}
    found: dict[int, object] = {}
    for obj in gc.get_objects():
        if isinstance(obj, tuple(kinds)):
            pid = getattr(obj, "pid", None)
            if pid in pids:
                found[pid] = obj
    return found


def _task_label(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", type(coro).__name__)
    return f"{task.get_name()} coro={name}()"


def _task_site(task: asyncio.Task[Any]) -> str:
    source = getattr(task, "_source_traceback", None)  # set in asyncio debug mode
    if source:
        return _site_from_frames((f.filename, f.lineno or 0, f.name) for f in source)
    return object_site(task)


class ResourceWatch:
    """Baseline of threads, fds, tasks (of one loop) and children; `leftovers()` after the work."""

    def __init__(
        self,
        *,
        threads: bool = True,
        fds: bool = True,
        children: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        native_threads: bool = True,
    ) -> None:
        self.check_threads = threads
        self.check_native = threads and native_threads
        self.check_fds = fds
        self.check_children = children
        self.loop = loop
        self._threads: set[threading.Thread] = set()
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._native: int = 0
        self._fds: set[tuple[int, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._children: set[int] = set()
        self._hooked = False

    def __enter__(self) -> ResourceWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if (self.check_threads or self.check_children) and not self._hooked:
            _install_hooks()
            self._hooked = True
        self.rebase()

    def rebase(self) -> None:
        """Take the baseline now (after a warm-up, say)."""
        self._threads = set(threading.enumerate()) if self.check_threads else set()
        self._pools = weakref.WeakSet(p for p in map(_pool, self._threads) if p is not None)
        self._native = _native_threads() - len(self._threads)
        self._fds = set(_fd_table().items()) if self.check_fds else set()
        self._tasks = self._all_tasks()
        self._children = set(_children()) if self.check_children else set()

    def close(self) -> None:
        if self._hooked:
            _remove_hooks()
            self._hooked = False

    def counts(self) -> Counts:
        return Counts(
            threads=_native_threads(),
            fds=len(_fd_table()),
            tasks=len(self._all_tasks()),
            children=len(_children()),
        )

    def _all_tasks(self) -> set[asyncio.Task[Any]]:
        if self.loop is None or self.loop.is_closed():
            return set()
        return {t for t in asyncio.all_tasks(self.loop) if not t.done()}

    def leftovers(self, grace_s: float = 1.0) -> tuple[Leftover, ...]:
        """What is still new after retries over grace_s (backing off 1 ms → 100 ms, as goleak)."""
        deadline = time.monotonic() + grace_s
        delay = 0.001
        while True:
            found = self._find()
            if not found or time.monotonic() >= deadline:
                return found
            gc.collect()  # unreferenced files and sockets are closed by their finalizers
            if self.loop is not None and not self.loop.is_closed() and not self.loop.is_running():
                self.loop.run_until_complete(asyncio.sleep(delay))
            else:
                time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _find(self) -> tuple[Leftover, ...]:
        out: list[Leftover] = []
        if self.check_threads:
            # A worker that a pool already running at the baseline added is the pool growing
            # to its bound (max_workers), no leak: asyncio.to_thread's default executor had
            # been "1 thread left behind" whenever a call came before its idle worker was free.
            new = [
                t
                for t in threading.enumerate()
                if t not in self._threads and t.is_alive() and _pool(t) not in self._pools
            ]
            for t in new:
                site = _sites.get(t) or object_site(t)
                target = getattr(getattr(t, "_target", None), "__qualname__", None)
                label = f"{t.name}" + (f" (target {target})" if target else "")
                out.append(Leftover("thread", label, site))
            native = _native_threads() - len(threading.enumerate()) - self._native
            if native > 0 and self.check_native:
                out.append(
                    Leftover("thread", f"{native} native thread(s) not started by Python", "")
                )
        if self.check_fds:
            new_fds = {fd: path for fd, path in _fd_table().items() if (fd, path) not in self._fds}
            owners = _fd_owners(set(new_fds)) if new_fds else {}
            for fd, path in sorted(new_fds.items()):
                owner = owners.get(fd)
                label = f"fd {fd} → {path}" + (f" ({type(owner).__name__})" if owner else "")
                out.append(Leftover("fd", label, object_site(owner) if owner else ""))
        for task in sorted(self._all_tasks() - self._tasks, key=lambda t: t.get_name()):
            out.append(Leftover("task", _task_label(task), _task_site(task)))
        if self.check_children:
            kids = {p: c for p, c in _children().items() if p not in self._children}
            objs = _child_objects(set(kids)) if kids else {}
            for pid, cmd in sorted(kids.items()):
                obj = objs.get(pid)
                site = (_sites.get(obj) or object_site(obj)) if obj is not None else ""
                out.append(Leftover("child", f"pid {pid}: {cmd}", site))
        return tuple(out)


def _pool(thread: threading.Thread) -> Any:
    """The ThreadPoolExecutor a worker thread serves; None for any other thread."""
    futures = sys.modules.get("concurrent.futures.thread")
    if futures is None or getattr(thread, "_target", None) is not futures._worker:
        return None
    args = getattr(thread, "_args", ())
    ref = args[0] if args else None
    return ref() if isinstance(ref, weakref.ref) else None


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


_NOUNS = {"thread": "threads", "fd": "fds", "task": "tasks", "child": "child processes"}
_VERBS = {"thread": "started", "fd": "opened", "task": "created", "child": "started"}


def by_site(leftovers: Iterable[Leftover]) -> list[tuple[str, str, list[Leftover]]]:
    """(kind, creation site or name, the leftovers) per creation site, the most first."""
    groups: dict[tuple[str, str], list[Leftover]] = {}
    for item in leftovers:
        groups.setdefault((item.kind, item.site or item.name), []).append(item)
    return [(k, w, items) for (k, w), items in sorted(groups.items(), key=lambda kv: -len(kv[1]))]


def describe(leftovers: Iterable[Leftover], limit: int = 8) -> list[str]:
    """One line per creation site: '20 threads (e.g. poller), started at tests/x.py:12: ...'."""
    groups = by_site(leftovers)
    lines = []
    for kind, _, items in groups[:limit]:
        first = items[0]
        one = first.name if first.name.startswith(f"{kind} ") else f"{kind} {first.name}"
        head = (
            one  # "fd 12 → /tmp/x" had read "fd fd 12 → /tmp/x"
            if len(items) == 1
            else (f"{len(items)} {_NOUNS[kind]} (e.g. {first.name})")
        )
        where = f", {_VERBS[kind]} at {first.site}" if first.site else ""
        if not first.site and kind == "fd" and not tracemalloc.is_tracing():
            # An fd's opener is found from its file object's allocation trace: with tracing
            # off (a test outside a soak) the line had been left out without a word.
            where = ", opened where is not known (PYTHONTRACEMALLOC=8 names the line)"
        lines.append(head + where)
    if len(groups) > limit:
        lines.append(f"... and {len(groups) - limit} more sites")
    return lines
