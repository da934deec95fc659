"""The probe's heap census and naming, in this process: what grows, and how it is reached."""

from __future__ import annotations

import array
import collections
import functools
import gc
import os
import queue
import sys
import tracemalloc
import types
import weakref
from collections.abc import Iterator

import pytest

from memsleuth.guards import CappedDict, CappedSet
from memsleuth.probe.heap import (
    EXACT_LEN,
    HeapCensus,
    container_traits,
    estimate_bytes,
    safe_len,
)
from memsleuth.probe.naming import global_containers, name_containers


class Session:
    def __init__(self) -> None:
        self.unacked: dict[int, bytes] = {}  # int -> bytes: a dict gc does not track


class Holder:
    def __init__(self) -> None:
        self.outbound: queue.Queue[bytes] = queue.Queue()


def _grow_and_name(census: HeapCensus, grow: object, rounds: int = 5) -> dict[str, int]:
    """Census `rounds` times, calling grow() between; the labels found and their entries."""
    for _ in range(rounds):
        grow()  # type: ignore[operator]
        res = census.take(global_containers(EXACT_LEN))
        labels = name_containers(list(res.to_name))
        for oid, label in labels.items():
            census.tracks[oid].label = label
        del res
    return {
        label: sum(tr.history[-1][1] for _, tr in tracks)
        for label, tracks in census.labelled().items()
    }


@pytest.fixture
def module() -> types.ModuleType:
    mod = types.ModuleType("fakeapp.dedup")
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


def test_module_global_dict_of_atomic_values_is_found_and_named(module: types.ModuleType) -> None:
    module.SEEN = {}  # str -> float: never tracked by gc
    n = iter(range(10**9))

    def grow() -> None:
        for _ in range(200):
            module.SEEN[f"sig-{next(n)}"] = 1.0

    found = _grow_and_name(HeapCensus(), grow)
    assert found == {"module fakeapp.dedup, global SEEN (dict)": 1000}


def test_a_module_global_list_of_few_heavy_entries_is_followed_and_named(
    module: types.ModuleType,
) -> None:
    # Four 2 MB frames after five censuses: far under the 32 entries a container needs, but
    # bytearrays are no gc objects, so only their holder can account for them.
    module.FRAMES = []
    module.IDS = []
    found = _grow_and_name(
        HeapCensus(),
        lambda: (module.FRAMES.append(bytearray(2_000_000)), module.IDS.append(len(module.IDS))),
    )
    assert found == {"module fakeapp.dedup, global FRAMES (list)": 5}  # not IDS: light


class Pipeline:
    def __init__(self) -> None:
        self.replay: list[bytearray] = []


def test_a_singletons_attribute_of_few_heavy_entries_is_followed_and_named() -> None:
    # One pipeline object keeping every 2 MB frame: an instance attribute, not a global.
    pipeline = Pipeline()
    found = _grow_and_name(HeapCensus(), lambda: pipeline.replay.append(bytearray(2_000_000)))
    assert found == {"Pipeline.replay (list)": 5}


def test_growth_over_many_instances_shares_one_name() -> None:
    sessions = [Session() for _ in range(16)]

    def grow() -> None:
        for s in sessions:
            for _ in range(40):
                s.unacked[len(s.unacked)] = b"x" * 100

    found = _grow_and_name(HeapCensus(), grow)
    assert found == {"Session.unacked (dict)": 16 * 200}


def test_instances_a_census_saw_late_are_counted_with_their_siblings() -> None:
    """A census that lands mid-loop sees the last sessions reach the tracking size one census
    after the others: at the end of a short run all 16 must still be counted, not 12."""
    sessions = [Session() for _ in range(16)]
    first = {"round": True}

    def grow() -> None:
        for k, s in enumerate(sessions):
            if first["round"] and k >= 12:
                continue  # the census came before the loop reached these four
            for _ in range(40):
                s.unacked[len(s.unacked)] = b"x" * 100
        first["round"] = False

    census = HeapCensus()
    _grow_and_name(census, grow, rounds=3)  # the first 12 are named at their 3rd census
    [(label, tracks)] = census.labelled().items()
    assert label == "Session.unacked (dict)" and len(tracks) == 16


