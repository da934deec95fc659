"""A background memory watchdog: limits, growth rules and the robust trend fire cleanups."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal, TypeVar

from memsleuth.guards.limits import (
    GrowthRule,
    GuardError,
    parse_duration,
    parse_growth,
    resolve_limit,
)
from memsleuth.guards.memory import MemoryReader, MemoryReading, find_malloc_trim
from memsleuth.guards.registry import GuardStats, default_name, register
from memsleuth.guards.relief import (
    REASONS,
    ActionResult,
    Firing,
    Reason,
    physical_memory,
    run_on,
)
from memsleuth.units import format_bytes

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[[], object])
Cleanup = tuple[str, Callable[[], object], "asyncio.AbstractEventLoop | None"]
_USE_LIBC = object()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class MemoryWatchdog:
    """Samples this process's memory on a daemon thread and relieves pressure when it fires.

    It fires on: RSS above `soft_limit`; growth faster than `growth` ("50MiB/5min", seed 003's
    rule); with `trend=True`, only when the verdict engine also calls the window a leak (with
    `trend_confidence` or more), so a GC sawtooth or a warm-up does not fire it. Firing runs
    the `on_pressure` cleanups, then gc.collect(), then glibc malloc_trim(0) (skipped where
    absent), logging what each freed, at most once per `cooldown`. Above `hard_limit` it does
    the same and, if memory is still above, calls `on_hard_limit(firing)` so the program can
    shed load before the OOM killer does; if the relief got below the limit but memory crosses
    it again within the cooldown, the callback runs then (the relief is not repeated).
    Limits are sizes ("1.5GiB") or a percentage of the cgroup limit (else of RAM): "90%".
    Errors in cleanups or in sampling are logged and counted, never raised into the program.
    """

    kind = "watchdog"

    def __init__(
        self,
        soft_limit: int | str | None = None,
        hard_limit: int | str | None = None,
        growth: str | GrowthRule | None = None,
        *,
        trend: bool = False,
        trend_window: float | str | None = None,
        trend_confidence: float = 0.8,
        interval: float | str = 1.0,
        cooldown: float | str = 60.0,
        on_hard_limit: Callable[[Firing], object] | None = None,
        collect: bool = True,
        trim: bool = True,
        libc: str | object | None = _USE_LIBC,
        usage: Literal["rss", "cgroup"] = "rss",
        name: str | None = None,
        timer: Callable[[], float] = time.monotonic,
        reader: Callable[[], MemoryReading] | None = None,
    ) -> None:
        if usage not in ("rss", "cgroup"):
            raise GuardError(f"unknown usage {usage!r}", "use usage='rss' or usage='cgroup'")
        self._reader: Callable[[], MemoryReading] = reader or MemoryReader()
        first = self._reader()
        total = None
        if any(isinstance(v, str) and v.strip().endswith("%") for v in (soft_limit, hard_limit)):
            total = first.cgroup_limit_bytes or physical_memory()
        self.soft_limit = resolve_limit(soft_limit, total)
        self.hard_limit = resolve_limit(hard_limit, total)
        if self.soft_limit and self.hard_limit and self.soft_limit > self.hard_limit:
            raise GuardError(
                f"soft_limit ({soft_limit}) is above hard_limit ({hard_limit})",
                "the soft limit is the early warning: set it below the hard one",
            )
        self.growth = None if growth is None else parse_growth(growth)
        self.trend = trend
        if isinstance(trend_confidence, bool) or not 0 < trend_confidence <= 1:
            raise GuardError(  # nan or 2: a confidence no verdict reaches, a rule never firing
                f"trend_confidence must be above 0 and at most 1, not {trend_confidence!r}",
                "e.g. trend_confidence=0.8 (the verdict's confidence in a leak)",
            )
        self.trend_confidence = float(trend_confidence)
        self.trend_window_s = (
            parse_duration(trend_window)
            if trend_window is not None
            else (self.growth.window_s if self.growth else 600.0)
        )
        self.interval_s = parse_duration(interval)
        self.cooldown_s = parse_duration(cooldown)
        if not (self.soft_limit or self.hard_limit or self.growth or trend):
            raise GuardError(
                "the watchdog has nothing to watch for",
                "give soft_limit=, hard_limit=, growth='50MiB/5min' and/or trend=True",
            )
        self.usage = usage
        self.name = name or default_name(self.kind)
        self._timer = timer
        self._on_hard_limit = on_hard_limit
        self._collect = collect
        self._trim_wanted = trim
        self._libc = libc
        self._trim: Callable[[int], int] | None = None
        self._trim_resolved = False
        self._cleanups: list[
            tuple[str, Callable[[], object], asyncio.AbstractEventLoop | None]
        ] = []
        # (t, usage) samples over the longest window a rule looks back on.
        self._samples: deque[tuple[float, int]] = deque()
        self._keep_s = max(self.growth.window_s if self.growth else 0.0, self.trend_window_s)
        self._last_fire: dict[str, float] = {}
        self._next_judge = 0.0
        self._hard_called = False  # on_hard_limit ran since the last hard relief
        self._lock = threading.Lock()  # one check at a time (the thread, or a manual check())
        # start() and stop() from several threads at once had joined a thread not started yet
        # (RuntimeError into the caller) and orphaned running threads that stop() never ended.
        self._life = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: MemoryReading = first
        self.firings: deque[Firing] = deque(maxlen=32)
        self.counts: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.checks = 0
        self.errors = 0
        self.hard_callbacks = 0
        self.trend_checks = 0  # times the verdict engine was consulted
        self.freed_bytes = 0
        register(self)

    # -- configuration ------------------------------------------------------------------------

    def on_pressure(
        self, fn: F, *, name: str | None = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> F:
        """Run `fn()` when the watchdog fires (usable as a decorator).

        It runs on the watchdog's thread; pass `loop=` to run it on that event loop's thread
        instead (for state an asyncio program owns). Cleanups run in registration order.
        """
        label = name or getattr(fn, "__qualname__", None) or repr(fn)
        owner = getattr(fn, "__self__", None)
        if owner is not None and getattr(owner, "name", None) and name is None:
            label = f"{owner.name}.{getattr(fn, '__name__', label)}"
        self._cleanups.append((label, fn, loop))
        return fn

    # -- running ------------------------------------------------------------------------------

    def start(self) -> MemoryWatchdog:
        """Start the daemon thread (idempotent); returns self."""
        with self._life:
            if self._thread is None or not self._thread.is_alive():
                # Each thread has its own stop event: a thread that stop() gave up waiting for
                # (a slow cleanup) still ends when that cleanup returns, even after a start().
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._stop,),
                    name=f"memsleuth-watchdog-{self.name}",
                    daemon=True,
                )
                self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread and wait for it (a cleanup in progress finishes first)."""
        with self._life:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> MemoryWatchdog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check()
            except BaseException:  # never let the host's thread machinery see our failure
                self.errors += 1
                logger.exception("watchdog %s: check failed", self.name)
            stop.wait(self.interval_s)

    # -- one check ----------------------------------------------------------------------------

    def check(self) -> Firing | None:
        """Sample memory once and fire if a rule says so; the thread calls this every interval."""
        if not self._lock.acquire(blocking=not _in_event_loop()):
            # The watchdog's thread is mid-check and may be waiting for this very loop to run
            # a `loop=` cleanup: blocking here would freeze both. That check does the work.
            return None
        try:
            reading = self._reader()
            now = self._timer()
            self.last = reading
            self.checks += 1
            used = self._usage(reading)
            samples = self._samples
            samples.append((now, used))
            while samples and samples[0][0] < now - self._keep_s:
                samples.popleft()
            return self._evaluate(now, used)
        finally:
            self._lock.release()

    def _usage(self, reading: MemoryReading) -> int:
        if self.usage == "cgroup" and reading.cgroup_bytes is not None:
            return reading.cgroup_bytes
        return reading.rss_bytes

    def _cooling(self, level: str, now: float) -> bool:
        last = self._last_fire.get(level)
        return last is not None and now - last < self.cooldown_s

    def _evaluate(self, now: float, used: int) -> Firing | None:
        what = "RSS" if self.usage == "rss" else "cgroup usage"
        hard = self.hard_limit
        if hard is not None and used >= hard:
            detail = f"{what} {format_bytes(used)} >= hard limit {format_bytes(hard)}"
            if not self._cooling("hard", now):
                return self._fire("hard", now, used, detail)
            if not self._hard_called:
                # The last relief got below the limit but memory is back above it within the
                # cooldown: the relief is not repeated, the program's own callback is due now.
                return self._call_hard(now, used, f"{detail} again within the cooldown")
        if self._cooling("pressure", now):
            return None
        if self.soft_limit is not None and used >= self.soft_limit:
            detail = f"{what} {format_bytes(used)} >= soft limit {format_bytes(self.soft_limit)}"
            return self._fire("soft", now, used, detail)
        if self.growth is not None:
            start = self._window_start(now, self.growth.window_s)
            grown = used - start[1]
            if grown <= self.growth.bytes:
                return None
            detail = f"{what} +{format_bytes(grown)} in {now - start[0]:.0f}s (rule {self.growth})"
            if not self.trend:
                return self._fire("growth", now, used, detail)
            judged = self._judge(now)
            return None if judged is None else self._fire("trend", now, used, f"{detail}; {judged}")
        if self.trend:
            judged = self._judge(now)
            if judged is not None:
                return self._fire("trend", now, used, judged)
        return None

    def _window_start(self, now: float, window_s: float) -> tuple[float, int]:
        for sample in self._samples:
            if sample[0] >= now - window_s:
                return sample
        return self._samples[-1]  # pragma: no cover - the newest sample is always in the window

    def _judge(self, now: float) -> str | None:
        """The verdict engine on the trend window: a description when it says leak, else None.

        Judging costs milliseconds, so it runs at most every 1/20 of the window.
        """
        if now < self._next_judge:
            return None
        self._next_judge = now + max(self.interval_s, self.trend_window_s / 20)
        from memsleuth.analysis.verdict import judge  # numpy/scipy: only in trend mode
        from memsleuth.model import Series

        window = [s for s in self._samples if s[0] >= now - self.trend_window_s]
        if len(window) < 3 or now - window[0][0] < self.trend_window_s - self.interval_s:
            return None  # a window not yet full cannot tell a leak from the first GC tooth
        t0 = window[0][0]
        series = Series.from_arrays([t - t0 for t, _ in window], [u for _, u in window])
        self.trend_checks += 1
        verdict = judge(series, limit_bytes=self.hard_limit or self.last.cgroup_limit_bytes)
        if verdict.verdict != "leak" or verdict.confidence < self.trend_confidence:
            logger.debug(
                "watchdog %s: trend says %s (confidence %.2f), not firing",
                self.name,
                verdict.verdict,
                verdict.confidence,
            )
            return None
        rate = verdict.growth_bytes_per_hour
        per_hour = f" {format_bytes(rate)}/h" if rate is not None else ""
        return f"verdict leak{per_hour} (confidence {verdict.confidence:.2f})"

    # -- firing -------------------------------------------------------------------------------

    def _fire(self, reason: Reason, now: float, used: int, detail: str) -> Firing:
        self._last_fire["hard" if reason == "hard" else "pressure"] = now
        if reason == "hard":  # a hard firing relieves pressure too: no soft firing right after
            self._last_fire["pressure"] = now
        self.counts[reason] += 1
        logger.warning("watchdog %s fired (%s): %s", self.name, reason, detail)
        before = self._reader().rss_bytes
        actions = self._relieve()
        reading = self._reader()
        firing = Firing(reason, now, used, detail, before, reading.rss_bytes, actions)
        logger.warning(
            "watchdog %s: RSS %s -> %s after %d actions (freed %s)",
            self.name,
            format_bytes(before),
            format_bytes(reading.rss_bytes),
            len(actions),
            format_bytes(firing.freed_bytes),
        )
        self.firings.append(firing)
        # Counted per firing, not per action: in a threaded program memory freed by another
        # thread between two actions (a pinned heap top released) still shows in the total.
        self.freed_bytes += max(0, firing.freed_bytes)
        if reason == "hard":
            self._hard_called = False
            if self.hard_limit is not None and self._usage(reading) >= self.hard_limit:
                self._run_hard_callback(firing)
        return firing

    def _call_hard(self, now: float, used: int, detail: str) -> Firing:
        """A hard firing with no relief (it ran within the cooldown): only the callback."""
        self.counts["hard"] += 1
        logger.warning("watchdog %s fired (hard): %s", self.name, detail)
        rss = self.last.rss_bytes
        firing = Firing("hard", now, used, detail, rss, rss, ())
        self.firings.append(firing)
        self._run_hard_callback(firing)
        return firing

    def _run_hard_callback(self, firing: Firing) -> None:
        self._hard_called = True  # at most once per cooldown
        callback = self._on_hard_limit
        if callback is not None:
            self.hard_callbacks += 1
            self._attempt("on_hard_limit", lambda: callback(firing))

    def _relieve(self) -> tuple[ActionResult, ...]:
        results = [
            self._measured(f"cleanup {label}", fn, loop) for label, fn, loop in self._cleanups
        ]
        if self._collect:
            results.append(self._measured("gc.collect", gc.collect, None))
        if self._trim_wanted:
            trim = self._malloc_trim()
            if trim is not None:
                results.append(self._measured("malloc_trim", lambda: trim(0), None))
        return tuple(results)

    def _malloc_trim(self) -> Callable[[int], int] | None:
        if not self._trim_resolved:
            libname = None if self._libc is _USE_LIBC else self._libc
            self._trim = find_malloc_trim(libname if isinstance(libname, str) else None)
            self._trim_resolved = True
            if self._trim is None:
                logger.info("watchdog %s: no malloc_trim here (not glibc): skipped", self.name)
        return self._trim

    def _measured(
        self, label: str, fn: Callable[[], object], loop: asyncio.AbstractEventLoop | None
    ) -> ActionResult:
        before = self._reader().rss_bytes
        started = time.perf_counter()
        error = self._attempt(label, fn if loop is None else lambda: run_on(loop, fn))
        after = self._reader().rss_bytes
        freed = before - after
        logger.info(
            "watchdog %s: %s freed %s (RSS %s -> %s)",
            self.name,
            label,
            format_bytes(freed),
            format_bytes(before),
            format_bytes(after),
        )
        return ActionResult(label, freed, time.perf_counter() - started, error)

    def _attempt(self, label: str, fn: Callable[[], object]) -> str | None:
        try:
            fn()
        except Exception as exc:
            self.errors += 1
            logger.exception("watchdog %s: %s failed", self.name, label)
            return f"{type(exc).__name__}: {exc}"
        return None

    # -- reporting ----------------------------------------------------------------------------

    def stats(self) -> GuardStats:
        last = self.last
        gauges: dict[str, float] = {"rss_bytes": float(last.rss_bytes)}
        if last.cgroup_bytes is not None:
            gauges["cgroup_bytes"] = float(last.cgroup_bytes)
        if last.cgroup_limit_bytes is not None:
            gauges["cgroup_limit_bytes"] = float(last.cgroup_limit_bytes)
        if self.soft_limit is not None:
            gauges["soft_limit_bytes"] = float(self.soft_limit)
        if self.hard_limit is not None:
            gauges["hard_limit_bytes"] = float(self.hard_limit)
        counters = {f"firings_{reason}": n for reason, n in self.counts.items()}
        counters.update(
            checks=self.checks,
            errors=self.errors,
            hard_callbacks=self.hard_callbacks,
            trend_checks=self.trend_checks,
            freed_bytes=self.freed_bytes,
        )
        return GuardStats(
            kind=self.kind, name=self.name, items=None, bytes=None, counters=counters, gauges=gauges
        )

    def __repr__(self) -> str:
        return f"MemoryWatchdog(name={self.name!r}, firings={sum(self.counts.values())})"
