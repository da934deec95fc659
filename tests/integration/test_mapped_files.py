"""RSS grown by a mapped file's pages is no leak: the kernel takes them back when memory is
short. A C program reading a 400 MB file through mmap had read "leak, +10.3 GiB/h, limit
reached in 4.3 min", its own memory flat. And memory shared after fork that comes unshared
grows no RSS at all: it is read from USS."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from memsleuth.errors import ExitCode
from memsleuth.model import Series
from memsleuth.store import Store
from tests.conftest import memsleuth_cmd


def _recorded(db: Path, program: Path, *args: str) -> Series:
    """`memsleuth record` of a C program every 0.5 s (limit 1 GiB): the series it stored."""
    subprocess.run(
        memsleuth_cmd("record", "--store", str(db), "--interval", "0.5", "--limit", "1GiB",
                      "-q", "--", str(program), *args),
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Store(db, readonly=True) as store:
        return store.load_series(store.get_run().id)


def _analyzed(db: Path) -> tuple[dict[str, Any], int]:
    """`memsleuth analyze --json`: the verdict and the exit code."""
    p = subprocess.run(
        memsleuth_cmd("analyze", "--store", str(db), "--json"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return json.loads(p.stdout), p.returncode


def test_a_file_read_through_mmap_is_no_leak(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    data = tmp_path / "big.dat"
    with data.open("wb") as f:  # written, not sparse: every page is a real one to map
        for _ in range(120):
            f.write(b"\x01" * (1 << 20))
    series = _recorded(tmp_path / "m.db", build_c("mmap_reader"), str(data), "25")
    files, anon = series.get("file_bytes"), series.get("anon_bytes")
    assert files is not None and anon is not None
    assert files[-1] - files[1] > 50e6  # the file's pages came in: ~3 MB/s
    assert abs(anon[-1] - anon[1]) < 2e6  # the program's own memory did not move
    doc, code = _analyzed(tmp_path / "m.db")
    assert (code, doc["verdict"]) == (ExitCode.OK, "stable"), doc["evidence"]
    assert doc["metric"] == "rss_less_file_bytes" and doc["time_to_limit_s"] is None
    assert "of it pages of mapped files" in doc["evidence"][0]


def test_memory_freed_with_madv_free_is_no_leak(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    # An allocator that gives chunks back with MADV_FREE (jemalloc, mimalloc, Go before 1.16):
    # the kernel counts them in RSS (LazyFree) until it needs them. RSS grows ~9 GiB/h with
    # 8 MiB held, and had read "leak +14.1 GiB/h" at 99% in a helper's program.
    series = _recorded(tmp_path / "m.db", build_c("lazy_free"), "45")
    lazy = series.get("lazyfree_bytes")
    assert lazy is not None and np.nanmax(lazy) > 50e6  # read on a budget, and growing
    assert series.rss[-1] - series.rss[1] > 80e6
    doc, code = _analyzed(tmp_path / "m.db")
    assert code == ExitCode.OK and doc["verdict"] in ("stable", "inconclusive"), doc
    assert doc["metric"] == "rss_less_lazyfree_bytes" and doc["time_to_limit_s"] is None, doc
    assert "of it pages freed with MADV_FREE" in doc["evidence"][0]


def test_memory_coming_unshared_after_fork_is_copy_on_write(
    tmp_path: Path, build_c: Callable[[str], Path]
) -> None:
    # A pre-fork server's parent rewriting 192 MiB of state its worker shares, 10 MiB a second:
    # each page written is copied, the pair holds that much more, and the parent's RSS does
    # not move. RSS alone had read `stable`.
    series = _recorded(tmp_path / "m.db", build_c("cow_fork"), "30")
    uss = series.get("uss_bytes")
    assert uss is not None and np.count_nonzero(~np.isnan(uss)) >= 8  # read on a budget
    doc, code = _analyzed(tmp_path / "m.db")
    assert code == ExitCode.OK, doc
    said = (doc["verdict"], doc["cause"], doc["metric"])
    assert said == ("plateau", "copy-on-write", "uss_bytes")
    assert 180 << 20 < doc["ceiling_bytes"] < 200 << 20  # RSS: the most USS can reach
    assert doc["evidence"][0].startswith("private memory (USS) grew 1"), doc["evidence"]
