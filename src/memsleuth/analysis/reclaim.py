"""What the probe saw of memory reclaimed, or not: malloc_trim(0)'s test at exit, and the cyclic
garbage collector switched off."""

from __future__ import annotations

from collections.abc import Sequence

from memsleuth.analysis.steadiness import Event
from memsleuth.units import format_bytes, format_count, format_duration

# malloc_trim(0) giving back this share of RSS or more: the allocator held that much freed
# memory (FACTS: a heap with 36 MiB live held 649 MiB of RSS, and gave back 529 MiB).
TRIM_RETAINED_SHARE = 0.2


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
