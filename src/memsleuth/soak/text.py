"""The words of a soak result: one headline, the cost and the culprit, then the evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memsleuth.soak.resources import describe
from memsleuth.units import format_bytes, format_ci

if TYPE_CHECKING:
    from memsleuth.soak.result import SoakResult


def _per_call(n: float) -> str:
    return f"{n:.0f} bytes" if abs(n) < 1024 else format_bytes(n)


def seconds(s: float) -> str:
    """Short durations as a person reads them: 12 µs, 3.4 ms, 1.20 s."""
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1.0:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def headline(result: SoakResult) -> str:
    """'leaks ~212 bytes per call: +1 dict entry in `app.cache._SEEN` per call', or the reason."""
    containers = [c for c in result.culprits if c.kind == "container"]
    sites = [c for c in result.culprits if c.kind == "allocation-site"]
    if result.failures and result.failures[0].startswith("the Python heap grows"):
        text = f"leaks ~{_per_call(result.bytes_per_cycle)} per call"
        if containers:
            text += f": {containers[0].evidence[0]}"
        elif sites:
            text += f": allocated at {sites[0].name} and {_kept(result)}"
        return text
    if result.failures:
        return result.failures[0]
    return f"no growth: {result.verdict.verdict}"


def _kept(result: SoakResult) -> str:
    """'kept', or, when a teardown gave back most of what the cycles added, 'held until
    teardown' (it had said "kept" above "after teardown: +1.28 KiB kept" of 70 KiB added)."""
    added = result.bytes_per_cycle * result.cycles
    if result.retained_bytes is not None and result.retained_bytes < 0.5 * added:
        return "held until the teardown, which gave it back"
    return "kept"


def explain(result: SoakResult) -> str:
    """Several lines a test failure or a terminal can show as they are."""
    status = "ok" if result.ok else "FAILED"
    lines = [
        f"soak of {result.name}: {status} ({result.verdict.verdict}) after {result.cycles:,} "
        f"cycles + {result.warmup_cycles:,} warm-up, {seconds(result.cycle_s)} per cycle"
    ]
    if not result.ok:
        top = headline(result)
        lines.append(f"  {top}")
        # The list only when it says more than the headline (one failure read twice).
        if result.failures != (top,):
            lines.extend(f"  - {failure}" for failure in result.failures)
    lines.append(
        f"  Python heap: {result.bytes_per_cycle:+.1f} B per cycle "
        f"({format_ci(result.bytes_per_cycle_ci, '+.1f')}; "
        f"allowance {result.limits.max_bytes_per_cycle:g})"
    )
    for note in result.notes:  # why inconclusive, a warm-up, a degradation
        lines.append(f"  {note}")
    lines.append(
        f"  RSS: {result.rss_bytes_per_cycle:+.1f} B per cycle "
        f"({format_ci(result.rss_bytes_per_cycle_ci, '+.1f')})"
    )
    if result.retained_bytes is not None:
        lines.append(f"  after teardown: {format_bytes(result.retained_bytes, signed=True)} kept")
    if result.latency_ratio is not None:
        lines.append(f"  latency: last cycles / first cycles = {result.latency_ratio:.2f}×")
    lines.append(
        "  threads {} → {}, fds {} → {}, tasks {} → {}, child processes {} → {}".format(
            *result.threads, *result.fds, *result.tasks, *result.children
        )
    )
    for line in describe(result.leftovers):
        lines.append(f"  left behind: {line}")
    shown = [c for c in result.culprits if c.kind in ("container", "allocation-site")]
    if shown and not result.ok:
        lines.append("  what grew:")
        for c in shown[:5]:
            lines.append(f"    {c.name}: {c.growth}")
    heap_grows = any(f.startswith(("the Python heap grows", "RSS grows")) for f in result.failures)
    # Not of a thread or fd left each call, nor of a buffer growing in place (one object).
    in_place = any("growing in place" in f for f in result.failures)
    if heap_grows and not in_place and result.verdict.verdict == "leak":
        lines.append(
            "  (a cache still filling at the end looks like this: give it more cycles or a "
            "larger warmup to see it level off)"
        )
    return "\n".join(lines)
