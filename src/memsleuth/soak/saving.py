"""Save a soak result as a run (kind "soak") so `memsleuth report` renders it like a recording."""

from __future__ import annotations

import os
from pathlib import Path

from memsleuth.model import Sample
from memsleuth.soak.result import SoakResult
from memsleuth.store import Store


def save_result(path: Path, result: SoakResult) -> int:
    """Write the batches as samples (RSS, cycles done as work, cycle duration as latency)."""
    with Store(path) as store:
        span = result.verdict.span_s
        batches = max(1, len(result.points) - 1)
        run = store.create_run(
            name=result.name,
            kind="soak",
            command=[result.name],
            pid=os.getpid(),
            interval_s=span / batches if span > 0 else 0.0,
            started_at=result.started_at or None,
            meta={"cycles": result.cycles, "warmup": result.warmup_cycles, "ok": result.ok},
        )
        latencies = (None, *result.batch_latency_s)
        samples = [
            Sample(
                t=wall,
                rss_bytes=int(rss),
                work=done + result.warmup_cycles,
                latency_s=lat,
            )
            for (done, _heap, rss, wall), lat in zip(result.points, latencies, strict=False)
        ]
        store.add_samples(run.id, samples)
        store.add_points(run.id, "python_bytes", [(p[3], p[1]) for p in result.points])
        store.set_culprits(run.id, result.culprits)
        store.finish_run(run.id, note=("ok" if result.ok else "failed") + ": " + result.name)
        return run.id
