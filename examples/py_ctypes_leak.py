"""A C-level leak: a "native codec" mallocs a buffer per frame through ctypes and never frees
it. Python's own objects stay flat; RSS and glibc's in-use bytes grow ~5 MiB a second.

memsleuth run should say the growth is memory malloc holds that no Python container explains.

    python examples/py_ctypes_leak.py [--seconds N]
"""

from __future__ import annotations

import argparse
import ctypes
import time

LIBC = ctypes.CDLL(None)
LIBC.malloc.restype = ctypes.c_void_p
LIBC.malloc.argtypes = [ctypes.c_size_t]
LIBC.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
FRAME = 64 * 1024


def decode_frame() -> int:
    buf = LIBC.malloc(FRAME)  # the bug: no matching free()
    LIBC.memset(buf, 1, FRAME)  # touch the pages so they count in RSS
    return int(buf or 0)


def main(seconds: float) -> None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in range(4):
            decode_frame()
        time.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
