"""A stored run judged as `analyze` does: the columns and facts the store adds to the samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memsleuth.judgement import judge_run
from memsleuth.model import Run, Sample
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


def test_a_trees_shared_pages_count_once_toward_its_limit(tmp_path: Path) -> None:
    # A helper's pre-fork server: four processes sharing 300 MB copy-on-write, one leaking
    # 200 kB/s, a 2 GiB limit. RSS summed over the tree counts the shared pages four times:
    # "limit reached in 46 min" had been said for a true 150.
    t0 = 1_700_000_000.0
    with Store(tmp_path / "m.db") as store:
        run = store.create_run(
            name="prefork", kind="record", command=["prefork"], pid=7, interval_s=1,
            limit_bytes=2 << 30, meta={"children": True},
        )  # fmt: skip
        pss = [300e6 + 4e6 + 200e3 * s for s in range(90)]
        store.add_samples(
            run.id,
            [
                Sample(t=t0 + s, rss_bytes=int(p + 900e6), pss_bytes=int(p))
                for s, p in enumerate(pss)
            ],
        )
        _, v = judge_run(store, run)
    assert v.verdict == "leak" and v.time_to_limit_s is not None
    truth = ((2 << 30) - pss[-1]) / 200e3
    assert abs(v.time_to_limit_s - truth) < 0.05 * truth, (v.time_to_limit_s / 60, truth / 60)


def test_a_command_memsleuth_started_is_not_judged_by_its_exec_sample(tmp_path: Path) -> None:
    # A helper's flat Python program: 7.2 MB at its exec, 14.4 MB from the next second on
    # for good. It had read `plateau`, "grows to a ceiling".
    t0 = 1_700_000_000.0
    rss = [7_221_248, 14_426_112, 14_430_208, 14_430_208] + [14_434_304] * 27  # as recorded
    with Store(tmp_path / "m.db") as store:
        run = store.create_run(
            name="stable.py", kind="record", command=["python", "stable.py"], pid=7,
            interval_s=1, meta={"children": False, "attached": False},
        )  # fmt: skip
        store.add_samples(run.id, [Sample(t=t0 + s, rss_bytes=r) for s, r in enumerate(rss)])
        assert judge_run(store, run)[1].verdict == "stable"


def _ended_run(tmp_path: Path, rss: list[float], ended_after_s: float) -> tuple[Store, Run]:
    t0 = 1_700_000_000.0
    store = Store(tmp_path / "m.db")
    run = store.create_run(name="tree", kind="record", command=["srv"], pid=7, interval_s=1)
    store.add_samples(run.id, [Sample(t=t0 + s, rss_bytes=int(v)) for s, v in enumerate(rss)])
    store.update_run(run.id, ended_at=t0 + len(rss) - 1 + ended_after_s, exit_status=0)
    return store, store.get_run(run.id)


def test_the_samples_a_target_s_ending_took_are_left_out(tmp_path: Path) -> None:
    # A leaking pre-fork tree whose workers exited 0.2 s before the end: its last sample fell
    # from 1.47 GiB to 310 MiB, and the run had read `plateau`, "levels off … -700 GiB/h".
    leak = [200e6 + 30e6 * s for s in range(45)]
    store, run = _ended_run(tmp_path, [*leak, 310e6], ended_after_s=0.2)
    with store:
        series, v = judge_run(store, run)
        assert v.verdict == "leak", v.evidence
        assert len(series) == 45
        [said] = [e for e in v.evidence if e.startswith("the last sample, taken as the target")]
        assert "fell to 296 MiB from 1.42 GiB" in said, said
        # A fall well before the end is the program's own, and stays.
        store.update_run(run.id, ended_at=1_700_000_000.0 + 45 + 10.0)
        _, v = judge_run(store, store.get_run(run.id))
        assert v.verdict != "leak" and not any("as the target ended" in e for e in v.evidence)


def test_a_sawtooths_fall_at_the_end_is_no_ending(tmp_path: Path) -> None:
    # A Rust program clearing its buffer every 8 s, stopped by memsleuth just after one of
    # those falls: "the last sample, taken as the target ended, fell to 26.5 MiB from 92.2
    # MiB: memory freed as it ended", of a drop it made every 8 s.
    tooth = [17e6 + 11e6 * s for s in range(8)]
    store, run = _ended_run(tmp_path, [*(tooth * 5), 17e6], ended_after_s=0.2)
    with store:
        series, v = judge_run(store, run)
        assert len(series) == 41
        assert not any("as the target ended" in e for e in v.evidence), v.evidence


def test_a_leak_recorded_from_outside_without_culprits_says_where_to_look(
    tmp_path: Path,
) -> None:
    # A C relay's leak and a Go arena's had ended at "+3.72 GiB/h", no culprit, nothing to do.
    t0 = 1_700_000_000.0
    with Store(tmp_path / "m.db") as store:
        runs = {
            cmd[0]: store.create_run(name=cmd[0], kind="record", command=cmd, pid=7, interval_s=1)
            for cmd in (["./relay", "--port", "9"], ["python3", "bot.py"], ["app.py"])
        }
        for run in runs.values():
            store.add_samples(
                run.id, [Sample(t=t0 + s, rss_bytes=int(14e6 + 0.8e6 * s)) for s in range(60)]
            )
        said = {name: judge_run(store, run)[1].evidence[-1] for name, run in runs.items()}
    assert "`record --malloc-stats` tells what malloc holds live" in said["./relay"]
    assert "recorded with `--heap-profile URL` has the allocation sites" in said["./relay"]
    assert "`memsleuth run` (the same command) names the containers" in said["python3"]
    assert "`memsleuth run`" in said["app.py"]


def test_heap_profiles_that_could_not_be_read_are_said_not_suggested_again(
    tmp_path: Path,
) -> None:
    t0 = 1_700_000_000.0
    url = "http://127.0.0.1:6060/debug/pprof/heap"
    error = f"nothing answers at {url} (connection refused)"
    with Store(tmp_path / "m.db") as store:
        run = store.create_run(name="svc", kind="record", command=["./svc"], pid=7, interval_s=1)
        store.add_samples(
            run.id, [Sample(t=t0 + s, rss_bytes=int(14e6 + 0.8e6 * s)) for s in range(60)]
        )
        store.add_event(run.id, "heap.profile", {"url": url, "pid": 7, "error": error}, t0 + 1)
        _, v = judge_run(store, run)
    assert v.verdict == "leak" and not v.culprits
    assert f"no heap profile could be read from {url}: {error}" in v.evidence
    assert "--heap-profile" not in " ".join(v.evidence)


def test_a_leak_the_probe_found_no_container_for_says_to_trace_allocations(
    tmp_path: Path,
) -> None:
    # A threading.local's dicts and a ContextVar's list, which the census cannot reach, had
    # left a leak with no culprit and no word.
    t0 = 1_700_000_000.0
    with Store(tmp_path / "m.db") as store:
        run = store.create_run(
            name="app", kind="run", command=["python3", "app.py"], pid=7, interval_s=1
        )
        store.add_samples(
            run.id, [Sample(t=t0 + s, rss_bytes=int(14e6 + 0.8e6 * s)) for s in range(60)]
        )
        _, v = judge_run(store, run)
        assert v.evidence[-1].endswith(
            "`memsleuth run --trace-allocations 60s` names the lines that allocate it"
        )
        store.add_event(run.id, "probe.allocations", {"sites": []}, t0 + 30)
        _, traced = judge_run(store, run)
    assert "--trace-allocations" not in " ".join(traced.evidence)
