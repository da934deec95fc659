"""The probe's budget: a census runs only when what the probe has cost the host so far, plus the
census's predicted cost on the heap as it is now, fits; and nothing of the host's is kept."""

from __future__ import annotations

import collections
import gc
import threading
import time
import weakref
from pathlib import Path

from memsleuth.probe import host
from memsleuth.probe.agent import Probe, ProbeOptions
from memsleuth.store import Store


def _probe(tmp_path: Path, budget: float) -> Probe:
    db = tmp_path / "m.db"
    with Store(db) as store:
        run = store.create_run(name="t", kind="run", command=[], pid=None, interval_s=1.0)
    return Probe(str(db), run.id, ProbeOptions(budget=budget))


def test_a_heap_grown_since_scheduling_defers_the_census(tmp_path: Path) -> None:
    probe = _probe(tmp_path, budget=0.02)
    now = time.monotonic()
    probe._mono_start = probe._last_census = now - 2.0  # two seconds into the run
    probe._predicted(exact=True)  # the heap at scheduling time
    # A server loading its data after start: 1M more objects the census would walk.
    heap = [[i] for i in range(1_000_000)]
    assert probe._predicted(exact=True) >= 1_000_000 * probe._per_object_s
    # ~0.3 s of census against 2% of 2 s: not now, but once the run is long enough.
    assert not probe._census_fits(now)
    assert probe._next_census(now) - probe._mono_start > 10.0
    probe._mono_start = probe._last_census = now - 60.0
    assert probe._census_fits(now)
    del heap


def test_everything_the_probe_costs_the_host_is_charged(tmp_path: Path) -> None:
    probe = _probe(tmp_path, budget=0.5)
    now = time.monotonic()
    probe._mono_start = probe._last_census = now - 1.0
    assert probe._census_fits(now)
    before = host.HOOK_COST[0]
    try:
        host.HOOK_COST[0] = 0.6  # the hooks took 0.6 s on the host's threads: over 50% of 1 s
        assert not probe._census_fits(now)
        host.HOOK_COST[0] = 0.0
        probe.cpu_s = 0.6  # the probe thread's own CPU (light readings, flushes, naming)
        assert not probe._census_fits(now)
    finally:
        host.HOOK_COST[0] = before


