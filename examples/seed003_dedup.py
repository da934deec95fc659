"""Seed 003: a trading bot's dedup map whose TTL cleanup is outpaced by new signatures.

Every incoming signature is remembered in the module-global dict `PROCESSED_SIGNATURES` so a
repeat can be skipped. A cleanup pass every second drops entries older than the TTL, but it
only visits a bounded batch per pass (to keep latency low): 3,000 signatures arrive a second
and only 1,000 are cleaned, so the map grows by ~2,000 entries a second, forever.

memsleuth should say: leak (~20-25 MiB/min); with `memsleuth run`, the culprit is
`module __main__, global PROCESSED_SIGNATURES (dict)` growing ~120k entries/min.

    python examples/seed003_dedup.py [--seconds N]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import time

TTL_S = 5.0
ARRIVALS_PER_S = 3000
CLEANUP_BATCH = 1000

PROCESSED_SIGNATURES: dict[str, float] = {}


def process(signature: str, now: float) -> bool:
    """True when the signature is new (and is then remembered)."""
    if signature in PROCESSED_SIGNATURES:
        return False
    PROCESSED_SIGNATURES[signature] = now
    return True


def cleanup_old_signatures(now: float) -> int:
    """Drop up to CLEANUP_BATCH expired signatures (the bug: the batch is too small)."""
    expired = [
        k
        for k, seen in itertools.islice(PROCESSED_SIGNATURES.items(), CLEANUP_BATCH)
        if now - seen > TTL_S
    ]
    for k in expired:
        del PROCESSED_SIGNATURES[k]
    return len(expired)


def main(seconds: float) -> None:
    counter = itertools.count()
    start = time.monotonic()
    tick = 0.05
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        for _ in range(int(ARRIVALS_PER_S * tick)):
            sig = hashlib.sha256(str(next(counter)).encode()).hexdigest()
            process(sig, now)
        if int(now) != int(now - tick):
            cleanup_old_signatures(now)
        time.sleep(max(0.0, tick - (time.monotonic() - now)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
