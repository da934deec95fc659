"""The processes of a tree (recorded with --children): which worker's RSS grows, and workers the
tree replaces (recycled) that each grew while they ran."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from memsleuth.analysis.attribution import with_shares
from memsleuth.analysis.steadiness import Points, bytes_culprit, is_steady, measure, steady_series
from memsleuth.analysis.thresholds import MIN_SAMPLES
from memsleuth.analysis.trend import read_no_more
from memsleuth.model import PROCESS_PREFIX, Culprit
from memsleuth.units import format_bytes, format_duration, format_per_hour


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
    for series, pts, g in steady_series(seen, "bytes"):
        pid, _, name = series.removeprefix(PROCESS_PREFIX).partition(" ")
        # Read no more before the tree's last reading: it exited (a recycled worker), and is
        # named so.
        gone = ", exited" if read_no_more(pts, latest) else ""
        out.append(bytes_culprit(f"process {pid} ({name}{gone})", "process", g, "RSS", (), pts, t0))
    # Processes hold their own memory, so their shares are of all they added, at the least:
    # recycled workers, each adding more than the tree kept, had read 100% each (8 of them).
    added = sum(c.share for c in out)
    ranked = sorted(with_shares(out, max(rss_growth or 0.0, added)), key=lambda c: -c.share)
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
