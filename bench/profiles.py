"""What reading heap profiles costs (`record --heap-profile`): the Go target's CPU and
memsleuth's own, without profiles, with them, and with `?gc=1`, side by side in one run; and
one profile's fetch and read.

The target is examples/go_arena with a 128 MiB cache and its garbage of requests (built with
Debian's golang-go; skipped without it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import urllib3

from memsleuth.sources import pprof

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BENCH_PROFILES_SECONDS", "40"))
SETTLE_S = 8.0  # imports, the cache filling


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _build(out: Path) -> Path:
    exe = out / "arena"
    env = os.environ | {"GOCACHE": str(out / "cache"), "GOPATH": str(out / "gopath")}
    env |= {"GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local"}
    source = ROOT / "examples/go_arena"
    subprocess.run(["go", "build", "-o", str(exe), "."], cwd=source, env=env, check=True)
    return exe


def _cpu(p: psutil.Process) -> float:
    return float(sum(p.cpu_times()[:2]))


def _measure(exe: Path, url_query: str | None, store: Path) -> tuple[float, float]:
    """(target CPU share, memsleuth CPU share) over SECONDS after SETTLE_S."""
    port = _port()
    target = subprocess.Popen(
        [str(exe), "-addr", f"127.0.0.1:{port}", "-leak", "0", "-cache", "2000"],
        stdout=subprocess.DEVNULL,
    )
    cmd = [sys.executable, "-m", "memsleuth", "record", "--pid", str(target.pid), "-q"]
    cmd += ["--store", str(store), "--duration", str(SECONDS + SETTLE_S + 5)]
    if url_query is not None:
        cmd += ["--heap-profile", f"http://127.0.0.1:{port}/debug/pprof/heap{url_query}"]
    try:
        time.sleep(1.0)
        rec = subprocess.Popen(cmd)
        t, r = psutil.Process(target.pid), psutil.Process(rec.pid)
        time.sleep(SETTLE_S)
        t0, r0, w0 = _cpu(t), _cpu(r), time.monotonic()
        time.sleep(SECONDS)
        t1, r1, w1 = _cpu(t), _cpu(r), time.monotonic()
        rec.terminate()
        rec.wait()
    finally:
        target.kill()
        target.wait()
    return (t1 - t0) / (w1 - w0), (r1 - r0) / (w1 - w0)


def _one_profile(exe: Path) -> tuple[float, int]:
    """Median seconds to fetch and read one profile, and its sites."""
    port = _port()
    target = subprocess.Popen(
        [str(exe), "-addr", f"127.0.0.1:{port}", "-leak", "0", "-cache", "2000"],
        stdout=subprocess.DEVNULL,
    )
    pool = urllib3.PoolManager()
    url = f"http://127.0.0.1:{port}/debug/pprof/heap"
    try:
        time.sleep(3.0)
        spent, sites = [], 0
        for _ in range(20):
            began = time.perf_counter()
            profile = pprof.parse(pprof.fetch(url, pool), url)
            spent.append(time.perf_counter() - began)
            sites = len(profile.sites)
    finally:
        target.kill()
        target.wait()
    return sorted(spent)[len(spent) // 2], sites


def main() -> dict[str, float] | None:
    if shutil.which("go") is None:
        print("(go not installed: Debian's golang-go builds the target; skipped)")
        return None
    with tempfile.TemporaryDirectory() as d:
        exe = _build(Path(d))
        rows = {}
        cases = (("without profiles", None), ("with profiles", ""), ("with ?gc=1", "?gc=1"))
        for name, query in cases:
            rows[name] = _measure(exe, query, Path(d) / f"{len(rows)}.db")
        one, sites = _one_profile(exe)
    base_t, base_r = rows["without profiles"]
    print(
        f"{'':<20} {'target CPU':>12} {'memsleuth CPU':>14}   (shares of a core, {SECONDS:.0f} s)"
    )
    for name, (t, r) in rows.items():
        ratios = f"target {t / base_t:.3f}x, memsleuth {r / base_r:.2f}x"
        print(f"{name:<20} {t:12.2%} {r:14.2%}   {ratios}")
    print(f"one profile fetched and read: {one * 1000:.1f} ms ({sites} sites)")
    figures = {
        f"{n} {k}": v for n, (t, r) in rows.items() for k, v in (("target", t), ("memsleuth", r))
    }
    figures["one_profile_s"] = one
    return figures


if __name__ == "__main__":
    main()
