"""Name a container by how it is reached: a module global, a class attribute, an attribute of
instances of a class, an element of another named container, a local variable of a frame.

Walking referrers costs a heap traversal per round, so it is done for a few containers at once,
rarely, and at most `MAX_ROUNDS` levels up.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import types
import weakref
from collections.abc import Collection

from memsleuth.probe.heap import (
    HEAPTYPE,
    LRU_CACHE_TYPES,
    STDLIB_QUEUES,
    container_kind,
    instance_dict,
    is_a,
    module_dict,
    module_of,
    queue_storage,
    type_name,
)

MAX_ROUNDS = 4
OWN_MODULE = "memsleuth.probe"
OWN = ""  # the label of the probe's own containers (and a cache's bookkeeping): never reported
_PROBE_DIR = os.path.dirname(os.path.abspath(__file__))
# Wrappers whose inner container is the real storage: name the wrapper instead.
_WRAPPERS: dict[type, str] = {
    weakref.WeakSet: "data",
    weakref.WeakKeyDictionary: "data",
    weakref.WeakValueDictionary: "data",
}
# The probe's own objects (by id) that look like host containers: never reported.
OWN_IDS: set[int] = set()


# cachetools' caches (memsleuth's CappedDict is one) keep their entries in this attribute,
# and their order or expiry links in others that grow with it: "_LRUDict._Cache__data" and
# "_LRUDict._LRUCache__order" had been named for one CappedDict, shares summing to 130%.
CACHETOOLS = ("cachetools", "Cache", "_Cache__data")
# ... and memsleuth's CappedSet keeps a CappedDict (a cachetools cache) in `_map`: it had been
# named "CappedSet._map (CappedDict)" rather than by the global holding the set.
CAPPED_SET = ("memsleuth.guards.maps", "CappedSet", "_map")


def _wrapper_of(obj: object) -> str | None:
    for t, attr in _WRAPPERS.items():
        if is_a(obj, t):
            return attr
    return queue_storage(obj, (*STDLIB_QUEUES, CACHETOOLS, CAPPED_SET))


def _public_name(t: type) -> str:
    """The first class of `t`'s MRO that is not private: CappedDict for its _LRUDict."""
    return next((k.__name__ for k in t.__mro__ if not k.__name__.startswith("_")), t.__name__)


class _Pending:
    __slots__ = ("dict_key", "kind", "origin", "suffix", "target")

    def __init__(
        self, origin: int, target: object, suffix: str, kind: str, dict_key: str | None = None
    ) -> None:
        self.origin = origin  # id of the container we are naming
        self.target = target  # what we look for the referrer of (the container or a holder)
        self.suffix = suffix  # what is already known below target, e.g. "[*]"
        self.kind = kind  # the container's kind for the label: "dict", "Queue" ...
        self.dict_key = dict_key  # target is a dict holding the container under this key


def module_globals(limit: int = 200_000) -> tuple[dict[int, str], list[object]]:
    """id(value) -> 'module M, global NAME' for module globals and class attributes, and the
    containers among them (one level into module-global dicts and lists too)."""
    names: dict[int, str] = {}
    found: list[object] = []
    seen = 0
    for mod_name, mod in list(sys.modules.items()):
        d = module_dict(mod)
        if d is None or mod_name.startswith(OWN_MODULE):
            continue
        for key, value in list(dict.items(d)):
            seen += 1
            if seen > limit:
                return names, found
            if not is_a(key, str) or key.startswith("__"):
                continue
            if is_a(value, type):
                if getattr(value, "__module__", None) != mod_name:
                    continue
                for attr, cv in list(vars(value).items()):
                    if _is_container(cv) and not attr.startswith("__"):
                        names.setdefault(
                            id(cv), f"class {mod_name}.{value.__qualname__}, attribute {attr}"
                        )
                        found.append(cv)
                continue
            if is_a(value, types.ModuleType):
                continue
            label = f"module {mod_name}, global {key}"
            names.setdefault(id(value), label)
            if _is_container(value):
                found.append(value)
                if is_a(value, dict) and len(value) <= 1000:
                    for inner in list(dict.values(value)):
                        if _is_container(inner):
                            names.setdefault(id(inner), f"{label}[*]")
                            found.append(inner)
            # Wrappers are all classes defined in Python: skip the isinstance tests for the
            # functions, builtins and constants that make up most globals.
            if not type(value).__flags__ & HEAPTYPE:
                continue
            wrapped = _wrapper_of(value)
            if wrapped is not None:
                inner = getattr(value, wrapped, None)
                if inner is not None:
                    names.setdefault(id(inner), label + "\x00" + _public_name(type(value)))
    return names, found


