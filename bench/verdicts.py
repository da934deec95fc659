"""Score memsleuth's verdicts on a labelled corpus by the streaming protocol of corpus/README.md.

    python bench/verdicts.py CORPUS.jsonl[.gz] [--json] [--jobs N] [--only memsleuth]

At checkpoints every 5% of a series' span from 10%, each detector sees only the samples up to
that checkpoint. Scored: false alarms (a bounded series called `leak` 15% of the span after it
settled, or at the end), recall of detectable leaks (snr >= 5) at the end, the median delay of
detection as a fraction of the leak's span, and class accuracy at the end. The four baseline alert
rules of the corpus README run side by side in the same process, for ratios measured together.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling bench modules

from corpus import LabelledSeries, load_corpus

from memsleuth.model import Series

CHECKPOINTS: tuple[float, ...] = tuple(round(0.10 + 0.05 * i, 2) for i in range(19))
SETTLE_GRACE = 0.15  # a bounded series may look like a leak until 15% of the span after settling
DETECTABLE_SNR = 5.0
BOUNDED_LABELS = frozenset({"plateau", "stable", "step"})
CONFUSABLE_LABELS = frozenset({"plateau", "stable"})
SMALL_PLATEAU = 0.10  # stable <-> plateau confusion is free when the rise is under 10% of base

# A detector gets what an alert would have known at a checkpoint and names a verdict.
Detector = Callable[[Series], str]

MB = 1_000_000


# --- the baseline alert rules of the corpus README ------------------------------------------
# Each reproduces the README's figures on series-dev (36/41, 37/16, 12/33, 70/76 measured here).


def _valid(s: Series) -> tuple[np.ndarray, np.ndarray]:
    rss = s.rss
    ok = ~np.isnan(rss)
    return s.t[ok], rss[ok]


def _rise_5min(s: Series) -> tuple[float, float] | None:
    """(RSS now minus the lowest RSS of the last 5 minutes, that lowest RSS)."""
    t, x = _valid(s)
    if t.size < 2:
        return None
    low = float(x[t >= t[-1] - 300.0].min())
    return float(x[-1]) - low, low


def rule_abs_5min(s: Series) -> str:
    """Seed 003's rule: RSS grew by more than 50 MB within 5 minutes."""
    r = _rise_5min(s)
    return "leak" if r is not None and r[0] > 50 * MB else "stable"


def rule_rel_5min(s: Series) -> str:
    """The same rule, relative: RSS grew by more than 10% within 5 minutes."""
    r = _rise_5min(s)
    return "leak" if r is not None and r[0] > 0.10 * r[1] else "stable"


def _last_hour_fit(s: Series) -> tuple[float, float, float] | None:
    """OLS over the last hour: (slope per second, value at the last sample, mean)."""
    t, x = _valid(s)
    w = t >= t[-1] - 3600.0 if t.size else t
    tw, xw = t[w], x[w]
    if tw.size < 3 or tw[-1] == tw[0]:
        return None
    slope, icpt = np.polyfit(tw - tw[-1], xw, 1)
    return float(slope), float(icpt), float(xw.mean())


def rule_linear_1h(s: Series) -> str:
    """A linear fit over the last hour (once an hour is recorded) grows more than 10% an hour."""
    if s.t.size == 0 or s.t[-1] - s.t[0] < 3600.0:
        return "stable"
    fit = _last_hour_fit(s)
    if fit is None:
        return "stable"
    slope, _, mean = fit
    return "leak" if slope * 3600.0 > 0.10 * mean else "stable"


def rule_predict_linear(s: Series) -> str:
    """`predict_linear(rss[1h], 4h) > 1.5 * first-hour median`, as a Prometheus alert."""
    fit = _last_hour_fit(s)
    if fit is None:
        return "stable"
    slope, now, _ = fit
    t, x = _valid(s)
    first = float(np.median(x[t < t[0] + 3600.0]))
    return "leak" if now + slope * 4 * 3600.0 > 1.5 * first else "stable"


BASELINES: dict[str, Detector] = {
    "rss +50MB/5min": rule_abs_5min,
    "rss +10%/5min": rule_rel_5min,
    "linear 1h >10%/h": rule_linear_1h,
    "predict_linear 4h": rule_predict_linear,
}


def judge_name(s: Series) -> str:
    from memsleuth.analysis.verdict import judge

    return judge(s).verdict


