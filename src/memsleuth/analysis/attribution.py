"""From what the probe stored (named series and reports) to ranked culprits. Pure: no I/O.

A series is a culprit when it grows steadily (Kendall's τ on time, a Theil–Sen slope) and has not
levelled off (the last third still grows); it is ranked by its share of the memory growth.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from memsleuth.analysis.thresholds import MIN_SAMPLES
from memsleuth.analysis.trend import read_no_more
from memsleuth.model import PROCESS_PREFIX, Culprit, FloatArray
from memsleuth.units import format_bytes, format_count, format_duration, format_per_hour

Points = tuple[tuple[float, float], ...]
Event = tuple[float, str, dict[str, Any]]

_PID = re.compile(r"^(?P<name>.*) \[pid (?P<pid>\d+)\]$")
# Rough RSS per leaked thread (stack pages touched + thread state) and per pending task.
THREAD_BYTES = 21 * 1024
TASK_BYTES = 2 * 1024
MAX_CULPRITS = 10
# Minimum growth over the run for each unit to count at all.
# "heavy entries": a container whose few entries are heavy (a list of 4 MB frames) is judged
# by what its new entries weigh, MIN_NATIVE_BYTES or more, not by their number.
MIN_GROWTH = {
    "entries": 32.0,
    "heavy entries": 1.0,
    "objects": 1000.0,
    "threads": 3.0,
    "tasks": 10.0,
    "fds": 5.0,
}
MIN_NATIVE_BYTES = 4 * 1024 * 1024
# malloc_trim(0) giving back this share of RSS or more: the allocator held that much freed
# memory (FACTS: a heap with 36 MiB live held 649 MiB of RSS, and gave back 529 MiB).
TRIM_RETAINED_SHARE = 0.2
# Of containers reached the same way (`over N instances`), one holding this share of their
# growth is the one that grows: a slow client's queue, a session never closed.
ONE_INSTANCE = 0.8


@dataclass(frozen=True, slots=True)
class ProbeData:
    """A run's probe data as the store gives it back."""

    points: Mapping[str, Points]  # series name ("container:... [pid N]") -> (unix t, value)
    events: Sequence[Event]  # (unix t, kind, payload)
    t0: float  # unix time the run started; culprit points are seconds from it
    rss_growth_bytes: float | None = None  # growth of the target's RSS floor over the run


@dataclass(frozen=True, slots=True)
class Growth:
    """How one series grew: fitted, tested for steadiness and for levelling off."""

    first: float
    last: float
    slope_per_s: float
    span_s: float
    tau: float
    up_share: float  # share of steps that went up
    levelled: bool

    @property
    def total(self) -> float:
        return self.slope_per_s * self.span_s


