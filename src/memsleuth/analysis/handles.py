"""Handles that leak (threads, pending asyncio tasks, fds) as culprits, and the objects each
one keeps folded into its row."""

from __future__ import annotations

from dataclasses import replace

from memsleuth.analysis.steadiness import (
    Points,
    per_minute,
    relative_points,
    steady_series,
    tau_words,
)
from memsleuth.model import Culprit

# Rough RSS per leaked thread (stack pages touched + thread state) and per pending task.
THREAD_BYTES = 21 * 1024
TASK_BYTES = 2 * 1024
# What may be folded into a growing culprit of each kind (see fold_per_handle).
_HANDLES = {
    "threads": ("type", "container"),
    "tasks": ("type", "container"),
    "container": ("type",),
}
# Per-handle bookkeeping: at most this many objects of one kind a thread or task, at this
# relative distance from a whole number (the counts are read at slightly different times).
PER_HANDLE_MAX = 8
PER_HANDLE_SLACK = 0.05


def handle_culprits(groups: dict[str, Points], unit: str, t0: float) -> list[Culprit]:
    per = {"threads": THREAD_BYTES, "tasks": TASK_BYTES}.get(unit, 0)
    out = []
    for group, pts, g in steady_series(groups, unit):
        what = {
            "threads": "threads running",
            "tasks": "pending asyncio tasks of",
            "fds": "open fds:",
        }[unit]
        evidence = [tau_words(g)]
        if unit == "threads":
            evidence.append("each thread keeps its stack (~21 KiB touched, 8 MiB reserved)")
        if unit == "tasks":
            evidence.append("tasks that never finish keep their coroutine frames alive")
        out.append(
            Culprit(
                name=f"{what} {group}",
                kind=unit,
                growth=f"{g.first:,.0f} → {g.last:,.0f} {unit}, {per_minute(g.slope_per_s)}",
                growth_per_hour=g.slope_per_s * 3600,
                unit=unit,
                share=g.total * per,
                evidence=tuple(evidence),
                bytes_estimate=g.last * per if per else None,
                points=relative_points(pts, t0),
            )
        )
    return out


def fold_per_handle(culprits: list[Culprit]) -> list[Culprit]:
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
