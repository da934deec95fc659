"""The pending-task count the probe's censuses give, as a column beside the samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memsleuth.cli.options import judge_run
from memsleuth.model import Sample
from memsleuth.store import Store


def test_a_task_leak_stays_one_while_the_census_slows(tmp_path: Path) -> None:
    # A helper's asyncio program leaking 400 tasks a second: as the heap grew, its censuses
    # came every 1.2 to 3 s instead of every 1 s. The count held between them drew flat
    # treads, and the verdict flipped between `task-leak` and `leak` ("tasks not growing
    # (0–16861, 16861 now)") from one second to the next.
    t0 = 1_700_000_000.0
    slowed = [29.2, 31.0, 32.1, 33.3, 34.5, 35.8, 37.1, 38.5, 41.2, 42.8, 45.8]
    census = [*np.arange(0.0, 29.0, 1.0), *slowed]
    with Store(tmp_path / "m.db") as store:
        run = store.create_run(name="atasks", kind="run", command=["app"], pid=7, interval_s=1)
        store.add_samples(
            run.id,
            [Sample(t=t0 + s, rss_bytes=int(14e6 + 0.8e6 * s)) for s in range(46)],
        )
        store.add_points(run.id, "threads:main thread [pid 7]", [(t0 + c, 1.0) for c in census])
        store.add_points(
            run.id,
            "tasks:wait_for_reply created at app.py:21 [pid 7]",
            [(t0 + c, 381.0 + 400.0 * c) for c in census],
        )
        for until in range(20, 46):
            _, v = judge_run(store, run, float(until))
            assert v.verdict == "task-leak", (until, v.evidence)
            assert v.task_growth_per_hour is not None
            assert abs(v.task_growth_per_hour - 400 * 3600) < 0.05 * 400 * 3600, until
