"""Attribution: probe series and reports in, ranked culprits out (pure, no processes)."""

from __future__ import annotations

import numpy as np
import pytest

from memsleuth.analysis.attribution import ProbeData, attribute
from memsleuth.analysis.reclaim import trim_evidence
from memsleuth.analysis.steadiness import floor_growth, is_steady, measure

PID = 4242
T0 = 1_000_000.0


def _series(values: list[float] | np.ndarray, dt: float = 1.0) -> tuple[tuple[float, float], ...]:
    return tuple((T0 + i * dt, float(v)) for i, v in enumerate(values))


def _data(
    points: dict[str, object],
    events: list[tuple[float, str, dict]] | None = None,
    rss: list[float] | None = None,
) -> ProbeData:
    pts = {f"{k} [pid {PID}]": v for k, v in points.items()}
    if rss is not None:
        pts[f"native:rss [pid {PID}]"] = _series(rss)
    return ProbeData(points=pts, events=events or [], t0=T0)  # type: ignore[arg-type]


def _one_container(
    label: str, entries: np.ndarray, per_entry: float, instances: int, rss: list[float]
) -> ProbeData:
    """A named container's entries and bytes, reached in `instances` places, beside RSS."""
    return _data(
        {
            f"container:{label}": _series(entries),
            f"container_bytes:{label}": _series(entries * per_entry),
        },
        events=[
            (T0 + 60, "probe.containers", {"pid": PID, "containers": {label: [instances, 1, 2]}})
        ],
        rss=rss,
    )


def test_a_steady_linear_series_is_growth_and_a_plateau_is_not() -> None:
    linear = measure(_series(np.arange(60) * 100.0 + 500))
    assert is_steady(linear, "entries")
    assert linear is not None and abs(linear.slope_per_s - 100.0) < 1e-6
    warm = 8000 * (1 - np.exp(-np.arange(60) / 6.0))  # fills, then levels off
    assert not is_steady(measure(_series(warm)), "entries")


def test_a_sawtooth_is_not_steady_growth() -> None:
    saw = (np.arange(90) % 15) * 1000.0 + 2000
    assert not is_steady(measure(_series(saw)), "objects")


def test_a_fill_then_cut_back_under_a_ceiling_is_not_steady_but_a_sawing_leak_is() -> None:
    # A set its TTL cleaner cut back every 5 s after a 15 s fill, read once a second (session
    # 18's helper): it had read "steady: Kendall τ 0.64", a leak's culprit at 22%.
    fill = [1960, 3960, 5960, 7960, 9940, 11920, 13800, 15800, 17880, 19840, 21840, 23800]
    teeth = [25600, 27560, 19760, 21760, 23760, 25760, 27720, 20360, 22320, 24320, 26320]
    teeth += [28320, 20760, 22760, 24800, 26560]
    bounded = np.array(fill + teeth, dtype=float)
    assert not is_steady(measure(_series(bounded)), "entries")
    leaking = bounded + np.maximum(0, np.arange(bounded.size) - 12) * 900.0  # its floor rises
    assert is_steady(measure(_series(leaking)), "entries")


def test_noise_around_a_flat_line_is_not_growth() -> None:
    rng = np.random.default_rng(3)
    flat = 5000 + rng.normal(0, 200, 120)
    assert not is_steady(measure(_series(flat)), "entries")


def test_container_culprit_has_name_growth_text_bytes_and_points() -> None:
    label = "module app.dedup, global PROCESSED_SIGNATURES (dict)"
    entries = np.linspace(10_204, 1_203_991, 61)
    (c,) = attribute(_one_container(label, entries, 260, 1, list(30e6 + entries * 270)))
    assert c.name == label
    assert c.kind == "container" and c.unit == "entries"
    assert c.growth.startswith("10,204 → 1,203,991 entries, +1.19M/min")
    assert "retained" in c.growth
    assert abs(c.growth_per_hour - (1_203_991 - 10_204) * 60) < 1e3
    assert 0.9 < c.share <= 1.0  # its bytes explain the RSS growth
    assert c.points[0] == (0.0, 10_204.0) and len(c.points) == 61


