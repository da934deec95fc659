"""A steady workload with a GC sawtooth: memory climbs, is collected, climbs again. Not a leak.

Each cycle builds a batch of request objects held in reference cycles (so only the cyclic
garbage collector frees them) for ~3 seconds, up to ~40 MiB, then drops the batch and calls
`gc.collect()`: RSS saws up and down around a flat floor.

memsleuth should say: stable (the floor of the sawtooth does not rise).

    python examples/gc_sawtooth.py [--seconds N]
"""

from __future__ import annotations

import argparse
import gc
import time

BATCH_S = 3.0
CHUNK = 256 * 1024  # large blocks come from mmap, so freeing them returns memory at once


class Request:
    def __init__(self) -> None:
        self.body = bytearray(CHUNK)
        self.me = self  # a reference cycle: freed only by the cyclic collector


def main(seconds: float) -> None:
    gc.disable()  # collect at the end of each batch, like a runtime with a large GC threshold
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        batch_start = time.monotonic()
        while time.monotonic() - batch_start < BATCH_S:
            Request()  # dropped at once, but alive until the collector runs
            time.sleep(0.02)
        gc.collect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
