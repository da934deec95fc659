"""Judge fleet series one by one and rank them: pure, model in -> model out.

A series from Prometheus may span restarts of its process: it is split into segments and the
last segment is judged with the same `judge` as `memsleuth analyze`.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from memsleuth import units
from memsleuth.model import PROBLEM_VERDICTS, FloatArray, Series, Verdict

log = logging.getLogger(__name__)

Labels = tuple[tuple[str, str], ...]
Judge = Callable[[Series], Verdict]

# A fall to under half of the previous sample, back to near the series' first level, reads as
# a restart; more of them than this and the falls are a sawtooth (GC, cache flushes), not restarts.
MAX_DROP_RESTARTS = 10
# The fewest points a previous life needs to be judged in place of a younger current one.
MIN_LIFE_POINTS = 12
PLOT_POINTS = 240
# Past any address space (2**64 bytes): no memory reads so. The statistics square values, and
# from ~1e154 the squares overflow: a series of 1e150 and up had ended in an OverflowError
# traceback per series, and "the query returned no usable samples".
MAX_BYTES = 2.0**64


def past_memory(v: FloatArray) -> str:
    """Why values past MAX_BYTES, or below zero, are not judged, naming the farthest."""
    if float(np.min(v)) < 0 and float(np.max(np.abs(v))) <= MAX_BYTES:
        # A negative series had been judged, "stable -5 MiB/h, last -420 MiB".
        return f"values fall to {float(np.min(v)):.3g}, below zero: not memory in bytes"
    peak = float(v[np.argmax(np.abs(v))])
    return f"values reach {peak:.3g}, past any memory ({units.format_bytes(MAX_BYTES)})"


@dataclass(frozen=True, eq=False)
class FleetEntry:
    """One judged series: its labels, the verdict on its last segment, and what to plot."""

    labels: Labels
    verdict: Verdict | None  # None when it could not be judged (see `error`)
    restarts: int
    samples: int
    start_s: float  # unix time of the first sample of the whole series
    end_s: float  # unix time of the last sample
    segment_start_s: float  # unix time where the judged segment starts
    last_bytes: float
    plot_t: FloatArray  # unix times, downsampled (min/max per bucket) for plots
    plot_y: FloatArray
    error: str | None = None
    # What each judged point is: "value" (the query at each step), "mean" or "floor" (the mean
    # or the minimum of the raw samples in each step, computed by Prometheus).
    basis: str = "value"
    # No sample in the last 5 steps (and 5 minutes) of the range: the process is gone (ended,
    # restarted under other labels, OOM-killed). It will not reach any limit.
    gone: bool = False
    # Where the judged segment ends: the end of the series, or the restart that ended the
    # previous life when that life was judged (see `previous_life`).
    segment_end_s: float = math.nan

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def absent_after(step_s: float) -> float:
    """Seconds without a sample after which a target was gone: 5 steps, and at least 5 minutes
    (Prometheus' lookback). A gap this long splits a series; one this long at the end of the
    range means the series has ended."""
    return max(5 * step_s, 300.0)


def falls(v: FloatArray) -> list[int]:
    """Indexes where memory fell to under half of what it was, back near its first level: a
    restart, or a flush as deep (the first point of each fall)."""
    if v.size < 2:
        return []
    # Compared with the higher of the two samples before: a per-step mean (or a lagging
    # scrape) spreads the fall over two points, halfway on the first.
    prev = v[:-1].copy()
    prev[1:] = np.maximum(prev[1:], v[:-2])
    base = float(np.min(v[: max(1, min(v.size, 10))]))
    fell = np.concatenate(([False], (v[1:] < 0.5 * prev) & (v[1:] <= 1.2 * base)))
    first: list[int] = (np.flatnonzero(fell[1:] & ~fell[:-1]) + 1).tolist()
    return first


def restart_points(
    t: FloatArray, v: FloatArray, step_s: float, restarts: FloatArray | None = None
) -> list[int]:
    """Indexes where a new segment starts: after a gap, or where the process restarted.

    A gap longer than 5 steps (and 5 minutes, Prometheus' lookback) means the target was gone.
    `restarts`, the times at which the process' start time changed (when it exports one), say
    when it restarted: the point at each is the first that saw the new life; without them a
    fall back to the first level reads as a restart, unless there are more than
    MAX_DROP_RESTARTS of them (a sawtooth).
    """
    if t.size < 2:
        return []
    gaps = set((np.flatnonzero(np.diff(t) > absent_after(step_s)) + 1).tolist())
    if restarts is not None:
        cut = np.minimum(np.searchsorted(t, restarts), t.size - 1)
        return sorted(gaps | set(cut[cut > 0].tolist()))
    drops = falls(v)
    if len(drops) > MAX_DROP_RESTARTS:
        drops = []
    return sorted(gaps | set(drops))


def clean(t: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Finite points only, in time order: NaN (a failed expression) and ±Inf are not memory."""
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    if t.size > 1 and bool(np.any(np.diff(t) < 0)):
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
    return t, v


def downsample(
    t: FloatArray, v: FloatArray, max_points: int = PLOT_POINTS
) -> tuple[FloatArray, FloatArray]:
    """Min and max per bucket, so plots keep both the peaks and the floors."""
    if t.size <= max_points:
        return t.copy(), v.copy()
    buckets = max_points // 2
    edges = np.linspace(0, t.size, buckets + 1).astype(np.int64)
    lo = np.minimum.reduceat(v, edges[:-1])
    hi = np.maximum.reduceat(v, edges[:-1])
    mid = t[(edges[:-1] + edges[1:]) // 2]
    return np.repeat(mid, 2), np.column_stack((lo, hi)).ravel()


def judge_series(
    labels: Labels,
    t: FloatArray,
    v: FloatArray,
    *,
    step_s: float,
    judge: Judge,
    basis: str = "value",
    restarts: FloatArray | None = None,
) -> FleetEntry:
    """Split at restarts, judge the last segment; a judge that fails marks only this entry.

    `restarts`: when the process restarted, if Prometheus knows (see `restart_points`)."""
    t, v = clean(t, v)
    if t.size == 0 or float(np.max(np.abs(v))) > MAX_BYTES or float(np.min(v)) < 0:
        empty = np.empty(0)
        return FleetEntry(
            labels,
            None,
            0,
            int(t.size),
            float(t[0]) if t.size else math.nan,
            float(t[-1]) if t.size else math.nan,
            math.nan,
            math.nan,  # no level is shown for what is not memory ("8.67e+281 EiB" had been)
            empty,
            empty,
            error=past_memory(v) if t.size else "no finite samples",
            basis=basis,
        )
    cuts = restart_points(t, v, step_s, restarts)
    # A step's mean that holds a restart (found by the start time) is neither life's: each
    # life starts a point later and ends before it.
    lead = 1 if restarts is not None and basis != "value" else 0
    seg0 = min(cuts[-1] + lead, t.size - 1) if cuts else 0
    # A restart in the last step: that step's mean mixes two lives, a level the process never
    # had (1.49 GiB shown, and a time to limit from it, for a process back at 1.03 GiB).
    last = math.nan if lead and cuts and cuts[-1] >= t.size - 1 else float(v[-1])
    st, sv = t[seg0:], v[seg0:]
    pt, py = downsample(t, v)
    verdict: Verdict | None = None
    error = None
    seg_end = math.nan
    try:
        verdict = judge(Series.from_arrays(st - st[0], sv))
    except Exception as exc:  # one odd series must not stop a scan of thousands
        # The CLI says how many failed and the first one's error; the traceback with -v.
        log.debug("judging %s failed", dict(labels), exc_info=True)
        error = f"judge failed: {type(exc).__name__}: {exc}"
    else:
        try:
            earlier = previous_life(judge, t, v, cuts, verdict, lead, last)
        except Exception:  # the current life's verdict stands
            log.debug("judging the previous life of %s failed", dict(labels), exc_info=True)
        else:
            if earlier is not None:
                verdict, seg0, seg_end = earlier
    return FleetEntry(
        labels=labels,
        verdict=verdict,
        restarts=len(cuts),
        samples=int(t.size),
        start_s=float(t[0]),
        end_s=float(t[-1]),
        segment_start_s=float(t[seg0]),
        last_bytes=last,
        plot_t=pt,
        plot_y=py,
        error=error,
        basis=basis,
        segment_end_s=seg_end,
    )


def previous_life(
    judge: Judge,
    t: FloatArray,
    v: FloatArray,
    cuts: Sequence[int],
    current: Verdict,
    lead: int,
    now_bytes: float,
) -> tuple[Verdict, int, float] | None:
    """(verdict, first index, end time) of the last complete life, when it was a problem that
    the current life is too young to show: a leak restarted (by hand, a deploy, the OOM killer)
    every day reads `inconclusive` or a short `plateau` for most of each day otherwise.

    Not when the current life has lasted as long, nor when, over most of its length, it grows
    significantly slower than the previous life did (a fix went out with the restart). `lead`:
    each life starts this many points after its cut (see judge_series); `now_bytes`: the level
    now (NaN when unknown, and no time to limit is given)."""
    if not cuts or current.is_problem:
        return None
    a, b = (cuts[-2] + lead if len(cuts) > 1 else 0), cuts[-1]
    now = min(b + lead, t.size - 1)
    if b - a < MIN_LIFE_POINTS or t[-1] - t[now] >= t[b - 1] - t[a]:
        return None
    before = judge(Series.from_arrays(t[a:b] - t[a], v[a:b]))
    rate = before.growth_bytes_per_hour
    if not before.is_problem or rate is None or rate <= 0:
        return None
    ci, trend, life = current.growth_ci_bytes_per_hour, current.trend, t[-1] - t[now]
    # Judged over a few minutes after a jump (a `step` on noise), the current life shows no
    # fix: its window must cover most of the life.
    whole = trend is not None and trend.t1_s - trend.t0_s >= 0.5 * life
    if current.verdict != "inconclusive" and ci is not None and ci[1] < rate and whole:
        return None
    lived, young = units.format_duration(t[b - 1] - t[a]), units.format_duration(life)
    note = (
        f"judged on the previous life ({lived}, until it restarted): the current one "
        f"({young}) is younger and reads {current.verdict}"
    )
    limit = before.limit_bytes
    ttl = (
        max(0.0, (limit - now_bytes) / (rate / 3600.0))
        if limit is not None and math.isfinite(now_bytes)
        else None
    )
    return replace(before, evidence=(note, *before.evidence), time_to_limit_s=ttl), a, t[b - 1]


def judge_all(
    series: Sequence[tuple[Labels, FloatArray, FloatArray, FloatArray | None]],
    *,
    step_s: float,
    limit_bytes: int | None,
    basis: str,
) -> list[FleetEntry]:
    """`analyze`'s verdict on each (labels, t, values, restart times): what a judging process
    runs."""
    from memsleuth.analysis.verdict import judge

    verdict = functools.partial(judge, limit_bytes=limit_bytes)
    return [
        judge_series(labels, t, v, step_s=step_s, judge=verdict, basis=basis, restarts=r)
        for labels, t, v, r in series
    ]


def confirm_on_floor(mean: FleetEntry, floor: FleetEntry) -> FleetEntry:
    """A problem seen in per-step means stands only if the per-step floors show it too.

    The verdict trends the floor under a GC sawtooth (docs/verdicts.md); a sawtooth faster than
    the step is invisible in the means, whose level follows the peaks as well as the floor.
    """
    if floor.verdict is None or floor.verdict.is_problem:
        return mean
    return floor


_GROUP = {"inconclusive": 1, "plateau": 2, "step": 2, "stable": 3}


def is_gone(end_s: float, scan_end: float, step_s: float) -> bool:
    """Whether a series that last had a point at end_s has ended: none for a step and a half
    before the end (and 2 minutes). A live series has a point at the last step, at most a step
    before the end (Prometheus looks back 5 minutes for a raw step; a step's mean holds its
    scrapes), and one whose target went is cut by a stale marker: the restart gap rule (5
    steps) had kept a process killed 6 h before the end of a 7-day scan live, "to limit 22 h"."""
    return scan_end - end_s > max(GONE_STEPS * step_s, 120.0)


GONE_STEPS = 1.5


def rank_key(entry: FleetEntry) -> tuple[int, bool, float, float]:
    """Worst first: problems by time to limit then growth, live before gone; then
    inconclusive; then the rest."""
    v = entry.verdict
    if v is None:
        return (9, entry.gone, math.inf, 0.0)
    group = 0 if v.verdict in PROBLEM_VERDICTS else _GROUP.get(v.verdict, 4)
    ttl = v.time_to_limit_s if v.time_to_limit_s is not None else math.inf
    growth = v.growth_bytes_per_hour if v.growth_bytes_per_hour is not None else 0.0
    if not math.isfinite(growth):
        growth = 0.0
    if entry.gone:
        ttl = math.inf
    return (group, entry.gone, ttl if math.isfinite(ttl) else math.inf, -growth)


def rank(entries: Iterable[FleetEntry]) -> list[FleetEntry]:
    return sorted(entries, key=rank_key)


def entry_to_dict(entry: FleetEntry) -> dict[str, object]:
    """The object `memsleuth fleet --json` prints for one series (docs/fleet.md)."""
    from memsleuth.reports.json import _clean, verdict_to_dict

    v = entry.verdict
    out: dict[str, object] = {
        "labels": entry.label_dict,
        "verdict": v.verdict if v else None,
        "growth_bytes_per_hour": v.growth_bytes_per_hour if v else None,
        "time_to_limit_s": v.time_to_limit_s if v and not entry.gone else None,
        "gone": entry.gone,
        "confidence": v.confidence if v else None,
        "restarts": entry.restarts,
        "samples": entry.samples,
        "start": entry.start_s,
        "end": entry.end_s,
        "segment_start": entry.segment_start_s,
        "segment_end": entry.segment_end_s if math.isfinite(entry.segment_end_s) else entry.end_s,
        "last_bytes": entry.last_bytes,
        "error": entry.error,
        "basis": entry.basis,
        "details": verdict_to_dict(v) if v else None,
    }
    cleaned: dict[str, object] = _clean(out)
    return cleaned