def global_containers(exact: Collection[type]) -> list[object]:
    """Containers held by module globals and class attributes (one level into module-global
    dicts): the cheap, unnamed twin of module_globals, run at every census."""
    dicts = [
        d
        for name, mod in list(sys.modules.items())
        if (d := module_dict(mod)) is not None and not name.startswith(OWN_MODULE)
    ]
    values = list(itertools.chain.from_iterable(map(dict.values, dicts)))
    types_ = list(map(type, values))
    meta = {t for t in set(types_) if issubclass(t, type)}
    classes = list(itertools.compress(values, map(meta.__contains__, types_)))
    values.extend(itertools.chain.from_iterable(c.__dict__.values() for c in classes))
    found = [v for v in values if type(v) in exact]
    inner = [v for v in found if type(v) is dict and len(v) <= 1000]
    found.extend(
        v for v in itertools.chain.from_iterable(map(dict.values, inner)) if type(v) in exact
    )
    return found


_CONTAINERS = (dict, list, set, frozenset, bytearray)


def _is_container(v: object) -> bool:
    t = type(v)
    if t in _CONTAINERS:
        return True
    if not t.__flags__ & HEAPTYPE and t.__module__ == "builtins":
        return False  # functions, modules, str, int ...: most globals, decided without isinstance
    return issubclass(t, _CONTAINERS) or t.__name__ == "deque"


def _own(obj: object) -> bool:
    """Objects of the probe itself (its frames, its work lists) are never owners."""
    if is_a(obj, types.FrameType):
        return obj.f_code.co_filename.startswith(_PROBE_DIR)
    return False


def _attr_holding(owner: object, target: object) -> str | None:
    d = instance_dict(owner)
    if d is not None:
        for k, v in list(dict.items(d)):
            if v is target:
                return str(k)
    for klass in type(owner).__mro__:
        for slot in klass.__dict__.get("__slots__", ()) or ():
            try:
                if object.__getattribute__(owner, slot) is target:
                    return str(slot)
            except Exception:
                continue
    return None


def _locals_fixed(frame: types.FrameType) -> bool:
    """Reading `frame.f_locals` holds nothing of the host's. Before Python 3.13 it stores a
    snapshot of the locals on the frame, which keeps each value alive after the function
    rebinds the name: a host's released batches had stayed alive under the probe, and read
    as a leak. A finished frame's locals are fixed (its frame object owns them, and the gc
    then sees its code object among its referents); a running or suspended one's are not."""
    if sys.version_info >= (3, 13):  # a write-through proxy (PEP 667): no snapshot
        return True
    try:
        return any(r is frame.f_code for r in gc.get_referents(frame))
    except Exception:
        return False


def _frame_local(frame: types.FrameType, target: object) -> str | None:
    if not _locals_fixed(frame):
        return None
    try:
        for k, v in list(frame.f_locals.items()):
            if v is target:
                where = (
                    f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_firstlineno}"
                )
                func = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
                return f"local {k} in {func}() ({where})"
    except Exception:
        return None
    return None


def _running_frames_local(target: object) -> str | None:
    if sys.version_info < (3, 13):
        return None  # a running frame's locals cannot be read without holding them
    for frame in list(sys._current_frames().values()):
        f: types.FrameType | None = frame
        while f is not None:
            if not _own(f):
                hit = _frame_local(f, target)
                if hit:
                    return hit
            f = f.f_back
    return None


