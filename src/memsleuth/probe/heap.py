"""Census of the host's heap: live objects by type, and the identity and size of big containers.

Everything here runs on the probe thread with the GIL held; it never calls user-defined Python
code (lengths and sizes come from the builtin base types only). No dataclasses in the probe:
importing them (and inspect) would add ~20 ms to every Python process the probe is injected in.
"""

from __future__ import annotations

import array
import collections
import functools
import gc
import itertools
import sys
import time
import types
from collections.abc import Collection

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 MB of RSS
if TYPE_CHECKING:  # typing costs ~2 MB of RSS in every host: not at run time
    from typing import Any, TypeGuard, TypeVar

    _T = TypeVar("_T")

# Exact builtin container types whose len() and iteration are pure C.
EXACT_LEN: dict[type, Any] = {
    dict: len,
    list: len,
    set: len,
    frozenset: len,
    bytearray: len,
    collections.deque: len,
    collections.OrderedDict: len,
    collections.defaultdict: len,
    collections.Counter: dict.__len__,
}
_BASES: tuple[type, ...] = (dict, list, set, frozenset, bytearray, collections.deque)
# A module-global or class-attribute container of fewer than `min_len` entries is followed too
# when its entries are this heavy in all (a list of a few 4 MB frames or arrays): bytearrays,
# bytes and numpy arrays are not gc objects, so without their holder the census never sees them
# and their growth passes for native memory.
HEAVY_BYTES = 1 << 20
# ... and so are the attributes of objects of which there are at most this many (a pipeline,
# a service, a manager: `self.replay.append(frame)`); checking every instance's would cost a
# sizeof per small container on the heap at every census.
FEW_INSTANCES = 16
HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes defined in Python
# functools.cache / lru_cache wrappers (a C type): their cache dict is untracked when keys and
# values are plain (an int -> str memo), so only the wrapper reaches it. `cache` on unique keys
# (a request id) is a classic leak.
LRU_CACHE_TYPES: frozenset[type] = frozenset(
    t for t in (getattr(functools, "_lru_cache_wrapper", None),) if isinstance(t, type)
)
_MODULE_DICT = vars(types.ModuleType)["__dict__"]
# Work queues, whose entries a consumer takes out, and the attribute that holds them:
# (module, class, attribute). A module the host has not imported is never imported for this.
STDLIB_QUEUES = (
    ("queue", "Queue", "queue"),  # and its Lifo and Priority kinds
    ("asyncio.queues", "Queue", "_queue"),
)
QUEUES = (*STDLIB_QUEUES, ("memsleuth.guards.queues", "QueueAccounting", "_items"))


def module_of(t: type) -> str:
    """A class's module name; "" when __module__ is not a string (a descriptor, say)."""
    mod = getattr(t, "__module__", "")
    return mod if isinstance(mod, str) else ""


def type_name(t: type) -> str:
    mod = module_of(t)
    qual = getattr(t, "__qualname__", t.__name__)
    return qual if mod in ("builtins", "") else f"{mod}.{qual}"


def container_kind(obj: object) -> str:
    """'dict', 'list', 'deque' ... the builtin base of a container (the user type if a subclass)."""
    t = type(obj)
    if t in (collections.deque, collections.OrderedDict, collections.defaultdict):
        return t.__name__
    return t.__name__ if module_of(t) == "builtins" else type_name(t)


def safe_len(obj: object) -> int:
    """len() through the builtin base type, so a subclass's __len__ is never run."""
    for base in _BASES:
        if issubclass(type(obj), base):  # not isinstance(): it asks a proxy's __class__
            return int(base.__len__(obj))  # type: ignore[attr-defined]
    return 0


# Per census only (see forget_types): a class the host dropped must not be kept alive by us.
_SAFE_SIZEOF: dict[type, bool] = {}


def forget_types() -> None:
    """Drop the classes cached during a census (called when the census is done)."""
    _SAFE_SIZEOF.clear()