# --- the protocol ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one detector did on one series."""

    id: str
    label: str
    verdicts: tuple[str, ...]  # one per checkpoint
    false_alarm: bool | None  # None: not a bounded series
    detected: bool | None  # None: not a detectable leak
    delay: tuple[float, float] | None  # (first, held) delay as a fraction of the leak's span
    correct: bool  # final verdict names the label (with the stable/plateau allowance)
    samples: int = 0  # samples judged over all checkpoints
    seconds: float = 0.0  # time spent judging them


def checkpoint_times(row: LabelledSeries) -> list[float]:
    return [f * row.span_s for f in CHECKPOINTS]


def _rise_fraction(row: LabelledSeries) -> float:
    """How far a bounded series rose, as a fraction of its base memory."""
    if row.label == "plateau" and "ceiling" in row.meta:
        return float(row.meta["ceiling"]) / row.base_bytes
    rss = row.rss[~np.isnan(row.rss)]
    k = max(1, rss.size // 20)
    settled = row.settled_s or 0.0
    late = row.rss[row.t >= settled]
    late = late[~np.isnan(late)]
    if late.size == 0 or rss.size == 0:
        return 0.0
    return float(np.median(late) - np.median(rss[:k])) / row.base_bytes


def is_correct(row: LabelledSeries, final: str) -> bool:
    if final == row.label:
        return True
    pair = {final, row.label}
    return pair == CONFUSABLE_LABELS and _rise_fraction(row) < SMALL_PLATEAU


def score_series(row: LabelledSeries, verdicts: Sequence[str]) -> Outcome:
    """Apply the protocol to one series' verdicts at CHECKPOINTS."""
    cps = checkpoint_times(row)
    false_alarm = detected = None
    delay: tuple[float, float] | None = None
    if row.label in BOUNDED_LABELS:
        settled = row.settled_s or 0.0
        due = settled + SETTLE_GRACE * row.span_s
        false_alarm = any(
            v == "leak" and (c >= due or i == len(cps) - 1)
            for i, (c, v) in enumerate(zip(cps, verdicts, strict=True))
        )
    if row.label == "leak" and verdicts[-1] == "leak":
        onset = row.onset_s or 0.0
        after = [i for i, c in enumerate(cps) if c > onset]
        # The first checkpoint after the onset that says `leak` (the README's delay), and the
        # first from which every later checkpoint says it too (an alert that stays raised).
        first = next(i for i in after if verdicts[i] == "leak")
        held = len(cps) - 1
        while held - 1 in after and verdicts[held - 1] == "leak":
            held -= 1
        lead = row.span_s - onset
        delay = ((cps[first] - onset) / lead, (cps[held] - onset) / lead)
    if row.label == "leak" and row.snr >= DETECTABLE_SNR:
        detected = verdicts[-1] == "leak"
    return Outcome(
        row.id, row.label, tuple(verdicts), false_alarm, detected, delay,
        is_correct(row, verdicts[-1]),
    )  # fmt: skip


def run_series(row: LabelledSeries, detect: Detector) -> Outcome:
    series = row.series()
    verdicts: list[str] = []
    samples, spent = 0, 0.0
    for c in checkpoint_times(row):
        prefix = series.prefix(c)
        if len(prefix) == 0:
            verdicts.append("inconclusive")
            continue
        t0 = time.process_time()
        verdicts.append(detect(prefix))
        spent += time.process_time() - t0
        samples += len(prefix)
    o = score_series(row, verdicts)
    return Outcome(
        o.id, o.label, o.verdicts, o.false_alarm, o.detected, o.delay, o.correct, samples, spent
    )


@dataclass(frozen=True, slots=True)
class Scores:
    false_alarm_rate: float
    recall: float
    median_delay: float
    class_accuracy: float
    median_held_delay: float
    bounded: int
    detectable: int
    series: int
    samples_per_s: float

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> Scores:
        fa = [o.false_alarm for o in outcomes if o.false_alarm is not None]
        rc = [o.detected for o in outcomes if o.detected is not None]
        delays = [o.delay for o in outcomes if o.delay is not None and o.detected]
        first = [d[0] for d in delays]
        held = [d[1] for d in delays]
        spent = sum(o.seconds for o in outcomes)
        return cls(
            false_alarm_rate=float(np.mean(fa)) if fa else 0.0,
            recall=float(np.mean(rc)) if rc else 0.0,
            median_delay=float(np.median(first)) if first else float("nan"),
            class_accuracy=float(np.mean([o.correct for o in outcomes])) if outcomes else 0.0,
            median_held_delay=float(np.median(held)) if held else float("nan"),
            bounded=len(fa),
            detectable=len(rc),
            series=len(outcomes),
            samples_per_s=sum(o.samples for o in outcomes) / spent if spent > 0 else 0.0,
        )


def judge_speed(rows: Sequence[LabelledSeries], min_samples: int = 5000) -> float | None:
    """Samples per CPU second through `judge` on the corpus' long series, whole (fleet-sized:
    a week at 60 s is 10,080 points); best of three runs each. None without long series."""
    from memsleuth.analysis.verdict import judge

    samples, spent = 0, 0.0
    for row in rows:
        if row.rss.size < min_samples:
            continue
        series = row.series()
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            judge(series)
            best = min(best, time.process_time() - t0)
        samples += len(series)
        spent += best
    return samples / spent if spent > 0 else None


def detectors(only: Sequence[str] | None = None) -> dict[str, Detector]:
    all_: dict[str, Detector] = {"memsleuth": judge_name, **BASELINES}
    return {k: v for k, v in all_.items() if not only or k in only}


def _run_row(args: tuple[LabelledSeries, tuple[str, ...]]) -> dict[str, Outcome]:
    row, names = args
    dets = detectors(names)
    return {name: run_series(row, det) for name, det in dets.items()}


def score_corpus(
    rows: Sequence[LabelledSeries], names: Sequence[str] | None = None, jobs: int = 1
) -> tuple[dict[str, Scores], dict[str, list[Outcome]]]:
    """Run every detector over every row; scores and per-series outcomes by detector name."""
    names = tuple(detectors(names))
    work = [(r, names) for r in rows]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_run_row, work, chunksize=4)
    else:
        results = [_run_row(w) for w in work]
    outcomes = {n: [res[n] for res in results] for n in names}
    return {n: Scores.of(o) for n, o in outcomes.items()}, outcomes


