"""The terminal report: plain text into files and pipes, colour on a terminal, target text inert."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from rich.console import Console

from memsleuth.model import Verdict
from memsleuth.reports.base import ReportOptions
from memsleuth.reports.summary import headline
from memsleuth.reports.terminal import TerminalReporter, render_verdict, sparkline
from tests.report_factories import build_leak_report


def _render(options: ReportOptions | None = None, **kw: object) -> str:
    out = io.StringIO()
    TerminalReporter().render(build_leak_report(**kw), options or ReportOptions(), out)  # type: ignore[arg-type]
    return out.getvalue()


def test_a_file_gets_plain_text_with_the_verdict_numbers_and_culprits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    text = _render()
    assert "\x1b[" not in text
    assert "LEAK" in text
    assert "Memory grows without bound: +40.1 MiB/h; limit reached in 5.2 h" in text
    assert "95% CI +38.2 – +42.0 MiB/h" in text
    assert "warm-up ends      15 min" in text
    assert "Mann–Kendall" in text
    assert "PROCESSED_SIGNATURES" in text and "+576k entries/h" in text and "62%" in text
    assert "command  ./server --port 8080" in text
    assert all(line == line.rstrip() for line in text.splitlines())
    assert max(len(line) for line in text.splitlines()) <= 100


def test_colour_when_asked() -> None:
    assert "\x1b[" in _render(ReportOptions(color=True))


def test_target_strings_are_not_markup_and_cannot_drive_the_terminal() -> None:
    text = _render(
        command=("evil", "\x1b]0;owned\x07", "[red]x[/red]"),
        culprit_name="list[bold]ITEMS[/bold] \x1b[2J",
    )
    assert "[red]x[/red]" in text
    assert "list[bold]ITEMS[/bold]" in text
    assert "\x1b" not in text and "\\x1b" in text


def test_max_culprits_limits_the_table() -> None:
    text = _render(ReportOptions(max_culprits=1))
    assert "CACHE1" not in text
    assert "2 more not shown (analyze --json lists them all)" in text


def test_render_verdict_alone_for_analyze() -> None:
    out = io.StringIO()
    verdict = Verdict(
        "inconclusive", 0.4, ("only 12 samples",), more_time_s=1800.0, growth_bytes_per_hour=1e5
    )
    render_verdict(verdict, Console(file=out, width=90))
    text = out.getvalue()
    assert "INCONCLUSIVE" in text
    assert "record 30 min more" in text
    assert "only 12 samples" in text
    assert "Culprits" not in text


def test_render_verdict_for_a_stable_run_has_no_growth_in_the_headline() -> None:
    report = build_leak_report()
    verdict = dataclasses.replace(
        report.verdict, verdict="stable", culprits=(), time_to_limit_s=None
    )
    out = io.StringIO()
    render_verdict(verdict, Console(file=out, width=90))
    assert "Memory is not growing" in out.getvalue()
    assert "Memory is not growing:" not in out.getvalue()


@pytest.mark.parametrize(
    ("name", "changes", "says", "never"),
    [
        ("thread-leak", {"thread_growth_per_hour": 1800.0}, "+1.80k threads/h", "B/h"),
        ("fd-leak", {"fd_growth_per_hour": 3600.0}, "+3.60k fds/h", "B/h"),
        (
            "step",
            {"growth_ci_bytes_per_hour": (-1e5, 3e5)},
            "Memory jumped, then stayed flat",
            "/h",
        ),
        # Rising since by its interval: "then stayed flat" had headed "+42.1 MiB/h (95% CI
        # +21.1 – +60.9 MiB/h)" since the jump.
        ("step", {"growth_ci_bytes_per_hour": (1e5, 3e5)}, "and has risen since", "flat"),
    ],
)
def test_a_headline_quotes_its_own_quantity(
    name: str, changes: dict[str, object], says: str, never: str
) -> None:
    # Thread and fd leaks had quoted the RSS rate ("fds keep growing: 0 B/h"); a step had
    # read "jumped once, then stayed flat: +198 MiB/h".
    report = build_leak_report()
    verdict = dataclasses.replace(
        report.verdict, verdict=name, culprits=(), time_to_limit_s=None, **changes
    )
    text = headline(verdict)
    assert says in text and never not in text, text
    out = io.StringIO()
    render_verdict(verdict, Console(file=out, width=120))
    assert text in out.getvalue()


def test_sparkline_scales_between_the_lowest_and_highest_block() -> None:
    assert sparkline(np.arange(3.0), np.array([1.0, 2.0, 3.0]), 3) == "▁▅█"
    assert sparkline(np.arange(2.0), np.array([5.0, 5.0]), 10) == "▁" * 10
    assert len(sparkline(np.arange(1000.0), np.arange(1000.0), 40)) == 40


def test_sparkline_places_sparse_readings_by_time() -> None:
    # PSS read on every 10th sample only: its line spans the same time as RSS, and
    # unread samples are gaps, not zeros.
    t = np.arange(100.0)
    pss = np.where(t % 10 == 0, t, np.nan)
    line = sparkline(t, pss, 20)
    assert len(line) == 20
    assert line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line)


def test_at_80_columns_a_long_culprit_name_keeps_its_words_whole() -> None:
    # With a column of its own for the kind, `RaknetSession.sent_datagrams (dict)` had been
    # broken as `RaknetSession.sent_datagram` / `s (dict)`: not something to copy.
    name = "RaknetSession.sent_datagrams (dict)"
    text = _render(ReportOptions(width=80), culprit_name=name)
    assert name in text, text
    assert "container: 10,000 →" in text


def test_the_box_shows_a_count_rate_only_when_the_count_grows() -> None:
    # Every leak's box had carried "threads 0 threads/h" and "fds 0 fds/h".
    report = build_leak_report()
    flat = dataclasses.replace(report.verdict, thread_growth_per_hour=0.0, fd_growth_per_hour=0.0)
    out = io.StringIO()
    render_verdict(flat, Console(file=out, width=100))
    assert "threads/h" not in out.getvalue() and "fds/h" not in out.getvalue()
    growing = dataclasses.replace(flat, thread_growth_per_hour=120.0)
    out = io.StringIO()
    render_verdict(growing, Console(file=out, width=100))
    assert "+120 threads/h" in out.getvalue()


def test_shares_that_add_to_more_than_the_whole_are_said_to_overlap() -> None:
    # Two dicts keyed by the same strings had read 75% and 51%, with nothing said of it.
    from memsleuth.reports.markdown import MarkdownReporter

    report = build_leak_report()
    first, second = report.verdict.culprits[:2]
    culprits = (dataclasses.replace(first, share=0.75), dataclasses.replace(second, share=0.51))
    overlapping = dataclasses.replace(
        report, verdict=dataclasses.replace(report.verdict, culprits=culprits)
    )
    for reporter in (TerminalReporter(), MarkdownReporter()):
        out = io.StringIO()
        reporter.render(overlapping, ReportOptions(), out)
        assert "Shares add to 126%: culprits can hold the same objects" in out.getvalue()
    assert "Shares add to" not in _render()  # 62% + 24% + 9% + 5%