def test_the_census_does_not_count_its_own_histories_as_the_hosts_objects() -> None:
    """Each container followed keeps two history arrays, which gc tracks: in a program holding
    no array they had been its top type ("array.array +57.7k objects/h")."""
    histories = [bytearray(1_000) for _ in range(300)]  # followed: each has a history
    census = HeapCensus()
    census.take()
    types = {name: count for name, count, _ in census.take().types}
    assert len(census.tracks) >= 300 and len(histories) == 300
    arrays = sum(type(o) is array.array for o in gc.get_objects())
    hosts = arrays - 2 * len(census.tracks)  # other tests' arrays, in this process
    assert types.get("array.array", 0) <= hosts, types


def test_the_callers_own_buffers_take_no_naming_slot_from_siblings() -> None:
    """The probe's write buffer grows faster than 64 sessions between two flushes: followed, it
    took one of the 64 naming slots and a short run ended naming 63 of them."""
    sessions = [Session() for _ in range(64)]
    buffer: list[tuple[int, str]] = []

    def grow() -> None:
        for s in sessions:
            for _ in range(40):
                s.unacked[len(s.unacked)] = b"x" * 100
        buffer.extend((i, "row") for i in range(100))

    census = HeapCensus()
    for _ in range(3):
        grow()
        res = census.take(own_ids=(id(buffer),))
    named = dict(res.to_name)
    assert id(buffer) not in named and id(buffer) not in census.tracks
    assert sum(1 for s in sessions if id(s.unacked) in named) == 64


def test_a_queue_is_named_by_its_owner_not_by_its_inner_deque() -> None:
    holder = Holder()

    def grow() -> None:
        for _ in range(50):
            holder.outbound.put(b"p" * 64)

    found = _grow_and_name(HeapCensus(), grow)
    assert found == {"Holder.outbound (Queue)": 250}


def test_a_capped_dict_is_named_once_by_its_holder_not_by_cachetools_internals(
    module: types.ModuleType,
) -> None:
    # It had been "_LRUDict._Cache__data (dict)" and "_LRUDict._LRUCache__order (OrderedDict)",
    # shares summing to 130% for one dict.
    module.SEEN = CappedDict(maxsize=100_000, name="dedup")

    def grow() -> None:
        for _ in range(100):
            module.SEEN[os.urandom(8).hex()] = 1

    found = _grow_and_name(HeapCensus(), grow)
    assert found == {"module fakeapp.dedup, global SEEN (CappedDict)": 500}
    # A CappedSet is one more wrapper around its CappedDict.
    module.SEEN = CappedSet(maxsize=100_000, name="dedup")

    def add() -> None:
        for _ in range(100):
            module.SEEN.add(os.urandom(8).hex())

    found = _grow_and_name(HeapCensus(), add)
    assert found == {"module fakeapp.dedup, global SEEN (CappedSet)": 500}


def test_a_local_variable_of_a_running_frame_is_named() -> None:
    pending: list[int] = []
    found = _grow_and_name(HeapCensus(), functools.partial(pending.extend, range(100)))
    if sys.version_info >= (3, 13):
        (label,) = found
        assert label.startswith("local pending in test_a_local_variable_of_a_running_frame")
        assert label.endswith("(list)")
    else:  # reading a running frame's locals would keep them alive (next test): not named
        assert found == {}


def test_a_suspended_generators_local_is_named_by_its_function_without_reading_it() -> None:
    def pending() -> Iterator[None]:
        buffers: list[bytes] = []
        while True:
            buffers.append(b"x")
            yield

    gen = pending()
    found = _grow_and_name(HeapCensus(), lambda: [next(gen) for _ in range(100)])
    (label,) = found
    assert label.startswith("a local of suspended generator ")
    assert "pending() (test_probe_heap.py:" in label and label.endswith("(list)")


class _Marker:
    pass