# --- output ---------------------------------------------------------------------------------


def as_json(scores: dict[str, Scores], long_speed: float | None) -> dict[str, object]:
    keys = ("false_alarm_rate", "recall", "median_delay", "class_accuracy", "median_held_delay")
    doc: dict[str, object] = {
        k: {n: round(getattr(s, k), 4) for n, s in scores.items()} for k in keys
    }
    if "memsleuth" in scores:
        doc["judge_samples_per_s"] = {
            "checkpoints": round(scores["memsleuth"].samples_per_s),
            "long_series": round(long_speed) if long_speed else None,
        }
    return doc


def print_table(scores: dict[str, Scores], title: str, long_speed: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    cols = ("detector", "false alarms", "recall", "delay", "held delay", "accuracy")
    for col in cols:
        table.add_column(col, justify="left" if col == "detector" else "right")
    for name, s in scores.items():
        table.add_row(
            name,
            f"{s.false_alarm_rate:.0%}",
            f"{s.recall:.0%}",
            f"{s.median_delay:.2f}",
            f"{s.median_held_delay:.2f}",
            f"{s.class_accuracy:.0%}",
        )
    console = Console()
    console.print(table)
    any_ = next(iter(scores.values()))
    console.print(
        f"{any_.series} series · {any_.bounded} bounded · {any_.detectable} detectable leaks"
    )
    if "memsleuth" in scores:
        mix = scores["memsleuth"].samples_per_s / 1e6
        line = f"judge, 1 core: {mix:.2f} M samples/s over all checkpoints"
        if long_speed:
            line += f", {long_speed / 1e6:.2f} M samples/s on whole series of 5,000+ samples"
        console.print(line)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", help="a .jsonl or .jsonl.gz corpus")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--only", action="append", help="score only this detector (repeatable)")
    ap.add_argument("--show", action="store_true", help="list memsleuth's misses per series")
    args = ap.parse_args(argv)
    rows = load_corpus(args.corpus)
    scores, outcomes = score_corpus(rows, args.only, jobs=args.jobs)
    long_speed = judge_speed(rows) if "memsleuth" in scores else None
    if args.json:
        print(json.dumps(as_json(scores, long_speed)))
    else:
        print_table(scores, f"verdicts on {Path(args.corpus).name}", long_speed)
    if args.show and "memsleuth" in outcomes:
        for o in outcomes["memsleuth"]:
            if o.false_alarm or o.detected is False or not o.correct:
                print(o.id, o.label, " ".join(v[:4] for v in o.verdicts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
