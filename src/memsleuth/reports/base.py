"""What every reporter shares: the RunReport aggregate, ReportOptions, the Reporter protocol,
the format registry, and writing a report to a path without leaving half a file behind.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TextIO

from memsleuth.errors import MemsleuthError, UsageError
from memsleuth.model import Run, Series, Verdict

logger = logging.getLogger(__name__)

ReportFormat = Literal["terminal", "json", "markdown", "html"]
# format -> (module, class): imported on demand so `--format json` never imports jinja2 or rich.
REPORTERS: dict[str, tuple[str, str]] = {
    "terminal": ("memsleuth.reports.terminal", "TerminalReporter"),
    "json": ("memsleuth.reports.json", "JsonReporter"),
    "markdown": ("memsleuth.reports.markdown", "MarkdownReporter"),
    "html": ("memsleuth.reports.html", "HtmlReporter"),
}
FORMATS: tuple[str, ...] = tuple(REPORTERS)
# The file suffix each format is written with by default.
SUFFIXES: dict[str, str] = {"terminal": ".txt", "json": ".json", "markdown": ".md", "html": ".html"}

Points = tuple[tuple[float, float], ...]


@dataclass(frozen=True, eq=False)
class RunReport:
    """One run, already analysed: everything a reporter needs, and nothing it must compute.

    `extras` are further named series to show, as (t seconds from the first sample, value) pairs,
    e.g. a work counter or a probe's container size that is not a culprit.
    """

    run: Run
    series: Series
    verdict: Verdict
    extras: dict[str, Points] = field(default_factory=dict)

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last sample (0 for fewer than two)."""
        t = self.series.t
        return float(t[-1] - t[0]) if t.size >= 2 else 0.0


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """How to render, in one object so `render()` never grows a flag per option."""

    title: str | None = None  # None: "memsleuth report: <run name>"
    max_culprits: int = 10  # culprits listed (the rest are counted, not shown)
    width: int | None = None  # terminal columns; None: the terminal's, or 100 when not a tty
    color: bool | None = None  # terminal colours; None: only when writing to a terminal
    include_samples: bool = False  # JSON: add every sample column and the culprits' points
    max_points: int = 2000  # HTML: points per plotted line after min/max downsampling

    def title_for(self, run: Run) -> str:
        return self.title if self.title is not None else f"memsleuth report: {run.name}"


class Reporter(Protocol):
    """Turns a RunReport into one output format, written to a text stream."""

    def render(self, report: RunReport, options: ReportOptions, out: TextIO) -> None: ...


def get_reporter(fmt: str) -> Reporter:
    """The reporter for `fmt` (terminal, json, markdown, html)."""
    try:
        module, cls = REPORTERS[fmt]
    except KeyError:
        raise UsageError(
            f"unknown report format {fmt!r}",
            hint=f"choose one of: {', '.join(FORMATS)}",
        ) from None
    reporter: Reporter = getattr(importlib.import_module(module), cls)()
    return reporter


def write_report(
    report: RunReport,
    fmt: str,
    path: str | os.PathLike[str],
    options: ReportOptions | None = None,
) -> Path:
    """Render into `path`, atomically: on any failure no half-written file is left behind.

    The report is written to a temporary file next to `path` and renamed over it only once
    complete, so an existing report at `path` survives a failed render too.
    """
    reporter = get_reporter(fmt)
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=directory, text=True
        )
    except OSError as exc:
        raise MemsleuthError(
            f"cannot write the report to {target}: {exc.strerror or exc}",
            hint="check that the directory exists and is writable, or choose another --output",
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            reporter.render(report, options or ReportOptions(), out)
        # mkstemp creates 0600; a report is an ordinary file the user may share.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except OSError as exc:
        _discard(tmp_name)
        raise MemsleuthError(
            f"cannot write the report to {target}: {exc.strerror or exc}",
            hint="check the free space and that the path is a writable file",
        ) from exc
    except BaseException:
        _discard(tmp_name)
        raise
    logger.debug("wrote %s report to %s", fmt, target)
    return target


def _discard(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)
