"""A soaked process: started, sampled into a store run from a thread, and stopped."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from memsleuth.model import Sample
from memsleuth.sources.procfs import ProcSampler, identify
from memsleuth.store import Store

log = logging.getLogger(__name__)


class SampledRun:
    """Samples one pid into a store run from a background thread, on a timer or on demand.

    `work()` and `latency()` give the work done and the recent per-unit duration, stored with
    each sample so a report shows memory per request next to memory over time.
    """

    def __init__(
        self,
        store: Store,
        run_id: int,
        pid: int,
        *,
        interval_s: float,
        work: Callable[[], float],
        latency: Callable[[], float | None],
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.sampler = ProcSampler(identify(pid))
        self.interval_s = interval_s
        self.work = work
        self.latency = latency
        self.samples: list[Sample] = []
        self._pending: list[Sample] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memsleuth-soak-sampler")
        self._lock = threading.Lock()

    def __enter__(self) -> SampledRun:
        self.take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poke(self) -> None:
        """Ask for a sample now (the driver calls this at progress milestones)."""
        self._wake.set()

    def take(self) -> Sample | None:
        sample = self.sampler.sample()
        if sample is None:
            return None
        sample = dataclasses.replace(sample, work=self.work(), latency_s=self.latency())
        with self._lock:
            self.samples.append(sample)
            self._pending.append(sample)
        return sample

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.take() is None:
                break  # the target is gone; the driver finds out by itself
            if time.monotonic() - last_flush >= 1.0:
                self.flush()
                last_flush = time.monotonic()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            self.store.add_samples(self.run_id, pending)

    def close(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._wake.set()
            self._thread.join()
        self.flush()