def test_a_container_never_holds_more_than_the_process() -> None:
    # 658 log handlers' buffers share every record: sampled buffer by buffer, they had come
    # to "~99.2 MiB retained" in a 22 MB process.
    label = "MemoryHandler.buffer (list)"
    entries = np.linspace(170, 270_767, 61)
    (c,) = attribute(_one_container(label, entries, 384, 658, list(np.linspace(15e6, 22e6, 61))))
    assert c.bytes_estimate == pytest.approx(22e6)
    assert "at most 21.0 MiB retained" in c.growth
    assert any("entries shared between containers count in each" in e for e in c.evidence)


def test_a_full_bounded_container_comes_after_what_still_grows() -> None:
    # A deque of at most 3,000 pins became full just now; a dict keeps growing. The deque
    # had been named first ("100% full") for a leak that was the dict's.
    pins, seen = "module app, global PINS (deque)", "module app, global SEEN (dict)"
    full = np.minimum(np.arange(120) * 27.0, 3000)
    growing = np.arange(120) * 10.0 + 100
    data = _data(
        {
            f"container:{pins}": _series(full),
            f"container_bytes:{pins}": _series(full * 2000),
            f"container_bound:{pins}": _series(np.full(120, 3000.0)),
            f"container:{seen}": _series(growing),
            f"container_bytes:{seen}": _series(growing * 1000),
        },
        rss=list(30e6 + full * 2000 + growing * 1000),
    )
    first, second = attribute(data)[:2]
    assert first.name == seen
    assert second.name == pins and second.share > first.share  # more bytes, but stopped
    assert "100% full: it has stopped growing" in " ".join(second.evidence)


def test_a_few_heavy_entries_are_a_culprit_by_their_bytes_not_their_count() -> None:
    # 20 frames of 4 MB: 19 new entries, under the 32 a container needs, but 76 MB of growth
    # that malloc saw too; without it the growth was blamed on native memory.
    label = "module __main__, global FRAMES (list)"
    frames = np.arange(1, 21, dtype=float)
    data = _data(
        {
            f"container:{label}": _series(frames),
            f"container_bytes:{label}": _series(frames * 4e6),
            "native:malloc_inuse": _series(2e6 + frames * 4e6),
        },
        events=[(T0 + 19, "probe.containers", {"pid": PID, "containers": {label: [20, 1, 8e7]}})],
        rss=list(20e6 + frames * 4e6),
    )
    (c,) = attribute(data)
    assert c.name == label and c.kind == "container"
    assert c.share > 0.9
    few = _data(
        {f"container:{label}": _series(frames), f"container_bytes:{label}": _series(frames * 100)}
    )
    assert attribute(few) == ()  # 19 light entries are no culprit


def test_growth_spread_over_instances_is_named_by_owner_type_and_attribute() -> None:
    label = "Session.unacked (dict)"
    data = _data(
        {f"container:{label}": _series(np.arange(30) * 640.0 + 2048)},
        events=[(T0 + 29, "probe.containers", {"pid": PID, "containers": {label: [0, 64, 0]}})],
    )
    (c,) = attribute(data)
    assert c.name == "Session.unacked (dict) over 64 instances"
    assert "spread over 64 containers" in c.evidence[-1]


@pytest.mark.parametrize(
    ("top", "says"),
    [
        (0.97, "one of the 64 holds 97% of their growth: one instance grows"),
        (0.02, "spread over 64 containers reached the same way, each alike"),
        (0.3, "spread over 64 containers reached the same way"),
    ],
)
def test_instances_say_whether_one_of_them_grows_or_each(top: float, says: str) -> None:
    # One slow client's queue among 64 sessions, or every session leaking: different bugs,
    # and "over 64 instances" alone had not told them apart.
    label = "Session.outbound (Queue)"
    row = [0, 64, 0, top]
    data = _data(
        {f"container:{label}": _series(np.arange(30) * 640.0 + 2048)},
        events=[(T0 + 29, "probe.containers", {"pid": PID, "containers": {label: row}})],
    )
    (c,) = attribute(data)
    assert says in c.evidence[-1]
    if top == 0.3:  # neither one nor each: said no more than before
        assert c.evidence[-1] == "the growth is spread over 64 containers reached the same way"