def test_naming_a_running_frames_local_keeps_nothing_of_it_alive() -> None:
    # A host's batch, rebound to a fresh list once done: under the probe 3 of 8 old batches
    # stayed alive (the f_locals snapshot Python 3.11 stores on a frame when it is read), RSS
    # doubled, and the host read as a leak.
    marker = _Marker()
    batch: list[object] = [marker]
    gone = weakref.ref(marker)
    del marker
    _grow_and_name(HeapCensus(), functools.partial(batch.extend, range(100)))
    batch = []
    gc.collect()
    assert gone() is None and batch == []


def test_a_closure_variable_is_named_by_its_function() -> None:
    def make() -> object:
        callbacks: list[object] = []

        def subscribe() -> None:
            callbacks.extend([object() for _ in range(100)])

        return subscribe

    found = _grow_and_name(HeapCensus(), make())
    (label,) = found
    assert label.startswith("closure variable callbacks of ")
    assert "make.<locals>.subscribe()" in label


def test_a_container_that_stops_growing_is_not_picked_for_naming() -> None:
    stable = list(range(500))
    census = HeapCensus()
    for _ in range(5):
        res = census.take()
        assert id(stable) not in dict(res.to_name)
    assert census.tracks[id(stable)].history[-1][1] == 500


def test_probe_memory_is_bounded_over_many_censuses() -> None:
    census = HeapCensus(max_tracked=50, max_history=16)
    churn = [list(range(40)) for _ in range(200)]
    for i in range(300):
        churn[i % 200] = list(range(40 + i))  # new identities keep appearing
        census.take()
    assert len(census.tracks) <= 50
    assert max(len(tr.history) for tr in census.tracks.values()) <= 16


def test_the_census_does_not_follow_its_own_bookkeeping() -> None:
    """Each Track's history grows by a point a census: were it a list the census follows, it
    would add Tracks whose histories grow in turn, a creep of the host's RSS."""
    census = HeapCensus(min_len=8, max_history=128)
    held = [list(range(100)) for _ in range(50)]  # fifty big containers that never change
    sizes = []
    for _ in range(40):
        census.take()
        sizes.append(len(census.tracks))
    histories = {id(a) for tr in census.tracks.values() for a in (tr.times, tr.lens)}
    assert not histories & set(census.tracks)
    assert id(census.tracks) not in census.tracks
    assert sum(1 for i in census.tracks if i in {id(x) for x in held}) == 50
    # The heap is otherwise still: as many containers followed after 40 censuses as after 4.
    assert sizes[-1] <= sizes[3] + 5, sizes


def test_lengths_and_sizes_never_run_user_code() -> None:
    class Liar(dict):  # type: ignore[type-arg]
        def __len__(self) -> int:
            raise AssertionError("user __len__ must not run")

        def __sizeof__(self) -> int:
            raise AssertionError("user __sizeof__ must not run")

    liar = Liar(a=1, b=2)
    assert safe_len(liar) == 2
    assert estimate_bytes([liar] * 10) > 0


def test_estimate_bytes_sees_the_elements() -> None:
    small = {i: b"" for i in range(1000)}
    big = {i: bytes([i % 256]) * 1000 for i in range(1000)}
    assert estimate_bytes(big) > estimate_bytes(small) + 900_000
    dq = collections.deque(bytes([i]) * 500 for i in range(100))
    assert estimate_bytes(dq) > 50_000


def test_estimate_bytes_counts_a_shared_object_once_and_looks_into_tuples() -> None:
    # One constant in every entry (`CACHE[i] = "x" * 400` is folded to one string) had been
    # counted once an entry: 57 MiB "retained" in a 26 MiB process.
    shared = {i: "x" * 400 for i in range(10_000)}
    assert estimate_bytes(shared) < sys.getsizeof(shared) + 10_000 * 100
    # (time, payload) values: the bare tuple had been counted, a third of what they hold.
    pairs = {i: (float(i), bytes([i % 256]) * 180) for i in range(1000)}
    each = 28 + sys.getsizeof((1.0, b"")) + 24 + sys.getsizeof(b"x" * 180)
    assert estimate_bytes(pairs) == pytest.approx(sys.getsizeof(pairs) + 1000 * each, rel=0.1)


