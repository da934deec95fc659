"""What every reporter shares: the RunReport aggregate, ReportOptions, the Reporter protocol,
the format registry, and writing a report to a path without leaving half a file behind.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TextIO

import numpy as np

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

    @property
    def every_s(self) -> float:
        """The samples' usual spacing: the median, as recorded. The run's configured interval
        is a timer's longest wait; a soak also samples at its milestones (it had read "52 @
        0.2 s" for samples 15 ms apart), and a command soak takes one a run."""
        t = self.series.t
        return float(np.median(np.diff(t))) if t.size >= 2 else self.run.interval_s


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


@contextlib.contextmanager
def write_atomically(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """A text stream whose content lands at `path` only if the block completes.

    It writes to a temporary file next to `path` and renames it over `path` at the end, so a
    failure (an exception, Ctrl-C, a full disk) leaves no half-written file - and an existing
    file at `path` survives untouched, keeping its mode (and owner, where that can be kept).
    A symlink is written through (the link stays); a device, FIFO or socket is written to as
    a shell's `>` would (`-o /dev/stdout`): renaming over it would replace `/dev/full` with a
    regular file. OSErrors become a MemsleuthError with a hint.
    """
    try:
        st: os.stat_result | None = os.stat(path)  # through links: what the path names
    except OSError:
        st = None  # missing (or unreadable): the write itself says what is wrong
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        # Opened by the name given: `/dev/stdout` on a pipe resolves to `pipe:[…]`, which
        # names nothing that can be opened.
        with (
            _cannot_write(Path(path), "check that the path can be written"),
            open(path, "w", encoding="utf-8", newline="\n") as out,
        ):
            yield out
        return
    target = Path(os.path.realpath(path))
    if st is not None and stat.S_ISDIR(st.st_mode):
        # Said now: a fleet scan had run for minutes before "Is a directory".
        raise MemsleuthError(
            f"cannot write {target}: it is a directory", "give a file name, e.g. report.html"
        )
    if st is not None and _is_database(target):
        raise MemsleuthError(
            f"{target} is an SQLite database or its write-ahead log (a memsleuth store?): "
            "not replacing it",
            hint="choose another output file; a store passed as the output would be lost",
        )
    with _cannot_write(target, "check that the directory exists and is writable"):
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent, text=True
        )
    try:
        with _cannot_write(target, "check the free space and that the path is a file"):
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                yield out
            # mkstemp creates 0600; a report is an ordinary file the user may share, and a
            # file replaced keeps the mode (and owner) it had.
            os.chmod(tmp_name, stat.S_IMODE(st.st_mode) if st is not None else 0o644)
            if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                with contextlib.suppress(OSError):  # only root may give a file away
                    os.chown(tmp_name, st.st_uid, st.st_gid)
            os.replace(tmp_name, target)
    except BaseException:
        _discard(tmp_name)
        raise


@contextlib.contextmanager
def _cannot_write(target: Path, hint: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise MemsleuthError(f"cannot write {target}: {exc.strerror or exc}", hint=hint) from exc


def write_report(
    reporter: Reporter | str,
    report: RunReport,
    options: ReportOptions | None,
    path: str | os.PathLike[str],
) -> Path:
    """Render `report` into `path` (atomically, see write_atomically); `reporter` or a format."""
    if isinstance(reporter, str):
        reporter = get_reporter(reporter)
    with write_atomically(path) as out:
        reporter.render(report, options or ReportOptions(), out)
    logger.debug("wrote %s to %s", type(reporter).__name__, path)
    return Path(path)


# The first bytes of an SQLite database and of its -wal file: a report must never replace one.
_DATABASE_MAGIC = (b"SQLite format 3\x00", b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")


def _is_database(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return False  # missing, a directory, unreadable: the write itself says what is wrong
    return head.startswith(_DATABASE_MAGIC)


def _discard(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)
