"""The Markdown report: the verdict, a fenced block of key numbers, tables that target text
cannot break or inject HTML into.
"""

from __future__ import annotations

import dataclasses
import io
import re

import numpy as np

from memsleuth.model import Series
from memsleuth.reports.base import ReportOptions
from memsleuth.reports.markdown import MarkdownReporter, md_code, md_text
from tests.report_factories import build_leak_report


def _render(**kw: object) -> str:
    out = io.StringIO()
    MarkdownReporter().render(build_leak_report(**kw), ReportOptions(), out)  # type: ignore[arg-type]
    return out.getvalue()


def test_the_verdict_numbers_evidence_and_culprits() -> None:
    text = _render()
    assert "## 🔴 Verdict: **LEAK**" in text
    fenced = text.split("```text\n", 1)[1].split("```", 1)[0]
    assert "RSS growth     +40.1 MiB/h  (95% CI +38.2 – +42.0 MiB/h)" in fenced
    assert "time to limit  5.2 h  (limit 512 MiB)" in fenced
    assert "- Mann–Kendall trend test" in text
    assert "| 1 | module app.dedup, global PROCESSED\\_SIGNATURES (dict) | container |" in text
    assert "| RSS | 20.0 MiB | 160 MiB |" in text


def _cells(row: str) -> list[str]:
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_target_text_cannot_inject_html_or_break_a_table() -> None:
    text = _render(
        command=("sh", "-c", "echo `id` | <script>alert(1)</script>"),
        culprit_name='a|b &"<script>alert(1)</script> *x*',
    )
    assert "<script>" not in text.replace("<script>alert(1)</script>'``", "")
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert len(_cells(row)) == 7
    assert 'a\\|b &amp;"&lt;script&gt;alert(1)&lt;/script&gt; \\*x\\*' in row
    cmd = next(line for line in text.splitlines() if line.startswith("| command |"))
    assert len(_cells(cmd)) == 2
    # Quoted as a shell would need it (it had read `sh -c echo ...`, not runnable as shown).
    assert "``sh -c 'echo `id` \\| <script>alert(1)</script>'``" in cmd, cmd


def test_escaping_helpers() -> None:
    assert md_text("a\nb  [c](http://x)") == "a b \\[c\\](http://x)"
    assert md_code("x`y") == "``x`y``"
    assert md_code("`a`") == "`` `a` ``"


def test_the_sample_spacing_is_the_samples_own() -> None:
    # A soak samples on a timer and at its milestones: "every 0.2 s" had been printed for
    # samples 15 ms apart, the timer's longest wait.
    report = build_leak_report()
    t = np.arange(50) * 0.015
    report = dataclasses.replace(
        report,
        run=dataclasses.replace(report.run, interval_s=0.2),
        series=Series.from_arrays(t, np.full(50, 20e6)),
    )
    out = io.StringIO()
    MarkdownReporter().render(report, ReportOptions(), out)
    assert "| samples | 721 every 15 ms |" in out.getvalue()


def test_a_target_memsleuth_stopped_is_said_to_be_stopped_not_failed() -> None:
    # "exit status 143" alone, after --duration, had read as the target failing.
    report = build_leak_report()
    stopped = dataclasses.replace(report.run, exit_status=143, note="duration reached")
    out = io.StringIO()
    MarkdownReporter().render(dataclasses.replace(report, run=stopped), ReportOptions(), out)
    assert "| exit status | 143 (stopped by memsleuth) |" in out.getvalue()
    failed = dataclasses.replace(report.run, exit_status=3, note="target exited")
    out = io.StringIO()
    MarkdownReporter().render(dataclasses.replace(report, run=failed), ReportOptions(), out)
    assert "| exit status | 3 |" in out.getvalue()


def test_a_heap_never_mapped_gets_no_row() -> None:
    # Go and other allocators that map their own memory have no [heap]: "| heap | 0 B |" had
    # read as data missing. A heap that was there keeps its row.
    report = build_leak_report()
    t = np.arange(50.0)
    for heap, row in ((np.zeros(50), False), (np.full(50, 8e6), True)):
        series = Series.from_arrays(t, np.full(50, 20e6), heap_bytes=heap)
        out = io.StringIO()
        MarkdownReporter().render(dataclasses.replace(report, series=series), ReportOptions(), out)
        assert ("| heap |" in out.getvalue()) is row
