"""A list of callbacks that is only appended to: every request subscribes a closure to a
module-global event bus and nothing ever unsubscribes it.

memsleuth run should name `EventBus.callbacks (list)`, reached from `module __main__, global BUS`.

    python examples/py_callbacks.py [--seconds N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable


class EventBus:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[str], None]] = []

    def subscribe(self, fn: Callable[[str], None]) -> None:
        self.callbacks.append(fn)  # the bug: no unsubscribe when the request is done


BUS = EventBus()


def handle_request(n: int) -> str:
    context = {"request": n, "body": "x" * 300}

    def on_config_change(key: str) -> None:
        context["stale"] = key

    BUS.subscribe(on_config_change)
    return str(context["request"])


def main(seconds: float) -> None:
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        for _ in range(100):
            handle_request(n)
            n += 1
        time.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
