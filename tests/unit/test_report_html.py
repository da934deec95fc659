"""The HTML report: one self-contained page, target text escaped, charts drawn where the
numbers say (checked by reading the SVG back), long series downsampled.
"""

from __future__ import annotations

import dataclasses
import io
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from memsleuth.model import Series, Trend
from memsleuth.reports.base import ReportOptions, RunReport
from memsleuth.reports.html import HtmlReporter
from tests.report_factories import build_leak_report

MIB = 1024.0 * 1024.0
SVG_NS = "{http://www.w3.org/2000/svg}"


def _html(report: RunReport, options: ReportOptions | None = None) -> str:
    out = io.StringIO()
    HtmlReporter().render(report, options or ReportOptions(), out)
    return out.getvalue()


def _svgs(page: str) -> list[ET.Element]:
    """Every inline <svg>, parsed as XML: this also proves each is well-formed."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def _memory_svg(page: str) -> ET.Element:
    return next(s for s in _svgs(page) if s.get("aria-label") == "memory over time")


def test_target_strings_are_escaped_everywhere() -> None:
    report = build_leak_report(
        command=("python", "app.py", "<script>alert(1)</script>"),
        culprit_name='CACHE &"<>',
    )
    report = dataclasses.replace(report, extras={"<img src=x onerror=alert(1)>": ((0, 1), (9, 5))})
    page = _html(report, ReportOptions(title="<b>title</b>"))
    assert "<script" not in page
    assert "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "CACHE &amp;&#34;&lt;&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    _svgs(page)  # the extra's SVG, with the hostile name in it, is still well-formed


def test_the_page_is_self_contained() -> None:
    page = _html(build_leak_report())
    assert not re.search(r"""\b(src|href)\s*=""", page)
    assert "@import" not in page
    assert re.findall(r"url\(([^)]*)\)", page) == ["#clip-memory", "#clip-threads", "#clip-fds"]
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}


def _axis_maps(svg: ET.Element) -> tuple[np.ndarray, np.ndarray]:
    """(value, pixel) fits for the y axis and the x axis, read from the tick labels."""
    ys, xs = [], []
    for t in svg.iter(f"{SVG_NS}text"):
        if t.get("class") != "tick":
            continue
        value = float((t.text or "").replace(",", ""))
        if t.get("text-anchor") == "end":
            ys.append((value, float(t.get("y", "0")) - 4))
        else:
            xs.append((value, float(t.get("x", "0"))))
    return np.polyfit(*zip(*ys, strict=True), 1), np.polyfit(*zip(*xs, strict=True), 1)


def test_trend_warmup_and_ceiling_are_drawn_at_their_values() -> None:
    report = build_leak_report()
    trend = Trend(
        t0_s=900.0, t1_s=7200.0, intercept_bytes=90 * MIB, slope_bytes_per_s=40 * MIB / 3600
    )
    verdict = dataclasses.replace(report.verdict, trend=trend, ceiling_bytes=150 * MIB)
    svg = _memory_svg(_html(dataclasses.replace(report, verdict=verdict)))
    ymap, xmap = _axis_maps(svg)  # y ticks in MiB, x ticks in minutes

    trend_line = next(p for p in svg.iter(f"{SVG_NS}polyline") if "c-trend" in p.get("class", ""))
    (x0, y0), (x1, y1) = (map(float, p.split(",")) for p in trend_line.get("points", "").split())
    assert abs(x0 - np.polyval(xmap, 15)) < 1 and abs(x1 - np.polyval(xmap, 120)) < 1
    assert abs(y0 - np.polyval(ymap, 90)) < 1
    assert abs(y1 - np.polyval(ymap, 90 + 40 * 105 / 60)) < 1

    rules = {
        r.get("class", "").split()[-1]: r
        for r in svg.iter(f"{SVG_NS}line")
        if "rule" in r.get("class", "")
    }
    assert abs(float(rules["c-warmup"].get("x1", "0")) - np.polyval(xmap, 15)) < 1
    assert abs(float(rules["c-ceiling"].get("y1", "0")) - np.polyval(ymap, 150)) < 1
    labels = {t.text for t in svg.iter(f"{SVG_NS}text")}
    assert {"warm-up ends", "ceiling 150 MiB", "memory (MiB)", "time since start (min)"} <= labels
    assert "trend +40.0 MiB/h" in labels


def test_a_near_limit_is_drawn_and_a_far_one_is_noted() -> None:
    report = build_leak_report()
    near = dataclasses.replace(report.verdict, limit_bytes=int(180 * MIB))
    page = _html(dataclasses.replace(report, verdict=near))
    assert "limit 180 MiB" in {t.text for t in _memory_svg(page).iter(f"{SVG_NS}text")}
    page = _html(report)  # 512 MiB limit, data tops at ~165 MiB
    assert "The memory limit (512 MiB) is above the chart." in page
    assert "rule c-limit" not in page


def test_long_series_are_downsampled_keeping_the_peak() -> None:
    n = 100_000
    t = np.arange(n, dtype=np.float64)
    rss = 100 * MIB + t * 100.0
    rss[54_321] = 400 * MIB
    report = dataclasses.replace(
        build_leak_report(), series=Series.from_arrays(t, rss, threads=np.full(n, 4.0))
    )
    svg_list = _svgs(_html(report))
    for svg in svg_list:
        for line in svg.iter(f"{SVG_NS}polyline"):
            assert len(line.get("points", "").split()) <= 2000
    memory = _memory_svg(_html(report))
    ymap, _ = _axis_maps(memory)
    rss_line = next(p for p in memory.iter(f"{SVG_NS}polyline") if "c-rss" in p.get("class", ""))
    top = min(float(p.split(",")[1]) for p in rss_line.get("points", "").split())
    assert abs(top - np.polyval(ymap, 400)) < 1


def test_sections_follow_the_data() -> None:
    report = build_leak_report()
    page = _html(report, ReportOptions(max_culprits=2))
    assert page.count('class="cname"') == 2 and "1 more culprits not shown (" in page
    assert 'id="counts"' in page and "Threads, open fds" in page
    bare = dataclasses.replace(
        report,
        series=Series.from_arrays(report.series.t, report.series.rss),
        verdict=dataclasses.replace(report.verdict, culprits=()),
    )
    page = _html(bare)
    assert 'id="counts"' not in page and 'id="culprits"' not in page
    assert 'id="memory"' in page


def test_a_stretch_nothing_was_read_in_is_left_open_and_a_lone_sample_is_drawn() -> None:
    # PSS is read rarely and the recorder may stop: a line across a gap drew a ramp that never
    # happened. And a run of one sample had drawn empty axes.
    t = np.arange(100.0)
    pss = np.full(100, 50 * MIB)
    pss[10:40] = np.nan
    report = dataclasses.replace(
        build_leak_report(),
        series=Series.from_arrays(t, np.full(100, 60 * MIB), pss_bytes=pss),
    )
    memory = _memory_svg(_html(report))
    pss_lines = [p for p in memory.iter(f"{SVG_NS}polyline") if "c-pss" in p.get("class", "")]
    assert len(pss_lines) == 2  # before the gap and after it, not one line across
    one = dataclasses.replace(
        build_leak_report(), series=Series.from_arrays(np.zeros(1), np.full(1, 60 * MIB))
    )
    marks = [c for c in _memory_svg(_html(one)).iter(f"{SVG_NS}circle")]
    assert any("c-rss" in c.get("class", "") for c in marks)


@pytest.mark.parametrize(
    ("name", "axis"),
    [
        ("container_bytes:module __main__, global CACHE (dict)", "memory"),
        # A process's RSS under --children had been drawn on a "count" axis ("250M").
        ("process:27006 cow_fork", "memory"),
        ("native:malloc_inuse", "memory"),
        ("native:py_blocks", "count"),
        ("container:module __main__, global CACHE (dict)", "count"),
    ],
)
def test_bytes_are_on_a_bytes_axis_and_counts_on_a_count_axis(name: str, axis: str) -> None:
    report = dataclasses.replace(
        build_leak_report(), extras={name: tuple((float(i), 1e6 * i) for i in range(10))}
    )
    chart = next(s for s in _svgs(_html(report)) if s.get("aria-label") == name)
    titles = [
        e.text or "" for e in chart.iter(f"{SVG_NS}text") if "axis-title" in e.get("class", "")
    ]
    assert any(title.startswith(axis) for title in titles), titles


def test_a_downsampled_line_without_gaps_is_drawn_in_one_piece() -> None:
    # Min and max per bucket are unevenly spaced: measured on the drawn points, a "gap"
    # showed between buckets and broke a long line into pieces.
    n = 100_000
    t = np.arange(n, dtype=np.float64)
    rss = 100 * MIB + t * 100.0 + np.random.default_rng(3).normal(0, MIB, n)
    report = dataclasses.replace(build_leak_report(), series=Series.from_arrays(t, rss))
    memory = _memory_svg(_html(report))
    rss_lines = [p for p in memory.iter(f"{SVG_NS}polyline") if "c-rss" in p.get("class", "")]
    assert len(rss_lines) == 1
