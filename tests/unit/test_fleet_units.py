"""Pure parts of the fleet: windows, the matrix parser, restarts, ranking, batches, rules."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import math
import re
import warnings

import numpy as np
import pytest

from memsleuth.errors import SourceError
from memsleuth.fleet.judging import (
    confirm_on_floor,
    entry_to_dict,
    is_gone,
    judge_series,
    rank,
    restart_points,
)
from memsleuth.fleet.rules import RuleOptions, render_rules
from memsleuth.fleet.scan import (
    FLOOR,
    MEAN,
    ScanResult,
    exact_selector,
    parse_selector,
    plan_batches,
    plan_jobs,
    plan_step,
    restart_times,
    step_expr,
)
from memsleuth.fleet.table import print_table
from memsleuth.model import Series, Verdict
from memsleuth.sources.prometheus import MAX_POINTS, RangeSeries, parse_matrix, plan_windows


def test_windows_cover_the_range_within_the_limit() -> None:
    wins = plan_windows(0, 100_000, 5)
    assert wins[0][0] == 0 and wins[-1][1] == 100_000
    assert all((e - s) / 5 + 1 <= MAX_POINTS for s, e in wins)
    assert all(b[0] - a[1] == 5 for a, b in itertools.pairwise(wins))  # no overlap, no hole
    assert plan_windows(0, 600, 60) == [(0, 600)]


def _matrix(values: list[list[object]], labels: dict[str, str]) -> bytes:
    doc = {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": labels, "values": values}]},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def test_fast_and_generic_parsers_agree() -> None:
    vals = [[1000 + i, str(v)] for i, v in enumerate([1, 2.5, "NaN", "+Inf", 7e9])]
    body = _matrix(vals, {"__name__": "m", "a": 'x"y}'})
    (fast,) = parse_matrix(body)
    (slow,) = parse_matrix(json.dumps(json.loads(body), indent=1).encode())  # not the fast layout
    assert fast.labels == slow.labels == (("__name__", "m"), ("a", 'x"y}'))
    np.testing.assert_array_equal(fast.values, slow.values)
    np.testing.assert_array_equal(fast.t, np.arange(1000, 1005.0))


@pytest.mark.parametrize("body", [b"<html>", b'{"status":"success","data":{"resultType":"m'])
def test_malformed_answers_raise_with_a_hint(body: bytes) -> None:
    with pytest.raises(SourceError) as e:
        parse_matrix(body)
    assert "malformed" in e.value.message and e.value.hint


def test_error_answers_carry_prometheus_message() -> None:
    with pytest.raises(SourceError, match="bad_data: parse error"):
        parse_matrix(b'{"status":"error","errorType":"bad_data","error":"parse error"}')


def test_restarts_are_gaps_and_falls_to_the_start_level() -> None:
    t = np.arange(300.0) * 60
    v = 100 + (np.arange(300) % 100) * 5.0  # reset to 100 every 100 samples
    assert restart_points(t, v, 60) == [100, 200]
    t2 = np.concatenate([t[:150], t[150:] + 3600])  # an hour with no samples
    assert restart_points(t2, np.full(300, 100.0), 60) == [150]
    saw = 100 + (np.arange(3000) % 10) * 20.0  # many falls: a sawtooth, not restarts
    assert restart_points(np.arange(3000.0), saw, 1) == []


def test_start_times_say_which_falls_are_restarts() -> None:
    t = np.arange(300.0) * 60
    flush = 100 + (np.arange(300) % 100) * 5.0  # back to 100 every 100 samples
    # The process' start time never changed: the falls are flushes.
    assert restart_points(t, flush, 60, restarts=np.array([])) == []
    # Restarted every 10 samples: 29 restarts, which falls alone would call a sawtooth.
    often = 100 + (np.arange(300) % 10) * 50.0
    assert restart_points(t, often, 60) == []
    changed = t[10::10]  # where the start time changed: with the new life's first sample
    assert restart_points(t, often, 60, restarts=changed) == list(range(10, 300, 10))
    assert restart_points(t, flush, 60, np.array([t[-1]])) == [299]


def test_the_step_mean_that_holds_a_restart_is_in_neither_life() -> None:
    # 84-minute means of a leak restarted every 40 h; the start time moved at t[k]: the mean
    # there is half the old life's peak and half the new life's start.
    from memsleuth.analysis.verdict import judge

    t, y = _lives(6.0)
    k = int(np.searchsorted(t, t[-1] - 6 * 3600))
    y[k] = (y[k - 1] + y[k + 1]) / 2  # mixed
    age = (t - t[-1] + 6 * 3600) % (40 * 3600)
    restarts = t[1:][np.diff(age) < 0]  # where the start time moved: t[k] for the last
    assert restarts[-1] == t[k]
    e = judge_series((), t, y, step_s=5040, judge=judge, basis="mean", restarts=restarts)
    assert e.verdict is not None and e.verdict.verdict == "leak", e.verdict
    assert e.segment_end_s == t[k - 1]  # the previous life, without the mixed point


def test_a_restart_in_the_last_step_gives_no_level_the_process_never_had() -> None:
    # The last 84-minute mean held the restart: half the old life's peak, half the new
    # start. It had been shown as the process's level, and a time to limit drawn from it.
    from memsleuth.analysis.verdict import judge

    t = np.arange(120) * 5040.0  # a week of 84-minute means of a 3 MiB/h leak
    y = 300e6 + 3 * 2**20 * t / 3600 + np.random.default_rng(4).normal(0, 2e6, t.size)
    y[-1] = (y[-2] + 300e6) / 2  # mixed
    e = judge_series(
        (),
        t,
        y,
        step_s=5040,
        judge=lambda s: judge(s, limit_bytes=2**31),
        basis="mean",
        restarts=t[-1:],
    )
    assert e.verdict is not None and e.verdict.verdict == "leak", e.verdict
    assert math.isnan(e.last_bytes) and e.verdict.time_to_limit_s is None
    assert entry_to_dict(e)["last_bytes"] is None


def test_a_restart_is_where_the_start_time_changed_in_the_answer() -> None:
    # Evaluated every minute; the new life is first scraped at 600 (it started at 330, but
    # Prometheus carried the old start time and the old memory over the gap).
    t = np.arange(0.0, 1200.0, 60.0)
    born = np.where(t < 600, -1000.0, 330.0)
    (got,) = restart_times([RangeSeries((("__name__", "s"), ("i", "a")), t, born)]).items()
    assert got[0] == (("i", "a"),) and got[1].tolist() == [600.0]


def _lives(hours: float, fixed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """7 days of 84-minute means of a process that leaks 30 MiB/h and restarts every 40 h;
    the last life began `hours` before the end (`fixed`: and no longer leaks)."""
    step = 5040.0
    t = np.arange(0.0, 7 * 86400, step)
    age = (t - t[-1] + hours * 3600) % (40 * 3600)
    y = 300e6 + 30 * 2**20 * age / 3600 + np.random.default_rng(2).normal(0, 2e6, t.size)
    if fixed:
        young = t > t[-1] - hours * 3600
        y[young] = 300e6 + np.random.default_rng(3).normal(0, 2e6, int(young.sum()))
    return t, y


def test_a_young_life_is_judged_by_the_previous_one() -> None:
    from memsleuth.analysis.verdict import judge

    t, y = _lives(6.0)
    alone = judge(Series.from_arrays(t[-5:] - t[-5], y[-5:]))
    assert alone.verdict != "leak"  # 6 hours of means: too young to tell
    e = judge_series(
        (), t, y, step_s=5040, judge=lambda s: judge(s, limit_bytes=2**31), basis="mean"
    )
    assert e.verdict is not None and e.verdict.verdict == "leak" and e.restarts == 5
    first = e.verdict.evidence[0]
    assert first.startswith("judged on the previous life (38 h, until it restarted)")
    assert first.endswith("the current one (5.6 h) is younger and reads inconclusive")
    assert e.verdict.growth_bytes_per_hour == pytest.approx(30 * 2**20, rel=0.1)
    # The judged life is the one before the last restart, and its time to limit runs from now.
    assert e.segment_end_s < t[-1] - 5 * 3600 and e.segment_end_s - e.segment_start_s > 37 * 3600
    assert e.verdict.time_to_limit_s == pytest.approx(
        (2**31 - y[-1]) / (30 * 2**20) * 3600, rel=0.1
    )
    assert entry_to_dict(e)["segment_end"] == e.segment_end_s


def test_a_previous_life_that_fails_to_judge_leaves_the_current_verdict() -> None:
    t, y = _lives(6.0)
    calls = []

    def judge(series: Series) -> Verdict:
        calls.append(len(series))
        if len(calls) > 1:
            raise ValueError("boom")
        return Verdict("inconclusive", 0.3, ())

    e = judge_series((), t, y, step_s=5040, judge=judge, basis="mean")
    assert len(calls) == 2 and e.error is None
    assert e.verdict is not None and e.verdict.verdict == "inconclusive"


def test_a_life_that_stopped_growing_is_not_judged_by_the_one_before() -> None:
    from memsleuth.analysis.verdict import judge

    t, y = _lives(30.0, fixed=True)  # restarted with a fix 30 h ago: flat since
    e = judge_series((), t, y, step_s=5040, judge=judge, basis="mean")
    assert e.verdict is not None and e.verdict.verdict == "stable", e.verdict
    assert math.isnan(e.segment_end_s)


def test_a_restart_smeared_over_two_step_means_is_one_restart() -> None:
    v = np.array([100, 300, 500, 600, 400, 100, 150, 200.0])  # 600 -> (600+200)/2 -> 100
    assert restart_points(np.arange(8.0) * 420, v, 420) == [5]
    assert restart_points(np.arange(6.0), np.array([100, 300, 600, 100, 90, 120.0]), 1) == [3]


def test_the_step_is_a_minute_up_to_a_day_then_prometheus_aggregates() -> None:
    assert plan_step(86400, None) == (60.0, False)
    assert plan_step(86401, None) == (780.0, True)  # past a day: 120 means a series
    assert plan_step(7 * 86400, None) == (5040.0, True)
    assert plan_step(30 * 86400, None) == (21600.0, True)
    assert plan_step(7 * 86400, 60.0) == (60.0, False)  # --step: the value at each step
    assert step_expr(MEAN, 'm{job="a"}', 420) == 'avg_over_time(m{job="a"}[420s])'
    assert step_expr(FLOOR, "sum(x)", 420) == "min_over_time((sum(x))[420s:60s])"
    assert step_expr(MEAN, '{job="a"}', 420) is None  # the over_time drops names: collisions
    sel = exact_selector("m", (("__name__", "m"), ("a", r'x"\y'), ("b", "é")))
    assert sel == r'm{a="x\"\\y",b="é"}'


def test_a_problem_stands_only_when_the_floor_shows_it() -> None:
    t, v = np.arange(10.0), np.ones(10)

    def entry(verdict: str, basis: str):  # type: ignore[no-untyped-def]
        return judge_series((), t, v, step_s=1, judge=_fixed(verdict, 1e6, None), basis=basis)

    mean_leak = entry("leak", "mean")
    assert confirm_on_floor(mean_leak, entry("leak", "floor")) is mean_leak
    assert confirm_on_floor(mean_leak, entry("stable", "floor")).basis == "floor"


def _fixed(name: str, growth: float | None, ttl: float | None):  # type: ignore[no-untyped-def]
    def judge(series: Series) -> Verdict:
        return Verdict(name, 0.9, (), growth_bytes_per_hour=growth, time_to_limit_s=ttl)  # type: ignore[arg-type]

    return judge


def test_ranking_puts_soonest_out_of_memory_first() -> None:
    t, v = np.arange(10.0), np.ones(10)
    e = [
        judge_series(((("i", n),)), t, v, step_s=1, judge=_fixed(*spec))
        for n, spec in [
            ("stable", ("stable", 0.0, None)),
            ("slow", ("leak", 1e6, 1e6)),
            ("soon", ("leak", 1e5, 10.0)),
            ("nolimit", ("leak", 1e9, None)),
            ("unsure", ("inconclusive", 1e9, None)),
        ]
    ]
    assert [x.label_dict["i"] for x in rank(e)] == ["soon", "slow", "nolimit", "unsure", "stable"]


def test_a_series_that_ended_ranks_after_live_leaks_and_has_no_time_to_limit() -> None:
    # A leaker killed days before the end of the range had ranked first, "limit in 13 d".
    t, v = np.arange(10.0), np.ones(10)
    e = [
        judge_series(((("i", n),)), t, v, step_s=1, judge=_fixed("leak", 1e6, ttl))
        for n, ttl in [("dead", 10.0), ("live", 1e6)]
    ]
    assert is_gone(e[0].end_s, e[0].end_s + 4 * 86400, 60.0)
    assert not is_gone(e[1].end_s, e[1].end_s + 120.0, 60.0)
    # On a week's 84-minute steps a live series has a point at the last step, a step before
    # the end at most; one dead 4 h had shown live (gone only after 5 steps, 7 h).
    week = 5040.0
    assert not is_gone(0.0, week, week) and is_gone(0.0, 4 * 3600, week)
    e[0] = dataclasses.replace(e[0], gone=True)
    assert [x.label_dict["i"] for x in rank(e)] == ["live", "dead"]
    row = entry_to_dict(e[0])
    assert row["gone"] is True and row["time_to_limit_s"] is None


def test_a_failing_judge_marks_only_that_entry() -> None:
    def boom(series: Series) -> Verdict:
        raise ValueError("odd series")

    entry = judge_series((("i", "x"),), np.arange(5.0), np.ones(5), step_s=1, judge=boom)
    assert entry.verdict is None and "odd series" in (entry.error or "")


def test_batches_narrow_the_selector_by_the_most_selective_label() -> None:
    listed = [(("__name__", "m"), ("instance", f"h{i}"), ("job", "a")) for i in range(5)]
    batches = plan_batches('m{job="a"}', listed, 2)
    assert [n for _, n in batches] == [2, 2, 1]
    assert batches[0][0] == 'm{job="a", instance=~`h0|h1`}'
    assert plan_batches("sum(rate(x[5m]))", listed, 2) == [("sum(rate(x[5m]))", 5)]
    assert parse_selector("sum(x)") is None and parse_selector('m{a="b"}') == ("m", 'a="b"')


@pytest.mark.parametrize(
    ("query", "parsed"),
    [
        ('m{a="x{y}"}', ("m", 'a="x{y}"')),  # braces inside a quoted value
        ("m{a=~`d\\{x\\}|e`}", ("m", "a=~`d\\{x\\}|e`")),  # as plan_batches escapes them
        ('m{a="q\\"}"}', ("m", 'a="q\\"}"')),  # an escaped quote, then a brace
        ("m{a='}'}", ("m", "a='}'")),
        ('{job="x"}', ("", 'job="x"')),
        ('m{a="x"} + m{b="y"}', None),  # two selectors: an expression
        ('m{a="unterminated}', None),
    ],
)
def test_a_selector_is_read_with_its_quotes(query: str, parsed: tuple[str, str] | None) -> None:
    assert parse_selector(query) == parsed


def test_a_label_with_braces_is_batched_and_fetched_back() -> None:
    listed = [(("__name__", "m"), ("instance", v)) for v in ("a b,c=d{x}", "plain")]
    (query, n), *_ = plan_batches("m", listed, 5)
    assert n == 2 and parse_selector(query) == ("m", query[2:-1])


def test_rules_text() -> None:
    text = render_rules(RuleOptions("m", window="10m", for_="20m", min_growth=0.05))
    assert "for: 20m" in text and "offset 30m" in text and "0.05 *" in text
    assert text.startswith("# memsleuth rules") and "alert: MemoryLeak" in text
    # Compared with the same 40 minutes a day before, by twice the growth share.
    assert "unless min_over_time(m[40m]) <= 1.1 * min_over_time(m[40m] offset 1d)" in text
    assert "unless" not in render_rules(RuleOptions(season=None))


def test_judging_processes_only_for_scans_worth_their_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert plan_jobs(0, 2999) == 1  # ~0.4 s to start a process: not for a small scan
    assert plan_jobs(0, 10_000) == 8
    assert plan_jobs(3, 10) == 3  # --jobs as given
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert plan_jobs(0, 10_000) == 1


@pytest.mark.parametrize(("top", "rows"), [(0, 30), (25, 25), (40, 30)])
def test_top_zero_shows_every_series(top: int, rows: int) -> None:
    from rich.console import Console

    t, v = np.arange(10.0), np.ones(10)
    stable = _fixed("stable", 0.0, None)
    entries = [judge_series((("i", f"s{n:02d}"),), t, v, step_s=1, judge=stable) for n in range(30)]
    out = io.StringIO()
    print_table(ScanResult(entries, (), 1, 30), top, Console(file=out, width=200))
    text = out.getvalue()
    assert f"top {rows} shown" in text
    shown = {n for n in range(30) if f's{n:02d}"' in text}
    assert len(shown) == rows, text


def test_a_narrow_table_cuts_the_labels_not_the_figures() -> None:
    # At 80 columns (a pipe, a CI log) verdict, growth and time to limit had shrunk to "…".
    from rich.console import Console

    t, v = np.arange(10.0), np.ones(10)
    labels = tuple((k, f"{k}-value-that-is-long") for k in ("instance", "job", "pod", "zone"))
    entries = [judge_series(labels, t, v, step_s=1, judge=_fixed("leak", 31.5e6, 4.2e5))]
    out = io.StringIO()
    print_table(ScanResult(entries, (), 1, 1), 0, Console(file=out, width=80))
    lines = out.getvalue().splitlines()
    row = lines[1]
    assert "leak" in row and "+30.0 MiB/h" in row and "4.9 d" in row, row
    assert "…" in row and len(row) <= 80
    # The summary stays one line whatever the width (it had broken mid-phrase at 80).
    out = io.StringIO()
    print_table(ScanResult(entries, (), 1, 1), 0, Console(file=out, width=50))
    last = out.getvalue().splitlines()[-1]
    assert "series judged" in last and last.endswith("top 1 shown"), out.getvalue()
    # Of the series listed: a failed batch's are in no entry ("1 of 1" had been said of 4).
    from memsleuth.fleet.scan import BatchFailure

    failed = (BatchFailure(1, 3, "HTTP 503", ""),)
    out = io.StringIO()
    print_table(ScanResult(entries, failed, 2, 4), 0, Console(file=out, width=200))
    assert "1 of 4 series judged" in out.getvalue().splitlines()[-1], out.getvalue()


def test_labels_are_shown_as_promql_writes_them() -> None:
    from rich.console import Console

    t, v = np.arange(10.0), np.ones(10)
    labels = (("instance", 'quo"te'), ("job", "new\nline"))
    entries = [judge_series(labels, t, v, step_s=1, judge=_fixed("stable", 0.0, None))]
    out = io.StringIO()
    print_table(ScanResult(entries, (), 1, 1), 0, Console(file=out, width=200))
    rows = out.getvalue().splitlines()
    assert len(rows) == 3, rows  # header, one row, summary: the newline did not split the row
    assert '{instance="quo\\"te", job="new\\nline"}' in rows[1]


def test_a_label_with_a_backtick_and_a_newline_is_quoted_as_promql_reads_it() -> None:
    listed = [(("__name__", "m"), ("instance", "a`\nb")), (("__name__", "m"), ("instance", "c"))]
    ((query, n),) = plan_batches('m{job="x"}', listed, 200)
    assert n == 2 and "\n" not in query  # a raw newline ends the string in PromQL
    assert query == 'm{job="x", instance=~"a`\\\\\\nb|c"}'
    assert parse_selector(query) is not None


def test_the_shaded_life_stays_inside_the_plot() -> None:
    from memsleuth.fleet.report import series_svg

    t, v = np.arange(1000.0), np.linspace(1e8, 2e8, 1000)
    e = judge_series((), t, v, step_s=1, judge=_fixed("leak", 1e6, None))
    for start, end in ((500.0, 999.0), (999.0, math.nan), (998.0, 999.0)):
        svg = str(series_svg(dataclasses.replace(e, segment_start_s=start, segment_end_s=end)))
        m = re.search(r'rect class="seg" x="([-\d.]+)" y="[\d.]+" width="([-\d.]+)"', svg)
        assert m is not None
        x, width = float(m.group(1)), float(m.group(2))
        assert 62.0 <= x <= 434.0 and width >= 0 and x + width <= 434.0 + 1e-6, (start, end, svg)


def test_the_metric_name_is_shown_when_the_query_matched_several() -> None:
    # `{job="db"}` matched memory and start times: two rows read the same labels.
    from rich.console import Console

    t, v = np.arange(10.0), np.ones(10)
    judge = _fixed("stable", 0.0, None)
    entries = [
        judge_series((("__name__", name), ("i", "db-2")), t, v, step_s=1, judge=judge)
        for name in ("process_resident_memory_bytes", "process_start_time_seconds")
    ]
    out = io.StringIO()
    print_table(ScanResult(entries, (), 1, 1), 0, Console(file=out, width=200))
    text = out.getvalue()
    assert 'every series: {i="db-2"}' in text and " process_start_time_seconds " in text, text
    assert "in 1 batch," in text  # not "1 batches"
    out = io.StringIO()
    print_table(ScanResult(entries[:1], (), 1, 1), 0, Console(file=out, width=200))
    assert "process_resident" not in out.getvalue()  # one name: the query says it


def test_the_report_says_a_gone_series_is_gone_not_limit_in_gone() -> None:
    from memsleuth.fleet.report import FleetReportOptions, render_html
    from memsleuth.fleet.scan import ScanSpec

    t, v = np.arange(10.0), np.ones(10)
    entry = judge_series((("i", "a"),), t, v, step_s=1, judge=_fixed("leak", 1e6, None))
    entry = dataclasses.replace(entry, gone=True)
    page = render_html(
        ScanResult([entry], (), 1, 1), ScanSpec("m", 0.0, 9.0, 1.0), FleetReportOptions()
    )
    assert "limit in gone" not in page and ", gone</h3>" in page
    # Nor "limit in past it" for one already over its limit.
    entry = judge_series((("i", "a"),), t, v, step_s=1, judge=_fixed("leak", 1e6, 0.0))
    page = render_html(
        ScanResult([entry], (), 1, 1), ScanSpec("m", 0.0, 9.0, 1.0), FleetReportOptions()
    )
    assert "limit in past it" not in page and "past the\nlimit</h3>" in page


def test_labels_every_row_shares_are_said_once_and_the_rows_keep_what_tells_them_apart() -> None:
    # At 80 columns, rows of one exporter had all read `{instance="127.0.0.1:193…`.
    from rich.console import Console

    t, v = np.arange(10.0), np.ones(10)
    entries = [
        judge_series(
            (("instance", "127.0.0.1:19300"), ("job", "memsleuth"), ("name", name), ("pid", pid)),
            t,
            v,
            step_s=1,
            judge=_fixed("stable", 0.0, None),
        )
        for name, pid in (("leak", "101"), ("cache", "202"))
    ]
    out = io.StringIO()
    print_table(ScanResult(entries, (), 1, 2), 0, Console(file=out, width=80))
    lines = out.getvalue().splitlines()
    assert lines[0] == 'every series: {instance="127.0.0.1:19300", job="memsleuth"}', lines
    assert '{name="leak", pid="101"}' in lines[2] and '{name="cache", pid="202"}' in lines[3]


@pytest.mark.parametrize("scale", [1e150, -1e300, 1e300])
def test_values_past_any_memory_are_not_judged_and_say_why(scale: float) -> None:
    # The statistics square the values: 1e150 and up had raised an OverflowError inside the
    # judge (a traceback per series, numpy's RuntimeWarnings), and the scan had said "the
    # query returned no usable samples".
    from memsleuth.analysis.verdict import judge

    t = 1000.0 + 60.0 * np.arange(61)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = judge_series((("instance", "a"),), t, scale * np.arange(1, 62), step_s=60, judge=judge)
    assert e.verdict is None and e.samples == 61
    assert e.error is not None and "past any memory (16.0 EiB)" in e.error, e.error
    assert math.isnan(e.last_bytes)  # no level shown for what is not memory


def test_negative_values_are_not_memory() -> None:
    # A negative series had been judged, "stable -5 MiB/h, last -420 MiB".
    from memsleuth.analysis.verdict import judge

    t = 1000.0 + 60.0 * np.arange(61)
    e = judge_series((("instance", "a"),), t, -4e8 - 1e5 * np.arange(61), step_s=60, judge=judge)
    assert e.verdict is None and e.error is not None
    assert "below zero: not memory in bytes" in e.error, e.error


def test_values_up_to_the_largest_memory_are_judged() -> None:
    from memsleuth.analysis.verdict import judge

    t = 1000.0 + 60.0 * np.arange(200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = judge_series((), t, 2.0**64 * np.arange(1, 201) / 200, step_s=60, judge=judge)
    assert e.verdict is not None and e.verdict.verdict == "leak" and e.error is None
