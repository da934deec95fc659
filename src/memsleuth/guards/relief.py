"""What the watchdog did when it fired: the records of a firing and of each relief action."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Reason = Literal["hard", "soft", "growth", "trend"]
REASONS: tuple[Reason, ...] = ("hard", "soft", "growth", "trend")


@dataclass(frozen=True, slots=True)
class ActionResult:
    """One relief action and what it freed: RSS before minus after (negative if it grew)."""

    action: str  # "cleanup seen.clear", "gc.collect", "malloc_trim"
    freed_bytes: int
    seconds: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Firing:
    """Why the watchdog fired, what it ran, and what that freed."""

    reason: Reason
    t: float  # the watchdog's timer when it fired
    usage_bytes: int  # the memory the rule judged (RSS, or cgroup usage with usage="cgroup")
    detail: str  # "RSS 1.6 GiB >= soft limit 1.5 GiB", "+52.0 MiB in 300s (rule ...)"
    rss_before_bytes: int
    rss_after_bytes: int
    actions: tuple[ActionResult, ...]

    @property
    def freed_bytes(self) -> int:
        return self.rss_before_bytes - self.rss_after_bytes


def run_on(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    """Run `fn` on `loop`'s thread and wait for it (30 s at most)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # check() called from the loop's own thread: waiting would deadlock
        fn()
        return
    done: concurrent.futures.Future[object] = concurrent.futures.Future()

    def call() -> None:
        try:
            done.set_result(fn())
        except BaseException as exc:
            done.set_exception(exc)

    loop.call_soon_threadsafe(call)
    done.result(timeout=30.0)


def physical_memory() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # pragma: no cover - psutil is a dependency; be safe anyway
        return None
