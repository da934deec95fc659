"""Causes the probe's culprits give a verdict: a bounded container still filling, a backlog in a
work queue, Python objects growing in memory the process already held."""

from __future__ import annotations

import numpy as np

from memsleuth.analysis.growth import Growth
from memsleuth.analysis.thresholds import MIN_GROWTH_BYTES
from memsleuth.analysis.trend import read_no_more
from memsleuth.model import Culprit
from memsleuth.units import format_bytes, format_rate

# A leak-shaped rise is a cache filling when containers that cannot hold more than a bound
# (an lru_cache's maxsize, a deque's maxlen, a queue's maxsize) carry at least this share of
# it, more than any unbounded container does, and their bound leaves memory under the limit.
BOUNDED_SHARE = 0.5
# A leak is a backlog when unbounded work queues carry more of its growth than all other
# containers together, and at least this share of it: what a queue's entries are estimated
# to hold is sampled, and seed 000's one queue measured 57-69% of RSS's growth from run to
# run (more than half had been asked, which a loaded machine came close to missing).
BACKLOG_SHARE = 0.25


def bounded_fill(
    g: Growth, culprits: tuple[Culprit, ...], limit_bytes: int | None
) -> tuple[float, str] | None:
    """(ceiling, why) when the growth is bounded containers still filling (BOUNDED_SHARE): the
    probe knows what the series cannot (an lru_cache of 30,000 pages a third full had read
    `leak`, and a bounded cache is never a leak). The ceiling adds what each still has room
    for, at its bytes per entry so far, to the level now."""
    fit = g.fit
    containers = [c for c in culprits if c.kind == "container" and c.points]
    # Only a container with room left can be what memory is still filling: a full one has
    # stopped (a full lru_cache had been "the growth" of a capped dict still growing at
    # 400 MiB/h, its ceiling the level of that moment).
    bounded = [c for c in containers if c.bound and not c.full]
    if fit is None or not bounded:
        return None
    share = sum(c.share for c in bounded)
    unbounded = max((c.share for c in containers if not c.bound), default=0.0)
    if share < BOUNDED_SHARE or unbounded >= share:
        return None
    room = 0.0
    for c in bounded:
        held = c.points[-1][1]
        per_entry = (c.bytes_estimate or 0.0) / held if held else 0.0
        room += max((c.bound or 0.0) - held, 0.0) * per_entry
    ceiling = float(fit.at(fit.t1)) + room
    if limit_bytes is not None and ceiling >= limit_bytes:
        # Full, it would pass the limit (or what the machine has: a cache of maxsize 10**9
        # had been "levels off near 6.84 TiB", exit 0, on a 23 GiB machine): still a
        # problem, and said as a leak.
        return None
    top = bounded[0]
    held = top.points[-1][1]
    what = "a queue filling to its bound" if top.queue else "a cache filling"
    why = (
        f"the growth is {top.name}, bounded at {top.bound:,.0f} entries and "
        f"{held / (top.bound or 1):.0%} full: {what}, not a leak; full, memory "
        f"levels off near {format_bytes(ceiling)}"
    )
    return ceiling, why


def backlog_queue(culprits: tuple[Culprit, ...]) -> Culprit | None:
    """The unbounded work queue the growth is a backlog in: queues carrying at least
    BACKLOG_SHARE of it, and more than all other containers together. Entries a consumer
    takes out and that still pile up are a producer outpacing its consumer (seed 000's slow
    client), not entries nobody removes: the fix is a bound or a faster consumer, not a
    missing delete."""
    containers = [c for c in culprits if c.kind == "container" and c.points]
    queues = [c for c in containers if c.queue and not c.bound]
    share = sum(c.share for c in queues)
    others = sum(c.share for c in containers) - share
    return queues[0] if queues and share >= BACKLOG_SHARE and share > others else None


