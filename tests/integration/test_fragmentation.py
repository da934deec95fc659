"""A run whose RSS grows only by memory malloc keeps free is judged fragmentation, not a leak."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from memsleuth.cli import main
from memsleuth.errors import ExitCode, MemsleuthError
from memsleuth.model import Sample
from memsleuth.sources import mallstats
from memsleuth.store import Store
from tests.conftest import memsleuth_cmd


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


def _record_native(
    db: Path, exe: Path, *args: str, options: tuple[str, ...] = ()
) -> tuple[dict[str, object], int]:
    subprocess.run(
        memsleuth_cmd(
            "record", "--store", str(db), "--malloc-stats", "--interval", "0.5",
            "--duration", "12", "-q", *options, "--", str(exe), *args,
        ),
        check=True,
        timeout=120,
    )  # fmt: skip
    done = subprocess.run(
        memsleuth_cmd("analyze", "--store", str(db), "--json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(done.stdout), done.returncode


@pytest.mark.xdist_group("examples-a")
def test_a_native_program_whose_heap_cannot_shrink_is_fragmentation(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    # Seed 002's other hypothesis, in C: RSS +1.7 GiB/h, one block live. From outside alone
    # it reads `leak`; the allocator reader loaded with --malloc-stats tells what it is.
    doc, code = _record_native(tmp_path / "m.db", build_c("native_fragmenter"))
    assert doc["verdict"] == "fragmentation", doc["evidence"]
    assert code == ExitCode.PROBLEM
    assert any(
        str(e).startswith("memory in use (RSS less what malloc holds free) ")
        for e in doc["evidence"]
    )
    # Without the reader, from outside alone, the same program reads as a leak.
    exe = build_c("native_fragmenter")
    db = tmp_path / "plain.db"
    subprocess.run(
        memsleuth_cmd("record", "--store", str(db), "--interval", "0.5", "--duration", "8",
                      "-q", "--", str(exe)),
        check=True,
        timeout=60,
    )  # fmt: skip
    assert main(["analyze", "--store", str(db)]) == ExitCode.PROBLEM


@pytest.mark.xdist_group("examples-b")
def test_a_forked_worker_that_fragments_is_read_with_the_tree(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    # A pre-fork server's worker: forked without exec, it has no reader thread of its own
    # unless the fork gives it one, and --children sums its RSS, so its allocator must be
    # summed too (the parent's alone had read `leak`).
    exe = build_c("native_fragmenter")
    doc, code = _record_native(tmp_path / "m.db", exe, "1e9", "fork", options=("--children",))
    assert doc["verdict"] == "fragmentation", doc["evidence"]
    assert code == ExitCode.PROBLEM


@pytest.mark.xdist_group("examples-b")
def test_a_native_leak_read_with_its_allocator_is_still_a_leak(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    # The frame processor keeps a header a frame: live bytes grow with RSS.
    doc, _ = _record_native(tmp_path / "m.db", build_c("frame_processor"))
    assert doc["verdict"] == "leak"
    [live] = [
        str(e)
        for e in doc["evidence"]
        if str(e).startswith("memory in use (RSS less what malloc holds free) grew")
    ]
    assert "(9" in live or "(10" in live, live  # 90-100% of RSS's growth


@pytest.mark.xdist_group("examples-a")
def test_a_leak_beside_a_heap_that_trims_itself_is_a_leak(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    # 200 KiB/s kept, beside batches freed and trimmed each second: malloc's free bytes grow
    # faster than RSS though none of them is resident. RSS less them had fallen, and the leak
    # read `fragmentation`, "live allocations fell 1.04 GiB/h while RSS grew".
    doc, code = _record_native(tmp_path / "m.db", build_c("trimmed_leak"))
    assert doc["verdict"] == "leak", doc["evidence"]
    assert code == ExitCode.PROBLEM
    [live] = [
        str(e)
        for e in doc["evidence"]
        if str(e).startswith("memory in use (RSS less what malloc holds free) grew")
    ]
    assert "(9" in live or "(10" in live, live  # 90-100% of RSS's growth


def test_malloc_stats_cannot_attach(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--malloc-stats", "--pid", "1", "--duration", "1"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: --malloc-stats cannot attach to a running process")
    assert "hint: " in err


def test_no_compiler_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(MemsleuthError) as caught:
        mallstats.build(tmp_path / "cache")
    assert "needs a C compiler" in str(caught.value)
