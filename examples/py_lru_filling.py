"""A bounded cache still filling: `functools.lru_cache(maxsize=40_000)` on rendered pages of
~2 KiB, 2,000 new keys a second. For its first 20 s memory rises as steadily as a leak's, and
from outside nothing tells the two apart; the probe sees that the cache cannot hold more than
40,000 pages.

memsleuth run should say `plateau`: the growth is `lru_cache of render() (py_lru_filling.py:21)`,
bounded at 40,000 entries and N% full, with the level memory stops at once it is full.

    python examples/py_lru_filling.py [--seconds N]
"""

from __future__ import annotations

import argparse
import functools
import time

MAXSIZE = 40_000


@functools.lru_cache(maxsize=MAXSIZE)
def render(page_id: int) -> bytes:
    return f"<html>{page_id}</html>".encode() + bytes(2000)


def main(seconds: float) -> None:
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        for _ in range(100):
            render(n % 1_000_000)  # keys from a large space: a miss each, until it is full
            n += 1
        time.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    main(parser.parse_args().seconds)