def safe_sizeof(obj: object) -> int:
    """sys.getsizeof unless the type defines __sizeof__ in Python (then the object header)."""
    t = type(obj)
    ok = _SAFE_SIZEOF.get(t)
    if ok is None:
        # Only a C implementation: a Python one, or a callable object or partial in its
        # place (a `synchronized` decorator), is the host's code and may block on its locks.
        attr = getattr(t, "__sizeof__", None)
        ok = type(attr) in (types.MethodDescriptorType, types.WrapperDescriptorType)
        _SAFE_SIZEOF[t] = ok
    try:
        return sys.getsizeof(obj) if ok else object.__sizeof__(obj) + 16
    except Exception:
        return 0


def _lru_items(cache: dict[object, object], k: int) -> list[object]:
    """Keys and results of a functools.lru_cache whose cache dict this is. Its values are
    links (a C type with no traversal of its own) and only the wrapper reaches what they hold:
    its traversal visits its own type, then each link's key, result and type. A cache of
    1.8 KiB pages had been estimated at 110 bytes an entry."""
    for wrapper in gc.get_referrers(cache):
        if type(wrapper) in LRU_CACHE_TYPES:
            refs = gc.get_referents(wrapper)[1 : 1 + 3 * k]
            return [r for i, r in enumerate(refs) if i % 3 != 2]
    return []


def is_a(obj: object, cls: type[_T]) -> TypeGuard[_T]:
    """isinstance() by the object's own type. isinstance() also asks `obj.__class__` when
    the answer is no, which a lazy proxy (Django's LazySettings) answers by running the
    host's set-up on the probe's thread."""
    return issubclass(type(obj), cls)


def instance_dict(obj: object) -> dict[str, object] | None:
    """The __dict__ of an instance of a Python class, through object's own descriptor (no
    property or __getattribute__ of the host's runs); Python 3.11 keeps attributes inline,
    so the gc sees the instance, not a dict, holding its attributes."""
    t = type(obj)
    if not t.__flags__ & HEAPTYPE:
        return None
    for k in t.__mro__:
        desc = k.__dict__.get("__dict__")
        if desc is not None:
            if type(desc) is not types.GetSetDescriptorType:
                return None
            d = desc.__get__(obj, t)
            return d if type(d) is dict else None
    return None


def attributes(obj: object) -> list[object]:
    """What an instance of a Python class holds as attributes, in its __dict__ or its
    __slots__ (read through the gc's referents: no descriptor of the host's runs), with the
    items of a tuple among them. weakref.finalize's registry keeps an `_Info` with slots an
    entry, its `args` tuple holding the payload: 16 kB buffers had been sized at 150 B a
    finalizer, 0.9% of the leak they were."""
    t = type(obj)
    if not t.__flags__ & HEAPTYPE:
        return []
    d = instance_dict(obj)
    if d is not None:
        values = list(dict.values(d))
    elif any(issubclass(t, b) for b in (*_BASES, tuple)):
        return []  # a container's referents are its entries, sampled as such
    else:
        values = [r for r in gc.get_referents(obj) if not issubclass(type(r), type)]
    tuples = [v for v in values if is_a(v, tuple)]  # namedtuples too
    return values + [x for v in tuples for x in itertools.islice(tuple.__iter__(v), 8)]


def module_dict(mod: object) -> dict[str, object] | None:
    """A module's namespace, read through ModuleType's own descriptor: getattr() would load
    a module that importlib's LazyLoader is holding back, running it on the probe's thread."""
    if not issubclass(type(mod), types.ModuleType):
        return None
    d = _MODULE_DICT.__get__(mod, type(mod))
    return d if type(d) is dict else None


def queue_storage(obj: object, queues: tuple[tuple[str, str, str], ...] = QUEUES) -> str | None:
    """The attribute `obj` keeps its entries in, when it is one of the work `queues`."""
    for mod, name, attr in queues:
        d = module_dict(sys.modules.get(mod))
        t = d.get(name) if d is not None else None
        if isinstance(t, type) and is_a(obj, t):
            return attr
    return None


