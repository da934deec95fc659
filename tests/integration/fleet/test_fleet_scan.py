"""`memsleuth fleet` and `memsleuth rules` against a real, backfilled Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import pytest

from conftest import Prom
from memsleuth.cli import main
from memsleuth.fleet.rules import RuleOptions, leak_expr, render_rules
from memsleuth.fleet.scan import ScanSpec, plan_step, scan
from memsleuth.sources.prometheus import MAX_POINTS, PromConfig, PrometheusClient

APP = {
    *("leak-fast", "leak-slow", "restarter", "cyclic-leak"),
    *("saw", "saw-fast", "plateau", "stable", "nans", "cyclic"),
}
LEAKS = ("leak-fast", "leak-slow", "restarter", "cyclic-leak")
pytestmark = [pytest.mark.prometheus, pytest.mark.xdist_group("prometheus")]


def _fleet_json(prom: Prom, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict]:
    code = main(
        [
            "fleet",
            "--prometheus",
            prom.url,
            "--range",
            "1d",
            "--end",
            str(prom.end),
            "--limit",
            "2GiB",
            "--json",
            *extra,
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 3  # leaks are there
    return out


def test_ranks_leaks_first_with_known_labels(prometheus: Prom, capsys) -> None:
    rows = _fleet_json(prometheus, capsys, "--query", 'process_resident_memory_bytes{job="app"}')
    by = {r["labels"]["instance"]: r for r in rows}
    assert set(by) == set(APP)
    for inst in LEAKS:
        assert by[inst]["verdict"] == "leak", by[inst]
    for inst in ("saw", "saw-fast", "stable", "nans", "plateau", "cyclic"):
        assert by[inst]["verdict"] != "leak", by[inst]
    # Worst first: every leak ranks above every series that is not a problem.
    verdicts = [r["verdict"] for r in rows]
    assert verdicts[: len(LEAKS)] == ["leak"] * len(LEAKS)
    assert all(
        set(r) >= {"labels", "verdict", "growth_bytes_per_hour", "time_to_limit_s"} for r in rows
    )
    assert by["restarter"]["restarts"] == 2
    assert by["leak-fast"]["restarts"] == 0
    # NaN samples are dropped, not judged: 1440 minus every 97th.
    assert by["nans"]["samples"] == 1440 - len(range(0, 1440, 97))
    assert {r["basis"] for r in rows} == {"value"}  # a day at a minute: every raw sample


def _lives_json(prometheus: Prom, capsys, query: str, *extra: str) -> dict[str, dict]:
    args = ["--prometheus", prometheus.url, "--end", str(prometheus.end), "--json"]
    main(["fleet", *args, "--query", query, *extra])
    return {r["labels"]["instance"]: r for r in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize("range_", ["1d", "30h"])
def test_start_times_tell_a_flushed_cache_from_a_restarted_leak(
    prometheus: Prom, capsys, range_: str
) -> None:
    by = _lives_json(
        prometheus, capsys, 'process_resident_memory_bytes{job="lives"}', "--range", range_
    )
    # Four falls from 1 GiB back to 300 MiB, one life: a cache flushed, judged whole (falls
    # alone would have split it and called its last rise a leak).
    assert by["flusher"]["restarts"] == 0 and by["flusher"]["verdict"] != "leak"
    # 23 restarts (more than falls alone may call restarts), in step means too.
    assert by["restarter-hourly"]["restarts"] == 23
    assert by["restarter-shallow"]["restarts"] == 3
    assert by["restarter-shallow"]["verdict"] == "leak"
    # Restarted before it had grown by a fifth: its start time says so, not its falls.
    assert (by["deployed"]["restarts"], by["deployed"]["verdict"]) == (2, "leak")
    # A restart inside the last step (its mean halfway down): seen, and the life before it
    # judged (its last point, the mean that holds the restart, in neither life).
    assert (by["restarted-late"]["restarts"], by["restarted-late"]["verdict"]) == (1, "leak")
    # A start time that moves by a second is the same process: its flushes are flushes.
    assert by["flusher-jitter"]["restarts"] == 0
    assert by["flusher-jitter"]["verdict"] not in ("leak", "inconclusive")
    if range_ == "1d":  # every sample: the last hour-long life is 55 points, a leak
        hourly = by["restarter-hourly"]
        assert hourly["verdict"] == "leak"
        # Judged from the new life's first scrape, 5 minutes after it started: not from the
        # old life's values that Prometheus carried over the gap.
        assert hourly["segment_start"] == prometheus.end - 3600 + 60 + 300


def test_lives_too_short_for_a_long_range_s_steps_are_fetched_again(
    prometheus: Prom, capsys
) -> None:
    # A week's steps are 84 minutes: 4 means to a 6-hour life, too few to judge one. A leak
    # restarted every 6 h had read `inconclusive` over 7 days and `leak` over one.
    by = _lives_json(
        prometheus, capsys, 'process_resident_memory_bytes{job="lives"}', "--range", "7d"
    )
    shallow = by["restarter-shallow"]
    assert shallow["verdict"] == "leak", shallow
    assert shallow["growth_bytes_per_hour"] == pytest.approx(40 * 1024**2, rel=0.1)
    assert by["flusher"]["verdict"] != "leak"  # one life, flushed: nothing fetched again


def test_a_restart_is_found_whatever_shares_its_batch(prometheus: Prom, capsys) -> None:
    # Falling to 51% of its peak, not under half: only its own start times say it restarted.
    sel = 'process_resident_memory_bytes{job="lives",instance="restarter-shallow"}'
    alone = _lives_json(prometheus, capsys, sel, "--range", "1d")["restarter-shallow"]
    whole = 'process_resident_memory_bytes{job="lives"}'
    one_each = _lives_json(prometheus, capsys, whole, "--range", "1d", "--batch-size", "1")
    for got in (alone, one_each["restarter-shallow"]):
        assert (got["verdict"], got["restarts"]) == ("leak", 3)


def test_long_ranges_are_judged_on_step_means_computed_by_prometheus(
    prometheus: Prom, capsys
) -> None:
    # 30 hours (the data holds the last 24): a step of whole minutes, JUDGE_POINTS over the
    # range (15 minutes), each point the mean of its step.
    step_s, aggregate = plan_step(30 * 3600, None)
    assert aggregate and step_s == 15 * 60
    per_day = 86400 / step_s
    rows = _fleet_json(
        prometheus, capsys, "--query", 'process_resident_memory_bytes{job="app"}', "--range", "30h"
    )
    by = {r["labels"]["instance"]: r for r in rows}
    assert set(by) == set(APP)
    assert by["leak-fast"]["basis"] == "mean"
    assert by["leak-fast"]["samples"] == pytest.approx(per_day, abs=1)
    for inst in LEAKS:
        assert by[inst]["verdict"] == "leak", by[inst]
    assert [r["verdict"] for r in rows[: len(LEAKS)]] == ["leak"] * len(LEAKS)
    for inst in ("saw", "stable", "nans", "plateau", "cyclic"):
        assert by[inst]["verdict"] != "leak", by[inst]
    # Its step means rise with the peaks; the step floors (fetched to confirm) do not.
    assert by["saw-fast"]["verdict"] != "leak" and by["saw-fast"]["basis"] == "floor"
    assert by["restarter"]["restarts"] == 2
    assert by["leak-fast"]["labels"]["__name__"] == "process_resident_memory_bytes"
    # A NaN (every 97th sample) makes its step's mean NaN: 15 of 96 steps had been lost (and a
    # series with a NaN in every step, all of them). Fetched again without its NaN samples,
    # every step has its mean (one more where the day's edge cuts a step).
    assert per_day <= by["nans"]["samples"] <= per_day + 1
    assert by["nans"]["verdict"] == "stable"


def test_a_day_at_a_minute_confirms_a_problem_on_the_floors_of_each_step(
    prometheus: Prom, capsys
) -> None:
    # Scraped every 15 s, read at one sample a minute: a cache's sawtooth whose peaks grow
    # had read `leak` at 0.99 ("floor rose +456 KiB/h") over a day; its floors do not rise.
    rows = _fleet_json(
        prometheus,
        capsys,
        "--query",
        'process_resident_memory_bytes{job="scrape15"}',
        "--range",
        "1d",
    )
    by = {r["labels"]["instance"]: r for r in rows}
    assert by["saw15-peaks"]["verdict"] != "leak" and by["saw15-peaks"]["basis"] == "floor"
    assert by["saw15-leak"]["verdict"] == "leak"
    assert by["saw15-leak"]["growth_bytes_per_hour"] == pytest.approx(5 * 1024**2, rel=0.2)


def test_a_range_far_longer_than_the_data_is_said(prometheus: Prom, capsys) -> None:
    # A day of data asked over 10 days: 12 of 120 means a series, said, not silent.
    query = 'process_resident_memory_bytes{job="app"}'
    where = ["--prometheus", prometheus.url, "--end", str(prometheus.end), "--query", query]
    code = main(["fleet", *where, "--range", "10d"])
    err = capsys.readouterr().err
    assert code == 3
    assert "warning: most series have 1" in err and "of the 120 points this --range gives" in err
    assert "a narrower --range judges them on finer steps" in err


def test_a_sawing_leak_s_time_to_the_limit_is_from_its_peaks(prometheus: Prom, capsys) -> None:
    # 5 MiB/h under a 5-minute sawtooth 60 MiB high, judged on 15-minute means: its peaks
    # (480 MiB at the end) reach 600 MiB in 24 h, its means (~450 MiB) in 30.
    query = 'process_resident_memory_bytes{instance="saw15-leak"}'
    where = ["--prometheus", prometheus.url, "--end", str(prometheus.end), "--query", query]
    code = main(["fleet", *where, "--range", "30h", "--limit", "600MiB", "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert code == 3 and row["verdict"] == "leak" and row["basis"] in ("mean", "floor")
    assert row["time_to_limit_s"] == pytest.approx(24 * 3600, rel=0.15)


def test_an_expression_with_nan_samples_keeps_its_step_means(prometheus: Prom, capsys) -> None:
    # `+ 0` makes it an expression: its series cannot be fetched again one by one, and a NaN
    # every 97 samples had cost 15 of its 96 step means (20% NaN: "no finite samples").
    query = 'process_resident_memory_bytes{job="app",instance="nans"} + 0'
    args = ["--prometheus", prometheus.url, "--end", str(prometheus.end), "--json"]
    main(["fleet", *args, "--query", query, "--range", "30h"])
    (row,) = json.loads(capsys.readouterr().out)
    per_day = 86400 / plan_step(30 * 3600, None)[0]
    assert per_day <= row["samples"] <= per_day + 1 and row["verdict"] == "stable"


def test_judging_processes_give_the_verdicts_of_one_thread(prometheus: Prom) -> None:
    """A large scan judges in spawned processes: the same verdicts, floors and ranking as
    judging in the calling thread, batch by batch as they arrive."""
    spec = ScanSpec(
        "process_resident_memory_bytes",
        prometheus.end - 30 * 3600,
        prometheus.end,
        *plan_step(30 * 3600, None)[:1],
        batch_size=2,
        aggregate=True,
    )

    def run(jobs: int) -> list[tuple[object, ...]]:
        client = PrometheusClient(PromConfig(prometheus.url))
        result = scan(client, replace(spec, jobs=jobs))
        assert not result.failures and result.batches > 4
        return [
            (e.labels, e.verdict.verdict if e.verdict else None, e.basis, e.restarts, e.samples)
            for e in result.entries
        ]

    one, two = run(1), run(2)
    assert sorted(two, key=repr) == sorted(one, key=repr)  # ties rank in order of arrival
    assert {"leak", "stable"} <= {v for _, v, _, _, _ in one}
    assert "floor" in {b for _, _, b, _, _ in one}  # floors fetched and judged after the mean


def test_a_judging_process_that_dies_costs_no_verdict(
    prometheus: Prom, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The OOM killer takes a judging process: its batch is judged in the scan's own process."""

    class DeadPool:  # every worker is gone by the time its result is asked for
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def submit(self, *args: object, **kwargs: object) -> Future[object]:
            fut: Future[object] = Future()
            fut.set_exception(BrokenProcessPool("a child process terminated abruptly"))
            return fut

        def shutdown(self, **kwargs: object) -> None:
            pass

    spec = ScanSpec(
        'process_resident_memory_bytes{job="app"}',
        prometheus.end - 86400,
        prometheus.end,
        60.0,
        batch_size=2,
    )
    client = PrometheusClient(PromConfig(prometheus.url))
    expected = {e.labels: e.verdict for e in scan(client, replace(spec, jobs=1)).entries}
    # (the package's `scan` function hides its module of the same name from a dotted path)
    monkeypatch.setattr(sys.modules[ScanSpec.__module__], "ProcessPoolExecutor", DeadPool)
    result = scan(client, replace(spec, jobs=2))
    assert not result.failures
    assert {e.labels: e.verdict for e in result.entries} == expected
    assert caplog.text.count("judging processes failed") == 1  # said once, not per batch