def name_containers(objs: list[tuple[int, object]]) -> dict[int, str]:
    """Labels for (id, container) pairs; containers that cannot be named are left out."""
    names, _ = module_globals()
    out: dict[int, str] = {}
    pending: list[_Pending] = []
    # The caller's (id, container) pairs refer to the containers too: never owners.
    own = {id(objs), id(pending), *(id(pair) for pair in objs)}
    for oid, obj in objs:
        pending.append(_Pending(oid, obj, "", container_kind(obj)))
    for _ in range(MAX_ROUNDS):
        unresolved: list[_Pending] = []
        for p in pending:
            hit = names.get(id(p.target))
            if hit is not None and p.dict_key is None:
                label, _, wrapper = hit.partition("\x00")
                out[p.origin] = f"{label}{p.suffix} ({wrapper or p.kind})"
            else:
                unresolved.append(p)
        if not unresolved:
            break
        pending = _climb(unresolved, out, own)
        if not pending:
            break
    return out


def _climb(unresolved: list[_Pending], out: dict[int, str], own: set[int]) -> list[_Pending]:
    """One round: find the referrers of every unresolved target, decide a label or go up."""
    targets = [p.target for p in unresolved]
    referrers = gc.get_referrers(*targets)
    by_target: dict[int, list[object]] = {}
    own_ids = {id(targets), id(unresolved), id(referrers), *own}
    for r in referrers:
        if id(r) in own_ids or _own(r) or type(r) is _Pending:
            continue
        try:
            refd = gc.get_referents(r)
        except Exception:
            continue
        for x in refd:
            by_target.setdefault(id(x), []).append(r)
    del referrers
    hidden = {
        id(p.target)
        for p in unresolved
        if id(p.target) not in by_target and not gc.is_tracked(p.target)
    }
    if hidden:
        # An untracked container held by an untracked instance __dict__: gc.get_referrers
        # cannot see that dict, so look through the instances of Python classes directly.
        for owner, target_id in _untracked_owners(hidden):
            by_target.setdefault(target_id, []).append(owner)
    nxt: list[_Pending] = []
    for p in unresolved:
        owners = by_target.get(id(p.target), [])
        step = _step(p, owners)
        if isinstance(step, str):
            out[p.origin] = step
        elif step is not None:
            nxt.append(step)
    return nxt


def _untracked_owners(ids: set[int]) -> list[tuple[object, int]]:
    out: list[tuple[object, int]] = []
    for obj in gc.get_objects():
        if not type(obj).__flags__ & HEAPTYPE or (is_a(obj, type)):
            continue
        for r in gc.get_referents(obj):
            if id(r) in ids:
                out.append((obj, id(r)))
            elif type(r) is dict and not gc.is_tracked(r):
                for v in list(dict.values(r)):
                    if id(v) in ids:
                        out.append((obj, id(v)))
        if len(out) > 4 * len(ids):
            break
    return out


def _cache_label(wrapper: object) -> str:
    """'lru_cache of f() (file:line)' for a functools.cache / lru_cache wrapper."""
    fn = getattr(wrapper, "__wrapped__", None)
    code = getattr(fn, "__code__", None)
    where = f" ({os.path.basename(code.co_filename)}:{code.co_firstlineno})" if code else ""
    return f"lru_cache of {getattr(wrapper, '__qualname__', '?')}(){where}"


def _closure_label(cell: object, target: object) -> str | None:
    """'closure variable X of f() (file:line)' for a cell that holds target."""
    for tup in gc.get_referrers(cell):
        if not is_a(tup, tuple):
            continue
        for fn in gc.get_referrers(tup):
            if (is_a(fn, types.FunctionType)) and fn.__closure__ is tup:
                var = fn.__code__.co_freevars[tup.index(cell)]
                code = fn.__code__
                where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
                return f"closure variable {var} of {fn.__qualname__}() ({where})"
    return None


