"""Heap profiles read while recording (`record --heap-profile URL`): fetched on a thread of
their own, so a slow or dead endpoint never delays a sample, and reduced to the bytes in use
at the allocation sites worth following, written as named points beside the samples."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import urllib3

from memsleuth.analysis.profiles import INUSE, OBJECTS, SITE
from memsleuth.errors import SourceError
from memsleuth.sources import pprof

# How often a profile is asked for, at most: Go writes one in milliseconds, but a big heap's
# profile costs its program the time to walk every sampled allocation site.
EVERY_S = 5.0
# And never more often than this share of the time goes into fetching and reading them (a
# profile that took 0.2 s is asked for again after 20 s at the least).
BUDGET = 0.01
# Allocation sites followed in one run (a point each a profile): each profile's largest sites
# are taken up until this many, so a site that starts to grow late is still followed.
MAX_SITES = 100
TOP_SITES = 10


@dataclass(frozen=True, slots=True)
class Reading:
    """One profile as read at `t` (unix time), or why it could not be."""

    t: float
    profile: pprof.HeapProfile | None
    error: SourceError | None
    spent_s: float


@dataclass(frozen=True, slots=True)
class Taken:
    """What one reading adds to the run: a warning to say (a failure not said before), an
    event to store (a profile read, or a failure's first time), points (name, unix t, value)."""

    t: float  # unix time the profile was asked for
    warning: str = ""
    event: dict[str, Any] | None = None
    points: tuple[tuple[str, float, float], ...] = ()


@dataclass(slots=True)
class _Sites:
    """The sites a run follows, in the order it took them up."""

    followed: dict[str, None] = field(default_factory=dict)

    def admit(self, profile: pprof.HeapProfile) -> list[str]:
        """The sites new to this run among the profile's largest."""
        largest = sorted(profile.sites.items(), key=lambda kv: -kv[1].bytes)[:TOP_SITES]
        new = []
        for name, site in largest:
            if name in self.followed or len(self.followed) >= MAX_SITES or site.bytes <= 0:
                continue
            self.followed[name] = None
            new.append(name)
        return new


class ProfileWatch:
    """Fetches `url`'s heap profile every EVERY_S (or less often, by BUDGET) until stopped."""

    def __init__(self, url: str, pid: int, every_s: float = EVERY_S) -> None:
        self.url = pprof.check_url(url)
        self.pid = pid
        self.every_s = every_s
        self.read = 0  # profiles read
        self.errors: list[str] = []  # each distinct failure, once, in order
        self._readings: queue.SimpleQueue[Reading] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._sites = _Sites()
        self._pool = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False)
        self._thread = threading.Thread(
            target=self._run, name="memsleuth-heap-profiles", daemon=True
        )

    def start(self) -> ProfileWatch:
        self._thread.start()
        return self

    def stop(self, wait_s: float = 1.0) -> None:
        """No more profiles: one being fetched is left to its daemon thread (and dropped)."""
        self._stop.set()
        self._thread.join(wait_s)
        self._pool.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            t, began = time.time(), time.monotonic()
            profile, error = None, None
            try:
                profile = pprof.parse(pprof.fetch(self.url, self._pool), self.url)
            except SourceError as exc:
                error = exc
            except Exception as exc:  # a decoder's own failure: never the recording's end
                error = SourceError(f"{self.url} could not be read: {exc}", pprof.ENDPOINT_HINT)
            spent = time.monotonic() - began
            self._readings.put(Reading(t, profile, error, spent))
            self._stop.wait(max(self.every_s, spent / BUDGET))

    def drain(self) -> list[Taken]:
        """What the profiles read since the last call add to the run."""
        out: list[Taken] = []
        while True:
            try:
                r = self._readings.get_nowait()
            except queue.Empty:
                return out
            out.append(self._take(r))

    def _take(self, r: Reading) -> Taken:
        pid = f" [pid {self.pid}]"
        if r.profile is None:
            assert r.error is not None
            if r.error.message in self.errors:
                return Taken(r.t)
            self.errors.append(r.error.message)
            event = {"url": self.url, "pid": self.pid, "error": r.error.message}
            return Taken(r.t, f"{r.error.message} (hint: {r.error.hint})", event)
        p = r.profile
        self.read += 1
        new = self._sites.admit(p)
        points = [(INUSE + pid, r.t, p.inuse_bytes)]
        if p.inuse_objects is not None:
            points.append((OBJECTS + pid, r.t, p.inuse_objects))
        for name in self._sites.followed:
            site = p.sites.get(name)
            points.append((f"{SITE}{name}{pid}", r.t, site.bytes if site is not None else 0.0))
        event = {
            "url": self.url,
            "pid": self.pid,
            "inuse_bytes": p.inuse_bytes,
            "sample_type": p.sample_type,
            "sites": len(p.sites),
            "spent_s": round(r.spent_s, 4),
            # The stacks of the sites followed from this profile on, as it shows them.
            "stacks": {n: list(p.sites[n].stack) for n in new},
        }
        return Taken(r.t, "", event, tuple(points))