def test_restart_segments_judge_the_last_one(prometheus: Prom) -> None:
    client = PrometheusClient(PromConfig(prometheus.url))
    spec = ScanSpec(
        'process_resident_memory_bytes{instance="restarter"}',
        prometheus.end - 86400,
        prometheus.end,
        60.0,
    )
    (entry,) = scan(client, spec).entries
    assert entry.restarts == 2
    # Restarted every 8 h: the judged segment is the last 8 h.
    assert prometheus.end - entry.segment_start_s == pytest.approx(8 * 3600, abs=120)
    assert entry.verdict is not None and entry.verdict.verdict == "leak"


def test_ranges_past_11000_points_are_split(prometheus: Prom) -> None:
    client = PrometheusClient(PromConfig(prometheus.url))
    start, step = prometheus.end - 86400, 5.0
    assert (prometheus.end - start) / step > MAX_POINTS  # Prometheus would refuse it whole
    (rs,) = client.query_range(
        'process_resident_memory_bytes{instance="leak-fast"}', start, prometheus.end, step
    )
    assert client.timings.requests == 2
    assert rs.t.size == (prometheus.end - (start + 60)) / step + 1  # data starts 1 min in
    assert (rs.t[1:] - rs.t[:-1] == step).all()  # joined without a gap or an overlap


