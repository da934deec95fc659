"""The terminal report (rich): a coloured verdict, its numbers and evidence, culprits, a sparkline.

Every string that came from the target goes in as rich `Text`, never as markup, so a culprit
named `list[bold]` prints as written; control characters are shown escaped.
"""

from __future__ import annotations

import datetime as dt
import shlex
from typing import TextIO

import numpy as np
from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from memsleuth import units
from memsleuth.model import FloatArray, Run, Series, Verdict
from memsleuth.reports import summary
from memsleuth.reports.base import ReportOptions, RunReport
from memsleuth.reports.plot import time_buckets

STYLES: dict[summary.Severity, str] = {
    "problem": "bold red",
    "warning": "bold yellow",
    "info": "bold cyan",
    "ok": "bold green",
}
_BLOCKS = "▁▂▃▄▅▆▇█"
# Columns a non-terminal stream is rendered at when no width is given: stable output for files.
FILE_WIDTH = 100


def printable(text: str) -> str:
    """`text` with control characters escaped (\\x1b, \\n ...): a target cannot drive the tty."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def sparkline(t: FloatArray, values: FloatArray, width: int) -> str:
    """Values over time as unicode blocks, one per column; a flat series is a flat line."""
    span = float(t[-1] - t[0]) if t.size else 0.0
    means = time_buckets(t - (t[0] if t.size else 0.0), values, span, max(width, 1))
    if means.size == 0:
        return ""
    lo, hi = float(means.min()), float(means.max())
    if hi - lo <= 0:
        return _BLOCKS[0] * means.size
    scaled = (means - lo) / (hi - lo) * (len(_BLOCKS) - 1)
    return "".join(_BLOCKS[round(float(v))] for v in scaled)


def make_console(out: TextIO, options: ReportOptions) -> Console:
    """A console on `out`: ANSI only for a terminal (or when options.color forces it)."""
    is_tty = bool(getattr(out, "isatty", lambda: False)())
    width = options.width or (None if is_tty else FILE_WIDTH)
    return Console(
        file=out,
        width=width,
        force_terminal=options.color,
        no_color=options.color is False,
        highlight=False,
        emoji=False,
        soft_wrap=False,
    )


def _bullets(items: tuple[str, ...], style: str = "") -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=2, style="dim")
    grid.add_column()
    for item in items:
        grid.add_row("•", Text(printable(item), style=style))
    return grid


def _numbers(verdict: Verdict) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", min_width=16)
    grid.add_column(style="bold")
    grid.add_column(style="dim")
    for k in summary.key_numbers(verdict):
        grid.add_row(k.label, k.value, k.detail)
    return grid


def _culprits(verdict: Verdict, limit: int) -> Table | None:
    shown, hidden = summary.shown_culprits(verdict, limit)
    if not shown:
        return None
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False, caption_justify="left"
    )
    table.add_column("#", justify="right", style="dim")
    # The kind goes under the name, with the growth: as a column of its own it took the
    # width that long names (`RaknetSession.sent_datagrams (dict)`) were broken into at 80.
    table.add_column("culprit", overflow="fold", ratio=3)
    table.add_column("growth/h", justify="right", no_wrap=True)
    table.add_column("share", justify="right")
    table.add_column("size", justify="right", no_wrap=True)
    for i, c in enumerate(shown, 1):
        name = Text(printable(c.name), style="bold")
        detail = f"{c.kind}: {c.growth}" if c.growth else c.kind
        name.append("\n" + printable(detail), style="dim")
        table.add_row(
            str(i),
            name,
            units.format_per_hour(c.growth_per_hour, c.unit),
            units.format_percent(c.share) if c.share > 0 else "–",
            summary.culprit_size(c),
        )
    notes = [summary.overlapping_shares(verdict)]
    if hidden:
        notes.append(f"{hidden} more not shown (analyze --json lists them all)")
    if any(notes):
        table.caption = "\n".join(n for n in notes if n)
    return table


def _emit(console: Console, *renderables: RenderableType) -> None:
    """Print, minus the trailing blanks rich pads table cells with (they litter files and diffs)."""
    with console.capture() as capture:
        for r in renderables:
            console.print(r)
    text = "\n".join(line.rstrip() for line in capture.get().split("\n"))
    console.file.write(text)
    console.file.flush()


def render_verdict(
    verdict: Verdict, console: Console, options: ReportOptions | None = None
) -> None:
    """The verdict block `memsleuth analyze` prints: headline, numbers, evidence, culprits."""
    _emit(console, *_verdict_parts(verdict, options or ReportOptions()))


def _verdict_parts(verdict: Verdict, options: ReportOptions) -> list[RenderableType]:
    parts: list[RenderableType] = []
    style = STYLES[summary.severity(verdict)]
    head = Text(summary.headline(verdict), style=style)
    parts.append(
        Panel(
            Group(head, Text(""), _numbers(verdict)),
            title=Text(f" {verdict.verdict.upper()} ", style=f"reverse {style}"),
            title_align="left",
            border_style=style.replace("bold ", ""),
            box=box.ROUNDED,
            expand=False,
            padding=(0, 2),
        )
    )
    if verdict.evidence:
        parts += [Text("Evidence", style="bold"), _bullets(verdict.evidence)]
    if verdict.would_change:
        parts += [
            Text("What would change this verdict", style="bold"),
            _bullets(verdict.would_change, style="dim"),
        ]
    table = _culprits(verdict, options.max_culprits)
    if table is not None:
        parts += [Text("Culprits", style="bold"), table]
    return parts


def _run_header(run: Run, span_s: float, every_s: float, title: str) -> Group:
    started = dt.datetime.fromtimestamp(run.started_at, dt.timezone.utc)
    facts = [
        f"run {run.id}",
        run.kind,
        f"pid {run.pid}" if run.pid is not None else "",
        f"on {printable(run.host)}" if run.host else "",
        f"started {started:%Y-%m-%d %H:%M} UTC",
        f"{units.format_duration(span_s)}",
        f"{run.sample_count:,} samples @ {units.format_duration(every_s)}",
    ]
    status = summary.exit_status(run)
    if status is not None:
        facts.append(f"exit status {status}")
    lines = [
        Text(printable(title), style="bold"),
        Text(" · ".join(f for f in facts if f), style="dim"),
    ]
    if run.command:
        cmd = Text("command  ", style="dim")
        cmd.append(printable(shlex.join(run.command)))
        lines.append(cmd)
    if run.note:
        lines.append(Text(printable(run.note), style="dim italic"))
    return Group(*lines)


def _memory_lines(series: Series, width: int) -> Table | None:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", min_width=5)
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column(style="dim", no_wrap=True)
    # One column per sample at most: a short run is not stretched into repeated blocks.
    spark_w = min(len(series), max(10, min(60, width - 50)))
    rows = 0
    for name, label in (("rss_bytes", "RSS"), ("pss_bytes", "PSS"), ("uss_bytes", "USS")):
        col = series.get(name)
        if col is None:
            continue
        finite = col[np.isfinite(col)]
        rows += 1
        grid.add_row(
            label,
            sparkline(series.t, col, spark_w),
            f"{units.format_bytes(finite[0])} → {units.format_bytes(finite[-1])}"
            f"  (max {units.format_bytes(finite.max())})",
        )
    for name, label in (("threads", "thr"), ("fds", "fds")):
        col = series.get(name)
        if col is None:
            continue
        finite = col[np.isfinite(col)]
        rows += 1
        grid.add_row(
            label,
            sparkline(series.t, col, spark_w),
            f"{finite[0]:.0f} → {finite[-1]:.0f}  (max {finite.max():.0f})",
        )
    return grid if rows else None


class TerminalReporter:
    """Rich text for a person at a terminal; plain text (no ANSI) into a file or a pipe."""

    def render(self, report: RunReport, options: ReportOptions, out: TextIO) -> None:
        console = make_console(out, options)
        parts: list[RenderableType] = [
            _run_header(report.run, report.span_s, report.every_s, options.title_for(report.run)),
            Text(""),
            *_verdict_parts(report.verdict, options),
        ]
        memory = _memory_lines(report.series, console.width)
        if memory is not None:
            parts += [Text("Over time", style="bold"), memory]
        _emit(console, *parts)
