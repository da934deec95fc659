"""Measure the soak harness: its false-failure rate on non-leaking functions (caches, GC churn,
noise) over many repeated runs, and how well it measures leaks of known size.

    python bench/soak.py [--runs 30] [--cycles 1000] [--json]

Each non-leaking workload is soaked --runs times with the defaults a user gets
(`memsleuth.soak(fn)`: 1000 cycles after 100 of warm-up, allowance 0 B). Leaks of known size
(a list that keeps a bytes object per call) are soaked too: detection rate and the error of the
measured bytes per cycle against the exact cost (sys.getsizeof + the list slot).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import functools
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable

import memsleuth


def _churn() -> None:
    a: list[object] = [object() for _ in range(random.randint(5, 50))]
    a.append(a)  # a reference cycle for the collector
    {str(i): [i] * random.randint(0, 20) for i in range(30)}


_SLOTS: dict[int, bytes] = {}


def _bounded_dict() -> None:
    _SLOTS[random.randrange(50)] = bytes(random.randrange(100, 300))


@functools.lru_cache(maxsize=128)
def _lookup(key: int) -> list[int]:
    return [key] * 20


def _lru_evicting() -> None:
    _lookup(random.randrange(1000))  # evicts all the time, never exceeds 128 entries


_RING: collections.deque[bytes] = collections.deque(maxlen=100)


def _ring_buffer() -> None:
    _RING.append(bytes(random.randrange(10, 2000)))


def _json_roundtrip() -> None:
    doc = {"id": random.random(), "tags": [str(i) for i in range(random.randint(0, 30))]}
    json.loads(json.dumps(doc))


def _noise() -> None:
    # Temporary buffers of very different sizes, sometimes large enough for mmap.
    size = random.choice((64, 4096, 70_000, 300_000))
    buf = bytearray(size)
    buf[0] = 1


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2)


def _thread_pool() -> None:
    _POOL.submit(sum, range(100)).result()


_WORDS = [f"w{i}" for i in range(100)]


def _regex() -> None:
    re.match(rf"{random.choice(_WORDS)}\d*", "w12345")  # re's cache (512) holds all 100


_BATCH: list[bytes] = []


def _sawtooth() -> None:
    _BATCH.append(bytes(random.randrange(100, 400)))
    if len(_BATCH) >= 300:  # flushed every 300 calls: a sawtooth, not a leak
        _BATCH.clear()


_FRAME = bytearray()


def _reused_buffer() -> None:
    _FRAME.extend(random.randbytes(random.randrange(50, 500)))
    if len(_FRAME) > 60_000:  # sent and emptied in place: a buffer reused, not a leak
        del _FRAME[:]


_LOG: list[int] = []


def _trimmed_list() -> None:
    _LOG.extend(range(random.randrange(1, 20)))
    if len(_LOG) > 5_000:  # keeps its last 1,000 items, trimmed in place
        del _LOG[:-1000]


NON_LEAKING: dict[str, Callable[[], None]] = {
    "gc churn": _churn,
    "bounded dict (50 random keys)": _bounded_dict,
    "lru_cache evicting (128 of 1000)": _lru_evicting,
    "ring buffer deque(maxlen=100)": _ring_buffer,
    "json round trip": _json_roundtrip,
    "temporary buffers 64 B-300 KB": _noise,
    "thread pool submit": _thread_pool,
    "regex cache": _regex,
    "sawtooth (flushed every 300 calls)": _sawtooth,
    "bytearray reused (emptied at 60 KB)": _reused_buffer,
    "list trimmed in place (to 1,000)": _trimmed_list,
}


def _leaker(size: int) -> tuple[Callable[[], None], float]:
    kept: list[bytes] = []

    def leak() -> None:
        kept.append(bytes(size) + random.randbytes(1))  # a distinct object each call

    return leak, float(sys.getsizeof(bytes(size + 1)) + 8)


def _grower(size: int) -> tuple[Callable[[], None], float]:
    kept = bytearray()

    def grow() -> None:
        kept.extend(random.randbytes(size))  # one block, reallocated: no block is added

    return grow, float(size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per workload (default 30)")
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", help="run the non-leaking workloads whose name has this")
    parser.add_argument("--no-leaks", action="store_true", help="skip the leak measurements")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows = []
    failures = total = inconclusive = 0
    for name, fn in NON_LEAKING.items():
        if args.only and args.only not in name:
            continue
        failed = []
        undecided = 0  # passes, but a pytest test would warn (InconclusiveSoakWarning)
        for _ in range(args.runs):
            result = memsleuth.soak(fn, cycles=args.cycles)
            if not result.ok:
                failed.append(result.explain())
            undecided += result.verdict.verdict == "inconclusive"
        failures += len(failed)
        inconclusive += undecided
        total += args.runs
        rows.append(
            {
                "workload": name,
                "runs": args.runs,
                "false_failures": len(failed),
                "inconclusive": undecided,
            }
        )
        print(
            f"{name:36s} {len(failed)}/{args.runs} false failures, {undecided} inconclusive",
            flush=True,
        )
        for text in failed[:2]:
            print("   " + text.replace("\n", "\n   "), flush=True)

    leaks = []
    kinds = (
        [("leak", _leaker, size) for size in (16, 64, 212, 1024)]
        + [("in-place leak", _grower, size) for size in (64, 1024)]
        if not args.no_leaks
        else []
    )
    for kind, make, size in kinds:
        detected, errors = 0, []
        for _ in range(max(5, args.runs // 3)):
            fn, exact = make(size)
            result = memsleuth.soak(fn, cycles=args.cycles)
            detected += not result.ok
            errors.append(abs(result.bytes_per_cycle - exact) / exact)
        n = max(5, args.runs // 3)
        leaks.append(
            {
                "kind": kind,
                "bytes_per_call": exact,
                "runs": n,
                "detected": detected,
                "median_error": statistics.median(errors),
                "max_error": max(errors),
            }
        )
        print(
            f"{kind} of {exact:.0f} B/call: detected {detected}/{n}, error median "
            f"{statistics.median(errors):.1%}, max {max(errors):.1%}",
            flush=True,
        )

    elapsed = time.perf_counter() - started
    print(
        f"false failures: {failures}/{total} ({failures / total:.2%}), inconclusive "
        f"{inconclusive}/{total}; {elapsed:.0f} s"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "non_leaking": rows,
                    "false_failures": failures,
                    "inconclusive": inconclusive,
                    "runs": total,
                    "leaks": leaks,
                    "seconds": elapsed,
                },
                indent=2,
            )
        )
    _POOL.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
