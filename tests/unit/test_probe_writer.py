"""The probe's writer: what it buffers lands in the store, exactly."""

from __future__ import annotations

import math
from pathlib import Path

from memsleuth.probe.writer import ProbeWriter
from memsleuth.store import Store


def test_rows_land_whole_with_their_values_and_a_nan_point_too(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Store(db) as store:
        run = store.create_run(name="w", kind="run", command=[], pid=1, interval_s=1.0)
    w = ProbeWriter(str(db), run.id, 1)
    t0 = 1_795_000_000.123456789
    for i in range(500):
        w.point("native:rss", 1e6 + i, t0 + i * 0.1)
    w.event("probe.status", {"message": "x", "n": 3}, t0)
    w.sample(t0, {"VmRSS": 5 << 20, "RssAnon": 3 << 20, "Threads": 4}, 7)
    w.end_run(t0 + 60)
    assert w.flush()
    w.point("native:odd", math.nan, t0)  # NOT NULL: it had failed its whole flush
    w.point("native:rss", 2e6, t0 + 50)
    assert w.flush() and w.dropped == 1
    with Store(db, readonly=True) as store:
        points = store.load_points(run.id)
        rss = points["native:rss [pid 1]"]
        assert len(rss) == 501 and rss[0] == (t0, 1e6) and rss[-2] == (t0 + 49.9, 1e6 + 499)
        assert "native:odd [pid 1]" not in points
        ((_, kind, payload),) = store.load_events(run.id)
        assert (kind, payload) == ("probe.status", {"pid": 1, "message": "x", "n": 3})
        (sample,) = store.iter_samples(run.id)
        assert (sample.rss_bytes, sample.anon_bytes, sample.threads, sample.fds) == (
            5 << 20,
            3 << 20,
            4,
            7,
        )
        assert sample.swap_bytes is None and store.get_run(run.id).ended_at == t0 + 60