def test_culprits_are_ranked_by_share_of_the_growth() -> None:
    big, small = "module a, global BIG (list)", "module a, global SMALL (list)"
    n = np.arange(40, dtype=float)
    data = _data(
        {
            f"container:{small}": _series(100 + n * 50),
            f"container_bytes:{small}": _series((100 + n * 50) * 100),
            f"container:{big}": _series(100 + n * 50),
            f"container_bytes:{big}": _series((100 + n * 50) * 10_000),
        },
        rss=list(20e6 + n * 50 * 10_100),
    )
    names = [c.name for c in attribute(data)]
    assert names == [big, small]


def test_threads_and_tasks_grouped_by_site_become_culprits() -> None:
    data = _data(
        {
            "threads:serve() started at app.py:12": _series(np.arange(30) + 1.0),
            "threads:main thread": _series([1.0] * 30),
            "tasks:wait_for_reply created at app.py:40": _series(np.arange(30) * 20.0),
        }
    )
    by_kind = {c.kind: c for c in attribute(data)}
    assert by_kind["threads"].name == "threads running serve() started at app.py:12"
    assert by_kind["tasks"].name == "pending asyncio tasks of wait_for_reply created at app.py:40"
    assert by_kind["threads"].growth.startswith("1 → 30 threads")
    assert len(by_kind) == 2  # the main thread does not grow


def test_native_leak_is_told_apart_from_python_objects() -> None:
    n = np.arange(40, dtype=float)
    data = _data(
        {
            "native:malloc_inuse": _series(4e6 + n * 1e6),
            "native:malloc_free": _series([5e5] * 40),
            "native:py_blocks": _series([60_000.0] * 40),
        },
        rss=list(20e6 + n * 1e6),
    )
    (c,) = attribute(data)
    assert c.kind == "native" and "in use by malloc" in c.name
    # Says where to look next: a C extension, or big buffers the census does not follow.
    assert any("C extension" in e and "--trace-allocations" in e for e in c.evidence)
    assert c.share > 0.9


def test_rss_growth_outside_malloc_and_python_is_named() -> None:
    # A ctypes mmap leaking 900 MiB/h: RSS grew, malloc's books and Python's objects did not,
    # and the run had no culprit at all.
    n = np.arange(40, dtype=float)
    flat = {
        "native:malloc_inuse": _series([2.3e6] * 40),
        "native:malloc_free": _series([5e5] * 40),
        "native:py_blocks": _series([60_000.0] * 40),
    }
    (c,) = attribute(_data(flat, rss=list(17e6 + n * 1e6)))
    assert c.kind == "native" and c.name == "memory outside malloc and Python objects"
    assert c.growth_per_hour == pytest.approx(3.6e9)
    assert "mmap" in c.evidence[1]
    # Python's blocks growing explain it: no such culprit.
    grown = {**flat, "native:py_blocks": _series(60_000 + n * 4_000)}
    assert [
        c for c in attribute(_data(grown, rss=list(17e6 + n * 1e6))) if c.kind == "native"
    ] == []


def test_native_growth_with_python_blocks_growing_is_not_called_native() -> None:
    n = np.arange(40, dtype=float)
    data = _data(
        {
            "native:malloc_inuse": _series(4e6 + n * 1e6),
            "native:py_blocks": _series(60_000 + n * 5_000),
        },
        rss=list(20e6 + n * 1e6),
    )
    assert [c for c in attribute(data) if c.kind == "native"] == []


