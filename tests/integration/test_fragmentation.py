"""A run whose RSS grows only by memory malloc keeps free is judged fragmentation, not a leak."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsleuth.cli import main
from memsleuth.errors import ExitCode
from memsleuth.model import Sample
from memsleuth.store import Store


def _store(path: Path, free_grows: bool) -> None:
    with Store(path) as store:
        run = store.create_run(name="svc", kind="run", command=["svc"], pid=7, interval_s=10.0)
        t0 = 1_700_000_000.0
        rss = [200e6 + 40e3 * i + (3e5 if i % 7 == 0 else 0) for i in range(600)]
        store.add_samples(
            run.id, [Sample(t=t0 + 10 * i, rss_bytes=int(r)) for i, r in enumerate(rss)]
        )
        free = [(t0 + 10 * i, 5e6 + (40e3 * i if free_grows else 0)) for i in range(0, 600, 3)]
        store.add_points(run.id, "native:malloc_free [pid 7]", free)


@pytest.mark.parametrize(("free_grows", "verdict"), [(True, "fragmentation"), (False, "leak")])
def test_fragmentation_vs_leak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], free_grows: bool, verdict: str
) -> None:
    db = tmp_path / "m.db"
    _store(db, free_grows)
    assert main(["analyze", "--store", str(db), "--json"]) == ExitCode.PROBLEM
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == verdict
