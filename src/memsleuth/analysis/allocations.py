"""Memory seen through the allocator: native memory no Python object explains (malloc's books,
RSS outside them), and the lines tracemalloc saw allocate."""

from __future__ import annotations

from dataclasses import replace

from memsleuth.analysis.steadiness import (
    MIN_NATIVE_BYTES,
    Event,
    Points,
    bytes_culprit,
    is_steady,
    measure,
    per_minute,
)
from memsleuth.model import Culprit
from memsleuth.units import format_bytes

# Native memory is named when Python explains less than this share of malloc's growth.
NATIVE_UNEXPLAINED = 0.5


def native_culprits(
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
        native = bytes_culprit(name, "native", inuse, what, (why,), series["malloc_inuse"], t0)
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
        out.append(bytes_culprit(name, "native", free, what, (why,), series["malloc_free"], t0))
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
        out.append(bytes_culprit(name, "native", rss, "RSS", (why,), series["rss"], t0))
    return out


def site_culprits(events: list[Event], pid: int) -> list[Culprit]:
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
                    f"({site['count_diff']:+,} blocks), {per_minute(diff / window, 'bytes')}",
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
