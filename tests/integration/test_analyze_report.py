"""`analyze` and `report` through the CLI on a stored run: --until, --json, every format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memsleuth.cli import main
from memsleuth.errors import ExitCode
from memsleuth.model import Sample
from memsleuth.store import Store


@pytest.fixture()
def ramp_then_flat(tmp_path: Path) -> Path:
    """A target that grew 60 MB/h for 2 h, then stopped growing for 2 h (a cache that filled)."""
    db = tmp_path / "m.db"
    rng = np.random.default_rng(3)
    t = np.arange(0, 4 * 3600, 30.0)
    rss = 300e6 + np.minimum(t, 7200) * 60e6 / 3600 + rng.normal(0, 1e6, t.size)
    with Store(db) as store:
        run = store.create_run(
            name="<svc & co>",
            kind="record",
            command=["svc", "<script>x</script>"],
            pid=9,
            interval_s=30.0,
            limit_bytes=2 << 30,
        )
        store.add_samples(
            run.id,
            [
                Sample(t=1.7e9 + a, rss_bytes=int(b), threads=4, fds=9)
                for a, b in zip(t, rss, strict=True)
            ],
        )
        store.finish_run(run.id, exit_status=0)
    return db


def _analyze(db: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["analyze", "--store", str(db), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_until_judges_what_an_alert_knew_then(
    ramp_then_flat: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, early = _analyze(ramp_then_flat, capsys, "--until", "5400")
    assert early["verdict"] in ("leak", "inconclusive")
    assert early["span_s"] <= 5400
    if early["verdict"] == "leak":
        assert code == ExitCode.PROBLEM
        assert early["time_to_limit_s"] is not None and early["time_to_limit_s"] > 0
        assert 40e6 < early["growth_bytes_per_hour"] < 80e6
    code, whole = _analyze(ramp_then_flat, capsys)
    assert code == ExitCode.OK
    assert whole["verdict"] == "plateau"
    assert 400e6 < whole["ceiling_bytes"] < 440e6  # it settled near 300 + 120 MB
    assert whole["run"]["name"] == "<svc & co>"


def test_a_report_until_a_time_shows_no_later_points(tmp_path: Path) -> None:
    # `report --until 1` had cut the memory charts but drawn fds by kind, native memory and
    # the culprits to the end of the run; a run without --children had a chart of zeros.
    db = tmp_path / "m.db"
    t0 = 1_700_000_000.0
    with Store(db) as store:
        run = store.create_run(name="svc", kind="record", command=["svc"], pid=7, interval_s=1)
        store.add_samples(
            run.id, [Sample(t=t0 + s, rss_bytes=int(50e6 + 1e5 * s)) for s in range(100)]
        )
        store.add_points(run.id, "fds:socket [pid 7]", [(t0 + s, float(s)) for s in range(100)])
        store.add_points(run.id, "children:rss", [(t0 + s, 0.0) for s in range(0, 100, 5)])
    out = tmp_path / "r.json"
    args = ["report", "--store", str(db), "--format", "json", "--samples", "-o", str(out)]
    assert main([*args, "--until", "10"]) == 0
    extras = json.loads(out.read_text())["extras"]
    assert list(extras) == ["fds:socket [pid 7]"]
    assert max(t for t, _ in extras["fds:socket [pid 7]"]) <= 10


@pytest.mark.parametrize(
    ("fmt", "marker"),
    [("html", "<svg"), ("markdown", "# "), ("json", '"verdict"'), ("terminal", "PLATEAU")],
)
def test_report_formats_to_a_file(
    ramp_then_flat: Path, tmp_path: Path, fmt: str, marker: str
) -> None:
    out = tmp_path / f"r.{fmt}"
    assert main(["report", "--store", str(ramp_then_flat), "--format", fmt, "-o", str(out)]) == 0
    text = out.read_text()
    assert marker in text
    if fmt == "markdown":  # target text only inside code spans, which renderers never parse
        assert "`svc '<script>x</script>'`" in text  # quoted as a shell needs it
    if fmt == "html":
        assert "<script>x</script>" not in text
        assert "&lt;script&gt;" in text and "http://" not in text.replace("http://www.w3.org", "")


def test_report_to_stdout(ramp_then_flat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--store", str(ramp_then_flat), "--format", "markdown"]) == 0
    assert "plateau" in capsys.readouterr().out.lower()


def test_report_into_a_missing_directory_is_a_clean_error(
    ramp_then_flat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "report",
            "--store",
            str(ramp_then_flat),
            "--format",
            "html",
            "-o",
            str(tmp_path / "nope" / "r.html"),
        ]
    )
    assert code == ExitCode.ERR
    err = capsys.readouterr().err
    assert err.startswith("error:") and "hint:" in err
