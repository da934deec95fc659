"""Allocation sites whose live bytes grow over a window: two tracemalloc snapshots, diffed.

Only while a window is open does tracemalloc run (it slows allocation-heavy code ~2-4×),
unless the program traces for itself: tracing it started before the window, or asked for
during it, is left on when the window closes.
"""

from __future__ import annotations

import os
import time
import tracemalloc

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 MB of RSS
if TYPE_CHECKING:
    from typing import Any

_PROBE_DIR = os.path.dirname(os.path.abspath(__file__))
FRAMES = 5  # a short traceback per site


class AllocationWindow:
    """Starts tracing; snapshot A after a settling part of the window, B at its end."""

    def __init__(self, window_s: float, top: int = 10) -> None:
        self.window_s = window_s
        self.top = top
        self.started_at: float | None = None
        self._first: tracemalloc.Snapshot | None = None
        self._first_at = 0.0
        self.done = False
        self._we_started = False
        self._host_wants = False  # the program called tracemalloc.start() during the window
        self._start = tracemalloc.start

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
            self._we_started = True
            # The program may start tracing for itself while the window is open: start() is
            # then a no-op, and stopping at the window's end would take its tracing away (its
            # next take_snapshot() raised). Noted here, and tracing is left on.
            tracemalloc.start = self._host_start
        self.started_at = time.time()

    def _host_start(self, nframe: int = 1) -> None:
        self._host_wants = True
        if not tracemalloc.is_tracing():
            self._start(nframe)

    def due(self, now: float) -> str | None:
        """'first' or 'last' when a snapshot is due at `now`."""
        if self.done or self.started_at is None:
            return None
        settle = min(max(1.0, self.window_s / 6), self.window_s / 2)
        if self._first is None and now >= self.started_at + settle:
            return "first"
        if self._first is not None and now >= self.started_at + self.window_s:
            return "last"
        return None

    def snapshot_first(self) -> None:
        self._first = _snapshot()
        self._first_at = time.time()

    def finish(self) -> dict[str, Any] | None:
        """Take B, diff it against A, stop tracing; the payload of a probe.allocations event."""
        if self.done:
            return None
        self.done = True
        try:
            if self._first is None:
                return None
            last = _snapshot()
            elapsed = time.time() - self._first_at
            stats = last.compare_to(self._first, "traceback")
            sites = []
            for st in stats:
                if st.size_diff <= 0:
                    continue
                frames = [f"{fr.filename}:{fr.lineno}" for fr in reversed(st.traceback)]
                sites.append(
                    {
                        "site": frames[0] if frames else "?",  # newest frame first
                        "traceback": frames,
                        "size_diff": st.size_diff,
                        "size": st.size,
                        "count_diff": st.count_diff,
                    }
                )
                if len(sites) >= self.top:
                    break
            return {"window_s": elapsed, "frames": FRAMES, "sites": sites}
        finally:
            self._first = None
            if self._we_started:
                tracemalloc.start = self._start
                if not self._host_wants:
                    tracemalloc.stop()


def _snapshot() -> tracemalloc.Snapshot:
    snap = tracemalloc.take_snapshot()
    return snap.filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, os.path.join(_PROBE_DIR, "*")),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
        )
    )