def test_growth_tracemalloc_traced_to_python_lines_is_not_called_native() -> None:
    # A helper's stored exceptions and BytesIO: `--trace-allocations` named the line, 62% of
    # the growth, while "native memory outside Python objects" stayed first at 100%.
    n = np.arange(40, dtype=float)
    points = {
        "native:malloc_inuse": _series(4e6 + n * 1e6),
        "native:py_blocks": _series([60_000.0] * 40),
    }
    site = {"site": "/srv/app/errors.py:7", "traceback": ["/srv/app/errors.py:7"],
            "size_diff": 24e6, "size": 24e6, "count_diff": 120}  # fmt: skip
    ev = [(T0 + 35, "probe.allocations", {"pid": PID, "window_s": 30.0, "sites": [site]})]
    found = attribute(_data(points, events=ev, rss=list(20e6 + n * 1e6)))
    assert [c.kind for c in found] == ["allocation-site"]
    # A C leak of twice Python's pace beside it is still named, for what Python leaves: a
    # helper's 2 MiB/s of libc.malloc beside 1 MiB/s of bytes had gone unnamed.
    third = [(T0 + 35, "probe.allocations",
              {"pid": PID, "window_s": 30.0, "sites": [{**site, "size_diff": 10e6}]})]  # fmt: skip
    rss = list(20e6 + n * 1e6)
    [native] = [c for c in attribute(_data(points, events=third, rss=rss)) if c.kind == "native"]
    assert "Python explains at most 33% of it" in native.evidence[1]
    # A site far slower than malloc's growth leaves it native.
    slow = [(T0 + 35, "probe.allocations",
             {"pid": PID, "window_s": 30.0, "sites": [{**site, "size_diff": 2e6}]})]  # fmt: skip
    assert "native" in [
        c.kind for c in attribute(_data(points, events=slow, rss=list(20e6 + n * 1e6)))
    ]


def test_fragmentation_free_memory_kept_by_malloc_with_trim_evidence() -> None:
    n = np.arange(40, dtype=float)
    trim = {"pid": PID, "released": 500e6, "rss_before": 649e6, "rss_after": 149e6}
    data = _data(
        {
            "native:malloc_inuse": _series([34e6] * 40),
            "native:malloc_free": _series(1e6 + n * 10e6),
        },
        events=[(T0 + 40, "probe.malloc_trim", trim)],
        rss=list(40e6 + n * 10e6),
    )
    (c,) = attribute(data)
    assert "fragmentation" in c.name


@pytest.mark.parametrize(
    ("released", "said"),
    [
        (500e6, "gave back 477 MiB of 619 MiB RSS (77%): much of RSS was memory freed but kept"),
        (348160, "gave back 340 KiB of 619 MiB RSS (0%): the allocator was not holding freed"),
    ],
)
def test_the_malloc_trim_test_is_reported_whatever_the_culprits(released: float, said: str) -> None:
    # `run --malloc-trim-test` asks a question; its answer is evidence whether or not the
    # allocator's free memory grew into a fragmentation culprit (it had been shown only then).
    trim = {"pid": PID, "released": released, "rss_before": 649e6, "rss_after": 149e6}
    (line,) = trim_evidence([(T0 + 40, "probe.malloc_trim", trim)])
    assert line.startswith(f"malloc_trim(0) at exit {said}"), line
    assert trim_evidence([(T0, "probe.status", {"pid": PID})]) == ()


def test_allocation_sites_from_a_tracemalloc_window() -> None:
    site = {
        "site": "/srv/app/dedup.py:31",
        "traceback": ["/srv/app/dedup.py:31", "/srv/app/main.py:10"],
        "size_diff": 12_000_000,
        "size": 13_000_000,
        "count_diff": 45_000,
    }
    small = {**site, "site": "/srv/app/x.py:1", "size_diff": 1000}
    ev = [(T0 + 60, "probe.allocations", {"pid": PID, "window_s": 50.0, "sites": [site, small]})]
    (c,) = attribute(_data({}, events=ev))
    assert c.kind == "allocation-site" and c.name == "allocation site app/dedup.py:31"
    assert "app/main.py:10" in c.evidence
    assert abs(c.growth_per_hour - 12e6 / 50 * 3600) < 1


