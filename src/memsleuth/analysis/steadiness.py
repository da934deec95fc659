"""How one series of the probe grew: steadily (Kendall's τ on time, a Theil–Sen slope) and not
levelled off (the last third still grows), and the culprit row such a series makes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from memsleuth.model import Culprit, FloatArray
from memsleuth.units import format_bytes, format_count

Points = tuple[tuple[float, float], ...]
Event = tuple[float, str, dict[str, Any]]
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
    # slopes, so one drain or GC dip late in the run does not count as levelling off) ...
    levelled = bool(early > 0 and late < early / 6)
    # ... or it saws under a ceiling: the last third's peak stands within a tenth of the rise
    # above the peak before it, with a fall of a tenth of the rise since. A set its TTL
    # cleaner cut back every few seconds (27.6k → 19.8k → 27.7k → 20.4k → 28.3k) had read
    # "steady: Kendall τ 0.64", a leak's culprit at 22%.
    before, after = v[:-third], v[-third:]
    rise = float(before.max() - v[0])
    sawing = rise > 0 and float(after.max() - before.max()) < 0.1 * rise
    cut = rise > 0 and float(np.max(np.maximum.accumulate(after) - after)) >= 0.1 * rise
    levelled = levelled or (sawing and cut)
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


def steady_series(groups: Mapping[str, Points], unit: str) -> Iterator[tuple[str, Points, Growth]]:
    """(name, points, growth) of the series that grow steadily (`is_steady`)."""
    for name, pts in groups.items():
        g = measure(pts)
        if g is not None and is_steady(g, unit):
            yield name, pts, g


def bytes_culprit(
    name: str, kind: str, g: Growth, what: str, why: tuple[str, ...], pts: Points, t0: float
) -> Culprit:
    """A culprit measured in bytes: "22.0 MiB → 27.7 MiB RSS, +11.4 MiB/min"."""
    return Culprit(
        name=name,
        kind=kind,
        growth=f"{format_bytes(g.first)} → {format_bytes(g.last)} {what}, "
        f"{per_minute(g.slope_per_s, 'bytes')}",
        growth_per_hour=g.slope_per_s * 3600,
        unit="bytes",
        share=g.total,
        evidence=(tau_words(g), *why),
        bytes_estimate=g.last,
        points=relative_points(pts, t0),
    )


def relative_points(points: Points, t0: float) -> Points:
    return tuple((round(t - t0, 3), v) for t, v in points)


def per_minute(per_s: float, unit: str = "") -> str:
    per_min = per_s * 60
    if unit == "bytes":
        return f"{format_bytes(per_min, signed=True)}/min"
    return f"{format_count(per_min, signed=True)}/min"


def tau_words(g: Growth) -> str:
    return f"steady: Kendall τ {g.tau:.2f}, up in {g.up_share:.0%} of the steps"
