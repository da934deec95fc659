"""Heap profiles read over a recording, as culprits (analysis/profiles.py): constructed points."""

from __future__ import annotations

import numpy as np

from memsleuth.analysis.profiles import (
    GOROUTINE_EVENT,
    GOROUTINE_SITE,
    HEAP_EVENT,
    INUSE,
    SITE,
    profile_culprits,
    profile_evidence,
)
from memsleuth.model import Series

MIB = 1024 * 1024
T0 = 1_800_000_000.0


def _points(values: list[float], every: float = 5.0) -> tuple[tuple[float, float], ...]:
    return tuple((T0 + i * every, v) for i, v in enumerate(values))


def _rss(values: list[float], every: float = 1.0) -> Series:
    return Series(np.arange(len(values)) * every, {"rss_bytes": np.array(values, dtype=float)})


def _events(n: int, stacks: dict[str, list[str]]) -> list[tuple[float, str, dict[str, object]]]:
    first = {"inuse_bytes": 1.0, "stacks": stacks}
    return [(T0 + i * 5.0, HEAP_EVENT, first if i == 0 else {"inuse_bytes": 1.0}) for i in range(n)]


def test_the_site_that_grows_is_named_with_its_share_of_the_heap_and_its_stack() -> None:
    n = 12
    leak = [4 * MIB + i * 3 * MIB for i in range(n)]  # +3 MiB a profile, 5 s apart
    cache = [20 * MIB] * n  # full from the start: bounded
    noise = [float(1 * MIB + (i % 3) * 64 * 1024) for i in range(n)]  # small and flat
    points = {
        f"{INUSE} [pid 7]": _points(
            [a + b + c for a, b, c in zip(leak, cache, noise, strict=True)]
        ),
        f"{SITE}main.(*SlabArena).Alloc (arena/main.go:29) [pid 7]": _points(leak),
        f"{SITE}main.(*cache).put (arena/main.go:50) [pid 7]": _points(cache),
        f"{SITE}main.other (arena/main.go:90) [pid 7]": _points(noise),
    }
    stack = ["main.(*SlabArena).Alloc (arena/main.go:29)", "main.main (arena/main.go:77)"]
    events = _events(n, {"main.(*SlabArena).Alloc (arena/main.go:29)": stack})
    rss = _rss([60 * MIB + i * 1.2 * MIB for i in range(60)])
    (culprit,) = profile_culprits(points, events, T0, rss)
    assert culprit.name == "allocations at main.(*SlabArena).Alloc (arena/main.go:29)"
    assert culprit.kind == "allocation-site" and culprit.unit == "bytes"
    assert culprit.share == 1.0  # all the heap in use added
    assert culprit.growth_per_hour == 3 * MIB / 5.0 * 3600
    # 37 MiB of the leak, 20 MiB of the full cache, 1.1 MiB of the rest.
    assert "64% of the heap in use at the last profile (37.0 MiB of 58.1 MiB; 12 profiles)" in (
        culprit.evidence
    )
    assert "allocated at main.(*SlabArena).Alloc (arena/main.go:29) ← main.main" in " ".join(
        culprit.evidence
    )
    assert culprit.points[0] == (0.0, 4 * MIB)  # seconds from the run's start


def test_two_sites_share_the_heap_growth_by_what_each_added() -> None:
    n = 12
    a = [i * 3 * MIB for i in range(n)]
    b = [i * 1 * MIB for i in range(n)]
    points = {
        f"{INUSE} [pid 7]": _points([x + y for x, y in zip(a, b, strict=True)]),
        f"{SITE}a.f [pid 7]": _points(a),
        f"{SITE}b.g [pid 7]": _points(b),
    }
    culprits = profile_culprits(points, _events(n, {}), T0, _rss([0.0] * 60))
    assert [(c.name, c.share) for c in culprits] == [
        ("allocations at a.f", 0.75),
        ("allocations at b.g", 0.25),
    ]


def test_a_site_that_filled_and_stopped_is_no_culprit() -> None:
    filled = [min(i, 5) * 4 * MIB for i in range(12)]
    points = {f"{INUSE} [pid 7]": _points(filled), f"{SITE}c.put [pid 7]": _points(filled)}
    assert profile_culprits(points, _events(12, {}), T0, _rss([0.0] * 60)) == []


