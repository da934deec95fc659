"""What grew during a soak: named containers (module globals, class attributes, mutable
defaults, lru caches) counted before and after, and tracemalloc allocation sites diffed."""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import queue
import sys
import sysconfig
import tracemalloc
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_CONTAINERS: tuple[type, ...] = (dict, list, set, bytearray, collections.deque)
_EXACT = frozenset(
    {
        dict,
        list,
        set,
        bytearray,
        collections.deque,
        collections.OrderedDict,
        collections.defaultdict,
        collections.Counter,
    }
)
_LRU_WRAPPER = type(functools.lru_cache(maxsize=1)(len))
# Modules whose containers change as a side effect of running or measuring anything.
_SKIP_PREFIXES = (
    "memsleuth",
    "_pytest",
    "pytest",
    "pluggy",
    "tracemalloc",
    "linecache",
    "sys",
    "gc",
    "importlib",
    "typing",
    "abc",
    "_abc",
    "functools",
    "threading",
    "weakref",
    "execnet",
    "xdist",
    "coverage",
    "warnings",
    "encodings",
    "re",
    "sre_",
)


@dataclass(frozen=True, slots=True)
class ContainerGrowth:
    """A named container and how many entries it gained per cycle."""

    name: str  # "app.cache._SEEN"
    kind: str  # "dict", "list", "lru_cache" ...
    before: int
    after: int
    per_cycle: float
    entry_bytes: float  # estimated bytes per entry (sampled), 0 when unknown
    bound: int | None = None  # an lru_cache's maxsize, a deque's maxlen: it holds no more


@dataclass(frozen=True, slots=True)
class SiteGrowth:
    """An allocation site whose live bytes grew during the soak."""

    where: str  # "app/cache.py:12"
    bytes_per_cycle: float
    blocks_per_cycle: float


