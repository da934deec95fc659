"""From what the probe stored (named series and reports) to culprits, ranked by their share of
the memory growth (steadiness.py says when a series is one). Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from memsleuth.analysis.allocations import native_culprits, site_culprits
from memsleuth.analysis.containers import container_culprits, type_culprits
from memsleuth.analysis.handles import fold_per_handle, handle_culprits
from memsleuth.analysis.steadiness import Event, Points, floor_growth
from memsleuth.model import Culprit

_PID = re.compile(r"^(?P<name>.*) \[pid (?P<pid>\d+)\]$")
MAX_CULPRITS = 10


@dataclass(frozen=True, slots=True)
class ProbeData:
    """A run's probe data as the store gives it back."""

    points: Mapping[str, Points]  # series name ("container:... [pid N]") -> (unix t, value)
    events: Sequence[Event]  # (unix t, kind, payload)
    t0: float  # unix time the run started; culprit points are seconds from it
    rss_growth_bytes: float | None = None  # growth of the target's RSS floor over the run


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
        containers = container_culprits(
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
        sites = site_culprits(events, pid)
        traced = sum(c.growth_per_hour for c in sites) / 3600.0  # Python's, by tracemalloc
        found = [
            *containers,
            *type_culprits(groups.get(("type", pid), {}), events, pid, data.t0),
            *handle_culprits(groups.get(("threads", pid), {}), "threads", data.t0),
            *handle_culprits(groups.get(("tasks", pid), {}), "tasks", data.t0),
            *handle_culprits(groups.get(("fds", pid), {}), "fds", data.t0),
            *native_culprits(groups.get(("native", pid), {}), data.t0, python_bytes, traced),
            *sites,
        ]
        found = fold_per_handle(found)
        if len(pids) > 1:
            found = [replace(c, name=f"{c.name} (pid {pid})") for c in found]
        # The probe's own RSS readings span what it saw (not the interpreter's start-up).
        rss = groups.get(("native", pid), {}).get("rss", ())
        own = floor_growth([p[0] for p in rss[1:]], [p[1] for p in rss[1:]])
        culprits.extend(with_shares(found, own if own > 0 else data.rss_growth_bytes))
    return _rank(culprits)


def _split(points: Mapping[str, Points]) -> dict[tuple[str, int], dict[str, Points]]:
    """{(prefix, pid): {name: points}} from 'prefix:name [pid N]' series names."""
    out: dict[tuple[str, int], dict[str, Points]] = {}
    for series, pts in points.items():
        prefix, _, rest = series.partition(":")
        m = _PID.match(rest)
        name, pid = (m["name"], int(m["pid"])) if m else (rest, 0)
        out.setdefault((prefix, pid), {})[name] = pts
    return out


def _last(points: Points) -> float | None:
    return float(points[-1][1]) if points else None


def with_shares(culprits: list[Culprit], rss_growth: float | None) -> list[Culprit]:
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
