"""A worker with a load cycle: half of each period busy (a 40 MB working set), half idle (given
back), again and again. With --leak, every busy phase also keeps a 2 MB result in a
module-global list.

Memory swings 40 MB every period (4 s by default); the leak adds 2 MB a period under it, less
than any one swing. memsleuth record should say `stable` without --leak (the swing is no
growth) and `leak` with it, the cycle taken out ("a load cycle every 4.0 s ..."): out of the bins
when it spans six of them or more, else averaged inside bins that hold whole cycles.

    python examples/busy_idle.py [--leak] [--period SECONDS] [--seconds N]
"""

from __future__ import annotations

import argparse
import time

KEPT: list[bytearray] = []
WORKING_SET = 40_000_000


def busy(seconds: float, leak: bool) -> None:
    work = bytearray(WORKING_SET)  # large: mmap'd, so freeing it gives the pages back
    work[::4096] = b"\1" * len(work[::4096])  # touch every page: resident
    if leak:
        KEPT.append(bytearray(work[:2_000_000]))  # the bug: a result nobody reads again
    time.sleep(seconds)


def main(seconds: float, leak: bool, period: float) -> None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        busy(period / 2, leak)
        time.sleep(period / 2)  # idle: the working set is freed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leak", action="store_true")
    parser.add_argument("--period", type=float, default=4.0, help="seconds (default 4)")
    parser.add_argument("--seconds", type=float, default=float("inf"))
    args = parser.parse_args()
    main(args.seconds, args.leak, args.period)