def _is_queue_storage(obj: object, ref: object, attrs: dict[str, object]) -> bool:
    """`obj` is held by `ref` (an instance, or its __dict__ `attrs`) as a queue's storage.
    A dict's owner is looked for (one more pass over the gc's objects) only when it holds
    `obj` under a queue's storage attribute: asyncio.Queue's __dict__ is a real dict."""
    if ref is not attrs:
        attr = queue_storage(ref)
        return attr is not None and dict.get(attrs, attr) is obj
    if not any(dict.get(attrs, attr) is obj for _, _, attr in QUEUES):
        return False
    return any(
        instance_dict(o) is attrs and queue_storage(o) is not None for o in gc.get_referrers(attrs)
    )


def container_traits(obj: object) -> tuple[int | None, bool]:
    """(bound, queue) of a container. bound: at most how many entries `obj` can hold, when
    something bounds it: a deque's maxlen, an lru_cache's maxsize, or the `maxsize` of the
    object that keeps it as an attribute (a queue.Queue, an asyncio.Queue, a cachetools cache
    counting entries, memsleuth's own guards). queue: `obj` is the storage of a work queue,
    whose entries a consumer takes out, so that growth there is a backlog (the producer
    outpacing the consumer, seed 000) rather than entries nobody removes. Read from the
    objects' own dicts, never through a property or __getattr__ of the host's."""
    bound: int | None = None
    queue = False
    try:
        if type(obj) is collections.deque and obj.maxlen is not None:
            bound = int(obj.maxlen)
        for ref in gc.get_referrers(obj):
            if type(ref) in LRU_CACHE_TYPES:
                size = ref.cache_parameters().get("maxsize")
                return (size if type(size) is int and size > 0 else None), False
            attrs = ref if type(ref) is dict else instance_dict(ref)
            if attrs is None or not any(v is obj for v in dict.values(attrs)):
                continue
            queue = queue or _is_queue_storage(obj, ref, attrs)
            size = dict.get(
                attrs,
                "maxsize",
                dict.get(attrs, "_maxsize", dict.get(attrs, "_Cache__maxsize")),
            )
            counted = dict.get(attrs, "_Cache__currsize", safe_len(obj))
            if bound is None and type(size) is int and size > 0 and counted == safe_len(obj):
                bound = size
    except Exception:
        pass
    return bound, queue


def _items_sample(obj: object, k: int) -> list[object]:
    try:
        if type(obj) is dict and type(next(iter(dict.values(obj)), None)).__name__ == (
            "_lru_list_elem"
        ):
            return _lru_items(obj, k)
        if is_a(obj, dict):
            out: list[object] = []
            for key, value in itertools.islice(dict.items(obj), k):
                out.extend((key, value))
            return out
        seqs = (list, tuple, set, frozenset, collections.deque)
        if issubclass(type(obj), seqs) and isinstance(obj, seqs):
            return list(itertools.islice(iter(obj), k))
    except Exception:
        pass
    return []


def _last_entry(obj: object) -> object:
    """The newest entry of an exact builtin container (None if it has none or is a set)."""
    try:
        if isinstance(obj, dict):
            return next(reversed(dict.values(obj)))
        if isinstance(obj, (list, collections.deque)):
            return obj[-1]
    except Exception:
        pass
    return None


def is_heavy(obj: object, n: int) -> bool:
    """n entries the size of the newest one, with what it keeps alive unseen (_held_by: a
    stored exception's frames and their locals), weigh HEAVY_BYTES or more. Its bare size had
    put a list of exceptions holding 2.9 MiB each at ~100 B an entry: followed only from 32
    entries, its growth till then blamed on native memory."""
    last = _last_entry(obj)
    if last is None:
        return False
    size = safe_sizeof(last) + sum(safe_sizeof(x) * w for x, w in _held_by(last))
    return size * n >= HEAVY_BYTES


# An entry of another type than most, this many times heavier than the sample's median one, is
# counted as itself, not as typical of the others: 10 is far past how much entries of one kind
# differ (a string key's length, a list's spare room), short of a container one odd entry holds.
OUTLIER_ENTRY = 10.0

# How many frames of a stored exception's traceback are sized.
TRACEBACK_FRAMES = 8


