"""Threads started per request that never end: each waits for a shutdown signal that only
comes at exit (daemon threads, so the process still exits).

memsleuth run should name the `serve_connection` threads started in `accept`.

    python examples/py_threads.py [--seconds N]
"""

from __future__ import annotations

import argparse
import threading
import time

SHUTDOWN = threading.Event()


def serve_connection(n: int) -> None:
    SHUTDOWN.wait()  # the bug: the connection's thread outlives the connection


def accept(n: int) -> None:
    threading.Thread(target=serve_connection, args=(n,), daemon=True).start()


def main(seconds: float) -> None:
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        accept(n)
        n += 1
        time.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
