"""A soak's outcome: the numbers, the verdict, the culprits, and the text that explains them."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from memsleuth.model import Culprit, FloatArray, Trend, Verdict, VerdictName
from memsleuth.soak import stats
from memsleuth.soak.census import ContainerGrowth, SiteGrowth
from memsleuth.soak.resources import Counts, Leftover, by_site, describe
from memsleuth.units import format_ci

# RSS is page-granular and moves with glibc arenas: it only fails a soak when, at the lower
# bound of its slope, it would still grow this much over the measured cycles.
RSS_MIN_GROWTH_BYTES = 1 << 20
# Heap growth is a bounded cache filling only when the bounded containers that grew carry at
# least this share of it, by their entries' sampled size (as the verdict's BOUNDED_SHARE): a
# leak into a list no module names, beside re's cache filling, had passed as that filling.
FILL_SHARE = 0.5
# A site whose traced bytes grow while it holds at most this many blocks more over the whole
# soak is a buffer growing in place (a bytearray or list extended, a str appended to): realloc
# keeps its one block, so the live block count cannot show it.
IN_PLACE_BLOCKS = 2
# ... unless tracemalloc traces this many more blocks per cycle than are live: objects older than
# the soak are being replaced by new ones (a full cache evicting), and the one container holding
# them, resized once, had read as a buffer growing in place.
TURNOVER_BLOCKS = 0.5
# Heap growth under a byte per cycle, at its estimate, is no doubt worth a soak's warning (clean
# pytest tests had read "may grow 0.1 B per cycle, within the noise (±37 B)", 3 runs in 6): the
# least a leak keeps is a pointer (8 B) a call, or an object every few calls.
DOUBT_BYTES = 1.0
# The sites shown among the culprits, of the largest ones looked at for growth in place.
SITE_CULPRITS = 3


@dataclass(frozen=True, slots=True)
class SoakLimits:
    max_bytes_per_cycle: float = 0.0
    max_latency_ratio: float | None = None
    max_retained_bytes: int | None = None  # None: no teardown, no floor check


@dataclass(frozen=True, slots=True)
class SoakResult:
    """What `soak()` found. `ok` is the pass/fail; `explain()` says why in words."""

    ok: bool
    name: str
    verdict: Verdict
    cycles: int
    warmup_cycles: int  # given
    detected_warmup_cycles: int  # given + the plateau found in the measured cycles
    bytes_per_cycle: float  # Python heap (tracemalloc), after the warm-up
    bytes_per_cycle_ci: tuple[float, float]
    rss_bytes_per_cycle: float
    rss_bytes_per_cycle_ci: tuple[float, float]
    warmup_growth_bytes: float  # what the plateau added before memory went flat
    latency_ratio: float | None
    cycle_s: float  # median duration of a cycle
    threads: tuple[int, int]  # (before, after)
    fds: tuple[int, int]
    tasks: tuple[int, int]
    children: tuple[int, int]
    leftovers: tuple[Leftover, ...]
    culprits: tuple[Culprit, ...]
    retained_bytes: int | None  # Python heap after teardown minus before setup
    failures: tuple[str, ...]  # one line per failed check
    limits: SoakLimits
    notes: tuple[str, ...] = ()  # why the verdict is what it is, beyond the failures
    # Per batch: cycles done, Python heap bytes, RSS bytes, unix time; for plots and the store.
    points: tuple[tuple[float, float, float, float], ...] = ()
    batch_latency_s: tuple[float, ...] = ()  # median cycle duration of each batch
    started_at: float = 0.0

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        from memsleuth.soak.text import explain

        return explain(self)


def _culprits(
    containers: list[ContainerGrowth],
    sites: list[SiteGrowth],
    leftovers: tuple[Leftover, ...],
    cycles: int,
    per_hour_factor: float,
) -> tuple[Culprit, ...]:
    out: list[Culprit] = []
    total = sum(c.per_cycle * c.entry_bytes for c in containers) or 1.0
    for c in containers:
        unit = "entries"
        out.append(
            Culprit(
                name=c.name,
                kind="container",
                growth=f"{c.kind} {c.before:,} → {c.after:,} entries, +{c.per_cycle:.3g} per call",
                growth_per_hour=c.per_cycle * per_hour_factor,
                unit=unit,
                share=c.per_cycle * c.entry_bytes / total,
                evidence=(
                    f"+{c.per_cycle:.2g} {c.kind} {'entry' if c.per_cycle == 1 else 'entries'}"
                    f" in `{c.name}` per call",
                    f"~{c.entry_bytes:.0f} bytes per entry (sampled)",
                ),
                bytes_estimate=c.entry_bytes * (c.after - c.before) or None,
            )
        )
    site_total = sum(s.bytes_per_cycle for s in sites) or 1.0
    for s in sites:
        out.append(
            Culprit(
                name=s.where,
                kind="allocation-site",
                growth=f"+{s.bytes_per_cycle:.0f} B and +{s.blocks_per_cycle:.2g} blocks per call",
                growth_per_hour=s.bytes_per_cycle * per_hour_factor,
                unit="bytes",
                share=s.bytes_per_cycle / site_total,
            )
        )
    kinds = {"thread": "threads", "fd": "fds", "task": "tasks", "child": "threads"}
    for kind, where, items in by_site(leftovers):  # one culprit per site, as `describe` has
        n = len(items)
        out.append(
            Culprit(
                name=where,
                kind=kinds[kind],
                growth=f"{n} {kind}{'s' if n > 1 else ''} left behind (e.g. {items[0].name})",
                growth_per_hour=n / max(cycles, 1) * per_hour_factor,
                unit=kinds[kind],
                share=n / len(leftovers),
                evidence=tuple(describe(items)),
            )
        )
    return tuple(out)


def _untold(
    per_cycle: float, live: float, traced: float, turnover: bool, in_place: list[SiteGrowth]
) -> str:
    """Why traced bytes that rise beyond doubt, while the live block count does not, are not
    yet a leak: objects older than the soak replaced by new ones, or too little in place."""
    words = (
        f"traced bytes rise {per_cycle:.1f} B per cycle but the live block count does not "
        f"({live:+.3f} blocks per cycle)"
    )
    if turnover:
        words += (
            f", while tracemalloc traces {traced:.2g} more a cycle: objects older than the "
            "soak being replaced by new ones (a full cache turning over; tracemalloc cannot "
            "see them freed)"
        )
    elif not in_place:
        return words + ", and no line of yours grows a buffer in place"
    if in_place:
        grown = ", ".join(f"{s.where} (+{s.bytes_per_cycle:.0f} B per cycle)" for s in in_place)
        words += f"; a buffer growing in place at {grown} carries under half of it"
    return words


def slowing_note(ratio: float | None, units: str, option: str) -> str:
    """Why a soak within its limits is still a `degradation` (seed 001)."""
    return (
        f"the last {units} are {ratio or 0.0:.2f}× slower than the first, and rising as a "
        f"trend while memory is not: a degradation, not a leak (set {option} to fail on it)"
    )


def latency_limit(
    durations: FloatArray, ratio: float | None, limit: float | None, units: str
) -> tuple[str | None, str | None]:
    """(failure, evidence) of a max_latency_ratio: a failure when the last `units` are slower
    than the first by more than `limit` and rising as a trend; past the limit without a trend,
    evidence only (one slow spell, as a busy machine gives)."""
    if limit is None or ratio is None or ratio <= limit:
        return None, None
    words = f"the last {units} are {ratio:.2f}× slower than the first (allowed {limit:g}×)"
    if stats.slower_than(durations, limit):
        return f"{words}, and rising as a trend", None
    return None, f"{words}, but with no trend: a slow spell, not a degradation"


def build_result(
    *,
    label: str,
    cycles: int,
    warmup: int,
    limits: SoakLimits,
    done: FloatArray,
    heap: FloatArray,
    blocks: FloatArray,
    rss: FloatArray,
    wall: FloatArray,
    durations: FloatArray,
    containers: list[ContainerGrowth],
    sites: list[SiteGrowth],
    traced_blocks_per_cycle: float,
    full_caches: list[str],
    leftovers: tuple[Leftover, ...],
    before: Counts,
    after: Counts,
    retained_bytes: int | None,
    started: float,
) -> SoakResult:
    """Judge the measured batches against the limits (pure, apart from building values)."""
    allowance = limits.max_bytes_per_cycle
    g = stats.growth(done, heap, allowance)
    r = stats.growth(done, rss, allowance)
    ratio = stats.latency_ratio(durations)
    span = float(wall[-1] - wall[0]) if wall.size > 1 else 0.0
    per_hour = cycles / span * 3600.0 if span > 0 else 0.0
    failures: list[str] = []
    evidence: list[str] = []
    live = stats.growth(done, blocks, 0.0)
    # tracemalloc cannot see objects older than the soak being freed: when a full cache
    # replaces old entries by new ones, traced bytes rise although nothing accumulates. The
    # live block count (sys.getallocatedblocks) has no such blind spot, so a heap leak needs
    # both to grow, or the growth to be sites' buffers growing in place: those add bytes but
    # no blocks (a bytearray extended by 100 B a call had read `inconclusive` forever, and
    # passed under pytest), where a cache turning over adds a traced block a call. While one
    # turns over, the container holding its entries, rebuilt once from an untraced table, is
    # one block more at its site: only a site with exactly the blocks it had grew in place.
    turnover = traced_blocks_per_cycle - live.per_cycle >= TURNOVER_BLOCKS
    most = 0.5 if turnover else IN_PLACE_BLOCKS
    in_place = [
        s for s in sites if s.bytes_per_cycle > 0 and abs(s.blocks_per_cycle) * cycles <= most
    ]
    grown_in_place = (
        bool(in_place) and sum(s.bytes_per_cycle for s in in_place) >= FILL_SHARE * g.per_cycle
    )
    heap_grows = g.grows(allowance) and (live.grows(0.0) or grown_in_place)
    # Every container that grew holds at most so many entries (an lru_cache's maxsize): a
    # cache filling, not a leak (a full lru_cache(maxsize=1000) had failed the soak).
    filling = [c for c in containers if c.bound is not None]
    sized = all(c.entry_bytes > 0 for c in filling)  # an lru_cache's entries are not sampled
    carried = sum(c.per_cycle * c.entry_bytes for c in filling)
    fill = (
        heap_grows
        and bool(filling)
        and len(filling) == len(containers)
        and (not sized or carried >= FILL_SHARE * g.per_cycle)
    )
    too_few = stats.too_few_to_tell(int(done.size))
    heap_leak = heap_grows and not fill and not too_few
    rss_leak = (
        not heap_leak
        and not too_few
        and r.grows(allowance)
        and r.ci[0] * r.span >= RSS_MIN_GROWTH_BYTES
    )
    # Growth seen over so few batches, beyond doubt or not, is no verdict yet.
    early = too_few and (heap_grows or r.grows(allowance)) and not fill
    unsure = not heap_leak and not fill and g.ci[0] > allowance and g.per_cycle >= DOUBT_BYTES
    # RSS rising beyond doubt but by less than the bar over this soak: not "stable" (a C
    # extension keeping 2 kB a call had passed as `ok (stable)` at 1,000 cycles).
    rss_unsure = not (heap_grows or rss_leak) and r.ci[0] > max(allowance, 0.0) and r.span > 0
    untold = g.grows(allowance) and not heap_grows  # bytes rise beyond doubt, blocks do not
    # ... as a full bounded cache replaces entries older than the soak with new ones, traced
    # as they come: bounded by the cache, no doubt (an evicting lru_cache had ended
    # `inconclusive` in 29 soaks of 30, a warning in every pytest run).
    evicting = (
        untold
        and bool(full_caches)
        and not in_place
        and traced_blocks_per_cycle > max(live.per_cycle, 0.0)
    )
    if evicting:
        evidence.append(
            f"traced bytes rise {g.per_cycle:.1f} B per cycle but no more blocks are live: a "
            "full bounded cache replacing entries older than the soak (tracemalloc cannot see "
            f"those freed), bounded by it, not a leak (full throughout: {', '.join(full_caches)})"
        )
    elif untold:
        evidence.append(
            _untold(g.per_cycle, live.per_cycle, traced_blocks_per_cycle, turnover, in_place)
        )
    if heap_leak:
        where = ""
        if grown_in_place and not live.grows(0.0):
            sites_in_place = ", ".join(s.where for s in in_place)
            where = (
                f", in a buffer growing in place at {sites_in_place} (its bytes grow, "
                "not its blocks)"
            )
        failures.append(
            f"the Python heap grows {g.per_cycle:.0f} B per cycle ({format_ci(g.ci, '.0f')}), "
            f"above the allowance of {allowance:g} B{where}"
        )
    if rss_leak:
        failures.append(
            f"RSS grows {r.per_cycle:.0f} B per cycle ({format_ci(r.ci, '.0f')}) "
            "while the Python heap does not: native memory (a C extension, malloc) or "
            "fragmentation"
        )
    if limits.max_retained_bytes is not None and retained_bytes is not None:
        allowed = limits.max_retained_bytes + allowance * cycles
        if retained_bytes > allowed:
            failures.append(
                f"memory did not return to its floor after teardown: {retained_bytes:,} B "
                f"retained (allowed {allowed:,.0f} B)"
            )
    slower, spell = latency_limit(durations, ratio, limits.max_latency_ratio, "cycles")
    if slower:
        failures.append(slower)
    if spell:
        evidence.append(spell)
    kinds_left = sorted({item.kind for item in leftovers})
    for kind in kinds_left:
        n = sum(1 for item in leftovers if item.kind == kind)
        noun = {"thread": "thread", "fd": "fd", "task": "asyncio task", "child": "child process"}[
            kind
        ]
        plural = "child processes" if kind == "child" else f"{noun}s"
        failures.append(f"{n} {noun if n == 1 else plural} left behind after the soak")

    # A warm-up is growth that stopped: a heap that fell before going flat had read "warm-up:
    # the heap grew -6,092 B in the first 250 measured cycles".
    warm_detected = (
        g.start_cycle if g.start_index > 0 and g.warmup_growth > 0 and not heap_leak else 0.0
    )
    name: VerdictName
    # Leaking handles first, as `analyze` names them: they explain the memory (a thread
    # started per call grows the heap too, and had been called a plain leak).
    if "thread" in kinds_left or "child" in kinds_left:
        name = "thread-leak"
    elif "task" in kinds_left:
        name = "task-leak"
    elif "fd" in kinds_left:
        name = "fd-leak"
    elif heap_leak or rss_leak or any(f.startswith("memory did not return") for f in failures):
        name = "leak"
    elif any(f.startswith("the last cycles") for f in failures):
        name = "degradation"
    elif stats.slowing(durations):
        name = "degradation"
        evidence.append(slowing_note(ratio, "cycles", "max_latency_ratio"))
    elif early:
        name = "inconclusive"
        fewest = 2 * stats.MIN_POINTS - 1
        more = (
            f"soak at least {fewest} cycles after the warm-up"
            if cycles < fewest
            else f"measure them in at least {fewest} batches"
        )
        evidence.append(
            f"memory grew over {cycles} cycles in {done.size - 1} batches, too few to tell a "
            f"leak from a warm-up that stops (a lazy init, a cache filling): {more} to tell"
        )
    elif unsure and not evicting:
        name = "inconclusive"
        if untold:
            replaced = ": once the older objects are all replaced, the traced heap stops rising"
            evidence.append("soak more cycles to tell" + (replaced if turnover else ""))
        else:
            evidence.append(
                f"the heap may grow {g.per_cycle:.1f} B per cycle, but that is within the "
                f"noise (±{g.noise:,.0f} B around the trend): soak more cycles to tell"
            )
    elif rss_unsure:
        name = "inconclusive"
        need = math.ceil(cycles * RSS_MIN_GROWTH_BYTES / (r.ci[0] * r.span))
        evidence.append(
            f"RSS grows {r.per_cycle:.0f} B per cycle ({format_ci(r.ci, '.0f')}) while the "
            "Python heap does not: native memory (a C extension, malloc) or fragmentation, "
            f"but under {RSS_MIN_GROWTH_BYTES >> 20} MiB over this soak, within what RSS moves "
            f"by on its own: soak about {need:,} cycles to tell"
        )
    elif fill:
        name = "plateau"
        top = filling[0]
        evidence.append(
            f"the heap grew with {top.name}, which holds at most {top.bound:,} entries "
            f"({top.after / max(top.bound or 1, 1):.0%} full): a cache filling, not a leak"
        )
    elif warm_detected > 0:
        name = "plateau"
        evidence.append(
            f"warm-up: the heap grew {g.warmup_growth:,.0f} B in the first "
            f"{warm_detected:,.0f} measured cycles, then stayed flat (a cache filling: not a leak)"
        )
    else:
        name = "stable"
    notes = tuple(evidence)
    evidence.append(
        f"Python heap: {g.per_cycle:+.1f} B per cycle over the last {g.points} batches "
        f"({format_ci(g.ci, '+.1f')})"
    )
    evidence.append(f"RSS: {r.per_cycle:+.1f} B per cycle ({format_ci(r.ci, '+.1f')})")
    culprits = _culprits(containers, sites[:SITE_CULPRITS], leftovers, cycles, per_hour)
    cycle_s = float(np.median(durations)) if durations.size else 0.0
    t0 = float(done[g.start_index]) if done.size else 0.0
    verdict = Verdict(
        verdict=name,
        confidence=0.95,
        evidence=tuple(failures) + tuple(evidence),
        growth_bytes_per_hour=g.per_cycle * per_hour,
        growth_ci_bytes_per_hour=(g.ci[0] * per_hour, g.ci[1] * per_hour),
        warmup_end_s=float(wall[g.start_index] - wall[0]) if warm_detected else None,
        would_change=(
            "a longer soak (more cycles) narrows the interval",
            f"a larger max_bytes_per_cycle than {allowance:g}",
        ),
        trend=Trend(t0, float(done[-1]), float(heap[g.start_index]), g.per_cycle)
        if done.size
        else None,
        metric="python_bytes",
        growth_per_work=g.per_cycle,
        latency_ratio=ratio,
        thread_growth_per_hour=None,
        culprits=culprits,
        samples=int(done.size),
        span_s=span,
    )
    bounds = np.linspace(0, durations.size, done.size).astype(np.int64)
    batch_lat = tuple(
        float(np.median(durations[a:b])) if b > a else 0.0 for a, b in itertools.pairwise(bounds)
    )
    return SoakResult(
        ok=not failures,
        name=label,
        verdict=verdict,
        cycles=cycles,
        warmup_cycles=warmup,
        detected_warmup_cycles=warmup + int(warm_detected),
        bytes_per_cycle=g.per_cycle,
        bytes_per_cycle_ci=g.ci,
        rss_bytes_per_cycle=r.per_cycle,
        rss_bytes_per_cycle_ci=r.ci,
        warmup_growth_bytes=g.warmup_growth if warm_detected else 0.0,
        latency_ratio=ratio,
        cycle_s=cycle_s,
        threads=(before.threads, after.threads),
        fds=(before.fds, after.fds),
        tasks=(before.tasks, after.tasks),
        children=(before.children, after.children),
        leftovers=leftovers,
        culprits=culprits,
        retained_bytes=retained_bytes,
        failures=tuple(failures),
        limits=limits,
        notes=notes,
        points=tuple(
            (float(a), float(b), float(c), float(d))
            for a, b, c, d in zip(done, heap, rss, wall, strict=True)
        ),
        batch_latency_s=batch_lat,
        started_at=started,
    )