def _step(p: _Pending, owners: list[object]) -> _Pending | str | None:
    """Given the referrers of p.target, a final label or the next thing to climb to."""
    if p.dict_key is not None:
        # p.target is a dict holding the container under dict_key: whose __dict__ is it?
        for o in owners:
            if is_a(o, type) and o.__dict__ is not None:
                return f"class {type_name(o)}, attribute {p.dict_key}{p.suffix} ({p.kind})"
            if type(o).__flags__ & HEAPTYPE and instance_dict(o) is p.target:
                return _instance_label(o, p.dict_key, p)
            if (is_a(o, types.FrameType)) and not _own(o):
                code = o.f_code
                func = getattr(code, "co_qualname", code.co_name)
                where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
                return f"local {p.dict_key} in {func}() ({where}){p.suffix} ({p.kind})"
        # A plain dict: the container is one of its values.
        return _Pending(p.origin, p.target, "[*]" + p.suffix, p.kind)
    for o in owners:
        if type(o) in LRU_CACHE_TYPES and getattr(o, "__dict__", None) is not p.target:
            return f"{_cache_label(o)}{p.suffix} ({p.kind})"
    for o in owners:
        if type(o).__flags__ & HEAPTYPE and not is_a(o, type):
            attr = _attr_holding(o, p.target)
            if attr is not None:
                return _instance_label(o, attr, p)
    if any(type(o) is dict for o in owners):
        # Perhaps the f_locals snapshot of a running frame (its frame is not a gc object).
        hit = _running_frames_local(p.target)
        if hit:
            return f"{hit}{p.suffix} ({p.kind})"
    for o in owners:
        if is_a(o, dict):
            key = next((str(k) for k, v in list(dict.items(o)) if v is p.target), None)
            if key is not None and not key.startswith("__"):
                return _Pending(p.origin, o, p.suffix, p.kind, dict_key=key)
    for o in owners:
        if issubclass(type(o), (list, tuple, set, frozenset)) or type(o).__name__ == "deque":
            return _Pending(p.origin, o, "[*]" + p.suffix, p.kind)
    for o in owners:
        if is_a(o, types.FrameType):
            hit = _frame_local(o, p.target)
            if hit:
                return f"{hit}{p.suffix} ({p.kind})"
        frame = None
        if type(o) is types.GeneratorType:
            frame = o.gi_frame
        elif type(o) is types.CoroutineType:
            frame = o.cr_frame
        if frame is not None:
            hit = _frame_local(frame, p.target)
            if hit:
                return f"{hit}{p.suffix} ({p.kind})"
            code = frame.f_code  # suspended: which local is not read (_locals_fixed)
            where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
            what = "generator" if type(o) is types.GeneratorType else "coroutine"
            func = getattr(code, "co_qualname", code.co_name)
            return f"a local of suspended {what} {func}() ({where}){p.suffix} ({p.kind})"
    for o in owners:
        if is_a(o, types.CellType):
            hit = _closure_label(o, p.target)
            if hit:
                return f"{hit}{p.suffix} ({p.kind})"
    hit = _running_frames_local(p.target)
    if hit:
        return f"{hit}{p.suffix} ({p.kind})"
    return None


def _instance_label(owner: object, attr: str, p: _Pending) -> _Pending | str:
    if module_of(type(owner)).startswith(OWN_MODULE) or id(owner) in OWN_IDS:
        return OWN  # the probe's own buffers are not the host's culprits
    wrapped = _wrapper_of(owner)
    if wrapped is not None and attr == wrapped:
        # The deque inside a Queue: name the Queue by whoever holds it.
        return _Pending(p.origin, owner, p.suffix, _public_name(type(owner)))
    if wrapped == CACHETOOLS[2] and attr.startswith("_"):
        return OWN  # a cache's bookkeeping beside its entries: reported through them
    return f"{type(owner).__qualname__}.{attr}{p.suffix} ({p.kind})"