def test_estimate_bytes_follows_a_bound_method_to_its_object() -> None:
    # An event bus's listeners are bound methods of sessions holding 16 kB each.
    class Session:
        def __init__(self) -> None:
            self.history = bytearray(16_000)

        def on_event(self) -> None:
            pass

    listeners = [Session().on_event for _ in range(300)]
    assert estimate_bytes(listeners) > 300 * 16_000


def test_estimate_bytes_weighs_a_dict_of_dicts_by_its_entries() -> None:
    # Per-user profiles: a dict of 10 fields each. Half of each had been counted (a key and
    # a value sampled per field, weighed as two fields).
    profiles = {
        f"user{i}": {f"field{k}": bytes([i % 256, k]) * 200 for k in range(10)} for i in range(500)
    }
    one = profiles["user1"]
    fields = sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in one.items())
    each = sys.getsizeof("user1") + sys.getsizeof(one) + fields
    assert estimate_bytes(profiles) == pytest.approx(sys.getsizeof(profiles) + 500 * each, rel=0.1)


def test_a_bounded_container_says_its_bound_and_an_unbounded_one_none() -> None:
    import cachetools

    ring: collections.deque[int] = collections.deque(range(10), maxlen=100)
    q: queue.Queue[int] = queue.Queue(maxsize=500)
    for i in range(10):
        q.put(i)
    lru = cachetools.LRUCache(maxsize=300)
    for i in range(10):
        lru[i] = i

    @functools.lru_cache(maxsize=250)
    def f(i: int) -> str:
        return str(i) * 100

    for i in range(10):
        f(i)
    cache = next(r for r in gc.get_referents(f) if type(r) is dict)
    assert container_traits(ring) == (100, False)
    assert container_traits(q.queue) == (500, True)
    assert container_traits(lru._Cache__data) == (300, False)  # type: ignore[attr-defined]
    assert container_traits(cache) == (250, False)
    assert container_traits({i: i for i in range(10)}) == (None, False)
    assert container_traits(queue.Queue().queue) == (None, True)  # maxsize 0: unbounded
    # The pages the links hold are counted (they had been missed: ~110 B an entry).
    assert estimate_bytes(cache) / len(cache) > 300


def test_work_queues_are_told_from_containers_nobody_drains() -> None:
    """A queue's storage is marked as such (growth there is a backlog, seed 000), with the
    asyncio queue's bound read from its `_maxsize`; a plain deque or a list is no queue."""
    import asyncio

    from memsleuth.guards import AsyncBoundedQueue, BoundedQueue

    class Session:
        def __init__(self) -> None:
            self.pending: collections.deque[int] = collections.deque([1, 2, 3])
            self.log: list[int] = [1, 2, 3]

    async def make() -> tuple[asyncio.Queue[int], asyncio.Queue[int], AsyncBoundedQueue[int]]:
        return asyncio.Queue(), asyncio.Queue(maxsize=64), AsyncBoundedQueue(32, "drop_oldest")

    unbounded, bounded, guarded = asyncio.run(make())
    for q in (unbounded, bounded):
        q.put_nowait(1)
    lifo: queue.LifoQueue[int] = queue.LifoQueue()
    lifo.put(1)
    mine: BoundedQueue[int] = BoundedQueue(16)
    mine.put(1)
    s = Session()
    # Once anything has read an instance's __dict__ (the probe's naming does), the gc sees
    # that dict, not the queue, holding the storage: the queue is found through it.
    vars(bounded)
    vars(mine)
    assert container_traits(unbounded._queue) == (None, True)  # type: ignore[attr-defined]
    assert container_traits(bounded._queue) == (64, True)  # type: ignore[attr-defined]
    assert container_traits(lifo.queue) == (None, True)
    assert container_traits(mine._items) == (16, True)
    assert container_traits(guarded._items) == (32, True)
    assert container_traits(s.pending) == (None, False)
    assert container_traits(s.log) == (None, False)


