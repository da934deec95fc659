"""The JSON report: a stable, documented schema (docs/json.md) for scripts and CI.

NaN and infinities become null, so the output is always strict JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np

from memsleuth import __version__
from memsleuth.model import SAMPLE_FIELDS, Culprit, Run, Series, Verdict
from memsleuth.reports.base import ReportOptions, RunReport

# Bump on any change a consumer could notice: a removed or renamed key, a changed meaning/unit.
# Adding a key is not a breaking change and keeps the version.
SCHEMA_VERSION = 1

JsonValue = Any  # a JSON-compatible tree: dict/list/str/int/float/bool/None


def _clean(value: object) -> JsonValue:
    """Make `value` strict JSON: non-finite floats -> None, tuples -> lists, numpy -> Python."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        # Vectorised: a million-sample column in milliseconds, not one Python call per value.
        out = value.astype(object)
        out[~np.isfinite(value)] = None
        return out.tolist()
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def json_safe(value: object) -> JsonValue:
    """`value` as strict JSON data: NaN/inf -> null, tuples -> lists, numpy -> Python numbers."""
    return _clean(value)


def run_to_dict(run: Run) -> dict[str, JsonValue]:
    """The `run` object of the schema."""
    return {
        "id": run.id,
        "name": run.name,
        "kind": run.kind,
        "command": list(run.command),
        "pid": run.pid,
        "host": run.host,
        "started_at": _clean(run.started_at),
        "ended_at": _clean(run.ended_at),
        "exit_status": run.exit_status,
        "version": run.version,
        "interval_s": _clean(run.interval_s),
        "limit_bytes": run.limit_bytes,
        "samples": run.sample_count,
        "note": run.note,
    }


def culprit_to_dict(culprit: Culprit, *, include_points: bool = False) -> dict[str, JsonValue]:
    """One entry of `verdict.culprits`; `points` only when asked for (they can be long)."""
    out: dict[str, JsonValue] = {
        "name": culprit.name,
        "kind": culprit.kind,
        "growth": culprit.growth,
        "growth_per_hour": _clean(culprit.growth_per_hour),
        "unit": culprit.unit,
        "share": _clean(culprit.share),
        "evidence": list(culprit.evidence),
        "bytes_estimate": _clean(culprit.bytes_estimate),
        "bound": _clean(culprit.bound),
        "queue": culprit.queue,
    }
    if include_points:
        out["points"] = _clean(culprit.points)
    return out


def verdict_to_dict(verdict: Verdict, *, include_points: bool = False) -> dict[str, JsonValue]:
    """The `verdict` object of the schema; `memsleuth analyze --json` prints exactly this."""
    trend = verdict.trend
    out: dict[str, JsonValue] = {
        "verdict": verdict.verdict,
        "is_problem": verdict.is_problem,
        "confidence": verdict.confidence,
        "metric": verdict.metric,
        "cause": verdict.cause,
        "evidence": list(verdict.evidence),
        "would_change": list(verdict.would_change),
        "growth_bytes_per_hour": verdict.growth_bytes_per_hour,
        "growth_ci_bytes_per_hour": verdict.growth_ci_bytes_per_hour,
        "ceiling_bytes": verdict.ceiling_bytes,
        "limit_bytes": verdict.limit_bytes,
        "time_to_limit_s": verdict.time_to_limit_s,
        "warmup_end_s": verdict.warmup_end_s,
        "more_time_s": verdict.more_time_s,
        "growth_per_work": verdict.growth_per_work,
        "latency_ratio": verdict.latency_ratio,
        "thread_growth_per_hour": verdict.thread_growth_per_hour,
        "fd_growth_per_hour": verdict.fd_growth_per_hour,
        "task_growth_per_hour": verdict.task_growth_per_hour,
        "task_unit": verdict.task_unit,
        "samples": verdict.samples,
        "span_s": verdict.span_s,
        "trend": None
        if trend is None
        else {
            "t0_s": trend.t0_s,
            "t1_s": trend.t1_s,
            "intercept_bytes": trend.intercept_bytes,
            "slope_bytes_per_s": trend.slope_bytes_per_s,
        },
        "culprits": [culprit_to_dict(c, include_points=include_points) for c in verdict.culprits],
    }
    cleaned: dict[str, JsonValue] = _clean(out)
    return cleaned


def series_summary(series: Series) -> dict[str, JsonValue]:
    """first/last/min/max of every recorded column: enough for a CI check without the samples."""
    out: dict[str, JsonValue] = {}
    for name in SAMPLE_FIELDS:
        col = series.get(name)
        if col is None:
            continue
        finite = col[np.isfinite(col)]
        if finite.size == 0:
            continue
        out[name] = {  # finite by construction
            "first": float(finite[0]),
            "last": float(finite[-1]),
            "min": float(finite.min()),
            "max": float(finite.max()),
        }
    return out


def series_to_dict(series: Series) -> dict[str, JsonValue]:
    """Every recorded column as a list aligned with `t_s` (missing samples are null)."""
    out: dict[str, JsonValue] = {"t_s": _clean(series.t)}
    for name in SAMPLE_FIELDS:
        col = series.get(name)
        if col is not None:
            out[name] = _clean(col)
    return out


def report_to_dict(report: RunReport, options: ReportOptions) -> dict[str, JsonValue]:
    """The whole document, as documented in docs/json.md."""
    doc: dict[str, JsonValue] = {
        "schema_version": SCHEMA_VERSION,
        "generator": f"memsleuth {__version__}",
        "title": options.title_for(report.run),
        "run": run_to_dict(report.run),
        "verdict": verdict_to_dict(report.verdict, include_points=options.include_samples),
        "span_s": _clean(report.span_s),
        "summary": series_summary(report.series),
    }
    if options.include_samples:
        doc["series"] = series_to_dict(report.series)
        doc["extras"] = _clean({k: list(v) for k, v in report.extras.items()})
    # Every part is cleaned where it is built: walking a million samples twice costs seconds.
    return doc


def dumps(doc: Mapping[str, JsonValue], *, indent: int | None = 2) -> str:
    """Strict JSON text (allow_nan=False: a stray NaN is a bug, not silently invalid output)."""
    return json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False)


class JsonReporter:
    """Writes the RunReport as one JSON document."""

    def render(self, report: RunReport, options: ReportOptions, out: TextIO) -> None:
        # With samples, one number per line would multiply the size: write those compact.
        indent = None if options.include_samples else 2
        out.write(dumps(report_to_dict(report, options), indent=indent))
        out.write("\n")