def test_batches_cover_every_series_once(prometheus: Prom) -> None:
    client = PrometheusClient(PromConfig(prometheus.url))
    spec = ScanSpec(
        "process_resident_memory_bytes",
        prometheus.end - 86400,
        prometheus.end,
        60.0,
        batch_size=3,
        concurrency=2,
    )
    result = scan(client, spec)
    assert result.batches >= 4 and not result.failures
    keys = [e.labels for e in result.entries]
    # app 10, corpus 5, daily 2, lives 6, scrape15 2
    assert len(keys) == len(set(keys)) == result.listed == 25


def test_html_report(prometheus: Prom, tmp_path, capsys) -> None:
    out = tmp_path / "fleet.html"
    code = main(
        [
            "fleet",
            "--prometheus",
            prometheus.url,
            "--range",
            "1d",
            "--end",
            str(prometheus.end),
            "--report",
            str(out),
        ]
    )
    assert code == 3
    html = out.read_text()
    assert html.count("<svg") >= 2 and "leak-fast" in html and "<script" not in html
    assert "instance=&#34;leak-fast&#34;" in html  # labels are escaped
    assert "leak-fast" in capsys.readouterr().out


def test_rules_pass_promtool_and_fire_only_on_the_leak(prometheus: Prom, tmp_path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_rules(RuleOptions()))
    check = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    client = PrometheusClient(PromConfig(prometheus.url))
    fired = {}
    # leak-slow (+1.4%/h) is under the alert's 1% per 45 min: docs/fleet.md says so.
    for inst in ("leak-fast", "saw", "stable", "plateau"):
        expr = leak_expr(RuleOptions(metric=f'process_resident_memory_bytes{{instance="{inst}"}}'))
        # `for: 30m`: true at every minute of the last 30.
        held = [bool(client.query(expr, prometheus.end - k * 60)) for k in range(0, 31, 5)]
        fired[inst] = all(held)
    assert fired == {"leak-fast": True, "saw": False, "stable": False, "plateau": False}