def _held_by(obj: object) -> list[tuple[object, float]]:
    """What an object keeps alive that neither its size nor its entries show, each with the
    share of it this object holds (one over the references to it): a stored exception's
    traceback frames and their locals, a suspended generator's or coroutine's locals, a numpy
    view's base array, a function's closure (_closure). Stored exceptions, suspended
    generators and views of 200 kB arrays had been sized at a few KiB while they held 32 MB,
    the growth then blamed on "native memory outside Python objects"; the 50 rows of one
    1.9 MiB array hold 40 kB each, not 1.9 MiB nor nothing. Read through the gc's referents
    and C attributes only: a frame's f_locals would store a snapshot (naming.py)."""
    try:
        t = type(obj)
        if issubclass(t, BaseException):
            frames: list[object] = []
            tb = BaseException.__getattribute__(obj, "__traceback__")
            while type(tb) is types.TracebackType and len(frames) < TRACEBACK_FRAMES:
                frames.append(tb.tb_frame)
                tb = tb.tb_next
            # A finished frame's referents are its locals (and its code, function, caller).
            return _shares([r for f in frames for r in gc.get_referents(f) if _not_frame(r)])
        if t in (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType):
            return _shares([r for r in gc.get_referents(obj) if _not_frame(r)])
        if t is types.FunctionType:  # final: C getters only (isinstance would ask __class__)
            return _closure(obj)
        desc = t.__dict__.get("base") if t.__name__ == "ndarray" else None
        if type(desc) is types.GetSetDescriptorType and t.__module__ == "numpy":
            return _shares([b for b in (desc.__get__(obj, t),) if b is not None])  # C getter
    except Exception:
        pass
    return []


def _closure(fn: Any) -> list[tuple[object, float]]:
    """What a function holds in its closure cells and defaults, and one level into each (a
    captured dict holds its strings): a list of callbacks, each closing over a 2.5 kB request
    dict, had been sized at 161 B a callback, 5% of the leak it was all of."""
    cells = [c for c in fn.__closure__ or () if _filled(c)]
    held = [*(c.cell_contents for c in cells), *(fn.__defaults__ or ())]
    out = _shares(held)
    for x, share in list(out):
        inner = _items_sample(x, 8)
        if inner:
            sampled = len(inner) / (2 if is_a(x, dict) else 1)
            out.extend((y, share * safe_len(x) / sampled) for y in inner)
    return out


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _not_frame(obj: object) -> bool:
    return type(obj) is not types.FrameType


def _shares(held: list[object]) -> list[tuple[object, float]]:
    """Each object with one over the references to it beyond those this reading makes."""
    return [(x, 1.0 / max(1, sys.getrefcount(x) - _OWN_REFS)) for x in held]


# The references _shares itself makes to an object (its list, the loop, the call): measured
# on an object nothing else holds.
_OWN_REFS = 0
_OWN_REFS = round(1.0 / _shares([object()])[0][1])


def _module_values() -> set[int]:
    """Ids of what modules hold as globals: a module's object is the module's, not retained
    by a container whose entries refer to it too (views of a 40 MiB module-level array had
    each been given a share of it, a list of them "~47 MiB retained" in 26 MiB of growth)."""
    out: set[int] = set()
    for mod in list(sys.modules.values()):
        d = module_dict(mod)
        if d is not None:
            out.update(map(id, list(dict.values(d))))
    return out