def test_a_heap_that_holds_while_rss_grows_names_the_memory_outside_it() -> None:
    # Seed 004: memory the runtime does not give back. The profiled heap holds at 30 MiB.
    heap = [30 * MIB + (i % 2) * 100 * 1024 for i in range(12)]
    points = {f"{INUSE} [pid 7]": _points(heap), f"{SITE}main.load [pid 7]": _points(heap)}
    rss = _rss([50 * MIB + i * 0.5 * MIB for i in range(60)])  # +30 MiB over the minute
    (culprit,) = profile_culprits(points, _events(12, {}), T0, rss)
    assert culprit.name == "memory outside the heap in use" and culprit.kind == "native"
    assert culprit.evidence[1].startswith(
        "the heap in use did not grow over 12 profiles while RSS grew 27.5 MiB"
    )
    assert "not returned to the system" in culprit.evidence[1]


def test_without_profiles_read_there_is_nothing_to_say() -> None:
    failed = [
        (T0, HEAP_EVENT, {"error": "nothing answers at http://127.0.0.1:1/ (connection refused)"})
    ]
    assert profile_culprits({}, failed, T0, _rss([0.0] * 10)) == []


def test_goroutines_that_pile_up_where_they_wait_are_named() -> None:
    # Seed 004's goroutine leak: 2 a tick wait forever for a reply.
    n = 12
    stuck = [float(50 + 60 * i) for i in range(n)]
    points = {
        f"{INUSE} [pid 7]": _points([20 * MIB] * n),
        f"{GOROUTINE_SITE}main.stuck (arena/main.go:75) [pid 7]": _points(stuck),
        f"{GOROUTINE_SITE}net/http.(*conn).serve [pid 7]": _points([3.0] * n),
    }
    stack = ["main.stuck (arena/main.go:75)"]
    events = [(T0, GOROUTINE_EVENT, {"stacks": {"main.stuck (arena/main.go:75)": stack}})]
    rss = _rss([60 * MIB + i * 0.1 * MIB for i in range(60)])
    # Their stacks are outside the heap, which did not grow: both are said.
    outside, culprit = profile_culprits(points, events, T0, rss)
    assert outside.name == "memory outside the heap in use"
    assert "goroutine or thread stacks" in outside.evidence[1]
    assert outside.evidence[-1] == (
        "goroutines that never end keep their stacks there: goroutines waiting in main.stuck "
        "(arena/main.go:75) (+720 goroutines a minute in all)"
    )
    assert culprit.name == "goroutines waiting in main.stuck (arena/main.go:75)"
    assert (culprit.kind, culprit.unit) == ("tasks", "goroutines")
    assert culprit.growth.startswith("50 → 710 goroutines, +720/min")
    # 660 goroutines of 8 KiB of stack each against 5.9 MiB of RSS's growth.
    assert culprit.share == round(660 * 8 * 1024 / (5.9 * MIB), 4)
    assert "waiting at main.stuck (arena/main.go:75)" in culprit.evidence


def test_profiles_of_a_heap_larger_than_the_process_are_another_process_s() -> None:
    # Port 6060 is every Go program's default: another service's growing heap (34 MiB) had
    # been read as that of a 6 MiB idle process, its site named at 97%.
    n = 12
    grows = [2.5 * MIB + i * 3 * MIB for i in range(n)]
    points = {f"{INUSE} [pid 7]": _points(grows), f"{SITE}main.addSession [pid 7]": _points(grows)}
    events = _events(n, {})
    rss = _rss([6 * MIB] * 60)
    assert profile_culprits(points, events, T0, rss) == []
    (said,) = profile_evidence(points, events, T0, rss)
    assert said.startswith("the heap profiles from ? hold more in use than the process's whole RSS")


def test_too_few_profiles_name_no_site() -> None:
    # Five profiles of a short run: garbage alive by a collection's timing had been named.
    n = 5
    grows = [i * 3 * MIB for i in range(n)]
    points = {f"{INUSE} [pid 7]": _points(grows), f"{SITE}main.churn [pid 7]": _points(grows)}
    events = _events(n, {})
    rss = _rss([60 * MIB + i * 0.5 * MIB for i in range(25)])
    assert profile_culprits(points, events, T0, rss) == []
    assert profile_evidence(points, events, T0, rss) == (
        "5 heap profiles read from ?: too few to trend (6 are needed)",
    )