def backlog_words(queue: Culprit) -> str:
    return (
        f"the growth is a backlog in {queue.name}: work is put in faster than it is taken "
        "out (a slow consumer), for as long as the load lasts; a bound (maxsize, or "
        "memsleuth.guards' bounded queues with a drop policy) would hold it there"
    )


def in_slack(culprits: tuple[Culprit, ...]) -> tuple[float, str, str, str] | None:
    """(bytes per hour, why, the culprit's name, the metric that grows: Python objects' bytes,
    or the heap's in use) when Python objects, or the bytes in use at
    an allocation site a heap profile follows, grow without bound while RSS does not: the heap
    had room (memory freed elsewhere and reused, a buffer churned, a collected heap's slack),
    and RSS grows once it is used. Registry.by_user gaining 850 MiB/h of entries inside a
    churned 16 MiB ctypes buffer had read `step`, exit 0, beside the probe's culprit at 100%;
    a Go leak of 4.6 MiB/min amid 40 MB/s of garbage read `plateau` at 120 s, its site named
    growing steadily (Go's heap goal held RSS). The growth must be material
    (MIN_GROWTH_BYTES), and the culprit a steady one (still growing, not levelled off), not a
    bounded container. A site a snapshot diff named (tracemalloc's, no points) is not one."""
    # Still growing: its last third of the time added a sixth of its growth at least (a cache
    # that filled once, between flat stretches, and stopped 98 s before had read `leak`). And
    # still read: a container in a process that has exited holds nothing now (a recycled
    # pool's workers, each growing a dict until replaced, had read `leak`, exit 3).
    latest = max((c.points[-1][0] for c in culprits if c.points), default=0.0)
    growing = [
        c
        for c in culprits
        if c.kind in ("container", "type", "allocation-site")
        and c.bound is None
        and c.bytes_estimate
        and len(c.points) >= 2
        and c.points[-1][1] > c.points[0][1]
        # A site a heap profile took up as it appeared starts at 0 B (a leak starting 30 s in
        # had been named, and the verdict `plateau`); a container with no entry has no size.
        and (c.points[0][1] > 0 or c.kind == "allocation-site")
        and c.points[-1][0] > c.points[0][0]
        and _grows_lately(c.points)
        and not read_no_more(c.points, latest)
    ]
    if not growing:
        return None
    top = max(growing, key=lambda c: c.bytes_estimate or 0.0)
    (t0, first), (t1, last) = top.points[0], top.points[-1]
    per_entry = (top.bytes_estimate or 0.0) / last if top.unit != "bytes" else 1.0
    grown = (last - first) * per_entry
    if grown < MIN_GROWTH_BYTES:
        return None
    per_hour = grown / (t1 - t0) * 3600.0
    if top.kind == "allocation-site":
        why = (
            f"{top.name} grows {format_rate(per_hour)} ({format_bytes(first)} → "
            f"{format_bytes(last)} in use) while RSS does not: the heap fills room the "
            "process already held (a collected heap is let grow past what is live; memory "
            "freed elsewhere is reused), and RSS grows once that room is used"
        )
    else:
        why = (
            f"{top.name} grows {format_rate(per_hour)} ({first:,.0f} → {last:,.0f} "
            f"{top.unit}, ~{format_bytes(top.bytes_estimate or 0.0)} retained) while RSS does "
            "not: Python objects fill memory the process already held (freed elsewhere and "
            "reused), and RSS grows once that room is used"
        )
    metric = "heap_inuse_bytes" if top.kind == "allocation-site" else "python_object_bytes"
    return per_hour, why, top.name, metric


def _grows_lately(points: tuple[tuple[float, float], ...]) -> bool:
    """Whether the last third of the points' time added a sixth of their whole growth."""
    t = np.array([p[0] for p in points])
    v = np.array([p[1] for p in points])
    cut = t[0] + 2.0 * (t[-1] - t[0]) / 3.0
    before = float(np.interp(cut, t, v))
    return bool(v[-1] - before >= (v[-1] - v[0]) / 6.0)
