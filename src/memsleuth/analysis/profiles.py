"""Heap profiles read over a recording (`record --heap-profile`) as culprits: the allocation
sites whose bytes in use grow steadily, and, when the heap in use does not grow while RSS
does, the memory outside it. Pure: no I/O."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from memsleuth.analysis.steadiness import (
    MIN_NATIVE_BYTES,
    Event,
    Growth,
    Points,
    bytes_culprit,
    floor_growth,
    is_steady,
    measure,
    per_minute,
    relative_points,
    steady_series,
    tau_words,
)
from memsleuth.model import Culprit, Series
from memsleuth.units import format_bytes, format_count, format_rate

# The names profile_watch.py writes under: the heap in use, its objects, each site's bytes in
# use (points); an event for each profile read, or failure first met.
INUSE = "heap:inuse"
OBJECTS = "heap:objects"
SITE = "heap_site:"
HEAP_EVENT = "heap.profile"
# And Go's goroutine profile: the goroutines, and how many wait at each site.
GOROUTINES = "goroutines:total"
GOROUTINE_SITE = "goroutine_site:"
GOROUTINE_EVENT = "goroutine.profile"
# A site must add at least this much to be named: a heap profile samples one allocation in
# every 512 KiB by default (Go's MemProfileRate), so less is within its sampling error.
MIN_SITE_BYTES = 1024 * 1024
# RSS grows by memory outside the heap when the heap in use grows by less than this share of
# it (as signals.FRAGMENTATION_SHARE judges malloc's live bytes): a garbage-collected heap
# grows RSS by more than what is live, up to twice with Go's GOGC=100.
HEAP_SHARE = 0.25
# What a goroutine holds at the least: its stack (2 KiB to start, 8 KiB once it has grown a
# little; more is what it references, which the heap profile counts where it was allocated).
GOROUTINE_BYTES = 8 * 1024
# A heap profile samples one allocation in about this many bytes (Go's MemProfileRate,
# jemalloc's lg_prof_sample=19): a site holding B bytes reads B ± sqrt(B × this), and its
# growth over n profiles is known to about that × sqrt(12 / n) (a line's slope over n
# points). A site must grow by SAMPLING_SIGMAS of that: a full cache of 64 KiB entries,
# evicting as it goes, had read 0.5, 4.3, 3.7, 5.3, 4.3, 5.9, 6.4 MiB, steady enough by
# Kendall's τ, and been called a leak.
SAMPLING_BYTES = 512 * 1024
SAMPLING_SIGMAS = 3.0
# Profiles a site's trend needs before it is named: four or five points of garbage alive by a
# collection's timing had passed the steadiness test (soak's MIN_POINTS, for the same reason).
MIN_PROFILES = 6
# A heap in use over RSS by this share is not the recorded process's heap (another program's
# profile: its heap had been more than the target's whole RSS).
OVER_RSS = 1.1
# The culprit RSS grows by when the heap does not.
OUTSIDE = "memory outside the heap in use"
# Stack frames shown in a culprit's evidence.
STACK_FRAMES = 6

_PID = re.compile(r" \[pid \d+\]$")


def profile_culprits(
    points: Mapping[str, Points], events: Sequence[Event], t0: float, series: Series
) -> list[Culprit]:
    """The culprits the profiles name, largest share first; `series` holds the run's samples
    (seconds from `t0`), for RSS at the profiles' times."""
    rss = series.get("rss_bytes")
    rss_growth = floor_growth(series.t, rss) if rss is not None else 0.0
    heap = heap_culprits(points, events, t0, series)
    waiting = goroutine_culprits(points, events, t0, rss_growth)
    if waiting:
        # The goroutines' stacks are outside the heap: the two culprits are one story (a
        # goroutine leak's 130 KiB stacks had been "memory outside the heap in use" at 100%
        # beside the goroutines at 4%, unconnected).
        added = sum(c.growth_per_hour for c in waiting) / 60.0
        said = (
            f"goroutines that never end keep their stacks there: {waiting[0].name} "
            f"({format_count(added, signed=True)} goroutines a minute in all)"
        )
        heap = [replace(c, evidence=(*c.evidence, said)) if c.name == OUTSIDE else c for c in heap]
    return sorted([*heap, *waiting], key=lambda c: -c.share)


