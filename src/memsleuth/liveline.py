"""The line shown while recording: elapsed time, RSS, growth so far and the verdict so far."""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np

from memsleuth.model import Run, Sample, Series, Verdict

log = logging.getLogger(__name__)

# How often the live line re-judges the series so far.
LIVE_VERDICT_EVERY_S = 5.0
# Without a terminal, the status is a plain line this often (logs stay readable).
PLAIN_LINE_EVERY_S = 5.0
# The live verdict looks at no more points than this (evenly thinned), to stay cheap.
LIVE_MAX_POINTS = 20_000


class LiveLine:
    """The line shown while recording: elapsed, RSS, growth so far, verdict so far."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.tty = self.console.is_terminal
        self._t: list[float] = []
        self._rss: list[float] = []
        self._threads: list[float] = []
        self._verdict: Verdict | None = None
        self._judged_at = 0.0
        self._printed_at = 0.0
        self._silenced = False
        self._status = self.console.status("") if self.tty else None
        if self._status is not None:
            self._status.start()

    def __call__(self, run: Run, sample: Sample, count: int) -> None:
        if self._silenced:
            return
        try:
            self._show(run, sample, count)
        except OSError:  # stderr is gone (full, closed): the line must never stop a recording
            self._silenced = True
            log.debug("live line stopped", exc_info=True)

    def _show(self, run: Run, sample: Sample, count: int) -> None:
        self._t.append(sample.t)
        self._rss.append(float(sample.rss_bytes))
        self._threads.append(float("nan") if sample.threads is None else sample.threads)
        now = time.monotonic()
        if now - self._judged_at >= LIVE_VERDICT_EVERY_S and count >= 10:
            self._verdict = self._judge(run)
            self._judged_at = now
        text = self._text(sample)
        if self._status is not None:
            self._status.update(text)
        elif now - self._printed_at >= PLAIN_LINE_EVERY_S:
            self.console.print(text, highlight=False, markup=False)
            self._printed_at = now

    def _judge(self, run: Run) -> Verdict | None:
        from memsleuth.analysis.verdict import judge

        t = np.asarray(self._t)
        step = max(1, t.size // LIVE_MAX_POINTS)
        series = Series.from_arrays(
            (t - t[0])[::step],
            np.asarray(self._rss)[::step],
            threads=np.asarray(self._threads)[::step],
        )
        try:
            return judge(series, limit_bytes=run.limit_bytes)
        except Exception:  # the live line must never stop a recording
            log.debug("live verdict failed", exc_info=True)
            return None

    def _text(self, sample: Sample) -> str:
        from memsleuth.units import format_bytes, format_duration, format_rate

        elapsed = sample.t - self._t[0]
        parts = [f"recording {format_duration(elapsed)}", f"RSS {format_bytes(sample.rss_bytes)}"]
        v = self._verdict
        if v is not None:
            if v.growth_bytes_per_hour is not None:
                parts.append(f"growth {format_rate(v.growth_bytes_per_hour)}")
            parts.append(f"verdict so far: {v.verdict}")
        return " · ".join(parts)

    def close(self) -> None:
        if self._status is not None:
            with contextlib.suppress(OSError):
                self._status.stop()
