"""Columns a stored run's series gains from the points beside its samples: live bytes (malloc's
free chunks), pending asyncio tasks, the descendants' count and the RSS a recording left out."""

from __future__ import annotations

import numpy as np

from memsleuth.model import FloatArray, Run, Series
from memsleuth.store import Store


def with_left_out(store: Store, run: Run, series: Series) -> tuple[Series, int] | None:
    """RSS with the descendants a recording without --children left out (read every few
    seconds, in a line between readings), and how many there are now (the `descendants` column
    `with_descendants` added); None when it has none."""
    from memsleuth.sources.procfs import LEFT_OUT_RSS

    rss = store.load_points(run.id, LEFT_OUT_RSS).get(LEFT_OUT_RSS, ())
    t0 = store.first_sample_time(run.id)
    if t0 is None or len(series) == 0 or not any(v for _, v in rss):
        return None
    pt = np.array([p[0] - t0 for p in rss])
    pv = np.array([p[1] for p in rss])
    known = pt <= series.t[-1]  # at --until, what was known then
    if not known.any():
        return None
    held = series.get("descendants")  # with_descendants: the count read last by then
    count = int(held[-1]) if held is not None and not np.isnan(held[-1]) else 0
    # Between readings in a line; none after the last (held, they had drawn a false flat).
    inside = (series.t >= pt[known][0]) & (series.t <= pt[known][-1])
    kids = np.where(inside, np.interp(series.t, pt[known], pv[known]), np.nan)
    columns = {k: v for k, v in series.columns.items() if k != "live_bytes"}  # the root's only
    return Series(series.t, {**columns, "rss_bytes": series.rss + kids}), count


def with_descendants(store: Store, run: Run, series: Series) -> Series:
    """Add `descendants` (how many processes the target had started and still ran, read every
    few seconds when recorded without --children), each count held until the next: pages it
    shares with them become its own when they exit, which is no copy-on-write."""
    from memsleuth.sources.procfs import LEFT_OUT_COUNT

    counts = store.load_points(run.id, LEFT_OUT_COUNT).get(LEFT_OUT_COUNT, ())
    t0 = store.first_sample_time(run.id)
    if not counts or t0 is None or len(series) == 0:
        return series
    pt = np.array([p[0] - t0 for p in counts])
    at = np.searchsorted(pt, series.t, side="right") - 1
    held = np.where(at >= 0, np.array([p[1] for p in counts])[np.maximum(at, 0)], np.nan)
    return Series(series.t, {**series.columns, "descendants": held})


def with_tasks(store: Store, run: Run, series: Series) -> Series:
    """Add `tasks` (pending asyncio tasks, all creation sites together) when the probe counted
    them: a program that leaks tasks had read `plateau` while its culprits named the leak."""
    groups = store.load_points(run.id, "tasks:")
    t0 = store.first_sample_time(run.id)
    if not groups or t0 is None or len(series) == 0:
        return series
    # Every light census counts threads (the main one at least) and writes no task group it
    # found empty: its times are the census clock, and a census without tasks counts 0.
    totals = {
        t: 0.0 for points in store.load_points(run.id, "threads:").values() for t, _ in points
    }
    for points in groups.values():
        for t, n in points:
            totals[t] = totals.get(t, 0.0) + n
    if len(totals) < 2:
        return series
    pt = np.array(sorted(totals)) - t0
    pv = np.array([totals[t] for t in sorted(totals)])
    return Series(series.t, {**series.columns, "tasks": _at_samples(series, pt, pv)})


def with_goroutines(store: Store, run: Run, series: Series) -> Series:
    """Add `goroutines` (a Go program's, from its goroutine profiles: `record --heap-profile`
    with Go's URL): goroutines that never end are Go's task leak."""
    from memsleuth.analysis.profiles import GOROUTINES

    counts = next(iter(store.load_points(run.id, GOROUTINES).values()), ())
    t0 = store.first_sample_time(run.id)
    if len(counts) < 2 or t0 is None or len(series) == 0:
        return series
    pt = np.array([p[0] - t0 for p in counts])
    pv = np.array([p[1] for p in counts])
    return Series(series.t, {**series.columns, "goroutines": _at_samples(series, pt, pv)})


def _at_samples(series: Series, pt: FloatArray, pv: FloatArray) -> FloatArray:
    """Counts read at times `pt` (seconds from the first sample), each at the first sample
    since, none between: a count held between censuses (seconds apart in a big heap) drew flat
    treads that read as growth stopping, and a leak of tasks flipped between `task-leak` and
    `leak` from one second to the next."""
    at = np.searchsorted(series.t, pt, side="left")
    keep = at < len(series)
    out = np.full(len(series), np.nan)
    out[at[keep]] = pv[keep]  # two readings before one sample: the later one stands
    return out


def with_live_bytes(store: Store, run: Run, series: Series) -> Series:
    """Add `live_bytes` (RSS less what malloc holds free inside its heap) when the probe or
    `--malloc-stats` read the target's allocator: RSS growing while this stays flat is
    fragmentation, not a leak.

    Free chunks count only as far as RSS holds more than malloc's bytes in use and the memory
    outside malloc at the first reading (code, libraries: what RSS held beside malloc's bytes
    then): malloc_trim and madvise give a free chunk's pages back and leave it free, so the
    free bytes can grow past what is resident. A leak of 703 MiB/h beside bursts freed and
    trimmed each second had read `fragmentation`, "live allocations fell 1.04 GiB/h while RSS
    grew"."""
    t0 = store.first_sample_time(run.id)
    if t0 is None or len(series) == 0:
        return series

    def column(name: str) -> tuple[FloatArray, FloatArray] | None:
        points = next(
            iter(store.load_points(run.id, f"native:{name} [pid {run.pid}]").values()), ()
        )
        if len(points) < 2:
            return None
        return np.array([p[0] - t0 for p in points]), np.array([p[1] for p in points])

    free = column("malloc_free")
    if free is None:
        return series
    pt, pv = free
    inside = (series.t >= pt[0]) & (series.t <= pt[-1])
    held_free = np.interp(series.t, pt, pv)
    inuse = column("malloc_inuse")
    if inuse is not None:
        outside = series.rss - np.interp(series.t, *inuse)  # resident free chunks and the rest
        first = int(np.argmax(inside))
        rest = max(0.0, float(outside[first] - held_free[first]))
        held_free = np.minimum(held_free, np.maximum(outside - rest, 0.0))
    live = np.where(inside, series.rss - held_free, np.nan)
    return Series(series.t, {**series.columns, "live_bytes": live})