def _raise_holding(n: int) -> None:
    buf = bytearray(n)  # noqa: F841 - kept alive by the traceback's frame
    raise ValueError("stored")


def _suspended(n: int) -> Iterator[None]:
    buf = bytearray(n)  # noqa: F841 - kept alive by the suspended frame
    yield


def test_memory_held_through_tracebacks_generators_and_views_is_sized() -> None:
    # A helper's hosts: stored exceptions (traceback → frame → a 200 kB local), suspended
    # generators holding buffers, numpy views of 200 kB arrays. Each list had been sized at a
    # few KiB while holding 10 MB, and the growth blamed on "native memory (a C extension)".
    import numpy as np

    errors: list[BaseException] = []
    for _ in range(50):
        try:
            _raise_holding(200_000)
        except ValueError as exc:
            errors.append(exc)
    generators = [_suspended(200_000) for _ in range(50)]
    for gen in generators:
        next(gen)
    views = [np.zeros(25_000)[:10] for _ in range(50)]
    for held in (errors, generators, views):
        assert estimate_bytes(held) == pytest.approx(50 * 200_000, rel=0.1)


_BIG_TABLE = bytearray(20_000_000)  # a module's own object, which many entries refer to


def _refers_to_the_table() -> Iterator[None]:
    table = _BIG_TABLE  # noqa: F841 - a reference, not a copy
    yield


def test_what_entries_share_is_divided_among_them_and_a_modules_objects_are_its_own() -> None:
    # A helper's hosts: the 50 rows of each 2 MB array, appended to one list, had been sized
    # as one array in all (the first 16 rows share one base); views of, and generators
    # referring to, a module's 20 MB object had each list "retaining" all of it.
    import numpy as np

    rows = []
    for _ in range(20):
        batch = np.zeros(250_000)
        rows.extend(batch[i * 5000 : (i + 1) * 5000] for i in range(50))
    del batch
    assert estimate_bytes(rows) == pytest.approx(20 * 2_000_000, rel=0.2)
    generators = [_refers_to_the_table() for _ in range(500)]
    for gen in generators:
        next(gen)
    assert estimate_bytes(generators) < 1_000_000  # the module's table is not theirs


def test_estimate_bytes_counts_what_callbacks_close_over() -> None:
    # Each request registers a callback closing over its 2.5 kB context dict, never removed.
    # The list had been sized at 161 B a callback (the function object alone): 5% of a leak
    # it was all of. Measured against tracemalloc, which sees every byte they hold.
    callbacks: list[object] = []

    def handle(i: int) -> None:
        ctx = {"id": i, "body": "b" * 2400 + str(i)}

        def on_done(evt: object) -> tuple[object, object]:
            return ctx["id"], evt

        callbacks.append(on_done)

    tracemalloc.start()
    try:
        for i in range(1000):
            handle(i)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert estimate_bytes(callbacks) == pytest.approx(held, rel=0.1)


def test_a_followed_container_emptied_below_the_bar_is_still_followed(
    module: types.ModuleType,
) -> None:
    # A batch buffer filled, then flushed and kept at 10 entries: dropped from the census once
    # under `min_len`, its history had stopped at its peak, read as a leak (exit 3).
    module.PENDING = []
    module.LOOKUP = {}  # str -> int: a dict gc does not track, reached through the module
    census = HeapCensus()

    def grow() -> None:
        module.PENDING.extend({"i": i} for i in range(100))
        start = len(module.LOOKUP)
        module.LOOKUP.update({f"k{start + i}": i for i in range(100)})

    found = _grow_and_name(census, grow, rounds=3)
    pending, lookup = (
        "module fakeapp.dedup, global PENDING (list)",
        "module fakeapp.dedup, global LOOKUP (dict)",
    )
    assert found == {pending: 300, lookup: 300}
    del module.PENDING[:-10]
    module.LOOKUP.clear()
    assert _grow_and_name(census, lambda: None, rounds=1) == {pending: 10, lookup: 0}