def test_the_alert_stays_quiet_on_a_daily_cycle_and_fires_on_a_leak_under_it(
    prometheus: Prom,
) -> None:
    client = PrometheusClient(PromConfig(prometheus.url))

    def fires(inst: str, season: str | None) -> bool:
        metric = f'process_resident_memory_bytes{{job="daily",instance="{inst}"}}'
        expr = leak_expr(RuleOptions(metric=metric, season=season))
        return all(bool(client.query(expr, prometheus.end - k * 60)) for k in range(0, 31, 5))

    # The cycle's rising half alone passes the four-window rule (it paged once a day) ...
    assert fires("daily", None) and fires("daily-leak", None)
    # ... but the floor is where it was a day before, and the leak's is not.
    assert not fires("daily", "1d")
    assert fires("daily-leak", "1d")


def test_cli_rules_output_is_what_promtool_checks(tmp_path, capsys) -> None:
    assert main(["rules", "--for", "1h", "--window", "20m"]) == 0
    text = capsys.readouterr().out
    assert "for: 1h" in text and "[20m] offset 1h" in text


def test_expressions_are_aggregated_by_subqueries(prometheus: Prom) -> None:
    client = PrometheusClient(PromConfig(prometheus.url))
    step, aggregate = plan_step(30 * 3600, None)
    query = 'max by (instance) (process_resident_memory_bytes{job="app"})'
    spec = ScanSpec(query, prometheus.end - 30 * 3600, prometheus.end, step, aggregate=aggregate)
    result = scan(client, spec)
    by = {e.label_dict["instance"]: e for e in result.entries}
    assert set(by) == APP and not result.failures
    assert by["leak-fast"].verdict is not None and by["leak-fast"].verdict.verdict == "leak"
    assert by["leak-fast"].basis == "mean"
    assert by["saw-fast"].basis == "floor" and by["saw-fast"].verdict is not None
    assert by["saw-fast"].verdict.verdict != "leak"