def heap_culprits(
    points: Mapping[str, Points], events: Sequence[Event], t0: float, series: Series
) -> list[Culprit]:
    """The allocation sites whose bytes in use grow steadily, and the memory outside the heap
    when RSS grows without it; shares are of the heap's growth."""
    inuse_pts = next((v for k, v in points.items() if k.startswith(INUSE)), ())
    heap = measure(inuse_pts)
    outside = _outside(inuse_pts, t0, series)
    if heap is None or len(inuse_pts) < MIN_PROFILES or over_rss(inuse_pts, outside):
        return []
    # A profile that hardly changed names no site: four buffers allocated once, seen at the
    # one collection in a minute, had been named growing "+30.4 MiB/min" each, and the leak
    # beside them not at all.
    trailing = stale(inuse_pts)
    sites = {_PID.sub("", k[len(SITE) :]): v for k, v in points.items() if k.startswith(SITE)}
    stacks = _stacks(events, HEAP_EVENT)
    read = sum(kind == HEAP_EVENT and "error" not in payload for _, kind, payload in events)
    last_total = heap.last
    out: list[Culprit] = []
    for name, pts, g in steady_series({} if trailing else sites, "bytes"):
        fell = any(b[1] < a[1] for a, b in itertools.pairwise(pts))
        if g.total < MIN_SITE_BYTES or (fell and g.total < sampling_error(g, len(pts))):
            continue
        why = [
            f"{g.last / last_total:.0%} of the heap in use at the last profile "
            f"({format_bytes(g.last)} of {format_bytes(last_total)}; {read} profiles)"
            if last_total > 0
            else f"{read} profiles",
        ]
        if name in stacks:
            why.append(f"allocated at {_stack_words(stacks[name])}")
        culprit = bytes_culprit(
            f"allocations at {name}", "allocation-site", g, "in use", tuple(why), pts, t0
        )
        out.append(culprit)
    kept = measure(outside) if outside is not None else None
    if outside is not None and kept is not None and is_steady(kept, "bytes"):
        rss_added = max(heap.total, 0.0) + kept.total
        if kept.total >= MIN_NATIVE_BYTES and max(heap.total, 0.0) < HEAP_SHARE * rss_added:
            grew = f"grew only {format_bytes(heap.total)}" if heap.total > 0 else "did not grow"
            said = (
                f"the heap in use {grew} over {read} profiles while RSS grew "
                f"{format_bytes(rss_added)}: memory freed "
                "but kept by the runtime or allocator (not returned to the system), goroutine "
                "or thread stacks, or memory mapped outside the heap"
            )
            what = "RSS less the heap"
            out.append(bytes_culprit(OUTSIDE, "native", kept, what, (said,), outside, t0))
    return shares(out, heap.total)


def sampling_error(g: Growth, n: int) -> float:
    """The growth a site's sampling alone can show over `n` profiles, SAMPLING_SIGMAS wide."""
    held = max(g.first, g.last, 0.0)
    return SAMPLING_SIGMAS * math.sqrt(held * SAMPLING_BYTES) * math.sqrt(12.0 / max(n, 1))


def goroutine_culprits(
    points: Mapping[str, Points], events: Sequence[Event], t0: float, rss_growth: float
) -> list[Culprit]:
    """The sites where more and more goroutines wait (Go's goroutine profiles): goroutines
    that never end, each keeping its stack and what it references (seed 004)."""
    sites = {
        _PID.sub("", k[len(GOROUTINE_SITE) :]): v
        for k, v in points.items()
        if k.startswith(GOROUTINE_SITE)
    }
    stacks = _stacks(events, GOROUTINE_EVENT)
    out = []
    for name, pts, g in steady_series(sites, "tasks"):
        if len(pts) < MIN_PROFILES:
            continue
        why = [
            tau_words(g),
            "goroutines that never end: each keeps its stack (2–8 KiB) and what it references",
        ]
        if name in stacks:
            why.append(f"waiting at {_stack_words(stacks[name])}")
        held = g.total * GOROUTINE_BYTES
        out.append(
            Culprit(
                name=f"goroutines waiting in {name}",
                kind="tasks",
                growth=f"{g.first:,.0f} → {g.last:,.0f} goroutines, {per_minute(g.slope_per_s)}",
                growth_per_hour=g.slope_per_s * 3600,
                unit="goroutines",
                share=round(min(1.0, held / rss_growth), 4) if rss_growth > 0 else 0.0,
                evidence=tuple(why),
                bytes_estimate=g.last * GOROUTINE_BYTES,
                points=relative_points(pts, t0),
            )
        )
    return out


def _stacks(events: Sequence[Event], kind: str) -> dict[str, list[str]]:
    """The stack each site was first seen with, from the events of `kind`."""
    stacks: dict[str, list[str]] = {}
    for _, k, payload in events:
        if k == kind:
            for site, stack in payload.get("stacks", {}).items():
                stacks.setdefault(site, stack)
    return stacks


def _stack_words(stack: list[str]) -> str:
    shown = " ← ".join(stack[:STACK_FRAMES])
    return shown + (" ← …" if len(stack) > STACK_FRAMES else "")


