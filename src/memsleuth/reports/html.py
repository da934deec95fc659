"""The HTML report: one self-contained page (inline CSS and SVG, no scripts, no fetches) that
opens offline, rendered with jinja2 with autoescaping on.
"""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass
from typing import Any, TextIO

import jinja2
import numpy as np
from markupsafe import Markup

from memsleuth import __version__, units
from memsleuth.model import Culprit, Run, Series, Verdict
from memsleuth.reports import summary
from memsleuth.reports.base import ReportOptions, RunReport
from memsleuth.reports.svg import Chart, Line, Rule, YKind, render_chart, sparkline

# Memory columns drawn on the main chart, with their legend label and colour class.
MEMORY_LINES: tuple[tuple[str, str, str], ...] = (
    ("rss_bytes", "RSS", "c-rss"),
    ("pss_bytes", "PSS", "c-pss"),
    ("uss_bytes", "USS", "c-uss"),
    ("anon_bytes", "anonymous", "c-anon"),
)
# Charts under the memory chart: key, title, column, colour class, unit kind.
SMALL_CHARTS: tuple[tuple[str, str, str, str, YKind], ...] = (
    ("threads", "threads", "threads", "c-threads", "count"),
    ("fds", "open fds", "fds", "c-fds", "count"),
    ("latency", "latency", "latency_s", "c-latency", "seconds"),
)
# A limit far above the data would flatten the chart: draw it only when it is this close.
LIMIT_DRAW_RATIO = 1.25


@dataclass(frozen=True, slots=True)
class CulpritRow:
    """A culprit as the template shows it: formatted strings (escaped by jinja2) + a sparkline."""

    rank: int
    name: str
    kind: str
    growth: str
    per_hour: str
    share: str
    share_pct: float  # 0..100, the bar's width
    size: str
    evidence: tuple[str, ...]
    spark: Markup
    first: str
    last: str


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("memsleuth.reports", "templates"),
        autoescape=True,  # every {{ }} is escaped; only Markup from svg.py passes through
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _memory_chart(report: RunReport, options: ReportOptions) -> tuple[Markup | None, str]:
    """The main chart, and a note for what could not be drawn (a limit far above the data)."""
    series, verdict = report.series, report.verdict
    lines = [
        Line(label, series.t, col, css)
        for name, label, css in MEMORY_LINES
        if (col := series.get(name)) is not None
    ]
    if not lines:
        return None, ""
    data_max = max(float(np.nanmax(ln.y)) for ln in lines)
    if verdict.trend is not None:
        tr = verdict.trend
        t = np.array([tr.t0_s, tr.t1_s], dtype=np.float64)
        y = tr.intercept_bytes + tr.slope_bytes_per_s * (t - tr.t0_s)
        lines.append(
            Line(
                "trend "
                + units.format_estimate(
                    tr.slope_bytes_per_s * 3600, verdict.growth_ci_bytes_per_hour, "/h"
                )[0],
                t,
                y,
                "c-trend",
                dashed=True,
            )
        )
    rules: list[Rule] = []
    if verdict.warmup_end_s is not None:
        rules.append(Rule("x", verdict.warmup_end_s, "warm-up ends", "c-warmup"))
    if verdict.ceiling_bytes is not None:
        rules.append(
            Rule(
                "y",
                verdict.ceiling_bytes,
                f"ceiling {units.format_bytes(verdict.ceiling_bytes)}",
                "c-ceiling",
            )
        )
    note = ""
    limit = verdict.limit_bytes or report.run.limit_bytes
    if limit:
        if limit <= data_max * LIMIT_DRAW_RATIO:
            rules.append(Rule("y", float(limit), f"limit {units.format_bytes(limit)}", "c-limit"))
        else:
            note = f"The memory limit ({units.format_bytes(limit)}) is above the chart."
    chart = Chart(
        title="memory over time",
        lines=tuple(lines),
        y_kind="bytes",
        span_s=report.span_s,
        rules=tuple(rules),
        shade_until_s=verdict.warmup_end_s,
        key="memory",
    )
    return render_chart(chart, options.max_points), note


def _small_chart(
    key: str, title: str, series: Series, column: str, css: str, kind: YKind, options: ReportOptions
) -> Markup | None:
    col = series.get(column)
    if col is None:
        return None
    chart = Chart(
        title=title,
        lines=(Line(title, series.t, col, css),),
        y_kind=kind,
        span_s=float(series.t[-1]) if len(series) else 0.0,
        width=470,
        height=220,
        key=key,
        y_title=title,
    )
    return render_chart(chart, options.max_points)


