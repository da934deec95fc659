"""The outcome of soaking another process (a server, a command): bytes per unit of work from its
recorded RSS, latency percentiles, and the verdict."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from memsleuth.model import Sample, Verdict, VerdictName
from memsleuth.soak import stats
from memsleuth.soak.result import RSS_MIN_GROWTH_BYTES, latency_limit, slowing_note
from memsleuth.store import run_ref
from memsleuth.units import format_ci


@dataclass(frozen=True, slots=True)
class ProcessSoak:
    """What a server or command soak found; `ok` is the pass/fail, `explain()` the words."""

    ok: bool
    store_path: str
    run_id: int
    unit: str  # "request", "run"
    units: int  # units done after the warm-up
    errors: int
    verdict: Verdict
    bytes_per_unit: float
    bytes_per_unit_ci: tuple[float, float]
    rss_bytes: tuple[float, float]  # (after the warm-up, at the end)
    latency: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, max (seconds)
    latency_ratio: float | None = None
    threads: tuple[int | None, int | None] = (None, None)
    fds: tuple[int | None, int | None] = (None, None)
    failures: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The outcome for JSON (`memsleuth soak --json`); infinite bounds become null."""
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "verdict": self.verdict.verdict,
            "unit": self.unit,
            "units": self.units,
            "errors": self.errors,
            "bytes_per_unit": self.bytes_per_unit,
            "bytes_per_unit_ci": [x if math.isfinite(x) else None for x in self.bytes_per_unit_ci],
            "rss_bytes": list(self.rss_bytes),
            "latency_s": self.latency,
            "latency_ratio": self.latency_ratio,
            "failures": list(self.failures),
            "evidence": list(self.verdict.evidence),
        }

    def explain(self) -> str:
        from memsleuth.soak.text import seconds
        from memsleuth.units import format_bytes

        lines = [
            f"soak run {self.run_id}: {'ok' if self.ok else 'FAILED'} ({self.verdict.verdict}) "
            f"after {self.units:,} {self.unit}s"
            + (f", {self.errors:,} failed" if self.errors else ""),
            f"  memory: {self.bytes_per_unit:+,.0f} B per {self.unit} "
            f"({format_ci(self.bytes_per_unit_ci)}); RSS {format_bytes(self.rss_bytes[0])} → "
            f"{format_bytes(self.rss_bytes[1])}",
        ]
        for failure in self.failures:
            lines.append(f"  - {failure}")
        if self.latency:
            pct = ", ".join(f"{k} {seconds(v)}" for k, v in self.latency.items())
            ratio = "" if self.latency_ratio is None else f"; last/first {self.latency_ratio:.2f}×"
            lines.append(f"  latency: {pct}{ratio}")
        if self.threads[0] is not None:
            t0, t1 = self.threads
            lines.append(f"  threads {t0} → {t1}, fds {self.fds[0]} → {self.fds[1]}")
        for item in self.verdict.evidence:
            if item not in self.failures:
                lines.append(f"  {item}")
        lines.append(f"  see: memsleuth report {run_ref(self.store_path, self.run_id)}")
        return "\n".join(lines)


def kept_hint(store_path: str | os.PathLike[str], run_id: int) -> str:
    """The hint of a soak stopped part way: its samples were saved, and where."""
    ref = run_ref(store_path, run_id)
    return f"the partial run is kept as run {run_id}: `memsleuth analyze {ref}` judges it"


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def judge_process(
    *,
    store_path: str | os.PathLike[str],
    run_id: int,
    samples: Sequence[Sample],
    unit: str,
    warmup: int,
    allowance: float,
    durations: Sequence[float],
    max_latency_ratio: float | None,
    errors: int = 0,
) -> ProcessSoak:
    """Judge RSS against work done (past the warm-up). RSS is page-granular: growth fails only
    when, at the lower 95% bound, it adds RSS_MIN_GROWTH_BYTES over the measured work."""
    kept = [s for s in samples if s.work is not None and s.work >= warmup]
    x = np.array([s.work for s in kept], dtype=np.float64)
    y = np.array([s.rss_bytes for s in kept], dtype=np.float64)
    d = np.asarray(durations, dtype=np.float64)
    units = int(d.size) if d.size else (int(x[-1] - x[0]) if x.size else 0)
    ratio = stats.latency_ratio(d)
    failures: list[str] = []
    evidence: list[str] = []
    name: VerdictName
    if x.size < 6 or units <= 0:
        g = stats.Growth(0.0, (-np.inf, np.inf), 0, 0.0, 0.0, int(x.size))
        name = "inconclusive"
        evidence.append(f"only {x.size} samples after the warm-up: soak longer")
    else:
        g = stats.growth(x, y, allowance)
        if g.grows(allowance) and g.ci[0] * g.span >= RSS_MIN_GROWTH_BYTES:
            name = "leak"
            failures.append(
                f"RSS grows {g.per_cycle:,.0f} B per {unit} ({format_ci(g.ci, ',.0f')}), "
                f"above the allowance of {allowance:g} B"
            )
        elif g.ci[0] > allowance:
            name = "inconclusive"
            # The judged window is a tail of the soak: scale up to the whole soak needed.
            needed = RSS_MIN_GROWTH_BYTES / g.ci[0] * (x[-1] - x[0]) / max(g.span, 1.0)
            evidence.append(
                f"RSS grows {g.per_cycle:,.0f} B per {unit}, but under "
                f"{RSS_MIN_GROWTH_BYTES >> 20} MiB over the judged part of the soak: too little "
                f"to tell from page and allocator noise; soak {int(needed) + 1:,}+ {unit}s"
            )
        elif g.start_index > 0:
            name = "plateau"
            evidence.append(
                f"warm-up: RSS grew {g.warmup_growth:,.0f} B over the first "
                f"{g.start_cycle - x[0]:,.0f} {unit}s, then stayed flat"
            )
        else:
            name = "stable"
    slower, spell = latency_limit(d, ratio, max_latency_ratio, f"{unit}s")
    if spell:
        evidence.append(spell)
    if slower:
        failures.append(slower)
        if name != "leak":
            name = "degradation"
    elif name != "leak" and stats.slowing(d):
        name = "degradation"
        evidence.append(slowing_note(ratio, f"{unit}s", "--max-latency-ratio"))
    verdict = Verdict(
        verdict=name,
        confidence=0.95,
        evidence=tuple(failures) + tuple(evidence),
        metric="rss_bytes",
        growth_per_work=g.per_cycle,
        latency_ratio=ratio,
        samples=int(x.size),
        span_s=float(kept[-1].t - kept[0].t) if kept else 0.0,
    )
    first, last = (kept[0], kept[-1]) if kept else (None, None)
    return ProcessSoak(
        ok=not failures,
        store_path=str(store_path),
        run_id=run_id,
        unit=unit,
        units=units,
        errors=errors,
        verdict=verdict,
        bytes_per_unit=g.per_cycle,
        bytes_per_unit_ci=g.ci,
        rss_bytes=(float(y[0]), float(y[-1])) if y.size else (0.0, 0.0),
        latency=stats.percentiles(d),
        latency_ratio=ratio,
        threads=(_int(first.threads), _int(last.threads)) if first and last else (None, None),
        fds=(_int(first.fds), _int(last.fds)) if first and last else (None, None),
        failures=tuple(failures),
    )