def test_estimate_bytes_counts_the_attributes_of_what_an_entry_holds() -> None:
    # lru_cache on a method keys each entry by (self, args): the instance's 8 KiB buffer is an
    # attribute of an object inside the key, and had gone uncounted (3%, 5.4 MiB said of a
    # cache that held ~150 MiB).
    class Handler:
        def __init__(self) -> None:
            self.buf = bytes(8192)

        @functools.lru_cache(maxsize=1024)  # noqa: B019 (the leak under test)
        def render(self, n: int) -> str:
            return str(n)

    handlers = [Handler() for _ in range(200)]
    for i, h in enumerate(handlers):
        h.render(i)
    [cache] = [r for r in gc.get_referents(Handler.render) if type(r) is dict and len(r) == 200]
    assert estimate_bytes(cache) > 200 * 8192
    Handler.render.cache_clear()


def test_a_few_stored_exceptions_holding_big_frames_are_followed(
    module: types.ModuleType,
) -> None:
    # FAILURES.append(e), each traceback keeping frames with 1 MB locals: sized bare (~100 B
    # an exception), the list was followed only from 32 entries, its growth till then blamed
    # on native memory.
    module.FAILURES = []

    def fail() -> None:
        buffer = bytes(1_000_000)  # noqa: F841 (kept alive by the traceback)
        raise ValueError("bad job")

    def grow() -> None:
        try:
            fail()
        except ValueError as e:
            module.FAILURES.append(e)

    found = _grow_and_name(HeapCensus(), grow, rounds=4)
    assert found == {"module fakeapp.dedup, global FAILURES (list)": 4}


def test_one_odd_entry_holding_a_big_map_is_counted_once_not_for_every_entry() -> None:
    # logging's loggerDict: a Logger an entry, and among them a PlaceHolder holding a map of
    # every logger. It had been sized at 30 times the loggers' weight, as if each held a map.
    class Logger:
        def __init__(self, name: str) -> None:
            self.name, self.handlers, self.level = name, [], 0

    class PlaceHolder:
        def __init__(self) -> None:
            self.loggerMap: dict[Logger, None] = {}

    registry: dict[str, object] = {}
    holder = PlaceHolder()
    for i in range(5000):
        logger = Logger(f"req.{i}")
        registry[logger.name] = logger
        holder.loggerMap[logger] = None
        if i == 0:
            registry["req"] = holder
    each = sys.getsizeof(Logger("req.1000")) + sys.getsizeof(registry["req.1000"].__dict__)
    truth = sys.getsizeof(registry) + 5000 * each + sys.getsizeof(holder.loggerMap)
    assert estimate_bytes(registry) < 2 * truth


def test_entries_of_one_type_and_unequal_sizes_are_all_extrapolated() -> None:
    # A response cache's bodies differ by 100 times: the heavy ones are typical too.
    cache = {i: b"x" * (100_000 if i % 8 == 3 else 1_000) for i in range(800)}
    truth = sum(map(sys.getsizeof, cache.values()))
    assert estimate_bytes(cache) == pytest.approx(truth + sys.getsizeof(cache), rel=0.3)


def test_what_a_slotted_entry_holds_in_a_tuple_is_sized() -> None:
    # weakref.finalize's registry: an `_Info` with __slots__ an entry, its `args` tuple holding
    # the payload. 16 kB buffers had been sized at ~150 B a finalizer.
    class App:
        pass

    app = App()
    finalizers = [weakref.finalize(app, bytearray.clear, bytearray(16_000)) for _ in range(300)]
    registry = weakref.finalize._registry  # type: ignore[attr-defined]
    try:
        assert estimate_bytes(registry) > 300 * 16_000
    finally:
        for f in finalizers:
            f.detach()


def test_namedtuple_entries_are_sized_as_tuples_are() -> None:
    # Their fields had been given no weight: a list of events sized at 186 KiB held 6 MiB.
    event = collections.namedtuple("event", "eid payload")
    events = [event(i, bytes(2000)) for i in range(1000)]
    pairs = [(i, bytes(2000)) for i in range(1000)]
    assert estimate_bytes(events) == pytest.approx(estimate_bytes(pairs), rel=0.05)
    assert estimate_bytes(events) > 1000 * 2000