def test_the_heap_line_says_when_the_heap_levelled() -> None:
    n = 12
    filled = [min(i, 4) * 5 * MIB + 2 * MIB for i in range(n)]
    points = {f"{INUSE} [pid 7]": _points(filled)}
    events = [(T0 + 5 * i, HEAP_EVENT, {"url": "u", "sample_type": "space"}) for i in range(n)]
    (said,) = profile_evidence(points, events, T0, _rss([80 * MIB] * 60))
    assert said == (
        "heap profiles (12 from u): the heap in use went from 2.00 MiB to 22.0 MiB, and "
        "levelled off"
    )


def test_a_go_heap_profile_that_hardly_changes_says_to_ask_for_a_collection() -> None:
    # 288 MiB held from the start, a slow leak beside it: Go collected twice in a minute, and
    # its profile (as of the last collection) changed at 2 of 11 readings.
    levels = [169 * MIB] * 4 + [289 * MIB] * 4 + [336 * MIB] * 4
    points = {f"{INUSE} [pid 7]": _points(levels)}
    url = "http://127.0.0.1:6060/debug/pprof/heap"
    events = [
        (T0 + 5 * i, HEAP_EVENT, {"url": url, "sample_type": "inuse_space"}) for i in range(12)
    ]
    rss = _rss([400 * MIB + i * 5 * MIB for i in range(60)])
    said = profile_evidence(points, events, T0, rss)
    assert said[1].startswith(
        "the heap profile changed at 2 of its 11 readings after the first, so no site is named"
    )
    assert f"`--heap-profile {url}?gc=1` has a collection run before each profile" in said[1]
    assert (
        profile_culprits(
            {**points, f"{SITE}main.statics [pid 7]": _points(levels)}, events, T0, rss
        )
        == []
    )
    # Asked with ?gc=1 already, or with RSS not growing (a heap that holds while its garbage is
    # collected every second changes as rarely), it is not said.
    with_gc = [(t, k, {**p, "url": url + "?gc=1"}) for t, k, p in events]
    assert len(profile_evidence(points, with_gc, T0, rss)) == 1
    assert len(profile_evidence(points, events, T0, _rss([700 * MIB] * 60))) == 1


def test_a_full_cache_read_through_gos_sampling_is_no_culprit() -> None:
    # 100 entries of 64 KiB, evicting as it goes: Go samples one allocation in 512 KiB, and
    # the site read so (MiB), steady enough by Kendall's τ, and had been called a leak.
    read = [0.53, 4.26, 3.72, 5.32, 4.26, 5.85, 6.38]
    cache = [v * MIB for v in read]
    points = {
        f"{INUSE} [pid 7]": _points(cache),
        f"{SITE}main.(*cache).put [pid 7]": _points(cache),
    }
    rss = _rss([40 * MIB] * 35)
    assert profile_culprits(points, _events(len(read), {}), T0, rss) == []
    # The same growth over 24 profiles is more than the sampling shows.
    slow = [1.5 * MIB + i * 0.2 * MIB for i in range(24)]
    points = {f"{INUSE} [pid 7]": _points(slow), f"{SITE}main.slowLeak [pid 7]": _points(slow)}
    (culprit,) = profile_culprits(points, _events(24, {}), T0, _rss([40 * MIB] * 120))
    assert culprit.name == "allocations at main.slowLeak"


def test_a_site_that_only_climbs_is_no_sampling_noise() -> None:
    # A sampled object that stays live stays in every profile after: a slow leak's 0.5 to
    # 6.1 MiB over 11 readings, never falling, is under the sampling bar of a site that
    # churns, and had read `plateau`.
    read = [0.5, 0.5, 1.0, 1.5, 2.5, 3.0, 3.5, 4.0, 5.0, 5.5, 6.1]
    slow = [v * MIB for v in read]
    points = {f"{INUSE} [pid 7]": _points(slow), f"{SITE}main.slowLeak [pid 7]": _points(slow)}
    (culprit,) = profile_culprits(points, _events(len(read), {}), T0, _rss([40 * MIB] * 55))
    assert culprit.name == "allocations at main.slowLeak"
