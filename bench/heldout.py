"""Write a held-out labelled corpus "made the same way" as the shared one, with harsher noise.

    python bench/heldout.py OUT.jsonl.gz [--series 240] [--seed 7]

Same labels, fields and meanings as corpus/README.md (leak, plateau, stable, step, thread-leak;
onset_s, settled_s, meta.snr ...), but the noise differs from the shared corpus: heavy-tailed
(Student t) jitter and one-sample spikes, load cycles (slow sinusoids and busy/idle square
waves), a slowly wandering baseline, GC sawtooths of any period, and gaps (`null` runs and
scattered misses). It is a check against tuning to the shared corpus, never a tuning set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling bench modules

from corpus import LabelledSeries, write_corpus

LABELS = ("leak", "plateau", "stable", "step", "thread-leak")
LABEL_P = (0.31, 0.29, 0.21, 0.08, 0.11)
INTERVALS = (1.0, 5.0, 10.0, 15.0, 60.0)
SPANS_H = (1 / 6, 1 / 3, 0.5, 1.0, 2.0, 4.0, 8.0)
LEAK_PER_HOUR = (0.02, 0.05, 0.1, 0.3, 1.0, 3.0)
NOISE_SHARES = (0.001, 0.005, 0.01, 0.02, 0.035, 0.06, 0.1)


def _noise(
    rng: np.random.Generator, t: np.ndarray, span: float, sd: float
) -> tuple[np.ndarray, list[str]]:
    """Everything that is not growth: heavy tails, spikes, cycles, wander, a GC sawtooth."""
    n = t.size
    parts = []
    kinds = ["t"]
    df = rng.choice((2.5, 3.0, 5.0))
    jitter = rng.standard_t(df, n)
    parts.append(jitter / np.std(jitter) * rng.uniform(0.3, 1.0))
    if rng.random() < 0.5:  # a GC sawtooth: slow climb, sudden fall
        period = max(2.0, rng.choice((3.0, 8.0, 30.0, 120.0)) * rng.uniform(0.7, 1.3))
        phase = (np.arange(n) / period + rng.random()) % 1.0
        parts.append((phase - 0.5) * rng.uniform(1.5, 4.0))
        kinds.append("sawtooth")
    if rng.random() < 0.5:  # a load cycle: daily-ish sinusoid or busy/idle square wave
        period = span * rng.choice((0.15, 0.3, 0.6, 1.2))
        wave = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.4:
            wave = np.sign(wave)
        parts.append(wave * rng.uniform(0.5, 2.0))
        kinds.append(f"cycle:{period / span:g}")
    if rng.random() < 0.4:  # a baseline that wanders (AR(1), slow)
        rho = rng.uniform(0.95, 0.995)
        e = rng.normal(0, np.sqrt(1 - rho * rho), n)
        w = np.empty(n)
        w[0] = e[0]
        for i in range(1, n):
            w[i] = rho * w[i - 1] + e[i]
        parts.append(w * rng.uniform(0.3, 1.0))
        kinds.append("wander")
    noise = np.sum(parts, axis=0)
    noise = (noise - np.median(noise)) / np.std(noise) * sd
    spikes = rng.random(n) < rng.choice((0.0, 0.002, 0.01))
    noise[spikes] += sd * rng.uniform(4, 15, int(spikes.sum())) * rng.choice((-1, 1, 1, 1))
    if spikes.any():
        kinds.append("spikes")
    return noise, kinds


def _warmup(rng: np.random.Generator, t: np.ndarray, span: float, base: float) -> tuple:
    settle = rng.choice((0.0, 0.05, 0.15, 0.30)) * span
    if settle == 0:
        return np.zeros_like(t), 0.0
    amp = base * rng.uniform(0.03, 0.5)
    tau = settle / 4.0  # within 2% of its top at `settle`
    return amp * (1 - np.exp(-t / tau)), float(settle)


def _plateau(rng: np.random.Generator, t: np.ndarray, span: float, base: float) -> tuple:
    shape = str(rng.choice(("exp", "logistic", "ramp", "sqrt-capped")))
    ceiling = base * rng.uniform(0.1, 1.5)
    reach = span * rng.uniform(0.2, 0.6)
    if shape == "exp":
        tau = reach / 3.0
        curve, settled = 1 - np.exp(-t / tau), 4.0 * tau
    elif shape == "logistic":
        mid, w = reach * 0.6, reach / 8.0
        curve = 1 / (1 + np.exp(-(t - mid) / w))
        curve = (curve - curve[0]) / (1 - curve[0])
        settled = mid + 4.0 * w
    elif shape == "ramp":
        curve, settled = np.minimum(t / reach, 1.0), reach
    else:
        curve, settled = np.sqrt(np.minimum(t / reach, 1.0)), reach
    meta = {"ceiling": ceiling, "shape": shape, "reach_s": reach}
    return ceiling * curve, float(min(settled, span)), meta


def _leak(rng: np.random.Generator, t: np.ndarray, onset: float, base: float) -> tuple:
    shape = str(rng.choice(("linear", "bursty", "steps")))
    per_hour = float(rng.choice(LEAK_PER_HOUR))
    dt = np.maximum(t - onset, 0.0)
    total = per_hour * base * dt / 3600.0
    if shape == "bursty":  # growth in random bursts that add up to the same rate
        inc = rng.exponential(1.0, t.size) * (rng.random(t.size) < 0.1) * (t >= onset)
        cum = np.cumsum(inc)
        total = cum / max(cum[-1], 1e-12) * total[-1]
    elif shape == "steps":
        every = max((t[-1] - onset) / rng.integers(4, 30), t[1] - t[0])
        total = np.floor(dt / every) * per_hour * base * every / 3600.0
    return total, {"per_hour": per_hour, "shape": shape}


def _gaps(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    x = x.copy()
    n = x.size
    x[rng.random(n) < rng.choice((0.0, 0.01, 0.05))] = np.nan
    for _ in range(int(rng.integers(0, 3))):  # a recorder that stopped for a while
        start, length = int(rng.integers(0, n)), int(rng.integers(1, max(2, n // 10)))
        x[start : start + length] = np.nan
    return x


def make_series(rng: np.random.Generator, sid: str) -> LabelledSeries:
    label = str(rng.choice(LABELS, p=LABEL_P))
    interval = float(rng.choice(INTERVALS))
    n = int(np.clip(round(rng.choice(SPANS_H) * 3600 / interval), 10, 28800))
    t = np.arange(n) * interval
    span = n * interval
    base = float(np.exp(rng.uniform(np.log(16e6), np.log(8e9))))
    sd = base * float(rng.choice(NOISE_SHARES))
    noise, kinds = _noise(rng, t, span, sd)
    warm, settled = _warmup(rng, t, span, base)
    threads = np.full(n, float(rng.choice((1, 4, 16, 64, 300))))
    threads += rng.random(n) < 0.1
    meta: dict[str, object] = {"base_bytes": base, "noise": kinds}
    onset = None
    growth = np.zeros(n)
    if label == "leak":
        onset = float(rng.choice((0.0, 0.2, 0.4)) * span)
        growth, m = _leak(rng, t, onset, base)
        meta |= m | {"snr": round(float(growth[-1] / sd), 3)}
    elif label == "thread-leak":
        onset = float(rng.choice((0.0, 0.2)) * span)
        per_min = float(rng.choice((0.5, 2.0, 10.0, 60.0)))
        stack = int(rng.choice((65536, 262144, 1048576)))
        leaked = np.floor(np.maximum(t - onset, 0) / 60.0 * per_min)
        threads += leaked
        growth = leaked * stack * rng.uniform(0.25, 1.0)
        meta |= {"threads_per_min": per_min, "stack_bytes": stack}
    elif label == "plateau":
        growth, settled, m = _plateau(rng, t, span, base)
        meta |= m
    elif label == "step":
        times = np.sort(rng.uniform(0.1, 0.6, int(rng.integers(1, 3))) * span)
        sizes = base * rng.uniform(0.05, 0.5, times.size)
        for at, size in zip(times, sizes, strict=True):
            growth += np.where(t >= at, size, 0.0)
        settled = max(settled, float(times[-1]))
        meta["steps"] = [[float(a), float(s)] for a, s in zip(times, sizes, strict=True)]
    rss = np.maximum(base + warm + growth + noise, base * 0.2)
    return LabelledSeries(
        id=sid,
        label=label,
        interval_s=interval,
        rss=_gaps(rng, rss),
        threads=threads,
        onset_s=onset,
        settled_s=None if label in ("leak", "thread-leak") else float(settled),
        meta=meta,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="where to write the .jsonl[.gz] corpus")
    ap.add_argument("--series", type=int, default=240)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = [make_series(rng, f"h{i:04d}") for i in range(args.series)]
    write_corpus(args.out, rows)
    print(f"wrote {len(rows)} series to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
