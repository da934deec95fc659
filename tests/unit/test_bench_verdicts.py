"""The verdict benchmark's scoring protocol (bench/verdicts.py), on a small made-up corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import verdicts as bench
from corpus import LabelledSeries, load_corpus, write_corpus

from memsleuth.model import Series

N = 200
EVERY = 60.0
SPAN = N * EVERY


def _row(sid: str, label: str, rss: np.ndarray, **kw: object) -> LabelledSeries:
    meta = {"base_bytes": 1e8, **kw.pop("meta", {})}  # type: ignore[dict-item]
    return LabelledSeries(
        id=sid,
        label=label,
        interval_s=EVERY,
        rss=rss,
        threads=np.full(rss.size, 4.0),
        onset_s=kw.get("onset_s"),  # type: ignore[arg-type]
        settled_s=kw.get("settled_s"),  # type: ignore[arg-type]
        meta=meta,
    )


@pytest.fixture
def rows() -> list[LabelledSeries]:
    t = np.arange(N) * EVERY
    noise = np.random.default_rng(1).normal(0, 1e5, N)
    leak = 1e8 + np.maximum(t - 0.2 * SPAN, 0) * 2e3 + noise
    plateau = 1e8 + np.minimum(t, 0.3 * SPAN) * 2e3 + noise
    return [
        _row("a", "leak", leak, onset_s=0.2 * SPAN, meta={"snr": 50.0}),
        _row("b", "leak", leak, onset_s=0.2 * SPAN, meta={"snr": 1.0}),  # not detectable
        _row("c", "plateau", plateau, settled_s=0.3 * SPAN, meta={"ceiling": 7.2e6}),
        _row("d", "stable", 1e8 + noise, settled_s=0.0),
    ]


def test_checkpoints_every_five_percent_from_ten() -> None:
    assert bench.CHECKPOINTS[0] == 0.10 and bench.CHECKPOINTS[-1] == 1.00
    assert len(bench.CHECKPOINTS) == 19


def test_a_perfect_oracle_has_no_false_alarms_and_full_recall(
    rows: list[LabelledSeries],
) -> None:
    outcomes = []
    for row in rows:
        onset = row.onset_s or 0.0
        truth = [
            "leak" if row.label == "leak" and c > onset else row.label
            for c in bench.checkpoint_times(row)
        ]
        outcomes.append(bench.score_series(row, truth))
    s = bench.Scores.of(outcomes)
    assert s.false_alarm_rate == 0.0
    assert s.recall == 1.0
    assert s.class_accuracy == 1.0
    assert s.detectable == 1 and s.bounded == 2
    # Detected at the first checkpoint after the onset (20%): 5% of the span, 1/16 of the leak's.
    assert s.median_delay == pytest.approx(0.05 / 0.8)


def test_a_detector_that_always_says_leak_alarms_on_every_bounded_series(
    rows: list[LabelledSeries],
) -> None:
    s = bench.Scores.of([bench.run_series(r, lambda _s: "leak") for r in rows])
    assert s.false_alarm_rate == 1.0
    assert s.recall == 1.0
    assert s.class_accuracy == 0.5


def test_calling_leak_before_the_settling_grace_is_not_a_false_alarm(
    rows: list[LabelledSeries],
) -> None:
    plateau = rows[2]
    cps = bench.checkpoint_times(plateau)
    due = plateau.settled_s + bench.SETTLE_GRACE * plateau.span_s  # type: ignore[operator]
    early = ["leak" if c < due else "plateau" for c in cps]
    assert bench.score_series(plateau, early).false_alarm is False
    late = ["plateau"] * (len(cps) - 1) + ["leak"]
    assert bench.score_series(plateau, late).false_alarm is True


def test_stable_and_small_plateau_may_be_confused(rows: list[LabelledSeries]) -> None:
    plateau = rows[2]  # ceiling 7.2% of base: under the 10% allowance
    assert bench.is_correct(plateau, "stable")
    big = _row("e", "plateau", plateau.rss, settled_s=0.3 * SPAN, meta={"ceiling": 5e7})
    assert not bench.is_correct(big, "stable")


def test_null_samples_load_as_nan_and_are_judged(tmp_path: Path) -> None:
    t = np.arange(N) * EVERY
    rss = 1e8 + t * 1e3
    rss[::5] = np.nan
    path = tmp_path / "c.jsonl.gz"
    write_corpus(path, [_row("n", "leak", rss, onset_s=0.0, meta={"snr": 100.0})])
    (row,) = load_corpus(path)
    assert np.isnan(row.rss[::5]).all()
    outcome = bench.run_series(row, bench.judge_name)
    assert outcome.detected is True
    assert outcome.samples > 0


def test_baselines_fire_on_fast_growth_only() -> None:
    t = np.arange(60) * 10.0
    fast = Series.from_arrays(t, 1e8 + t * 1e6)  # 60 MB a minute
    flat = Series.from_arrays(t, np.full(60, 1e8))
    for rule in bench.BASELINES.values():
        assert rule(flat) == "stable"
    assert bench.rule_abs_5min(fast) == "leak"
    assert bench.rule_rel_5min(fast) == "leak"


def test_json_has_one_value_per_detector(rows: list[LabelledSeries]) -> None:
    scores, _ = bench.score_corpus(rows, ["memsleuth", "rss +50MB/5min"])
    doc = bench.as_json(scores, None)
    for key in ("false_alarm_rate", "recall", "median_delay", "class_accuracy"):
        assert set(doc[key]) == {"memsleuth", "rss +50MB/5min"}  # type: ignore[arg-type]
