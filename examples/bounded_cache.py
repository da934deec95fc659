"""A bounded LRU cache that warms up and levels off: growth, then a plateau. Not a leak.

Requests for 20,000 distinct keys (a Zipf-like mix) fill an LRU cache capped at 8,000 entries
of ~4 KiB each (~32 MiB). The cache fills in about 8 seconds, then evicts as fast as it adds.

memsleuth should say: plateau, with a ceiling ~35-45 MiB above the start; no culprit.

    python examples/bounded_cache.py [--seconds N]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import OrderedDict

MAX_ENTRIES = 8000
VALUE_BYTES = 4096
REQUESTS_PER_S = 2000


class LRUCache:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.data: OrderedDict[int, bytes] = OrderedDict()

    def get_or_load(self, key: int) -> bytes:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
            return value
        value = bytes(random.getrandbits(8) for _ in range(16)) * (VALUE_BYTES // 16)
        self.data[key] = value
        if len(self.data) > self.maxsize:
            self.data.popitem(last=False)
        return value


CACHE = LRUCache(MAX_ENTRIES)


def main(seconds: float) -> None:
    rng = random.Random(42)
    start = time.monotonic()
    tick = 0.05
    # New keys come in order at first (the cache warms), then requests mix over all keys.
    fresh = iter(range(20_000))
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        for _ in range(int(REQUESTS_PER_S * tick)):
            key = next(fresh, None)
            if key is None or rng.random() < 0.5:
                key = int(rng.paretovariate(1.2) * 100) % 20_000
            CACHE.get_or_load(key)
        time.sleep(max(0.0, tick - (time.monotonic() - now)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
