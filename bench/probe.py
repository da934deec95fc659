"""The probe's cost: target slow-down and peak RSS of `memsleuth run` vs a plain run, memray and
`-X tracemalloc`, on an allocation-heavy and a server-like workload (medians, side by side);
and the heap census on 1M / 5M objects against objgraph.show_growth on the same heap.

    python bench/probe.py            # main() -> dict of figures
"""

from __future__ import annotations

import gc
import io
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# A shared 2-core VM: a thread's speed drifts by ±20% over minutes, so each mode is compared
# with the plain run of its own round (rounds interleave the modes), and the ratios' median
# is reported; a median of 3 separate distributions moved by ±5-10%.
REPEATS = 7

# Each workload does a fixed amount of work (a few seconds) and prints its own work time and peak
# RSS, so every tool is measured on the target alone (not on its own start-up or report writing).
# Peak RSS is VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a target forked from
# a big parent (the memsleuth CLI has numpy loaded) would report the parent's peak.
ALLOC_HEAVY = """
    import time
    t = time.perf_counter()
    keep = []
    for round_ in range(250):
        batch = [{"id": i, "name": str(i), "tags": (i, i + 1)} for i in range(25_000)]
        keep.append(batch[::50])
        del batch
    work = time.perf_counter() - t
    print(work, PEAK())
"""

SERVER_LIKE = """
    import asyncio, time
    CACHE = {i: ("user%d" % i, [i] * 4) for i in range(200_000)}  # a warm heap to census

    async def handle(reader, writer):
        while data := await reader.readline():
            key = int(data)
            writer.write(repr(CACHE.get(key % 200_000)).encode() + b"\\n")
            await writer.drain()
        writer.close()

    async def client(port, n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(n):
            writer.write(b"%d\\n" % i)
            await writer.drain()
            await reader.readline()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t = time.perf_counter()
        await asyncio.gather(*(client(port, 12_000) for _ in range(8)))
        work = time.perf_counter() - t
        server.close()
        print(work, PEAK())

    asyncio.run(main())
"""


PEAK_DEF = (
    "def PEAK():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM'):\n"
    "            return int(line.split()[1]) * 1024\n"
)


def _modes(script: Path, tmp: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "plain": [py, str(script)],
        "memsleuth run": [
            py,
            "-m",
            "memsleuth",
            "run",
            "--store",
            str(tmp / "m.db"),
            "-q",
            "--",
            py,
            str(script),
        ],
        "memray run": [
            py,
            "-m",
            "memray",
            "run",
            "-q",
            "-f",
            "-o",
            str(tmp / "m.bin"),
            str(script),
        ],
        "-X tracemalloc": [py, "-X", "tracemalloc", str(script)],
    }


def _probe_overhead(db: Path) -> float | None:
    """The probe's own account of what it cost the host (last `probe stopped` status): CPU of
    its thread, hooks and start-up over wall time. Not moved by the machine's load."""
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT payload FROM events WHERE kind = 'probe.status' "
            "AND payload LIKE '%probe stopped%' ORDER BY rowid DESC LIMIT 1"
        ).fetchone()
    return float(json.loads(row[0])["overhead"]) if row else None


def _measure(cmd: list[str]) -> tuple[float, float, float]:
    """(work seconds, peak RSS bytes, whole command seconds) of one run."""
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    whole = time.perf_counter() - start
    work, rss = out.strip().splitlines()[-1].split()
    return float(work), float(rss), whole


def workload_overheads(repeats: int = REPEATS) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, code in (("allocation-heavy", ALLOC_HEAVY), ("server-like", SERVER_LIKE)):
            script = tmp / f"{name}.py"
            script.write_text(PEAK_DEF + textwrap.dedent(code))
            modes = _modes(script, tmp)
            runs: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
            own: list[float] = []
            for _ in range(repeats):  # interleaved, so drift hits every mode alike
                for mode, cmd in modes.items():
                    runs[mode].append(_measure(cmd))
                    if mode == "memsleuth run":
                        share = _probe_overhead(tmp / "m.db")
                        own.extend([] if share is None else [share])
            plain = runs["plain"]
            results[name] = {
                mode: {
                    "work_s": statistics.median(r[0] for r in rs),
                    "wall_ratio": statistics.median(
                        r[0] / p[0] for r, p in zip(rs, plain, strict=True)
                    ),
                    "peak_rss_ratio": statistics.median(
                        r[1] / p[1] for r, p in zip(rs, plain, strict=True)
                    ),
                    "command_s": statistics.median(r[2] for r in rs),
                }
                for mode, rs in runs.items()
            }
            if own:
                results[name]["memsleuth run"]["probe_own_share"] = statistics.median(own)
    return results


class _Slot:
    __slots__ = ("a",)

    def __init__(self, a: int) -> None:
        self.a = a


def census_costs(sizes: tuple[int, ...] = (1_000_000, 5_000_000)) -> dict[str, dict[str, float]]:
    import objgraph

    from memsleuth.probe.heap import EXACT_LEN, HeapCensus
    from memsleuth.probe.naming import global_containers

    out: dict[str, dict[str, float]] = {}
    for n in sizes:
        heap: list[object] = [[i] for i in range(n // 2)]
        heap.extend(_Slot(i) for i in range(n // 2))
        census = HeapCensus()
        objgraph.show_growth(limit=10, file=io.StringIO())  # its baseline
        ours, theirs = [], []
        for _ in range(3):
            t = time.perf_counter()
            census.take(global_containers(EXACT_LEN))
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            objgraph.show_growth(limit=10, file=io.StringIO())
            theirs.append(time.perf_counter() - t)
        objects = len(gc.get_objects())
        out[f"{n // 1_000_000}M"] = {
            "objects": objects,
            "census_s": statistics.median(ours),
            "objgraph_show_growth_s": statistics.median(theirs),
            "ratio": statistics.median(ours) / statistics.median(theirs),
            # At the default 2% budget the probe censuses this heap at most every ...
            "census_period_at_2pct_s": statistics.median(ours) / 0.02,
        }
        del heap, census
        gc.collect()
    return out


def main() -> dict[str, object]:
    overheads = workload_overheads()
    for name, modes in overheads.items():
        print(f"\n{name} (median of {REPEATS} rounds, ratio to the round's plain run)")
        print(f"  {'mode':16} {'work':>8} {'wall×':>7} {'peak RSS×':>10} {'command':>9}")
        for mode, r in modes.items():
            print(
                f"  {mode:16} {r['work_s']:7.2f}s {r['wall_ratio']:7.3f} "
                f"{r['peak_rss_ratio']:10.3f} {r['command_s']:8.2f}s"
            )
        if "probe_own_share" in modes["memsleuth run"]:
            share = modes["memsleuth run"]["probe_own_share"]
            print(f"  probe's own account of its cost: {share:.2%} of wall time")
    census = census_costs()
    print("\nheap census vs objgraph.show_growth (median of 3)")
    for size, r in census.items():
        print(
            f"  {size}: {r['objects']:,.0f} objects: census {r['census_s'] * 1000:.0f} ms, "
            f"objgraph {r['objgraph_show_growth_s'] * 1000:.0f} ms (ratio {r['ratio']:.2f}); "
            f"period at 2%: {r['census_period_at_2pct_s']:.1f} s"
        )
    return {"overheads": overheads, "census": census}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