def measure(points: Points) -> Growth | None:
    """The growth of a series, or None when too short to say."""
    if len(points) < 4:
        return None
    t = np.array([p[0] for p in points], dtype=np.float64)
    v = np.array([p[1] for p in points], dtype=np.float64)
    span = float(t[-1] - t[0])
    if span <= 0:
        return None
    if np.all(v == v[0]):
        return Growth(float(v[0]), float(v[-1]), 0.0, span, 0.0, 0.0, True)
    slope = float(stats.theilslopes(v, t)[0])
    tau = float(stats.kendalltau(t, v)[0])
    steps = np.diff(v)
    moved = steps[steps != 0]
    up = float(np.mean(moved > 0)) if moved.size else 0.0
    third = max(2, len(v) // 3)
    early = _slope(t[:third], v[:third])
    late = _slope(t[-third:], v[-third:])
    # Levelled off: the last third grows under a sixth as fast as the first third did (robust
    # slopes, so one drain or GC dip late in the run does not count as levelling off).
    levelled = bool(early > 0 and late < early / 6)
    return Growth(float(v[0]), float(v[-1]), slope, span, tau, up, levelled)


def _slope(t: FloatArray, v: FloatArray) -> float:
    if t.size < 2 or float(t[-1] - t[0]) <= 0:
        return 0.0
    return float(stats.theilslopes(v, t)[0])


def is_steady(g: Growth | None, unit: str) -> bool:
    if g is None or g.levelled or g.slope_per_s <= 0:
        return False
    if g.tau < 0.5 or g.total < MIN_GROWTH.get(unit, 0.0):
        return False
    return g.total >= 0.2 * max(g.first, 1.0) or g.total >= 10 * MIN_GROWTH.get(unit, 1.0)


def floor_growth(t: npt.ArrayLike, rss: npt.ArrayLike, chunks: int = 10) -> float:
    """Bytes the RSS floor (minima of `chunks` slices, so GC peaks do not count) grew over t."""
    ta = np.asarray(t, dtype=np.float64)
    va = np.asarray(rss, dtype=np.float64)
    keep = ~np.isnan(va)
    ta, va = ta[keep], va[keep]
    if ta.size < 2:
        return 0.0
    if ta.size < 2 * chunks:
        return float(va[-1] - va[0])
    parts = np.array_split(np.arange(ta.size), chunks)
    mt = np.array([ta[p[np.argmin(va[p])]] for p in parts])
    mv = np.array([va[p].min() for p in parts])
    slope = float(stats.theilslopes(mv, mt)[0])
    return slope * float(ta[-1] - ta[0])


def _split(points: Mapping[str, Points]) -> dict[tuple[str, int], dict[str, Points]]:
    """{(prefix, pid): {name: points}} from 'prefix:name [pid N]' series names."""
    out: dict[tuple[str, int], dict[str, Points]] = {}
    for series, pts in points.items():
        prefix, _, rest = series.partition(":")
        m = _PID.match(rest)
        name, pid = (m["name"], int(m["pid"])) if m else (rest, 0)
        out.setdefault((prefix, pid), {})[name] = pts
    return out


def _rel(points: Points, t0: float) -> Points:
    return tuple((round(t - t0, 3), v) for t, v in points)


def _rate(per_s: float, unit: str = "") -> str:
    per_min = per_s * 60
    if unit == "bytes":
        return f"{format_bytes(per_min, signed=True)}/min"
    return f"{format_count(per_min, signed=True)}/min"


def _steady(groups: Mapping[str, Points], unit: str) -> Iterator[tuple[str, Points, Growth]]:
    """(name, points, growth) of the series that grow steadily (`is_steady`)."""
    for name, pts in groups.items():
        g = measure(pts)
        if g is not None and is_steady(g, unit):
            yield name, pts, g


def _bytes_grown(
    name: str, kind: str, g: Growth, what: str, why: tuple[str, ...], pts: Points, t0: float
) -> Culprit:
    """A culprit measured in bytes: "22.0 MiB → 27.7 MiB RSS, +11.4 MiB/min"."""
    return Culprit(
        name=name,
        kind=kind,
        growth=f"{format_bytes(g.first)} → {format_bytes(g.last)} {what}, "
        f"{_rate(g.slope_per_s, 'bytes')}",
        growth_per_hour=g.slope_per_s * 3600,
        unit="bytes",
        share=g.total,
        evidence=(_tau(g), *why),
        bytes_estimate=g.last,
        points=_rel(pts, t0),
    )


def _tau(g: Growth) -> str:
    return f"steady: Kendall τ {g.tau:.2f}, up in {g.up_share:.0%} of the steps"


def process_culprits(
    points: Mapping[str, Points], t0: float, rss_growth: float | None
) -> tuple[Culprit, ...]:
    """The processes of a tree (recorded with --children) whose RSS grows steadily, largest
    first: which worker of a pre-fork server leaks (the tree's rate alone had named none)."""
    out = []
    latest = max((p[-1][0] for p in points.values() if p), default=0.0)
    # Seen at least as often as a verdict needs to trend (MIN_SAMPLES): a pool's new worker,
    # read 4 times while it filled its cache as every worker before it had, had been named
    # at +14.1 GiB/h and 100% beside a `stable` verdict.
    seen = {name: pts for name, pts in points.items() if len(pts) >= MIN_SAMPLES}
    for series, pts, g in _steady(seen, "bytes"):
        pid, _, name = series.removeprefix(PROCESS_PREFIX).partition(" ")
        # Read no more before the tree's last reading: it exited (a recycled worker), and is
        # named so.
        gone = ", exited" if read_no_more(pts, latest) else ""
        out.append(_bytes_grown(f"process {pid} ({name}{gone})", "process", g, "RSS", (), pts, t0))
    # Processes hold their own memory, so their shares are of all they added, at the least:
    # recycled workers, each adding more than the tree kept, had read 100% each (8 of them).
    added = sum(c.share for c in out)
    ranked = sorted(_shares(out, max(rss_growth or 0.0, added)), key=lambda c: -c.share)
    return tuple(ranked)


# Workers a tree replaced: processes that started and exited within the recording. At least
# RECYCLED_MIN of them, most growing steadily while they ran, say that each worker leaks and
# that replacing them (gunicorn's max_requests, multiprocessing's maxtasksperchild) is what
# bounds the tree: a recycled pre-fork server had read `plateau`, ceiling 39.4 MiB, and nothing
# more, while each of its nine workers had grown +3.4 GiB/h.
RECYCLED_MIN = 3


@dataclass(frozen=True, slots=True)
class Recycling:
    """Workers of a tree that lived and exited within the recording, and how they grew."""

    workers: int  # processes that started and exited within the recording
    leaking: int  # of them, those that grew steadily while they ran
    rate_per_s: float  # the leaking ones' median growth
    life_s: float  # their median life
    first: float  # their median RSS when first read
    last: float  # ... and when last read

    def words(self) -> str:
        return (
            f"{self.leaking} of the {self.workers} processes that started and exited during "
            f"the recording grew steadily while they ran (median "
            f"{format_per_hour(self.rate_per_s * 3600, 'bytes')}, {format_bytes(self.first)} → "
            f"{format_bytes(self.last)} over {format_duration(self.life_s)}), and the tree "
            "stays bounded because they are replaced: workers recycled (gunicorn's "
            "max_requests, a pool's maxtasksperchild) that leak, each kept longer growing "
            "further; or jobs that end on their own (a build's compilers), growing with their "
            "work"
        )


def recycled_workers(points: Mapping[str, Points]) -> Recycling | None:
    """Recycling, from a tree's per-process RSS points (recorded with --children), when at
    least RECYCLED_MIN processes started and exited within the recording and most of them
    grew steadily while they ran."""
    every = [
        float(np.median(np.diff([p[0] for p in pts]))) for pts in points.values() if len(pts) > 1
    ]
    if not every:
        return None
    step = 2.0 * float(np.median(every))
    start = min(pts[0][0] for pts in points.values() if pts)
    end = max(pts[-1][0] for pts in points.values() if pts)
    lived = [
        pts
        for pts in points.values()
        if pts and pts[0][0] > start + step and pts[-1][0] < end - step
    ]
    grew = [(pts, g) for pts in lived if is_steady(g := measure(pts), "bytes") and g is not None]
    if len(grew) < RECYCLED_MIN or 2 * len(grew) < len(lived):
        return None
    return Recycling(
        workers=len(lived),
        leaking=len(grew),
        rate_per_s=float(np.median([g.slope_per_s for _, g in grew])),
        life_s=float(np.median([pts[-1][0] - pts[0][0] for pts, _ in grew])),
        first=float(np.median([g.first for _, g in grew])),
        last=float(np.median([g.last for _, g in grew])),
    )


def attribute(data: ProbeData) -> tuple[Culprit, ...]:
    """Culprits ranked by their share of the memory growth (largest first)."""
    groups = _split(data.points)
    events = list(data.events)
    pids = sorted(
        {pid for _, pid in groups}
        | {int(p.get("pid", 0)) for _, kind, p in events if kind.startswith("probe.")}
    )
    culprits: list[Culprit] = []
    for pid in pids:
        containers = _containers(
            groups.get(("container", pid), {}),
            groups.get(("container_bytes", pid), {}),
            groups.get(("container_bound", pid), {}),
            groups.get(("container_queue", pid), {}),
            events,
            pid,
            data.t0,
            _last(groups.get(("native", pid), {}).get("rss", ())),
        )
        python_bytes = sum(c.share for c in containers)  # bytes added, before shares
        sites = _sites(events, pid)
        traced = sum(c.growth_per_hour for c in sites) / 3600.0  # Python's, by tracemalloc
        found = [
            *containers,
            *_types(groups.get(("type", pid), {}), events, pid, data.t0),
            *_counted(groups.get(("threads", pid), {}), "threads", data.t0),
            *_counted(groups.get(("tasks", pid), {}), "tasks", data.t0),
            *_counted(groups.get(("fds", pid), {}), "fds", data.t0),
            *_native(groups.get(("native", pid), {}), data.t0, python_bytes, traced),
            *sites,
        ]
        found = _fold_per_handle(found)
        if len(pids) > 1:
            found = [replace(c, name=f"{c.name} (pid {pid})") for c in found]
        # The probe's own RSS readings span what it saw (not the interpreter's start-up).
        rss = groups.get(("native", pid), {}).get("rss", ())
        own = floor_growth([p[0] for p in rss[1:]], [p[1] for p in rss[1:]])
        culprits.extend(_shares(found, own if own > 0 else data.rss_growth_bytes))
    return _rank(culprits)


def _last(points: Points) -> float | None:
    return float(points[-1][1]) if points else None


def _fold_per_handle(culprits: list[Culprit]) -> list[Culprit]:
    """Objects that grow a whole number of times as fast as leaking threads or tasks (up to
    PER_HANDLE_MAX a handle, within PER_HANDLE_SLACK) are each handle's own bookkeeping: a
    thread's locks, Events and its entry in threading._active. They become evidence of the
    handle culprit instead of rows of their own (a thread leak's table had been filled with
    nine such rows under the one culprit that mattered). So are types that grow as a growing
    container's entries do: its entries' own objects (a dict of per-peer lists and dicts had
    been listed at 72%, with its lists at 23% and its dicts at 21% beside it)."""
    # Threads and tasks first: a thread's Events grow as threading._active's entries too.
    handles = sorted(
        (c for c in culprits if c.kind in _HANDLES and c.growth_per_hour > 0),
        key=lambda c: c.kind == "container",
    )
    if not handles:
        return culprits
    kept: list[Culprit] = []
    folded: dict[int, list[str]] = {}
    for c in culprits:
        owner = None
        if c.kind in ("type", "container") and c.growth_per_hour > 0:
            for h in handles:
                if c.kind not in _HANDLES[h.kind]:
                    continue
                k = c.growth_per_hour / h.growth_per_hour
                per = round(k)
                if 1 <= per <= PER_HANDLE_MAX and abs(k - per) <= PER_HANDLE_SLACK * per:
                    owner = h
                    break
        if owner is None:
            kept.append(c)
            continue
        per = round(c.growth_per_hour / owner.growth_per_hour)
        if c.kind == "container":
            what = f"{per} entr{'y' if per == 1 else 'ies'} in {c.name}"
        else:
            what = f"{per} {c.name.removeprefix('objects of type ')}"
        folded.setdefault(id(owner), []).append(what)
    out = []
    for c in kept:
        extra = folded.get(id(c))
        if extra:
            one = {"entries": "entry"}.get(c.unit, c.unit.rstrip("s"))
            c = replace(c, evidence=(*c.evidence, f"with each {one}: " + ", ".join(extra)))
        out.append(c)
    return out


def _shares(culprits: list[Culprit], rss_growth: float | None) -> list[Culprit]:
    # Until here, each culprit's `share` holds the bytes it added (see the builders).
    byte_growth = {id(c): c.share for c in culprits}
    denom = rss_growth if rss_growth and rss_growth > 0 else None
    if denom is None:
        # Without RSS, shares are relative to the biggest single explanation (no double count).
        denom = max(byte_growth.values(), default=0.0) or 1.0
    return [
        replace(c, share=round(min(1.0, max(0.0, byte_growth[id(c)] / denom)), 4)) for c in culprits
    ]


def _rank(culprits: list[Culprit]) -> tuple[Culprit, ...]:
    ranked = list(culprits)
    priority = {
        "container": 0,
        "native": 1,
        "threads": 2,
        "tasks": 2,
        "allocation-site": 3,
        "fds": 4,
        "type": 5,
    }
    # A bounded container already full has stopped: whatever still grows comes first (a full
    # deque of 3,000 pins had been named the leak of a program whose growth was elsewhere).
    ranked.sort(key=lambda c: (c.full, -c.share, priority.get(c.kind, 9), -c.growth_per_hour))
    return tuple(ranked[:MAX_CULPRITS])


# What may be folded into a growing culprit of each kind (see _fold_per_handle).
_HANDLES = {
    "threads": ("type", "container"),
    "tasks": ("type", "container"),
    "container": ("type",),
}
# Per-handle bookkeeping: at most this many objects of one kind a thread or task, at this
# relative distance from a whole number (the counts are read at slightly different times).
PER_HANDLE_MAX = 8
PER_HANDLE_SLACK = 0.05


def _containers(
    entries: dict[str, Points],
    sizes: dict[str, Points],
    bounds: dict[str, Points],
    queues: dict[str, Points],
    events: list[Event],
    pid: int,
    t0: float,
    rss_end: float | None = None,
) -> list[Culprit]:
    """Container culprits. What entries hold is sampled container by container: entries two
    containers share (one log record in every handler's buffer) count in each. No container
    holds more than the process: past its RSS, the size is capped there and said to be."""
    instances: dict[str, tuple[int, float | None]] = {}  # how many, the largest's share
    for _, kind, payload in events:
        if kind == "probe.containers" and payload.get("pid", 0) in (pid, 0):
            for label, row in payload.get("containers", {}).items():
                instances[label] = (int(row[1]), float(row[3]) if len(row) > 3 else None)
    out = []
    for label, pts in entries.items():
        g = measure(pts)
        if g is None:
            continue
        size_pts = sizes.get(label, ())
        end_bytes = size_pts[-1][1] if size_pts else None
        capped = bool(end_bytes and rss_end and end_bytes > rss_end)
        if capped:  # "~99.2 MiB retained" had been said in a 22 MB process
            end_bytes = rss_end
        per_entry = end_bytes / g.last if end_bytes and g.last else 0.0
        heavy = g.total * per_entry >= MIN_NATIVE_BYTES
        if not is_steady(g, "heavy entries" if heavy else "entries"):
            continue
        name = label
        n, top = instances.get(label, (1, None))
        if n > 1:
            name = f"{label} over {n} instances"
        text = f"{g.first:,.0f} → {g.last:,.0f} entries, {_rate(g.slope_per_s)}"
        if end_bytes:
            text += f", {'at most ' if capped else '~'}{format_bytes(end_bytes)} retained"
        evidence = [_tau(g)]
        if per_entry:
            evidence.append(f"~{format_bytes(per_entry)} per entry (sampled, two levels deep)")
        if n > 1:
            evidence.append(_spread(n, top))
        if capped:
            evidence.append(
                "its entries, sampled container by container, came to more than the process's "
                f"RSS: entries shared between containers count in each; capped at "
                f"{format_bytes(end_bytes)}, an upper bound"
            )
        bound = bounds[label][-1][1] if bounds.get(label) else None
        if bound:
            evidence.append(
                f"bounded: it holds at most {bound:,.0f} entries, {g.last / bound:.0%} full"
                + (": it has stopped growing" if g.last >= bound else "")
            )
        queue = bool(queues.get(label))
        if queue:
            evidence.append("a work queue: a consumer takes its entries out")
        out.append(
            Culprit(
                name=name,
                kind="container",
                growth=text,
                growth_per_hour=g.slope_per_s * 3600,
                unit="entries",
                share=g.total * per_entry,
                evidence=tuple(evidence),
                bytes_estimate=end_bytes,
                points=_rel(pts, t0),
                bound=bound,
                queue=queue,
            )
        )
    return out


def _spread(n: int, top: float | None) -> str:
    """How the growth of n containers reached the same way is shared among them: one that
    grows (a slow client, a session never closed) or all of them (each instance leaks)."""
    if top is not None and top >= ONE_INSTANCE:
        return (
            f"one of the {n} holds {top:.0%} of their growth: one instance grows, not each of them"
        )
    if top is not None and top <= 2.0 / n:
        return f"the growth is spread over {n} containers reached the same way, each alike"
    return f"the growth is spread over {n} containers reached the same way"


def _types(counts: dict[str, Points], events: list[Event], pid: int, t0: float) -> list[Culprit]:
    per_object: dict[str, float] = {}
    for _, kind, payload in events:
        if kind == "probe.census" and payload.get("pid", 0) in (pid, 0):
            for name, count, nbytes in payload.get("types", []):
                if count:
                    per_object[name] = nbytes / count
    out = []
    for name, pts, g in _steady(counts, "objects"):
        size = per_object.get(name, 0.0)
        text = f"{g.first:,.0f} → {g.last:,.0f} objects, {_rate(g.slope_per_s)}"
        if size:
            text += f", ~{format_bytes(size * g.last)} (shallow)"
        out.append(
            Culprit(
                name=f"objects of type {name}",
                kind="type",
                growth=text,
                growth_per_hour=g.slope_per_s * 3600,
                unit="objects",
                share=g.total * size,
                evidence=(_tau(g), "live objects counted by type in each heap census"),
                bytes_estimate=size * g.last if size else None,
                points=_rel(pts, t0),
            )
        )
    return out


def _counted(groups: dict[str, Points], unit: str, t0: float) -> list[Culprit]:
    per = {"threads": THREAD_BYTES, "tasks": TASK_BYTES}.get(unit, 0)
    out = []
    for group, pts, g in _steady(groups, unit):
        what = {
            "threads": "threads running",
            "tasks": "pending asyncio tasks of",
            "fds": "open fds:",
        }[unit]
        evidence = [_tau(g)]
        if unit == "threads":
            evidence.append("each thread keeps its stack (~21 KiB touched, 8 MiB reserved)")
        if unit == "tasks":
            evidence.append("tasks that never finish keep their coroutine frames alive")
        out.append(
            Culprit(
                name=f"{what} {group}",
                kind=unit,
                growth=f"{g.first:,.0f} → {g.last:,.0f} {unit}, {_rate(g.slope_per_s)}",
                growth_per_hour=g.slope_per_s * 3600,
                unit=unit,
                share=g.total * per,
                evidence=tuple(evidence),
                bytes_estimate=g.last * per if per else None,
                points=_rel(pts, t0),
            )
        )
    return out


# Native memory is named when Python explains less than this share of malloc's growth.
NATIVE_UNEXPLAINED = 0.5


def _native(
    series: dict[str, Points], t0: float, python_bytes: float, traced_per_s: float
) -> list[Culprit]:
    rss, inuse = measure(series.get("rss", ())), measure(series.get("malloc_inuse", ()))
    free, blocks = measure(series.get("malloc_free", ())), measure(series.get("py_blocks", ()))
    out: list[Culprit] = []
    if rss is None or inuse is None:
        return out
    # What Python explains of malloc's growth: its allocated blocks (even at a generous 512 B
    # each) and growing containers, or what tracemalloc saw its lines allocate (the buffers of
    # stored exceptions or a BytesIO had stayed "native memory" ranked above the very line
    # that allocated them), whichever says more. Native memory is what it leaves, when that is
    # most of it: a C leak of 2 MiB/s beside Python's 1 MiB/s had gone unnamed.
    block_bytes = max(blocks.total, 0.0) * 512 if blocks else 0.0
    python_share = 1.0
    if inuse.total > 0 and inuse.slope_per_s > 0:
        by_census = (block_bytes + python_bytes) / inuse.total
        python_share = min(1.0, max(by_census, traced_per_s / inuse.slope_per_s))
    if (
        is_steady(inuse, "bytes")
        and inuse.total >= MIN_NATIVE_BYTES
        and python_share < NATIVE_UNEXPLAINED
    ):
        b = f"{blocks.first:,.0f} → {blocks.last:,.0f}" if blocks else "not read"
        why = (
            f"Python explains at most {python_share:.0%} of it (its allocated blocks: {b}; "
            "its growing containers; the lines tracemalloc saw, if traced): a C extension or "
            "library that never frees, or large buffers (bytes, bytearrays, arrays) held where "
            "the census does not look (an attribute of one of many instances, a "
            "threading.local, a ContextVar, the registries of atexit or weakref.finalize); "
            "`memsleuth run --trace-allocations 60s` names the allocating line of either"
        )
        # Not "native memory outside Python objects": Python's buffers held out of the
        # census's sight land here too (a threading.local's 256 KB each, atexit partials).
        name = "memory in use by malloc that no Python container explains"
        what = "in use by malloc"
        native = _bytes_grown(name, "native", inuse, what, (why,), series["malloc_inuse"], t0)
        out.append(replace(native, share=inuse.total * (1.0 - python_share)))  # what is left
    if (
        free is not None
        and is_steady(free, "bytes")
        and free.total >= MIN_NATIVE_BYTES
        and not is_steady(inuse, "bytes")
    ):
        why = (
            f"malloc's in-use bytes did not grow ({format_bytes(inuse.first)} → "
            f"{format_bytes(inuse.last)}): freed memory is kept by the allocator"
        )
        name = "memory freed but kept by the allocator (fragmentation)"
        what = "free inside malloc's heap"
        out.append(_bytes_grown(name, "native", free, what, (why,), series["malloc_free"], t0))
    if (
        is_steady(rss, "bytes")
        and rss.total >= MIN_NATIVE_BYTES
        and not is_steady(inuse, "bytes")
        and not is_steady(free, "bytes")
        and block_bytes + python_bytes < NATIVE_UNEXPLAINED * rss.total
    ):
        # RSS grows and neither malloc's books nor Python's objects do: a ctypes mmap leaking
        # 900 MiB/h had no culprit at all.
        why = (
            f"malloc's bytes in use ({format_bytes(inuse.first)} → {format_bytes(inuse.last)}) "
            "and free did not grow, nor did Python's objects: memory mapped directly (mmap, "
            "shared memory), thread stacks, or a library's own allocator"
        )
        name = "memory outside malloc and Python objects"
        out.append(_bytes_grown(name, "native", rss, "RSS", (why,), series["rss"], t0))
    return out


def trim_evidence(events: Sequence[Event]) -> tuple[str, ...]:
    """What `run --malloc-trim-test` measured at exit, in words: whether the allocator was
    holding freed memory (fragmentation) or RSS was live data, whatever the verdict."""
    out = []
    trims = [p for _, kind, p in events if kind == "probe.malloc_trim"]
    for trim in trims:
        released, before = float(trim["released"]), float(trim["rss_before"])
        share = released / before if before > 0 else 0.0
        said = (
            "much of RSS was memory freed but kept by the allocator (fragmentation)"
            if share >= TRIM_RETAINED_SHARE
            else "the allocator was not holding freed memory, so RSS was live data"
        )
        pid = f" in pid {trim['pid']}" if len(trims) > 1 and "pid" in trim else ""
        out.append(
            f"malloc_trim(0) at exit{pid} gave back {format_bytes(max(released, 0.0))} of "
            f"{format_bytes(before)} RSS ({share:.0%}): {said}"
        )
    return tuple(out)


def gc_evidence(events: Sequence[Event], t0: float | None) -> tuple[str, ...]:
    """When the probe saw the cyclic garbage collector off (gc.disable()): since when, until
    when, and the objects it had left unexamined: reference cycles among them are never freed
    while it is off, which no culprit of the census says (they are garbage, held by nothing)."""
    seen = sorted((t, p) for t, kind, p in events if kind == "probe.gc")
    out = []
    for pid in dict.fromkeys(p.get("pid") for _, p in seen):
        mine = [(t, p) for t, p in seen if p.get("pid") == pid]
        off = next((t for t, p in mine if not p.get("enabled")), None)
        if off is None:
            continue
        back = next((t for t, p in mine if t > off and p.get("enabled")), None)
        pending = max(int(p.get("pending", 0)) for _, p in mine if not p.get("enabled"))
        since = f" from {format_duration(max(off - t0, 0.0))}" if t0 is not None else ""
        until = (
            f" until {format_duration(max(back - t0, 0.0))}"
            if back is not None and t0 is not None
            else (" to the end" if back is None else "")
        )
        who = f" in pid {pid}" if len(seen) != len(mine) else ""
        out.append(
            f"the cyclic garbage collector was off{who} (gc.disable()), seen{since}{until}, "
            f"with up to {format_count(pending)} objects it had not examined: reference "
            "cycles among them (objects that refer to each other) are freed only by "
            "gc.collect() while it is off"
        )
    return tuple(out)


def _sites(events: list[Event], pid: int) -> list[Culprit]:
    out = []
    for _, kind, payload in events:
        if kind != "probe.allocations" or payload.get("pid", 0) not in (pid, 0):
            continue
        window = max(float(payload.get("window_s", 0.0)), 1e-9)
        for site in payload.get("sites", [])[:5]:
            diff = float(site["size_diff"])
            if diff < 64 * 1024:
                continue
            out.append(
                Culprit(
                    name=f"allocation site {_short(site['site'])}",
                    kind="allocation-site",
                    growth=f"{format_bytes(diff, signed=True)} live over {window:.0f} s "
                    f"({site['count_diff']:+,} blocks), {_rate(diff / window, 'bytes')}",
                    growth_per_hour=diff / window * 3600,
                    unit="bytes",
                    share=diff,
                    evidence=tuple(
                        ["tracemalloc snapshot diff; traceback, newest call first:"]
                        + [_short(f) for f in site.get("traceback", [])]
                    ),
                    bytes_estimate=float(site.get("size", diff)),
                )
            )
    return out


def _short(frame: str) -> str:
    """The last two path components of file:line."""
    path, _, line = frame.rpartition(":")
    parts = path.split("/")
    return f"{'/'.join(parts[-2:])}:{line}"
