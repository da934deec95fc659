"""Each bundled example, recorded for real, gets the verdict its docstring promises."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from memsleuth.errors import ExitCode
from tests.conftest import EXAMPLES, memsleuth_cmd

SECONDS = "30"


def _record(db: Path, name: str, *target: str, extra: tuple[str, ...] = ()) -> dict[str, object]:
    subprocess.run(
        memsleuth_cmd(
            "record",
            "--store",
            str(db),
            "--name",
            name,
            "--interval",
            "0.5",
            "--duration",
            SECONDS,
            "-q",
            *extra,
            "--",
            *target,
        ),
        check=True,
        timeout=120,
    )
    p = subprocess.run(
        memsleuth_cmd("analyze", name, "--store", str(db), "--json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    doc: dict[str, object] = json.loads(p.stdout)
    expected = ExitCode.PROBLEM if doc["is_problem"] else ExitCode.OK
    assert p.returncode == expected
    return doc


def _py(name: str) -> tuple[str, str]:
    return sys.executable, str(EXAMPLES / name)


@pytest.mark.xdist_group("examples-a")
def test_seed003_dedup_map_is_a_leak(tmp_path: Path) -> None:
    doc = _record(tmp_path / "m.db", "dedup", *_py("seed003_dedup.py"))
    assert doc["verdict"] == "leak"
    rate = doc["growth_bytes_per_hour"]
    assert isinstance(rate, float) and rate > 200 << 20  # ~20 MiB/min documented
    assert doc["evidence"]


@pytest.mark.xdist_group("examples-a")
def test_seed000_slow_consumer_is_a_leak(tmp_path: Path) -> None:
    doc = _record(tmp_path / "m.db", "slow", *_py("seed000_slow_consumer.py"))
    assert doc["verdict"] == "leak"


@pytest.mark.xdist_group("examples-b")
def test_bounded_cache_is_a_plateau(tmp_path: Path) -> None:
    doc = _record(tmp_path / "m.db", "cache", *_py("bounded_cache.py"))
    assert doc["verdict"] == "plateau"
    ceiling = doc["ceiling_bytes"]
    assert isinstance(ceiling, float) and ceiling > 30 << 20


@pytest.mark.xdist_group("examples-b")
def test_gc_sawtooth_is_stable(tmp_path: Path) -> None:
    doc = _record(tmp_path / "m.db", "saw", *_py("gc_sawtooth.py"))
    assert doc["verdict"] == "stable"


@pytest.mark.xdist_group("examples-a")
def test_c_frame_processor_leaks_117_bytes_per_frame(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    exe = build_c("frame_processor")
    count = tmp_path / "frames.count"
    doc = _record(
        tmp_path / "m.db", "frames", str(exe), str(count), extra=("--work-file", str(count))
    )
    assert doc["verdict"] == "leak"
    per_frame = doc["growth_per_work"]
    assert isinstance(per_frame, float) and 90 <= per_frame <= 150  # 936 B / 8 frames + malloc


@pytest.mark.xdist_group("examples-a")
def test_c_frame_processor_under_a_busy_idle_load_still_leaks_117_bytes_per_frame(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    # 8 s busy, 8 s idle: the recording ends 6 s into an idle phase. By the clock it read
    # `plateau` (memory flat since the last busy phase), at 155 B a frame; against the frames
    # done it is one line.
    count = tmp_path / "frames.count"
    exe = str(build_c("frame_processor"))
    doc = _record(
        tmp_path / "m.db",
        "frames",
        exe,
        str(count),
        "1e9",
        "8:8",
        extra=("--work-file", str(count)),
    )
    assert doc["verdict"] == "leak"
    per_frame = doc["growth_per_work"]
    assert isinstance(per_frame, float) and 105 <= per_frame <= 130  # 936 B / 8 + malloc's 8


@pytest.mark.xdist_group("examples-b")
def test_c_bounded_native_cache_is_a_plateau(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    doc = _record(tmp_path / "m.db", "ncache", str(build_c("native_cache")))
    assert doc["verdict"] == "plateau"


@pytest.mark.xdist_group("examples-a")
def test_a_busy_idle_cycle_is_no_growth(tmp_path: Path) -> None:
    # 40 MB taken and given back every 4 s: read as a plateau before load cycles were taken out.
    doc = _record(tmp_path / "m.db", "cycle", *_py("busy_idle.py"))
    assert doc["verdict"] == "stable"
    assert any("a load cycle every 4" in str(e) for e in doc["evidence"])


@pytest.mark.xdist_group("examples-b")
def test_a_leak_under_a_busy_idle_cycle_is_a_leak(tmp_path: Path) -> None:
    # 0.5 MB/s kept under a 40 MB swing: no single cycle shows it; across cycles it is plain.
    doc = _record(tmp_path / "m.db", "cycle-leak", *_py("busy_idle.py"), "--leak")
    assert doc["verdict"] == "leak"
    rate = doc["growth_bytes_per_hour"]
    assert isinstance(rate, float) and 1.2e9 < rate < 2.4e9  # 2 MB a 4 s cycle: 1.8 GB/h
    assert any("a load cycle every 4" in str(e) for e in doc["evidence"])
