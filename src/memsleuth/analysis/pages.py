"""Pages RSS holds that are not growth of the program's own: pages the kernel reclaims (mapped
files, MADV_FREE), and pages coming unshared after fork (copy-on-write)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsleuth.analysis.growth import Growth, read_growth
from memsleuth.analysis.thresholds import ALPHA_HINT, MIN_GROWTH_BYTES, MIN_SAMPLES, PAGE_BYTES
from memsleuth.analysis.trend import bin_series, fit_trend
from memsleuth.model import FloatArray, Series
from memsleuth.units import format_bytes, format_duration, format_rate

# A leak whose growth is at least this share pages the kernel takes back when memory is short
# is judged without them: pages of mapped files (RssFile: a file read through mmap, a
# program's code paged in; clean ones are dropped, dirty ones written back), and pages freed
# with MADV_FREE (LazyFree). A C program reading a 400 MB file through mmap, its anonymous
# memory flat, had read "leak, +10.3 GiB/h, limit reached in 4.3 min"; one freeing every
# chunk with MADV_FREE, "leak +14.1 GiB/h" at 99%. Half: the pages then carry more of the
# growth than everything else.
MAPPED_SHARE = 0.5
# Copy-on-write: memory shared with another process (a parent after fork, its other workers)
# comes unshared as this one writes it, a page copied for each page written. The processes
# then hold that much more between them while neither's RSS moves: a pre-fork server's worker
# rewriting 192 MiB of its parent's state had read `stable`. Said when the private part of RSS
# (USS) rose, against RSS, by this share of RSS at least (and MIN_GROWTH_BYTES), gradually:
# sharers exiting make their pages private at once, a jump, and no memory is added then.
UNSHARED_SHARE = 0.05
# ... and only when those pages grow themselves, at this one-sided level (ALPHA_HINT): the
# claim is about their trend, and a claim made once per recording, not at every sample.
RECLAIMABLE_ALPHA = ALPHA_HINT
# The columns of such pages: (column, what they are, the judged memory's name).
RECLAIMABLE = (
    (
        "file_bytes",
        "pages of mapped files (a file read or written through mmap, code paged in)",
        "RSS less mapped files",
    ),
    (
        "lazyfree_bytes",
        "pages freed with MADV_FREE (an allocator returning memory lazily: jemalloc, mimalloc, "
        "Go before 1.16)",
        "RSS less lazily freed pages",
    ),
)


def reclaimable_pages(series: Series, g: Growth) -> tuple[str, FloatArray, str, str] | None:
    """(column, its pages at every sample, why, the judged memory's name) when a leak of RSS is
    judged without pages the kernel reclaims (RECLAIMABLE), because they carry at least
    MAPPED_SHARE of its growth over the trended window; None otherwise. A column read on a
    budget (LazyFree, from smaps_rollup) is drawn in a line between its readings, and memory
    is judged up to the last of them."""
    if g.kind != "leak" or g.fit is None or g.fit.slope <= 0:
        return None
    for column, what, subject in RECLAIMABLE:
        pages = series.get(column)
        if pages is None:
            continue
        read = ~np.isnan(pages)
        k = (series.t >= g.fit.t0) & read
        if np.count_nonzero(k) < MIN_SAMPLES:
            continue
        # The pages' own trend, as memory's is read (bins, Theil–Sen, Mann–Kendall): a column
        # that swings (memory freed lazily and reused every cycle) has no slope to give, where
        # a least-squares line through its swings had called 54% of a malloc leak lazily freed.
        binned = bin_series(series.t[k], pages[k], resolution=PAGE_BYTES)
        own = fit_trend(binned.t, binned.median, resolution=PAGE_BYTES)
        if own is None or own.p_up > RECLAIMABLE_ALPHA:
            continue
        share = own.slope / g.fit.slope
        if share < MAPPED_SHARE:
            continue
        why = (
            f"RSS grew {format_rate(g.fit.slope * 3600)}, {min(share, 1.0):.0%} of it {what}, "
            "which the kernel takes back when memory is short: judged without them"
        )
        # Between readings, in a line; outside them, unknown (held flat past the last one, the
        # RSS it had not taken out yet read as growth at the recording's end).
        t_read = series.t[read]
        every = np.interp(series.t, t_read, pages[read])
        every[(series.t < t_read[0]) | (series.t > t_read[-1])] = np.nan
        return column, np.asarray(every, dtype=np.float64), why, subject
    return None


@dataclass(frozen=True, slots=True)
class Unshared:
    """Memory coming unshared (copy-on-write), read from USS against RSS."""

    per_hour: float  # the private part's rate now (0 once it levelled off)
    ceiling: float  # RSS: all of it private, the most USS can reach
    why: str


def unshared(series: Series, tree: bool = False) -> Unshared | None:
    """Copy-on-write (UNSHARED_SHARE): USS less RSS, how much of RSS is shared, negated,
    read from its lowest point (most shared; a fork) at the samples that read USS (smaps_rollup,
    on a budget). A gradual rise there is pages copied as they are written; one jump, half the
    rise between two readings, is not, nor a rise while processes it had started exited
    (`descendants` falling: their pages became its own, and no memory was added).

    What the copies add: for one process, up to the rise (the others holding its pages are
    not read); for a tree, what its PSS sum rose by (each page counted once; its USS sum
    counts a page copied between two workers twice, as both copies become private)."""
    rss, uss = series.get("rss_bytes"), series.get("uss_bytes")
    if rss is None or uss is None:
        return None
    read = ~np.isnan(rss) & ~np.isnan(uss)
    if int(np.count_nonzero(read)) < MIN_SAMPLES:
        return None
    t, own, held = series.t[read], uss[read], rss[read]
    private = own - held
    low = int(np.argmin(private))
    rise = float(private[-1] - private[low])
    if t.size - low < MIN_SAMPLES or rise < max(MIN_GROWTH_BYTES, UNSHARED_SHARE * held[-1]):
        return None
    if own[-1] - own[low] < 0.5 * rise:  # RSS fell (shared pages dropped): nothing was added
        return None
    if float(np.max(np.diff(private[low:]))) >= 0.5 * rise:  # at once, between two readings
        return None
    others = series.get("descendants")
    if others is not None:  # processes it had started exited meanwhile: their pages, not copies
        since = others[(series.t >= t[low]) & ~np.isnan(others)]
        if since.size and bool(np.any(np.diff(since) < 0)):
            return None
    g = read_growth(t[low:], private[low:])
    if g.kind not in ("leak", "plateau"):
        return None
    pss = series.get("pss_bytes")
    both = pss[read] if tree and pss is not None else None
    if both is not None and not (np.isnan(both[low]) or np.isnan(both[-1])):
        added = (
            f"the tree holds {format_bytes(max(float(both[-1] - both[low]), 0.0))} more (its "
            "PSS, each page counted once)"
        )
    else:
        added = f"together they hold up to {format_bytes(rise)} more"
    subject = "the tree's private memory (USS, summed)" if tree else "private memory (USS)"
    shared = max(float(-private[-1]), 0.0)
    still = (
        f"{format_bytes(shared)} of it still shared"
        if shared >= MIN_GROWTH_BYTES
        else "all of it private now"
    )
    why = (
        f"{subject} grew {format_bytes(rise)} in the "
        f"{format_duration(t[-1] - t[low])} since it was most shared "
        f"({format_bytes(own[low])} → {format_bytes(own[-1])}) while RSS stayed "
        f"near {format_bytes(held[-1])}: pages it shares with another process (its parent or "
        "workers after fork) are copied as either of them writes to them (copy-on-write), so "
        f"{added}, which no RSS shows. It stops at RSS "
        f"({still}); in Python, reference counts write to every object read, and gc.freeze() "
        "before fork spares what the collector writes"
    )
    rate = g.fit.slope * 3600.0 if g.kind == "leak" and g.fit is not None else 0.0
    return Unshared(rate, float(held[-1]), why)
