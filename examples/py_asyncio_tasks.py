"""Pending asyncio tasks: every request starts a task that waits for a reply that never comes,
with no timeout. The tasks (and their coroutine frames) pile up.

memsleuth run should name the pending tasks of `wait_for_reply` created in `handle`.

    python examples/py_asyncio_tasks.py [--seconds N]
"""

from __future__ import annotations

import argparse
import asyncio


async def wait_for_reply(request: int, replied: asyncio.Event) -> int:
    await replied.wait()  # the bug: no timeout, and the reply never comes
    return request


async def handle(request: int, replied: asyncio.Event) -> None:
    asyncio.create_task(wait_for_reply(request, replied))  # noqa: RUF006 - fire and forget


async def main(seconds: float) -> None:
    replied = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    n = 0
    while loop.time() < stop_at:
        for _ in range(20):
            await handle(n, replied)
            n += 1
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    asyncio.run(main(parser.parse_args().seconds))
