"""A few heavy objects kept for ever: a video pipeline keeps every decoded 2 MB frame in a
module-global list "for the replay buffer", and nothing trims it.

Only a handful of entries a second, far from the thousands a dedup map gains, but megabytes
each; and bytearrays (like bytes and numpy arrays) are no gc objects. memsleuth run should name
`module __main__, global REPLAY (list)`, not native memory.

    python examples/py_frame_cache.py [--seconds N]
"""

from __future__ import annotations

import argparse
import time

REPLAY: list[bytearray] = []
FRAME_BYTES = 2_000_000


def decode(n: int) -> bytearray:
    frame = bytearray(FRAME_BYTES)
    frame[:8] = n.to_bytes(8, "little")
    frame[::4096] = b"\1" * len(frame[::4096])  # touch every page: resident, as a real frame
    return frame


def main(seconds: float) -> None:
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        REPLAY.append(decode(n))  # the bug: the replay buffer has no bound
        n += 1
        time.sleep(0.25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
