"""The JSON report: strict JSON, the documented schema, and the same verdict object as analyze."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from memsleuth.model import Culprit
from memsleuth.reports.base import ReportOptions, RunReport
from memsleuth.reports.json import SCHEMA_VERSION, JsonReporter, run_to_dict, verdict_to_dict
from tests.report_factories import build_leak_report

DOC = Path(__file__).resolve().parents[2] / "docs" / "json.md"


def _strict_loads(text: str) -> Any:
    def reject(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=reject)


def _render(report: RunReport, options: ReportOptions | None = None) -> Any:
    out = io.StringIO()
    JsonReporter().render(report, options or ReportOptions(), out)
    return _strict_loads(out.getvalue())


def test_the_document_carries_run_verdict_and_culprits() -> None:
    doc = _render(build_leak_report())
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["run"]["command"] == ["./server", "--port", "8080"]
    assert doc["run"]["samples"] == 721 and doc["run"]["limit_bytes"] == 512 * 1024 * 1024
    v = doc["verdict"]
    assert v["verdict"] == "leak" and v["is_problem"] is True
    assert v["growth_ci_bytes_per_hour"] == [38.2 * 1048576, 42.0 * 1048576]
    assert v["warmup_end_s"] == 900.0 and v["time_to_limit_s"] == 5.2 * 3600
    assert v["trend"]["t0_s"] == 900.0
    assert [c["share"] for c in v["culprits"]] == [0.62, 0.24, 0.09]
    assert v["culprits"][0]["name"].endswith("PROCESSED_SIGNATURES (dict)")
    assert "points" not in v["culprits"][0]
    assert doc["summary"]["threads"] == {"first": 8.0, "last": 9.0, "min": 8.0, "max": 9.0}
    assert "series" not in doc


def test_nan_and_infinity_become_null() -> None:
    report = build_leak_report()
    bad = Culprit("c", "type", "", math.nan, "objects", math.inf, bytes_estimate=-math.inf)
    verdict = dataclasses.replace(
        report.verdict,
        growth_bytes_per_hour=math.nan,
        growth_ci_bytes_per_hour=(-math.inf, math.inf),
        time_to_limit_s=math.inf,
        culprits=(bad,),
    )
    report.series.columns["rss_bytes"][5] = math.nan
    report = dataclasses.replace(report, verdict=verdict)
    doc = _render(report, ReportOptions(include_samples=True))
    v = doc["verdict"]
    assert v["growth_bytes_per_hour"] is None and v["time_to_limit_s"] is None
    assert v["growth_ci_bytes_per_hour"] == [None, None]
    c = v["culprits"][0]
    assert c["growth_per_hour"] is None and c["share"] is None and c["bytes_estimate"] is None
    assert doc["series"]["rss_bytes"][5] is None


def test_samples_and_culprit_points_only_when_asked() -> None:
    report = dataclasses.replace(build_leak_report(), extras={"work": ((0.0, 1.0), (10.0, 5.0))})
    doc = _render(report, ReportOptions(include_samples=True))
    series = doc["series"]
    assert len(series["t_s"]) == len(series["rss_bytes"]) == 721
    assert set(series) == {"t_s", "rss_bytes", "pss_bytes", "uss_bytes", "threads", "fds"}
    assert doc["verdict"]["culprits"][0]["points"][:2] == [[0.0, 10000.0], [200.0, 42000.0]]
    assert doc["extras"] == {"work": [[0.0, 1.0], [10.0, 5.0]]}


def test_analyze_and_report_share_one_verdict_object() -> None:
    report = build_leak_report()
    doc = _render(report)
    assert verdict_to_dict(report.verdict) == doc["verdict"]
    assert run_to_dict(report.run) == doc["run"]
    json.dumps(verdict_to_dict(report.verdict), allow_nan=False)


def _documented_keys(section: str) -> set[str]:
    text = DOC.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 3)
    rows = text[start : end if end != -1 else None].splitlines()
    return {m.group(1) for line in rows if (m := re.match(r"\| `([a-z_0-9]+)` \|", line))}


def test_docs_json_md_documents_every_key() -> None:
    report = build_leak_report()
    doc = _render(report, ReportOptions(include_samples=True))
    assert _documented_keys("The document") == set(doc)
    assert _documented_keys("run") == set(doc["run"])
    assert _documented_keys("verdict") == set(doc["verdict"])
    assert _documented_keys("culprit") == set(doc["verdict"]["culprits"][0])
