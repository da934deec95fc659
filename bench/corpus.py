"""Load and write labelled series corpora in the shared JSONL format (see corpus/README.md)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memsleuth.model import FloatArray, Series


@dataclass(frozen=True, eq=False)
class LabelledSeries:
    """One corpus row: samples every `interval_s`, NaN where the row has `null`."""

    id: str
    label: str
    interval_s: float
    rss: FloatArray
    threads: FloatArray | None
    onset_s: float | None
    settled_s: float | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def span_s(self) -> float:
        # Sample i is taken at i * interval_s and stands for the interval after it, so the span
        # of n samples is n intervals (the corpus' onset and settled times are fractions of it).
        return float(self.rss.size * self.interval_s)

    @property
    def t(self) -> FloatArray:
        return np.arange(self.rss.size, dtype=np.float64) * self.interval_s

    @property
    def snr(self) -> float:
        return float(self.meta.get("snr", float("inf")))

    @property
    def base_bytes(self) -> float:
        return float(self.meta.get("base_bytes", np.nanmin(self.rss)))

    def series(self) -> Series:
        cols = {"rss_bytes": self.rss}
        if self.threads is not None:
            cols["threads"] = self.threads
        return Series(self.t, cols)


def _floats(values: list[float | None] | None) -> FloatArray | None:
    if values is None:
        return None
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def iter_corpus(path: str | Path) -> Iterator[LabelledSeries]:
    """The rows of a `.jsonl` or `.jsonl.gz` corpus, in file order."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            rss = _floats(row["rss"])
            assert rss is not None
            yield LabelledSeries(
                id=str(row["id"]),
                label=str(row["label"]),
                interval_s=float(row["interval_s"]),
                rss=rss,
                threads=_floats(row.get("threads")),
                onset_s=row.get("onset_s"),
                settled_s=row.get("settled_s"),
                meta=dict(row.get("meta") or {}),
            )


def load_corpus(path: str | Path) -> list[LabelledSeries]:
    return list(iter_corpus(path))


def _plain(values: FloatArray | None) -> list[float | None] | None:
    if values is None:
        return None
    return [None if np.isnan(v) else round(float(v), 1) for v in values]


def write_corpus(path: str | Path, rows: Iterable[LabelledSeries]) -> None:
    """Write rows in the shared format (`null` for missed samples); gzip when `path` ends .gz."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "wt", encoding="utf-8") as fh:
        for r in rows:
            doc = {
                "id": r.id,
                "label": r.label,
                "interval_s": r.interval_s,
                "onset_s": r.onset_s,
                "settled_s": r.settled_s,
                "meta": r.meta,
                "rss": _plain(r.rss),
                "threads": _plain(r.threads),
            }
            fh.write(json.dumps(doc, separators=(",", ":")) + "\n")