_SKIP = tuple(p + "." for p in _SKIP_PREFIXES)
_LIBRARY_DIRS = tuple(
    {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


# The standard library's caches that bound themselves, as (module, cache, its bound): their
# modules are skipped above, or scanned shallowly, and filling they had read as a leak ("leaks
# ~376 bytes per call" for re.match with a new pattern each call; strptime with a new format).
_BOUNDED_CACHES = (
    ("re", "_cache", "_MAXCACHE"),
    ("re", "_cache2", "_MAXCACHE2"),
    ("_strptime", "_regex_cache", "_CACHE_MAX_SIZE"),
)


def _bounded_caches() -> Iterator[tuple[str, Any, int]]:
    """(dotted name, cache, bound) of _BOUNDED_CACHES in the modules loaded now."""
    for modname, cache, bound in _BOUNDED_CACHES:
        mod = sys.modules.get(modname)
        obj, size = getattr(mod, cache, None), getattr(mod, bound, None)
        if isinstance(obj, dict) and isinstance(size, int):
            yield f"{modname}.{cache}", obj, size


def _skipped(modname: str) -> bool:
    return modname in _SKIP_PREFIXES or modname.startswith(_SKIP)


def _is_library(mod: types.ModuleType) -> bool:
    # Installed libraries get a shallow scan (their module globals only): walking every class
    # and function of numpy and scipy would cost more than the soak it serves.
    path = getattr(mod, "__file__", None)
    return not isinstance(path, str) or path.startswith(_LIBRARY_DIRS)


def _queue_storage(obj: Any) -> Any:
    """The deque (or heap list) a queue.Queue or an asyncio.Queue keeps its items in; None for
    anything else. Read from the instance's own dict: a global Queue had gone unnamed, its
    growth said as two lines of allocations, where a deque was named."""
    if isinstance(obj, queue.Queue):
        attr = "queue"
    else:
        aio = sys.modules.get("asyncio")
        if aio is None or not isinstance(obj, aio.Queue):
            return None
        attr = "_queue"
    with contextlib.suppress(Exception):
        inner = vars(obj).get(attr)
        if isinstance(inner, (collections.deque, list)):
            return inner
    return None


def _size(obj: Any) -> int | None:
    t = type(obj)
    if t in _EXACT:
        return len(obj)
    inner = _queue_storage(obj)
    if inner is not None:
        return len(inner)
    if t is _LRU_WRAPPER:  # functools.lru_cache / cache
        with contextlib.suppress(Exception):
            return int(obj.cache_info().currsize)
        return None
    if isinstance(obj, _CONTAINERS):
        return len(obj)  # type: ignore[arg-type]  # every type in _CONTAINERS is Sized
    return None


def _bound(obj: Any) -> int | None:
    """The most entries the container can hold, when it says (None: unbounded)."""
    for _, cache, bound in _bounded_caches():
        if cache is obj:
            return bound
    with contextlib.suppress(Exception):
        if type(obj) is _LRU_WRAPPER:
            size = obj.cache_info().maxsize
            return int(size) if size is not None else None
        if type(obj) is collections.deque and obj.maxlen is not None:
            return int(obj.maxlen)
        if _queue_storage(obj) is not None:
            size = vars(obj).get("maxsize")
            return size if type(size) is int and size > 0 else None
    return None


def _kind(obj: Any) -> str:
    return "lru_cache" if isinstance(obj, _LRU_WRAPPER) else type(obj).__name__


def _named(mod: types.ModuleType) -> Iterator[tuple[str, Any]]:
    """(dotted name, object) for containers reachable in one or two steps from a module."""
    modname = mod.__name__
    try:
        items = list(vars(mod).items())
    except TypeError:
        return
    deep = not _is_library(mod)
    for name, value in items:
        if name.startswith("__"):
            continue
        if _size(value) is not None:
            yield f"{modname}.{name}", value
        elif not deep:
            continue
        elif isinstance(value, type) and value.__module__ == modname:
            for attr, inner in list(vars(value).items()):
                if _size(inner) is not None and not attr.startswith("__"):
                    yield f"{modname}.{name}.{attr}", inner
        elif isinstance(value, types.FunctionType) and value.__module__ == modname:
            for i, default in enumerate(value.__defaults__ or ()):
                if _size(default) is not None:
                    yield f"{modname}.{name}() default #{i + 1}", default
            for cell, var in zip(value.__closure__ or (), value.__code__.co_freevars, strict=False):
                with contextlib.suppress(ValueError):
                    if _size(cell.cell_contents) is not None:
                        yield f"{modname}.{name}() closure {var}", cell.cell_contents
        elif type(value).__module__ == modname and hasattr(value, "__dict__"):
            with contextlib.suppress(TypeError):
                for attr, inner in list(vars(value).items()):
                    if _size(inner) is not None:
                        yield f"{modname}.{name}.{attr}", inner


def _preference(name: str) -> tuple[int, int]:
    # `from app.cache import _SEEN` in a test module names the same dict twice: prefer the
    # module that is not a test, then the shortest path.
    mod = name.split(".")[0]
    is_test = mod.startswith(("test_", "conftest")) or mod.endswith("_test") or mod == "__main__"
    return (1 if is_test else 0, len(name))


def _entry_bytes(obj: Any, k: int = 16) -> float:
    obj = _queue_storage(obj) or obj
    try:
        if isinstance(obj, dict):
            items: list[Any] = []
            for key in list(reversed(obj))[:k]:
                items.append((key, obj[key]))
            sizes = [sys.getsizeof(a) + sys.getsizeof(b) for a, b in items]
        elif isinstance(obj, (list, collections.deque)):
            sizes = [sys.getsizeof(x) + 8 for x in list(obj)[-k:]]
        elif isinstance(obj, set):
            sizes = [sys.getsizeof(x) + 16 for x in list(obj)[:k]]
        else:
            return 0.0
    except Exception:
        return 0.0
    return sum(sizes) / len(sizes) if sizes else 0.0


def _oldest(obj: Any) -> object:
    """What a bounded container evicts next, or how many it has had to (an lru_cache's misses):
    it changed if the container evicted meanwhile. None for one without a bound."""
    with contextlib.suppress(Exception):
        if type(obj) is _LRU_WRAPPER:
            return int(obj.cache_info().misses)
        if _bound(obj) is None or not obj:
            return None
        if type(obj) is collections.deque:
            return id(obj[0])
        if isinstance(obj, dict):  # re's and strptime's caches drop their oldest key
            return id(next(iter(obj)))
    return None


class Census:
    """Containers by identity, counted at `take()` and again at `growth()`."""

    def __init__(self) -> None:
        # name, container, size, and for a bounded one what it evicts next (_oldest)
        self._before: dict[int, tuple[str, Any, int, object]] = {}

    def _scan(self) -> dict[int, tuple[str, Any]]:
        found: dict[int, tuple[str, Any]] = {}
        for mod in list(sys.modules.values()):
            if not isinstance(mod, types.ModuleType) or _skipped(mod.__name__):
                continue
            for name, obj in _named(mod):
                old = found.get(id(obj))
                if old is None or _preference(name) < _preference(old[0]):
                    found[id(obj)] = (name, obj)
        for name, obj, _ in _bounded_caches():
            found[id(obj)] = (name, obj)
        return found

    def take(self) -> None:
        self._before = {}
        for i, (name, obj) in self._scan().items():
            size = _size(obj)
            if size is not None:
                self._before[i] = (name, obj, size, _oldest(obj))

    def growth(
        self, cycles: float, min_per_cycle: float = 0.05
    ) -> tuple[list[ContainerGrowth], list[str]]:
        """Containers that gained at least min_per_cycle entries per cycle, biggest first; and
        the names of the bounded ones that were full throughout and evicted meanwhile."""
        out: list[ContainerGrowth] = []
        full: list[str] = []
        if cycles <= 0:
            return out, full
        for _i, (name, obj, before, oldest) in self._before.items():
            after = _size(obj)
            if after is None:
                continue
            if after - before < max(2.0, min_per_cycle * cycles):
                bound = _bound(obj)
                full_throughout = bound is not None and min(before, after) >= bound
                if full_throughout and _oldest(obj) != oldest:
                    full.append(f"{name} ({_kind(obj)}, {bound:,} entries)")
                continue
            out.append(
                ContainerGrowth(
                    name=name,
                    kind=_kind(obj),
                    before=before,
                    after=after,
                    per_cycle=(after - before) / cycles,
                    entry_bytes=_entry_bytes(obj),
                    bound=_bound(obj),
                )
            )
        out.sort(key=lambda g: g.per_cycle * max(g.entry_bytes, 1.0), reverse=True)
        self._before = {}
        return out, full


def _user_frame(tb: tracemalloc.Traceback) -> tracemalloc.Frame | None:
    """The newest frame outside the stdlib and memsleuth: the line a user would change."""
    from memsleuth.soak.resources import is_foreign

    chosen = None
    for frame in tb:  # oldest first
        if not is_foreign(frame.filename):
            chosen = frame
    return chosen


def site_growth(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, cycles: float, top: int = 10
) -> tuple[list[SiteGrowth], float]:
    """The allocation sites (file:line, in user code) whose live bytes grew most over cycles,
    and how many blocks tracemalloc traces more per cycle (all sites)."""
    if cycles <= 0:
        return [], 0.0
    sizes: dict[tuple[str, int], list[int]] = {}
    traced = 0
    for stat in after.compare_to(before, "traceback"):
        traced += stat.count_diff
        if stat.size_diff == 0:
            continue
        frame = _user_frame(stat.traceback)
        if frame is None:
            continue
        acc = sizes.setdefault((frame.filename, frame.lineno), [0, 0])
        acc[0] += stat.size_diff
        acc[1] += stat.count_diff
    out = []
    for (filename, lineno), (size, count) in sorted(sizes.items(), key=lambda kv: -kv[1][0]):
        if size < cycles:  # under a byte per cycle
            break
        where = os.path.relpath(filename) if filename.startswith(os.getcwd()) else filename
        out.append(SiteGrowth(f"{where}:{lineno}", size / cycles, count / cycles))
        if len(out) >= top:
            break
    return out, traced / cycles
