"""Heap profiles read over a recording (`record --heap-profile`) as culprits: the allocation
sites whose bytes in use grow steadily, and, when the heap in use does not grow while RSS
does, the memory outside it. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from memsleuth.analysis.steadiness import (
    MIN_NATIVE_BYTES,
    Event,
    Points,
    bytes_culprit,
    is_steady,
    measure,
    steady_series,
)
from memsleuth.model import Culprit, Series
from memsleuth.units import format_bytes

# The names profile_watch.py writes under: the heap in use, its objects, each site's bytes in
# use (points); an event for each profile read, or failure first met.
INUSE = "heap:inuse"
OBJECTS = "heap:objects"
SITE = "heap_site:"
EVENT = "heap.profile"
# A site must add at least this much to be named: a heap profile samples one allocation in
# every 512 KiB by default (Go's MemProfileRate), so less is within its sampling error.
MIN_SITE_BYTES = 1024 * 1024
# Stack frames shown in a culprit's evidence.
STACK_FRAMES = 6

_PID = re.compile(r" \[pid \d+\]$")


def profile_culprits(
    points: Mapping[str, Points], events: Sequence[Event], t0: float, series: Series
) -> list[Culprit]:
    """The culprits the heap profiles name, ranked by the bytes each added; `series` holds the
    run's samples (seconds from `t0`), for RSS at the profiles' times."""
    inuse_pts = next((v for k, v in points.items() if k.startswith(INUSE)), ())
    heap = measure(inuse_pts)
    if heap is None:
        return []
    sites = {_PID.sub("", k[len(SITE) :]): v for k, v in points.items() if k.startswith(SITE)}
    stacks: dict[str, list[str]] = {}
    read = 0
    for _, kind, payload in events:
        if kind == EVENT and "error" not in payload:
            read += 1
            stacks.update(payload.get("stacks", {}))
    last_total = heap.last
    out: list[Culprit] = []
    for name, pts, g in steady_series(sites, "bytes"):
        if g.total < MIN_SITE_BYTES:
            continue
        stack = stacks.get(name, [])
        where = " ← ".join(stack[:STACK_FRAMES]) + (" ← …" if len(stack) > STACK_FRAMES else "")
        why = [
            f"{g.last / last_total:.0%} of the heap in use at the last profile "
            f"({format_bytes(g.last)} of {format_bytes(last_total)}; {read} profiles)"
            if last_total > 0
            else f"{read} profiles",
        ]
        if where:
            why.append(f"allocated at {where}")
        culprit = bytes_culprit(
            f"allocations at {name}", "allocation-site", g, "in use", tuple(why), pts, t0
        )
        out.append(culprit)
    outside = _outside(inuse_pts, t0, series)
    if outside is not None and not is_steady(heap, "bytes"):
        kept = measure(outside)
        if kept is not None and is_steady(kept, "bytes") and kept.total >= MIN_NATIVE_BYTES:
            said = (
                f"the heap in use did not grow ({format_bytes(heap.first)} → "
                f"{format_bytes(heap.last)} over {read} profiles) while RSS did: memory freed "
                "but kept by the runtime or allocator (not returned to the system), goroutine "
                "or thread stacks, or memory mapped outside the heap"
            )
            name = "memory outside the heap in use"
            what = "RSS less the heap"
            out.append(bytes_culprit(name, "native", kept, what, (said,), outside, t0))
    return shares(out, heap.total)


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
