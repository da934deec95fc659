"""The recorder's own CPU: one big target at 1 Hz, and 100 processes at 1 Hz with one budget."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from memsleuth.sources.procfs import CostBudget, ProcSampler, identify

SECONDS = float(os.environ.get("BENCH_RECORDER_SECONDS", "30"))
# A target that holds ~400 MiB in ~100k mappings' worth of pages, so smaps_rollup is costly.
BIG = "import time; b=[bytearray(1<<20) for _ in range(400)]; time.sleep(3600)"
SMALL = "import time; time.sleep(3600)"


def _spawn(code: str, n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def recorder_cli_share(target_pid: int, seconds: float) -> float:
    """CPU share of a real `memsleuth record --pid` process, start-up excluded."""
    with tempfile.TemporaryDirectory() as d:
        rec = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memsleuth",
                "record",
                "--pid",
                str(target_pid),
                "-q",
                "--store",
                str(Path(d) / "b.db"),
                "--duration",
                str(seconds + 8),
            ],
        )
        p = psutil.Process(rec.pid)
        time.sleep(5)  # imports and first samples
        c0, t0 = sum(p.cpu_times()[:2]), time.monotonic()
        time.sleep(seconds)
        c1, t1 = sum(p.cpu_times()[:2]), time.monotonic()
        rec.wait()
    return (c1 - c0) / (t1 - t0)


def many_share(pids: list[int], seconds: float) -> float:
    """CPU share of sampling every pid once a second with one shared costly-read budget."""
    budget = CostBudget()
    samplers = [ProcSampler(identify(pid), budget=budget) for pid in pids]
    me = psutil.Process()
    c0, t0 = sum(me.cpu_times()[:2]), time.monotonic()
    next_at = t0
    while time.monotonic() - t0 < seconds:
        for s in samplers:
            s.sample()
        next_at += 1.0
        time.sleep(max(0.0, next_at - time.monotonic()))
    c1, t1 = sum(me.cpu_times()[:2]), time.monotonic()
    return (c1 - c0) / (t1 - t0)


def main() -> dict[str, float]:
    big = _spawn(BIG, 1)
    small = _spawn(SMALL, 100)
    try:
        time.sleep(3)
        one = recorder_cli_share(big[0].pid, SECONDS)
        hundred = many_share([p.pid for p in small], SECONDS)
    finally:
        for p in big + small:
            p.kill()
            p.wait()
    figures = {
        "record_one_400MiB_target_cpu_share": one,
        "sample_100_processes_1hz_cpu_share": hundred,
    }
    print(f"{'recorder CPU, one 400 MiB target at 1 Hz':<48} {one:7.3%} of a core  (target < 1%)")
    print(
        f"{'sampling 100 processes at 1 Hz, one budget':<48} {hundred:7.3%} of a core  "
        "(target < 1%)"
    )
    return figures


if __name__ == "__main__":
    main()
