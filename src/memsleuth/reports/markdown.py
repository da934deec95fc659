"""The Markdown report: the terminal report's content as headings, bullets, tables and a fenced
block of key numbers, for pull requests, issues and wikis.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import shlex
from typing import TextIO

import numpy as np

from memsleuth import __version__, units
from memsleuth.model import Run, Series, Verdict
from memsleuth.reports import summary
from memsleuth.reports.base import ReportOptions, RunReport

_SEVERITY_MARK: dict[summary.Severity, str] = {
    "problem": "🔴",
    "warning": "🟡",
    "info": "🔵",
    "ok": "🟢",
}
# Inline syntax only: every escaped string sits after "- " or inside a table cell, so line-start
# syntax (#, +, -, 1.) cannot trigger; < > & are turned into entities by html.escape first.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_text(text: str) -> str:
    """Target text safe in Markdown: one line, HTML entities escaped, Markdown syntax inert."""
    one_line = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def md_code(text: str) -> str:
    """Inline code that survives backticks inside: a fence longer than any run of them."""
    one_line = " ".join(text.split())
    longest = max((len(m) for m in re.findall(r"`+", one_line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


def _verdict_lines(verdict: Verdict, options: ReportOptions) -> list[str]:
    mark = _SEVERITY_MARK[summary.severity(verdict)]
    lines = [
        f"## {mark} Verdict: **{verdict.verdict.upper()}**",
        "",
        f"{md_text(summary.headline(verdict))}.",
        "",
        "```text",
    ]
    numbers = summary.key_numbers(verdict)
    width = max((len(k.label) for k in numbers), default=0)
    for k in numbers:
        detail = f"  ({k.detail})" if k.detail else ""
        lines.append(f"{k.label:<{width}}  {k.value}{detail}")
    lines += ["```", ""]
    if verdict.evidence:
        lines += ["### Evidence", ""]
        lines += [f"- {md_text(e)}" for e in verdict.evidence]
        lines.append("")
    if verdict.would_change:
        lines += ["### What would change this verdict", ""]
        lines += [f"- {md_text(e)}" for e in verdict.would_change]
        lines.append("")
    lines += _culprit_lines(verdict, options.max_culprits)
    return lines


def _culprit_lines(verdict: Verdict, limit: int) -> list[str]:
    shown, hidden = summary.shown_culprits(verdict, limit)
    if not shown:
        return []
    lines = [
        "### Culprits",
        "",
        "| # | culprit | kind | growth | per hour | share | size |",
        "|--:|---|---|---|--:|--:|--:|",
    ]
    for i, c in enumerate(shown, 1):
        share = units.format_percent(c.share) if c.share > 0 else "–"
        lines.append(
            f"| {i} | {md_text(c.name)} | {md_text(c.kind)} | {md_text(c.growth)} "
            f"| {units.format_per_hour(c.growth_per_hour, c.unit)} | {share} "
            f"| {summary.culprit_size(c)} |"
        )
    lines.append("")
    overlap = summary.overlapping_shares(verdict)
    if overlap:
        lines += [f"_{md_text(overlap)}._", ""]
    if hidden:
        said = f"{hidden} more culprits not shown (`memsleuth analyze --json` lists them all)"
        lines += [f"_{said}._", ""]
    with_evidence = [(i, c) for i, c in enumerate(shown, 1) if c.evidence]
    for i, c in with_evidence:
        lines.append(f"**{i}. {md_text(c.name)}**")
        lines.append("")
        lines += [f"- {md_text(e)}" for e in c.evidence]
        lines.append("")
    return lines


def _run_lines(run: Run, span_s: float, every_s: float) -> list[str]:
    started = dt.datetime.fromtimestamp(run.started_at, dt.timezone.utc)
    rows = [
        ("run", f"{run.id} ({run.kind})"),
        ("command", md_code(shlex.join(run.command)) if run.command else "–"),
        ("pid", str(run.pid) if run.pid is not None else "–"),
        ("host", md_text(run.host) or "–"),
        ("started", f"{started:%Y-%m-%d %H:%M:%S} UTC"),
        ("duration", units.format_duration(span_s)),
        ("samples", f"{run.sample_count:,} every {units.format_duration(every_s)}"),
    ]
    if run.limit_bytes:
        rows.append(("memory limit", units.format_bytes(run.limit_bytes)))
    status = summary.exit_status(run)
    if status is not None:
        rows.append(("exit status", status))
    if run.note:
        rows.append(("note", md_text(run.note)))
    # Escape pipes that md_code left alone: inside a table cell they would split the cell.
    body = ["| " + k + " | " + v.replace("|", "\\|") + " |" for k, v in rows]
    return ["### Run", "", "| | |", "|---|---|", *body, ""]


def _series_lines(series: Series) -> list[str]:
    labels = {
        "rss_bytes": "RSS",
        "pss_bytes": "PSS",
        "uss_bytes": "USS",
        "anon_bytes": "anonymous",
        "swap_bytes": "swap",
        "heap_bytes": "heap",
        "threads": "threads",
        "fds": "fds",
    }
    rows = []
    for name, label in labels.items():
        col = series.get(name)
        if col is None:
            continue
        v = col[np.isfinite(col)]
        if name == "heap_bytes" and not v.any():
            # No [heap] mapping (Go, Rust with jemalloc, musl: their allocators map their
            # own memory): a row of 0 B had read as data missing.
            continue
        fmt = units.format_bytes if name.endswith("_bytes") else units.format_count
        rows.append(
            f"| {label} | {fmt(v[0])} | {fmt(v[-1])} | {fmt(float(v.min()))} "
            f"| {fmt(float(v.max()))} |"
        )
    if not rows:
        return []
    return [
        "### Over time",
        "",
        "| series | first | last | min | max |",
        "|---|--:|--:|--:|--:|",
        *rows,
        "",
    ]


class MarkdownReporter:
    """GitHub-flavoured Markdown; every string from the target is escaped."""

    def render(self, report: RunReport, options: ReportOptions, out: TextIO) -> None:
        lines = [f"# {md_text(options.title_for(report.run))}", ""]
        lines += _verdict_lines(report.verdict, options)
        lines += _series_lines(report.series)
        lines += _run_lines(report.run, report.span_s, report.every_s)
        lines.append(f"_Generated by memsleuth {__version__}._")
        out.write("\n".join(lines) + "\n")