def test_thread_start_hook_time_is_counted(tmp_path: Path) -> None:
    host.install_hooks()
    try:
        before = host.HOOK_COST[0]
        threads = [host.threading.Thread(target=lambda: None) for _ in range(20)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert host.HOOK_COST[0] > before
    finally:
        host.uninstall_hooks()


def test_a_census_keeps_nothing_the_host_dropped(tmp_path: Path) -> None:
    probe = _probe(tmp_path, budget=0.5)

    def make() -> tuple[weakref.ref[type], weakref.ref[object]]:
        klass = type("Dropped", (), {"__sizeof__": lambda self: 1})
        instances = [klass() for _ in range(100)]
        growing = collections.OrderedDict((i, i) for i in range(100))
        holder = klass()
        holder.table = growing  # type: ignore[attr-defined]
        glob = globals()
        glob["_HOLDER"] = holder
        for _ in range(4):  # growing: picked for naming, named, then dropped by the host
            growing.update({-i: i for i in range(len(growing), len(growing) + 100)})
            probe._census()
        del glob["_HOLDER"], instances, holder
        return weakref.ref(klass), weakref.ref(growing)  # type: ignore[arg-type]

    klass_ref, growing_ref = make()
    gc.collect()
    assert klass_ref() is None
    assert growing_ref() is None


class _Cyclic:
    def __init__(self) -> None:
        self.me = self  # freed only by the cyclic collector


def test_a_full_collection_the_host_runs_during_a_census_still_frees(tmp_path: Path) -> None:
    """A census holds the whole heap: a gc.collect() the host ran meanwhile freed none of its
    garbage, and with gc disabled it stayed until the host's next collect. On a loaded machine
    the GC sawtooth example kept a batch one collect longer and read as a native-memory leak."""
    probe = _probe(tmp_path, budget=0.5)
    probe._mono_start = probe._last_census = time.monotonic() - 60.0  # a census fits
    type_bytes = probe.census._type_bytes

    def type_bytes_while_the_host_collects(objs: list[object]) -> dict[type, float]:
        host_thread = threading.Thread(target=gc.collect)
        host_thread.start()
        host_thread.join()
        return type_bytes(objs)

    probe.census._type_bytes = type_bytes_while_the_host_collects  # type: ignore[method-assign]
    enabled = gc.isenabled()
    gc.disable()  # like the example: only the host's own gc.collect() frees cycles
    try:
        garbage = weakref.ref(_Cyclic())
        probe._try_census()
        assert probe.census.censuses == 1
        assert not [e for e in probe.writer._events if e[2] == "probe.error"]
        assert garbage() is None
        assert probe.host_gc._seen not in gc.callbacks  # the window is closed
    finally:
        if enabled:
            gc.enable()


def test_no_young_collection_promotes_the_host_s_garbage_while_a_census_holds_it(
    tmp_path: Path,
) -> None:
    """The census's own allocations had triggered young collections inside its window, each
    promoting every young object of the host's (garbage too) while the census held them: a host
    with reference-cycle garbage stood at 76 MiB with censuses, 33 MiB without."""
    probe = _probe(tmp_path, budget=0.5)
    probe._mono_start = probe._last_census = time.monotonic() - 60.0  # a census fits
    thresholds = gc.get_threshold()
    type_bytes = probe.census._type_bytes
    young: list[int] = []

    def type_bytes_with_garbage_about(objs: list[object]) -> dict[type, float]:
        before = gc.get_stats()[0]["collections"]
        for _ in range(5000):  # enough allocations for several young collections
            _Cyclic()
        young.append(gc.get_stats()[0]["collections"] - before)
        return type_bytes(objs)

    probe.census._type_bytes = type_bytes_with_garbage_about  # type: ignore[method-assign]
    probe._try_census()
    assert probe.census.censuses == 1 and young == [0]
    assert gc.get_threshold() == thresholds and gc.isenabled()  # put back


def test_what_the_host_sets_of_its_collector_during_a_census_is_kept() -> None:
    # gc.disable() then gc.enable() by the probe had turned a host's collector back on.
    thresholds = gc.get_threshold()
    try:
        with host.HostCollections().quiet():
            gc.disable()
        assert not gc.isenabled() and gc.get_threshold() == thresholds
        gc.enable()
        with host.HostCollections().quiet():
            gc.set_threshold(50, 5, 5)
        assert gc.get_threshold() == (50, 5, 5)
        gc.set_threshold(*thresholds)
        gc.disable()
        with host.HostCollections().quiet():  # off already: nothing is touched
            assert gc.get_threshold() == thresholds
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.set_threshold(*thresholds)


def test_task_sites_are_noted_for_fewer_tasks_while_the_hook_costs_too_much(
    tmp_path: Path,
) -> None:
    # An asyncio server creating 1,300 tasks a second had spent 1.6% of its run noting their
    # creation sites: the 2% budget left its census 3 looks in 40 s, and no culprit.
    probe = _probe(tmp_path, budget=0.02)
    before = host.HOOK_COST[0], host.SITE_STRIDE[0]
    try:
        now = time.monotonic()
        probe._hooks_at = (host.HOOK_COST[0], now - 1.0)
        host.HOOK_COST[0] += 0.01  # 1% of the last second: half the budget
        probe._thin_hooks(now)
        assert host.SITE_STRIDE[0] == 2 * before[1]
        host.HOOK_COST[0] += 0.0001  # 0.01% of the next second: noted for more again
        probe._thin_hooks(now + 1.0)
        assert host.SITE_STRIDE[0] == before[1]
    finally:
        host.HOOK_COST[0], host.SITE_STRIDE[0] = before


def test_tasks_whose_site_was_not_noted_are_named_by_their_coroutines_site() -> None:
    import asyncio

    async def handle() -> None:
        await asyncio.sleep(10)

    async def serve() -> dict[str, int]:
        tasks = [asyncio.create_task(handle()) for _ in range(40)]
        await asyncio.sleep(0)
        groups = host.task_groups()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return groups

    host.install_hooks()
    stride = host.SITE_STRIDE[0]
    host.SITE_STRIDE[0] = 8  # one task in eight noted
    try:
        groups = asyncio.run(serve())
    finally:
        host.SITE_STRIDE[0] = stride
        host.uninstall_hooks()
    [(label, n)] = [(k, v) for k, v in groups.items() if "handle" in k]
    assert n == 40
    assert label.endswith(f"created at test_probe_budget.py:{_line_of('tasks = [asyncio')}")


def _line_of(text: str) -> int:
    source = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if text in line)


def test_the_allocation_window_the_user_asked_for_is_not_charged_to_the_census(
    tmp_path: Path,
) -> None:
    # tracemalloc's two snapshots (--trace-allocations) had taken 3.7 s of CPU in a 40 s run:
    # charged, they left it one census, and the lru_cache holding its growth unnamed.
    probe = _probe(tmp_path, budget=0.02)
    now = time.monotonic()
    probe._mono_start = probe._last_census = now - 40.0
    probe.cpu_s = probe.tracing_cpu_s = 3.7
    assert probe._census_fits(now)
    assert probe._status("x")["overhead"] > 0.09  # still reported: the host paid it
