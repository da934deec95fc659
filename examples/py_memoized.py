"""A memo on unique keys: `functools.cache` on a function called with each request's id keeps
every rendered page for ever (lru_cache(maxsize=None) is the same thing).

memsleuth run should name `lru_cache of render_page() (py_memoized.py:18) (dict)`. The cache's
dict holds only ints and strs, so the garbage collector does not track it: only the wrapper
reaches it.

    python examples/py_memoized.py [--seconds N]
"""

from __future__ import annotations

import argparse
import functools
import time


@functools.cache
def render_page(request_id: int) -> str:
    return f"<html><body>request {request_id}</body></html>" + " " * 1000


def main(seconds: float) -> None:
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        for _ in range(200):
            render_page(n)  # the bug: every id is new, so nothing is ever served from the memo
            n += 1
        time.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