def estimate_bytes(obj: object, sample: int = 16) -> int:
    """Bytes retained by a container: its own size plus sampled elements (two levels, into
    tuples too: `(time, payload)` values had been counted as the bare tuple; an object's
    attributes count as part of it at either level) × len.

    An object met more than once in the sample is shared (one constant in every entry, a small
    int, an interned string): counted once, not once an entry (a cache of one 400-byte string
    had been estimated at 57 MiB in a 26 MiB process). So is an entry far heavier than the
    sample's median one and of another type than most (`OUTLIER_ENTRY`): it is counted as
    itself and the others stand for the rest (logging's loggerDict, one PlaceHolder in it
    holding a map of every logger, had been sized at 18.8 kB a logger that holds 0.6 kB,
    "27.4 MiB" in 7 MiB of growth)."""
    n = safe_len(obj)
    own = safe_sizeof(obj)
    items = _items_sample(obj, sample)
    if not items or n == 0:
        return own
    width = 2 if isinstance(obj, dict) else 1  # a dict's sample is key, value, key, value ...
    # (entry's index in the sample, object, entries' worth of it per sampled entry)
    parts: list[tuple[int, object, float]] = []
    unseen: list[tuple[int, object, float]] = []  # (entry, object, the share of it it holds)
    for i, entry in enumerate(items):
        e = i // width
        parts.append((e, entry, 1.0))
        item = entry
        if type(entry) is types.MethodType:
            # A bound method holds its object: a list of subscribers' callbacks had been
            # sized at 64 bytes a callback, 0.4% of a leak of 16 kB sessions.
            item = entry.__self__
            parts.append((e, item, 1.0))
        inner = _items_sample(item, 8)
        if inner:
            # A namedtuple is a tuple: its fields had been given no weight (safe_len knows
            # no tuples), a list of events sized at 186 KiB that held 6 MiB.
            held = tuple.__len__(item) if is_a(item, tuple) else safe_len(item)
            # A dict's sample holds a key and a value an entry: a dict of dicts had been
            # counted at half its size (2.2 kB a profile that held 4.4 kB).
            sampled = len(inner) / (2 if is_a(item, dict) else 1)
            parts.extend((e, x, held / sampled) for x in inner)
            # ... and the attributes of the objects in it: an lru_cache on a method keys each
            # entry by (self, args), and the instance's 8 KiB buffer had gone uncounted (3%,
            # 5.4 MiB said of a cache holding ~150 MiB).
            for x in inner:
                parts.extend((e, v, held / sampled) for v in attributes(x))
        parts.extend((e, v, 1.0) for v in attributes(item))
        unseen.extend((e, x, w) for x, w in _held_by(item))
    seen = collections.Counter(id(x) for _, x, _ in parts)
    entries = -(-len(items) // width)
    each = [0.0] * entries
    for e, x, w in parts:
        if seen[id(x)] == 1:
            each[e] += safe_sizeof(x) * w
    if unseen:
        modules = _module_values()
        for e, x, w in unseen:
            if id(x) not in modules:
                each[e] += safe_sizeof(x) * w
    shared = sum(
        safe_sizeof(x) for x in {id(x): x for _, x, _ in parts if seen[id(x)] > 1}.values()
    )
    bar = OUTLIER_ENTRY * max(sorted(each)[len(each) // 2], 1.0)
    kinds = [type(x) for x in items[width - 1 :: width]]  # a dict's values, a list's items
    most = collections.Counter(kinds).most_common(1)[0][0]
    odd = [b for b, k in zip(each, kinds, strict=False) if b > bar and k is not most]
    typical = [b for b, k in zip(each, kinds, strict=False) if not (b > bar and k is not most)]
    rest = sum(typical) / len(typical) * max(0, n - len(odd))
    return int(own + sum(odd) + rest + shared)


class Track:
    """One container followed by identity across censuses.

    Its history is two flat arrays allocated whole when the container is first seen (16 bytes
    a point, not a 120-byte tuple of objects): they are most of what the probe keeps in the
    host, so they cost a step when a container appears rather than a creep of the host's RSS
    census after census, and arrays are no container the census follows.
    """

    __slots__ = (
        "bound",
        "bytes_per_entry",
        "kind",
        "label",
        "lens",
        "n",
        "queue",
        "times",
        "tried_naming",
    )

    def __init__(self, kind: str, cap: int) -> None:
        self.kind = kind
        self.times = array.array("d", bytes(8 * cap))  # unix t of each census that saw it
        self.lens = array.array("q", bytes(8 * cap))  # its len() then
        self.n = 0  # points held
        self.label: str | None = None  # "" for the probe's own containers
        self.tried_naming = 0
        self.bytes_per_entry = 0.0
        self.bound: int | None = None  # at most this many entries (container_traits)
        self.queue = False  # a work queue's storage (container_traits)

    def add(self, t: float, n: int) -> None:
        cap = len(self.lens)
        if self.n == cap:
            # Full: halve the resolution of the older half; keep the first and newest points.
            h, kept = cap // 2, (cap // 2 + 1) // 2
            self.times[:kept] = self.times[:h:2]
            self.times[kept : kept + cap - h] = self.times[h:]
            self.lens[:kept] = self.lens[:h:2]
            self.lens[kept : kept + cap - h] = self.lens[h:]
            self.n = kept + cap - h
        self.times[self.n] = t
        self.lens[self.n] = n
        self.n += 1

    @property
    def history(self) -> list[tuple[float, int]]:
        return list(zip(self.times[: self.n], self.lens[: self.n], strict=True))

    @property
    def last(self) -> int:
        return self.lens[self.n - 1]

    @property
    def growth(self) -> int:
        return self.lens[self.n - 1] - self.lens[0]

    def is_growing(self, min_growth: int) -> bool:
        h = self.lens[: self.n]
        if len(h) < 3 or h[-1] - h[0] < min_growth:
            return False
        return h[-1] >= max(h[: len(h) // 2 + 1])


class CensusResult:
    """What one census saw. `to_name` holds host containers: drop it once they are named."""

    __slots__ = ("containers", "duration_s", "objects", "t", "to_name", "types")

    def __init__(
        self,
        t: float,
        objects: int,
        duration_s: float,
        types: tuple[tuple[str, int, int], ...],  # (type name, count, est. bytes), top first
        to_name: tuple[tuple[int, object], ...],  # (id, container) growing, not yet named
        containers: int,  # big containers followed
    ) -> None:
        self.t = t
        self.objects = objects
        self.duration_s = duration_s
        self.types = types
        self.to_name = to_name
        self.containers = containers


class HeapCensus:
    """Counts live objects by type and follows big containers (by identity) over censuses."""

    def __init__(
        self,
        *,
        min_len: int = 32,
        max_tracked: int = 2_000,
        max_history: int = 128,
        top_types: int = 30,
        name_per_census: int = 64,
    ) -> None:
        self.min_len = min_len
        self.max_tracked = max_tracked
        self.max_history = max_history
        self.top_types = top_types
        self.name_per_census = name_per_census
        self.tracks: dict[int, Track] = {}  # by id: a Track never holds the container itself
        self.censuses = 0
        self.labels_written: set[str] = set()

    @staticmethod
    def _holders(ts: Collection[type]) -> set[type]:
        """Classes defined in Python whose instances can hold attributes (their own dict/slots).
        Worked out at every census (a few thousand types): a cache would keep dropped classes
        alive."""
        return {t for t in ts if t.__flags__ & HEAPTYPE and not issubclass(t, type)}

    def take(
        self, extra: list[object] | None = None, own_ids: Collection[int] = ()
    ) -> CensusResult:
        """One census. `extra`: containers found elsewhere (module globals, class attributes);
        `own_ids`: the caller's own containers (the probe's write buffers), never followed."""
        start = time.perf_counter()
        now = time.time()
        # The histories of the containers followed are arrays, which gc tracks: counted, they
        # had been the host's top culprit ("array.array +57.7k objects/h, 12%" in a program
        # that uses no array), two for every container followed.
        histories = [(tr.times, tr.lens) for tr in self.tracks.values()]
        objs = gc.get_objects()
        try:
            # type() is mapped again where needed rather than kept in a list as long as the
            # heap: the census's peak memory is the host's peak RSS too.
            counts = collections.Counter(map(type, objs))
            type_bytes = self._type_bytes(objs)
            big, heavy = self._big_containers(objs, counts, extra or [])
        finally:
            del objs
        if histories:
            counts[array.array] -= 2 * len(histories)
            held = sum(safe_sizeof(a) + safe_sizeof(b) for a, b in histories)
            type_bytes[array.array] = max(0.0, type_bytes.get(array.array, 0.0) - held)
            if counts[array.array] <= 0:
                del counts[array.array]
        del histories
        # The census's own bookkeeping is on the heap too (Track histories are arrays, which
        # it does not follow): followed, these would come back as new containers every census.
        # So are the probe's write buffers: between two flushes they grow like a leak, took one
        # of the `name_per_census` slots from a host container only to be named "" (the probe's),
        # and left one of 64 growing siblings unnamed until a census that a short run never had.
        own = {id(self.tracks), id(self.labels_written), *own_ids}
        seen: dict[int, int] = {}
        keep: dict[int, object] = {}
        for obj, n in big:
            if id(obj) not in own:
                seen[id(obj)] = n
                keep[id(obj)] = obj
        self._update_tracks(now, seen, keep)
        self._refresh_bytes(keep)
        to_name = self._pick_to_name(keep, heavy)
        del keep, big
        for t in [t for t in counts if module_of(t).startswith("memsleuth.probe")]:
            del counts[t]  # the probe's own objects
        top = counts.most_common(self.top_types)
        types_out = tuple((type_name(t), c, int(type_bytes.get(t, 0.0))) for t, c in top)
        self.censuses += 1
        return CensusResult(
            t=now,
            objects=sum(counts.values()),
            duration_s=time.perf_counter() - start,
            types=types_out,
            to_name=to_name,
            containers=len(self.tracks),
        )

    def _type_bytes(self, objs: list[object]) -> dict[type, float]:
        # A strided sample keeps this O(20k) whatever the heap size.
        step = max(1, len(objs) // 5_000)
        out: dict[type, float] = collections.defaultdict(float)
        for o in objs[::step]:
            out[type(o)] += safe_sizeof(o) * step
        return out

    def _big_containers(
        self, objs: list[object], counts: collections.Counter[type], extra: list[object]
    ) -> tuple[list[tuple[object, int]], set[int]]:
        """(container, len) of the containers to follow, and the ids of those followed for
        their weight rather than their length."""
        min_len = self.min_len
        at_least = min_len.__le__
        exact = EXACT_LEN
        conts = list(itertools.compress(objs, map(exact.__contains__, map(type, objs))))
        sizes: list[int] = list(map(len, conts))  # type: ignore[arg-type]
        out = list(
            zip(
                itertools.compress(conts, map(at_least, sizes)),
                itertools.compress(sizes, map(at_least, sizes)),
                strict=True,
            )
        )
        followed = self.tracks.keys()
        del conts, sizes
        # Containers that gc does not track (a dict of str -> float, say) are invisible to
        # gc.get_objects(); reach them through the attributes of instances of Python classes.
        holders_t = self._holders(counts.keys()) | (LRU_CACHE_TYPES & set(counts))
        holders = list(itertools.compress(objs, map(holders_t.__contains__, map(type, objs))))
        refs = gc.get_referents(*holders) if holders else []
        few_t = {t for t in holders_t if counts[t] <= FEW_INSTANCES}
        few = [o for o in holders if type(o) in few_t]
        del holders
        # The attributes of the few (their own, or in their __dict__): checked for weight.
        few_refs = gc.get_referents(*few) if few else []
        own_dicts = {id(r) for r in few_refs if type(r) is dict and len(r) <= 64}
        if own_dicts:
            few_refs.extend(gc.get_referents(*[r for r in few_refs if id(r) in own_dicts]))
        del few
        # Instance __dict__s (small dicts among the referents, tracked or not) hold attributes.
        level2 = [r for r in refs if type(r) is dict and len(r) <= 64]
        if level2:
            refs.extend(gc.get_referents(*level2))
        refs.extend(extra)
        for r in refs:
            if type(r) in exact and not gc.is_tracked(r):
                n = len(r)
                if n >= min_len or id(r) in followed:
                    out.append((r, n))
        heavy: set[int] = set()
        for r in itertools.chain(few_refs, extra):
            if type(r) in exact and id(r) not in own_dicts:
                n = len(r)
                if 0 < n < min_len and is_heavy(r, n) and id(r) not in heavy:
                    out.append((r, n))
                    heavy.add(id(r))
        del few_refs
        for r in extra:
            if type(r) not in exact and gc.is_tracked(r):
                n = safe_len(r)
                if n >= min_len or id(r) in followed:
                    out.append((r, n))
        # A named container is followed whatever its length: emptied below min_len (a backlog
        # drained, a buffer cleared), dropped, it had left a history of its rise alone, read
        # as a leak (exit 3) of a list that held 10 entries at the end. Looked for among the
        # gc's objects only when a named one is missing (that pass, ~40 ms a census at a
        # million objects, is paid only while one is small or just gone; the many unnamed,
        # a request's list that lived for one census, are let go).
        named = {i for i, tr in self.tracks.items() if tr.label}
        missing = named - {id(o) for o, _ in out} if named else set()
        if missing:
            for o in itertools.compress(objs, map(missing.__contains__, map(id, objs))):
                if type(o) in exact:
                    out.append((o, len(o)))  # type: ignore[arg-type]
        return out, heavy

    def _update_tracks(self, now: float, seen: dict[int, int], keep: dict[int, object]) -> None:
        if len(seen) > self.max_tracked:
            # Keep the followed ones still alive, then the biggest newcomers.
            followed = [i for i in seen if i in self.tracks]
            newcomers = sorted(
                (i for i in seen if i not in self.tracks), key=seen.__getitem__, reverse=True
            )
            chosen = set(sorted(followed, key=seen.__getitem__, reverse=True)[: self.max_tracked])
            chosen.update(newcomers[: max(0, self.max_tracked - len(chosen))])
        else:
            chosen = set(seen)
        tracks: dict[int, Track] = {}
        for i in chosen:
            kind = container_kind(keep[i])
            old = self.tracks.get(i)
            if old is None or old.kind != kind:  # a new object (or a reused id)
                old = Track(kind, self.max_history)
            old.add(now, seen[i])
            tracks[i] = old
        self.tracks = tracks

    def _refresh_bytes(self, keep: dict[int, object]) -> None:
        """Bytes per entry of each named container, from its biggest member, every census."""
        for tracks in self.labelled().values():
            i, tr = max(tracks, key=lambda it: it[1].last)
            per_entry = estimate_bytes(keep[i]) / max(tr.last, 1)
            for _, other in tracks:
                other.bytes_per_entry = per_entry

    def _pick_to_name(
        self, keep: dict[int, object], heavy: Collection[int] = ()
    ) -> tuple[tuple[int, object], ...]:
        """Growing containers to name: by their length, or (`heavy`: ids followed for their
        weight) by any growth."""
        growing = [
            (i, tr)
            for i, tr in self.tracks.items()
            if tr.label is None
            and tr.tried_naming < 3
            and (tr.is_growing(self.min_len) or (i in heavy and tr.is_growing(1)))
        ]
        growing.sort(key=lambda it: it[1].growth, reverse=True)
        chosen = growing[: self.name_per_census]
        # Growth spread over many instances fills them in one loop of the host's; a census
        # that lands mid-loop sees some of them one census later. Name those laggards with
        # their siblings (same kind, growing, two censuses so far), or the count of instances
        # reached the same way comes out one short at the end of a run.
        kinds = {tr.kind for _, tr in chosen}
        if kinds and len(chosen) < self.name_per_census:
            taken = {i for i, _ in chosen}
            laggards = [
                (i, tr)
                for i, tr in self.tracks.items()
                if i not in taken
                and tr.label is None
                and tr.tried_naming < 3
                and tr.kind in kinds
                and tr.n == 2
                and tr.growth > 0
            ]
            chosen += laggards[: self.name_per_census - len(chosen)]
        for _, tr in chosen:
            tr.tried_naming += 1
        return tuple((i, keep[i]) for i, _ in chosen)

    def labelled(self) -> dict[str, list[tuple[int, Track]]]:
        """Followed containers that have a name, grouped by it."""
        out: dict[str, list[tuple[int, Track]]] = {}
        for i, tr in self.tracks.items():
            if tr.label:
                out.setdefault(tr.label, []).append((i, tr))
        return out