def profile_evidence(
    points: Mapping[str, Points], events: Sequence[Event], t0: float, series: Series
) -> tuple[str, ...]:
    """What the heap profiles say of the heap in use, or why none could be used."""
    read = [p for _, kind, p in events if kind == HEAP_EVENT and "error" not in p]
    if not read:
        failed = next((p for _, kind, p in events if kind == HEAP_EVENT and "error" in p), None)
        if failed is None:
            return ()
        return (f"no heap profile could be read from {failed.get('url', '?')}: {failed['error']}",)
    inuse = next((v for k, v in points.items() if k.startswith(INUSE)), ())
    heap = measure(inuse)
    url = read[-1].get("url", "?")
    profiles = f"{len(read)} heap profile{'' if len(read) == 1 else 's'}"
    if heap is None or len(inuse) < MIN_PROFILES:
        return (f"{profiles} read from {url}: too few to trend ({MIN_PROFILES} are needed)",)
    over = over_rss(inuse, _outside(inuse, t0, series))
    if over is not None:
        return (
            f"the heap profiles from {url} hold more in use than the process's whole RSS "
            f"({format_bytes(over[0])} against {format_bytes(over[1])}): they are another "
            "process's, and no culprit is named from them (when it is a process the target "
            "started, such as a shell's, record with --children)",
        )
    went = f"went from {format_bytes(heap.first)} to {format_bytes(heap.last)}"
    if is_steady(heap, "bytes"):
        went += f" ({format_rate(heap.slope_per_s * 3600)})"
    elif heap.last <= heap.first:
        went += ", without growing"
    elif heap.levelled:
        went += ", and levelled off"
    else:
        went += ", without growing steadily"
    words = f"heap profiles ({len(read)} from {url}): the heap in use {went}"
    if read[-1].get("sample_type") != "inuse_space":
        return (words,)
    words += (  # Go's
        "; Go's collector lets the heap reach about twice what is live (GOGC=100), its "
        "profile is as of its last collection, and it samples one allocation in every "
        "512 KiB: a site's bytes are an estimate"
    )
    rss = series.get("rss_bytes")
    grew = floor_growth(series.t, rss) if rss is not None else 0.0
    if stale(inuse) and grew >= MIN_NATIVE_BYTES and "gc=1" not in url:
        # A big heap that grows slowly is collected rarely: a leak of 256 KiB a tick beside
        # 288 MiB held from the start showed in two of 12 profiles, too few to trend. (A heap
        # that holds while its garbage is collected every second changes as rarely: RSS
        # growing is what makes it a question.)
        collecting = url + ("&" if "?" in url else "?") + "gc=1"
        return (
            words,
            f"the heap profile changed at {changes(inuse)} of its {len(inuse) - 1} readings "
            "after the first, so no site is named from it: Go updates it at each collection, "
            f"and its collector ran rarely while RSS grew; `--heap-profile {collecting}` has a "
            "collection run before each profile (the program pays for a collection each time, "
            "spaced by memsleuth's 1% budget)",
        )
    return (words,)


def changes(inuse: Points) -> int:
    """How many of the profiles after the first read another heap in use than the one before."""
    return sum(a[1] != b[1] for a, b in itertools.pairwise(inuse))


def stale(inuse: Points) -> bool:
    """Whether the heap in use changed at fewer than half of the profiles after the first (Go's
    profile is as of its last collection: a heap collected rarely reads the same)."""
    return 2 * changes(inuse) < len(inuse) - 1


def over_rss(inuse: Points, outside: Points | None) -> tuple[float, float] | None:
    """(heap in use, RSS) at the profile where the heap stands highest over RSS, when most
    profiles put it over OVER_RSS times RSS; else None. `outside`: RSS less the heap at the
    profiles' times (_outside)."""
    if outside is None:
        return None
    heap = dict(inuse)
    pairs = [(heap[t], heap[t] + o) for t, o in outside]
    over = [(h, r) for h, r in pairs if r > 0 and h > OVER_RSS * r]
    if 2 * len(over) <= len(pairs):
        return None
    return max(over, key=lambda hr: hr[0] / hr[1])


def _outside(inuse: Points, t0: float, series: Series) -> Points | None:
    """RSS less the heap in use, at each profile's time (RSS interpolated between samples)."""
    rss = series.get("rss_bytes")
    if rss is None or len(series) < 2:
        return None
    ok = ~np.isnan(rss)
    t, v = series.t[ok], rss[ok]
    if t.size < 2:
        return None
    inside = [(pt, pv) for pt, pv in inuse if t[0] <= pt - t0 <= t[-1]]
    if len(inside) < 4:
        return None
    at = np.interp([pt - t0 for pt, _ in inside], t, v)
    return tuple((pt, float(r - pv)) for (pt, pv), r in zip(inside, at, strict=True))


def shares(culprits: list[Culprit], heap_growth: float) -> list[Culprit]:
    """Each culprit's share of what the heap in use grew (or of all they added, when more):
    a garbage-collected heap grows RSS by more than what is live (Go's GOGC=100 lets it reach
    twice that), so the heap's own growth is what the sites add up to."""
    # Until here, each culprit's `share` holds the bytes it added (bytes_culprit).
    sites = sum(c.share for c in culprits if c.kind == "allocation-site")
    denom = max(heap_growth, sites, 1.0)
    ranked = [replace(c, share=round(min(1.0, max(0.0, c.share / denom)), 4)) for c in culprits]
    return sorted(ranked, key=lambda c: -c.share)
