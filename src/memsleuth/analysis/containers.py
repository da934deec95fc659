"""Culprits among Python's objects: growing containers (bounded ones, work queues, instances
reached the same way) and the types of the heap census."""

from __future__ import annotations

from memsleuth.analysis.steadiness import (
    MIN_NATIVE_BYTES,
    Event,
    Points,
    is_steady,
    measure,
    per_minute,
    relative_points,
    steady_series,
    tau_words,
)
from memsleuth.model import Culprit
from memsleuth.units import format_bytes

# Of containers reached the same way (`over N instances`), one holding this share of their
# growth is the one that grows: a slow client's queue, a session never closed.
ONE_INSTANCE = 0.8


def container_culprits(
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
        text = f"{g.first:,.0f} → {g.last:,.0f} entries, {per_minute(g.slope_per_s)}"
        if end_bytes:
            text += f", {'at most ' if capped else '~'}{format_bytes(end_bytes)} retained"
        evidence = [tau_words(g)]
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
                points=relative_points(pts, t0),
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


def type_culprits(
    counts: dict[str, Points], events: list[Event], pid: int, t0: float
) -> list[Culprit]:
    per_object: dict[str, float] = {}
    for _, kind, payload in events:
        if kind == "probe.census" and payload.get("pid", 0) in (pid, 0):
            for name, count, nbytes in payload.get("types", []):
                if count:
                    per_object[name] = nbytes / count
    out = []
    for name, pts, g in steady_series(counts, "objects"):
        size = per_object.get(name, 0.0)
        text = f"{g.first:,.0f} → {g.last:,.0f} objects, {per_minute(g.slope_per_s)}"
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
                evidence=(tau_words(g), "live objects counted by type in each heap census"),
                bytes_estimate=size * g.last if size else None,
                points=relative_points(pts, t0),
            )
        )
    return out