def test_several_processes_are_told_apart_by_pid() -> None:
    grow = _series(np.arange(20) * 100.0 + 100)
    data = ProbeData(
        points={
            "container:module w, global Q (list) [pid 1]": grow,
            "container:module w, global Q (list) [pid 2]": grow,
        },
        events=[],
        t0=T0,
    )
    names = sorted(c.name for c in attribute(data))
    assert names == ["module w, global Q (list) (pid 1)", "module w, global Q (list) (pid 2)"]


def test_floor_growth_ignores_the_peaks_of_a_sawtooth() -> None:
    t = np.arange(200.0)
    saw = 50e6 + (t % 20) * 2e6  # peaks swing by 38 MB, the floor is flat
    assert abs(floor_growth(t, saw)) < 1e6
    assert abs(floor_growth(t, saw + t * 1e5) - 199 * 1e5) < 2e6


def test_each_leaked_threads_own_objects_are_its_evidence_not_rows_of_their_own() -> None:
    # A thread leak's table had nine rows of the threads' bookkeeping under the one culprit.
    n = 50 * np.arange(30, dtype=float)  # 50 threads a second
    data = _data(
        {
            "threads:compact() started at store.py:27": _series(n + 1.0),
            "type:threading.Event": _series(10 + 2 * n),
            "type:_thread.lock": _series(40 + 4.1 * n),
            "container:module threading, global _active (dict)": _series(1 + n),
            "container:module app, global SEEN (dict)": _series(100 + 6.5 * n),
            "type:bytes": _series(500 + 12 * n),
        }
    )
    culprits = attribute(data)
    names = {c.name for c in culprits}
    assert names == {
        "threads running compact() started at store.py:27",
        "module app, global SEEN (dict)",  # 6.5 a thread: not the threads' own
        "objects of type bytes",  # 12 a thread: more than any thread's own
    }, names
    (threads,) = (c for c in culprits if c.kind == "threads")
    assert threads.evidence[-1] == (
        "with each thread: 1 entry in module threading, global _active (dict), "
        "2 threading.Event, 4 _thread.lock"
    )


def test_the_objects_of_a_growing_containers_entries_are_its_evidence() -> None:
    # A dict of per-peer stats (a list and a dict an entry) had been listed at 72%, with its
    # lists at 23% and its dicts at 21% beside it: shares adding to 116%.
    n = 700 * np.arange(30, dtype=float)
    data = _data(
        {
            "container:module __main__, global PEER_STATS (OrderedDict)": _series(700 + n),
            "type:list": _series(1_200 + n),
            "type:dict": _series(2_500 + 1.01 * n),
            "type:str": _series(9_000 + 2.6 * n),  # not a whole number an entry: its own row
        }
    )
    culprits = attribute(data)
    assert [c.name for c in culprits] == [
        "module __main__, global PEER_STATS (OrderedDict)",
        "objects of type str",
    ]
    assert culprits[0].evidence[-1] == "with each entry: 1 list, 1 dict"


def test_recycled_workers_share_what_they_added_and_are_named_exited() -> None:
    # Two workers at a time, each leaking 1 MiB/s and replaced every 10 s: each added more
    # than the tree kept, and every one had been named at 100%, eight of them.
    from memsleuth.analysis.processes import process_culprits
    from memsleuth.model import PROCESS_PREFIX

    points = {}
    for k in range(8):
        start = 5.0 * k
        pts = tuple((start + s, 6e6 + 1.048576e6 * s) for s in np.arange(0.0, 10.0, 0.5))
        points[f"{PROCESS_PREFIX}{100 + k} python"] = pts
    culprits = process_culprits(points, 0.0, rss_growth=20e6)
    assert len(culprits) == 8
    assert sum(c.share for c in culprits) <= 1.0 + 1e-3
    exited = [c for c in culprits if c.name.endswith(", exited)")]
    assert len(exited) == 7  # the last was still running at the tree's last reading


def _workers(
    rate: float, starts: list[float], life: float = 10.0
) -> dict[str, tuple[tuple[float, float], ...]]:
    from memsleuth.model import PROCESS_PREFIX

    points = {f"{PROCESS_PREFIX}1 python": tuple((s, 30e6) for s in np.arange(0.0, 60.0, 0.5))}
    for k, start in enumerate(starts):
        pts = tuple((start + s, 6e6 + rate * s) for s in np.arange(0.0, life, 0.5))
        points[f"{PROCESS_PREFIX}{100 + k} python"] = pts
    return points


