"""What the recorder keeps of the profiles it reads: the sites it follows, bounded, and each
failure said once (profile_watch.py)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import pytest

from memsleuth.errors import SourceError
from memsleuth.profile_watch import (
    BACKLOG,
    MAX_CANDIDATES,
    MAX_SAID,
    MAX_SITES,
    ProfileWatch,
    Reading,
    goroutine_url,
)
from memsleuth.sources.pprof import Profile, Site


def _profile(sites: dict[str, float]) -> Profile:
    return Profile(
        time_s=None,
        total=sum(sites.values()),
        objects=None,
        sites={n: Site(v, 0.0, (n, "main.main")) for n, v in sites.items()},
        sample_type="inuse_space",
    )


def _take(watch: ProfileWatch, profile: Profile | None, error: str = "", t: float = 1.0):  # type: ignore[no-untyped-def]
    failure = SourceError(error, "the hint") if error else None
    return watch._take(Reading(watch.heap, t, profile, failure, 0.01))


def test_the_largest_sites_are_followed_and_written_at_every_profile_after() -> None:
    watch = ProfileWatch("http://127.0.0.1:6060/debug/pprof/heap", pid=7)
    first = _take(watch, _profile({f"s{i}": float(100 - i) for i in range(15)}))
    assert first.event is not None and sorted(first.event["stacks"]) == sorted(
        f"s{i}" for i in range(10)
    )  # the 10 largest
    later = _take(watch, _profile({"s0": 500.0}), t=2.0)
    written = {name: v for name, _, v in later.points}
    assert written["heap:inuse [pid 7]"] == 500.0
    assert written["heap_site:s0 [pid 7]"] == 500.0
    assert written["heap_site:s9 [pid 7]"] == 0.0  # followed, gone from this profile
    assert "heap_site:s10 [pid 7]" not in written


def test_once_full_a_growing_newcomer_takes_the_smallest_sites_place() -> None:
    watch = ProfileWatch("http://127.0.0.1:6060/debug/pprof/heap", pid=7)
    for k in range(MAX_SITES // 10):
        _take(watch, _profile({f"old{k}_{i}": 10.0 + i for i in range(10)}), t=float(k))
    assert len(watch.heap.followed) == MAX_SITES
    # A leak that starts late: larger than the smallest followed site now, so it is followed.
    taken = _take(watch, _profile({"leak": 50.0, "old9_9": 19.0}), t=100.0)
    assert "leak" in watch.heap.followed and len(watch.heap.followed) == MAX_SITES
    assert "heap_site:leak [pid 7]" in {name for name, _, _ in taken.points}


def test_each_failure_is_said_once_and_only_a_few_kinds_of_them() -> None:
    watch = ProfileWatch("http://127.0.0.1:6060/debug/pprof/heap", pid=7)
    said = [_take(watch, None, "refused").warning, _take(watch, None, "refused").warning]
    assert said == ["refused (hint: the hint)", ""]
    for i in range(2 * MAX_SAID):  # a decoder whose message changes each time
        _take(watch, None, f"does not decode at byte {i}")
    assert len(watch.heap.errors) == MAX_SAID


@pytest.mark.parametrize(
    ("url", "goroutines"),
    [
        ("http://127.0.0.1:6060/debug/pprof/heap", "http://127.0.0.1:6060/debug/pprof/goroutine"),
        ("http://h:1/x/debug/pprof/heap?gc=1", "http://h:1/x/debug/pprof/goroutine"),
        ("http://127.0.0.1:8080/pprof/allocs", None),  # not Go's layout: no goroutines asked
    ],
)
def test_gos_goroutine_profile_is_beside_its_heap_profile(url: str, goroutines: str | None) -> None:
    assert goroutine_url(url) == goroutines


def test_the_budget_spaces_profiles_read_and_failures_back_off() -> None:
    watch = ProfileWatch("http://127.0.0.1:6060/debug/pprof/heap", pid=7)
    read = Reading(watch.heap, 1.0, _profile({"a": 1.0}), None, 0.2)
    assert watch.wait_s(watch.heap, read) == 20.0  # 0.2 s at 1%
    # A request stalled to its 10 s timeout is no measure of a profile's cost: the next try
    # comes after 5 s, then 10, 20, 40, and never more than a minute apart.
    stalled = Reading(watch.heap, 2.0, None, SourceError("did not send", ""), 10.0)
    waits = [watch.wait_s(watch.heap, stalled) for _ in range(6)]
    assert waits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert watch.wait_s(watch.heap, read) == 20.0  # read again: the budget, failures forgotten
    assert watch.heap.failures == 0


def test_a_profile_of_another_program_is_not_used() -> None:
    # Port 6060 is every Go program's default: another service's profile had been read as the
    # target's, its heap in use more than the target's whole RSS.
    watch = ProfileWatch("http://127.0.0.1:6060/debug/pprof/heap", pid=os.getpid())
    other = replace(_profile({"main.addSession": 9e6}), program="/srv/bin/sessions")
    taken = _take(watch, other)
    assert taken.points == () and watch.heap.read == 0
    assert taken.warning.startswith(
        "the profile at http://127.0.0.1:6060/debug/pprof/heap is of sessions, not of process "
        f"{os.getpid()} ("
    )
    # The programs it runs, and those it started (a test's Prometheus, say), by name.
    assert os.path.basename(os.path.realpath(sys.executable)) in taken.warning
    assert taken.event is not None and "error" in taken.event
    mine = replace(_profile({"main.addSession": 9e6}), program=os.path.realpath(sys.executable))
    assert _take(watch, mine).points and watch.heap.read == 1


def test_a_small_site_that_grows_is_followed_with_its_past() -> None:
    # Twelve 24 MiB buffers held from the start, and a leak of 256 KiB a tick: the leak had
    # been taken up 40 s in, its first four points flat, and no culprit named.
    watch = ProfileWatch("http://127.0.0.1:6060/debug/pprof/heap", pid=7)
    held = {f"static{i}": 24e6 for i in range(12)}
    taken = [_take(watch, _profile({**held, "leak": 1e6 * (k + 1)}), t=5.0 * k) for k in range(3)]
    assert "leak" not in taken[0].event["stacks"]  # 10 larger sites first  # type: ignore[index]
    assert "leak" in watch.heap.followed
    leak = [(t, v) for name, t, v in [p for tk in taken for p in tk.points] if "leak" in name]
    # Taken up at the second profile, by its growth: its first reading written then, with it.
    assert leak == [(0.0, 1e6), (5.0, 2e6), (10.0, 3e6)], leak


def test_the_sites_not_followed_are_remembered_within_bounds() -> None:
    watch = ProfileWatch("http://127.0.0.1:6060/debug/pprof/heap", pid=7)
    many = {f"s{i}": 1.0 for i in range(2 * MAX_CANDIDATES)}
    for k in range(3 * BACKLOG):
        watch.heap.remember(float(k), _profile(many))
    assert len(watch.heap.candidates) == MAX_CANDIDATES
    times, _ = watch.heap.candidates["s0"]
    assert BACKLOG // 2 <= len(times) <= BACKLOG and times[0] == 0.0  # the whole span, thinned