def _extra_chart(
    key: str,
    name: str,
    points: tuple[tuple[float, float], ...],
    span_s: float,
    options: ReportOptions,
) -> Markup | None:
    if len(points) < 2:
        return None
    arr = np.asarray(points, dtype=np.float64)
    # "container_bytes:NAME" (the probe's series are "kind:name"): bytes, not a count; so are
    # a process's RSS under --children ("process:PID NAME", it had been drawn on a "count"
    # axis) and malloc's books ("native:malloc_inuse"; its blocks, "native:py_blocks", count).
    prefix, _, rest = name.partition(":")
    in_bytes = prefix.endswith("_bytes") or prefix == "process"
    in_bytes = in_bytes or (prefix == "native" and not rest.startswith("py_blocks"))
    kind: YKind = "bytes" if in_bytes else "count"
    chart = Chart(
        title=name,
        lines=(Line(name, arr[:, 0], arr[:, 1], "c-extra"),),
        y_kind=kind,
        span_s=max(span_s, float(arr[-1, 0])),
        width=470,
        height=220,
        key=key,
    )
    return render_chart(chart, options.max_points)


def _culprit_row(rank: int, c: Culprit) -> CulpritRow:
    first = units.format_quantity(c.points[0][1], c.unit) if c.points else ""
    last = units.format_quantity(c.points[-1][1], c.unit) if c.points else ""
    share_ok = c.share > 0 and np.isfinite(c.share)
    return CulpritRow(
        rank=rank,
        name=c.name,
        kind=c.kind,
        growth=c.growth,
        per_hour=units.format_per_hour(c.growth_per_hour, c.unit),
        share=units.format_percent(c.share) if share_ok else "–",
        share_pct=float(min(max(c.share, 0.0), 1.0) * 100) if share_ok else 0.0,
        size=summary.culprit_size(c),
        evidence=c.evidence,
        spark=sparkline(c.points),
        first=first,
        last=last,
    )


def _run_facts(run: Run, span_s: float, every_s: float) -> list[tuple[str, str]]:
    started = dt.datetime.fromtimestamp(run.started_at, dt.timezone.utc)
    facts = [
        ("run", f"#{run.id} · {run.kind}"),
        ("pid", str(run.pid) if run.pid is not None else "–"),
        ("host", run.host or "–"),
        ("started", f"{started:%Y-%m-%d %H:%M} UTC"),
        ("duration", units.format_duration(span_s)),
        ("samples", f"{run.sample_count:,} @ {units.format_duration(every_s)}"),
    ]
    if run.limit_bytes:
        facts.append(("limit", units.format_bytes(run.limit_bytes)))
    status = summary.exit_status(run)
    if status is not None:
        facts.append(("exit status", status))
    return facts


def report_context(report: RunReport, options: ReportOptions) -> dict[str, Any]:
    """Everything the template shows, formatted; charts are pre-rendered SVG Markup."""
    verdict: Verdict = report.verdict
    memory, memory_note = _memory_chart(report, options)
    small = [
        (title, c)
        for key, title, column, css, kind in SMALL_CHARTS
        if (c := _small_chart(key, title, report.series, column, css, kind, options)) is not None
    ]
    extras = [
        (name, c)
        for i, (name, pts) in enumerate(sorted(report.extras.items()))
        if (c := _extra_chart(f"extra{i}", name, pts, report.span_s, options)) is not None
    ]
    shown, hidden = summary.shown_culprits(verdict, options.max_culprits)
    return {
        "title": options.title_for(report.run),
        "run": report.run,
        "command": shlex.join(report.run.command),
        "facts": _run_facts(report.run, report.span_s, report.every_s),
        "verdict": verdict,
        "severity": summary.severity(verdict),
        "headline": summary.headline(verdict),
        "numbers": summary.key_numbers(verdict),
        "memory_chart": memory,
        "memory_note": memory_note,
        "small_title": ", ".join(title for title, _ in small).capitalize(),
        "small_charts": [c for _, c in small],
        "extras": extras,
        "culprits": [_culprit_row(i, c) for i, c in enumerate(shown, 1)],
        "hidden_culprits": hidden,
        "overlapping_shares": summary.overlapping_shares(verdict),
        "version": __version__,
        "generated": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
    }


class HtmlReporter:
    """One self-contained HTML page with the verdict, evidence, charts and culprits."""

    def render(self, report: RunReport, options: ReportOptions, out: TextIO) -> None:
        template = _environment().get_template("report.html.j2")
        out.write(template.render(report_context(report, options)))