def test_workers_that_grow_and_are_replaced_are_recycling() -> None:
    from memsleuth.analysis.processes import recycled_workers

    # Two at a time, each leaking 1 MiB/s and replaced every 10 s; the parent flat throughout.
    found = recycled_workers(_workers(1.048576e6, [5.0 * k for k in range(1, 10)]))
    assert found is not None
    assert (found.workers, found.leaking) == (9, 9)
    assert found.rate_per_s == pytest.approx(1.048576e6)
    assert found.life_s == pytest.approx(9.5)
    assert found.words().startswith(
        "9 of the 9 processes that started and exited during the recording grew steadily "
        "while they ran (median +3.52 GiB/h, 5.72 MiB → 15.2 MiB over 9.5 s)"
    )


@pytest.mark.parametrize(
    ("rate", "starts"),
    [
        (0.0, [5.0 * k for k in range(1, 10)]),  # replaced, but flat: restarts, no growth
        (1.048576e6, [5.0, 15.0]),  # two are too few to call a pattern
    ],
)
def test_replaced_workers_that_do_not_grow_or_are_few_are_not_recycling(
    rate: float, starts: list[float]
) -> None:
    from memsleuth.analysis.processes import recycled_workers

    assert recycled_workers(_workers(rate, starts)) is None


def test_workers_that_run_throughout_are_no_recycling() -> None:
    from memsleuth.analysis.processes import recycled_workers

    # Leaking workers that never exit are a leak of the tree, not recycling.
    assert recycled_workers(_workers(1.048576e6, [0.0, 0.0, 0.0], life=60.0)) is None


def test_a_worker_read_too_few_times_to_trend_is_not_named() -> None:
    # A pool's workers each fill a 20 MiB cache over their first 4 s, then stay flat; the
    # newest, read 4 times while filling, had been named "+14.1 GiB/h, 100%" beside a
    # `stable` verdict. Read as often as a verdict needs to trend, a steady one still is.
    from memsleuth.analysis.processes import process_culprits
    from memsleuth.model import PROCESS_PREFIX

    def worker(pid: int, start: float, reads: int) -> tuple[str, tuple[tuple[float, float], ...]]:
        pts = tuple((start + s, 24e6 + 4.2e6 * s) for s in np.arange(0.0, reads))
        return f"{PROCESS_PREFIX}{pid} pool", pts

    points = dict([worker(101, 54.0, 4), (f"{PROCESS_PREFIX}1 pool", ((0.0, 22e6), (57.0, 22e6)))])
    assert process_culprits(points, 0.0, rss_growth=0.0) == ()
    points = dict([worker(101, 51.0, 7)])
    assert [c.name for c in process_culprits(points, 0.0, rss_growth=0.0)] == ["process 101 (pool)"]


def test_the_collector_seen_off_is_said_with_what_it_left_unexamined() -> None:
    # Reference cycles pile up while gc is disabled: the census named a "shallow" 4% type
    # and nothing said the collector was off.
    from memsleuth.analysis.reclaim import gc_evidence

    off = [(101.0, "probe.gc", {"pid": 7, "enabled": False, "pending": 1200})]
    end = (119.0, "probe.gc", {"pid": 7, "enabled": False, "pending": 84_600})
    assert gc_evidence([*off, end], 100.0) == (
        "the cyclic garbage collector was off (gc.disable()), seen from 1.0 s to the end, "
        "with up to 84.6k objects it had not examined: reference cycles among them (objects "
        "that refer to each other) are freed only by gc.collect() while it is off",
    )
    back = (110.0, "probe.gc", {"pid": 7, "enabled": True, "pending": 0})
    assert (
        " seen from 1.0 s until 10 s, with up to 1.20k objects"
        in gc_evidence([*off, back], 100.0)[0]
    )
    assert gc_evidence([back], 100.0) == ()
