"""Profiles read while recording (`record --heap-profile URL`): the heap profile, and Go's
goroutine profile beside it. Fetched on a thread of their own, so a slow or dead endpoint never
delays a sample, and reduced to the sites worth following (bytes in use where they were
allocated, goroutines where they wait), written as named points beside the samples."""

from __future__ import annotations

import os
import queue
import threading
import time
from array import array
from dataclasses import dataclass, field, replace
from typing import Any

import psutil
import urllib3

from memsleuth.analysis.profiles import (
    GOROUTINE_EVENT,
    GOROUTINE_SITE,
    GOROUTINES,
    HEAP_EVENT,
    INUSE,
    OBJECTS,
    SITE,
)
from memsleuth.errors import SourceError
from memsleuth.sources import pprof

# Go's goroutine profile beside its heap profile: the same path with this last part.
GO_HEAP = "/debug/pprof/heap"
GO_GOROUTINES = "/debug/pprof/goroutine"
# How often a profile is asked for, at most: Go writes one in milliseconds, but a big heap's
# profile costs its program the time to walk every sampled allocation site.
EVERY_S = 5.0
# And never more often than this share of the time goes into fetching and reading each kind
# (a profile that took 0.2 s is asked for again after 20 s at the least); a goroutine
# profile of 100,000 goroutines (0.6 s) had kept the heap profile to one a minute.
BUDGET = 0.01
# After a failure, the next try waits EVERY_S, doubled with each failure after it, up to this:
# a first request stalled past its timeout had been charged to the budget, and no profile was
# asked for again for 17 minutes.
MAX_BACKOFF_S = 60.0
# Allocation sites followed in one run (a point each a profile): each profile's largest sites
# are taken up until this many, so a site that starts to grow late is still followed.
MAX_SITES = 100
TOP_SITES = 10
# The other sites are remembered, not written: at most this many, each with at most BACKLOG
# readings (halved in resolution when full, so they span the whole run), so that a small site
# that grows is followed with its past (a leak 2% of the heap had been taken up 40 s in, its
# first four points flat, and no culprit named). Bounded: under 2 MB.
MAX_CANDIDATES = 1000
BACKLOG = 120
# Distinct failures said (and stored) a feed at most; later ones are counted, not said.
MAX_SAID = 5


@dataclass(frozen=True, slots=True)
class Reading:
    """One profile of a feed as read at `t` (unix time), or why it could not be."""

    feed: _Feed
    t: float
    profile: pprof.Profile | None
    error: SourceError | None
    spent_s: float


@dataclass(frozen=True, slots=True)
class Taken:
    """What one reading adds to the run: a warning to say (a failure not said before), an
    event to store (a profile read, or a failure's first time), points (name, unix t, value)."""

    t: float  # unix time the profile was asked for
    kind: str  # the event's kind
    warning: str = ""
    event: dict[str, Any] | None = None
    points: tuple[tuple[str, float, float], ...] = ()


@dataclass(slots=True)
class _Feed:
    """One profile endpoint: where, what it holds, the sites followed and failures said."""

    url: str
    goroutines: bool  # a goroutine profile, not a heap profile
    total: str  # the series of its total
    site: str  # the prefix of its sites' series
    event: str
    read: int = 0
    errors: list[str] = field(default_factory=list)  # each distinct failure, once, in order
    next_at: float = 0.0  # when to ask again (time.monotonic)
    failures: int = 0  # one after another, since the last profile read
    followed: dict[str, None] = field(default_factory=dict)  # sites, in the order taken up
    # Sites not followed (yet): their readings' unix times and values, to write if taken up.
    candidates: dict[str, tuple[array[float], array[float]]] = field(default_factory=dict)

    def remember(self, t: float, profile: pprof.Profile) -> None:
        """Each site not followed, read at `t`, in its backlog."""
        for name, site in profile.sites.items():
            if name in self.followed:
                continue
            past = self.candidates.get(name)
            if past is None:
                if len(self.candidates) >= MAX_CANDIDATES:
                    continue
                past = self.candidates[name] = (array("d"), array("d"))
            times, values = past
            times.append(t)
            values.append(site.value)
            if len(times) > BACKLOG:  # half the resolution, the whole span
                del times[1::2]
                del values[1::2]

    def admit(self, profile: pprof.Profile) -> list[str]:
        """The sites new to this run among the profile's largest, and among those whose
        value grew most since first seen. Once MAX_SITES are followed, a new one takes the
        place of the smallest now, if it is larger (an hour's profiles bring up many
        short-lived sites; a leak that starts late must still be followed)."""
        largest = sorted(profile.sites.items(), key=lambda kv: -kv[1].value)[:TOP_SITES]

        def grew(name: str) -> float:
            values = self.candidates[name][1]
            return values[-1] - min(values) if len(values) >= 2 else 0.0

        growing = sorted((n for n in self.candidates if grew(n) > 0), key=grew, reverse=True)
        picked = dict(largest)
        picked |= {n: profile.sites[n] for n in growing[:TOP_SITES] if n in profile.sites}
        new = []
        for name, site in picked.items():
            if name in self.followed or site.value <= 0:
                continue
            if len(self.followed) >= MAX_SITES:
                now = {
                    n: profile.sites[n].value if n in profile.sites else 0.0 for n in self.followed
                }
                smallest = min(now, key=now.__getitem__)
                if now[smallest] >= site.value:
                    continue
                del self.followed[smallest]
            self.followed[name] = None
            new.append(name)
        return new


def goroutine_url(url: str) -> str | None:
    """Go's goroutine profile beside its heap profile's URL (the query, such as ?gc=1, left
    out); None when the URL is not Go's."""
    parsed = urllib3.util.parse_url(url)
    if not (parsed.path or "").endswith(GO_HEAP):
        return None
    path = (parsed.path or "")[: -len(GO_HEAP)] + GO_GOROUTINES
    return parsed._replace(path=path, query=None, fragment=None).url


class ProfileWatch:
    """Fetches `url`'s heap profile (and Go's goroutine profile beside it, once a heap profile
    was Go's) every EVERY_S, or less often by BUDGET, until stopped."""

    def __init__(self, url: str, pid: int, every_s: float = EVERY_S) -> None:
        self.url = pprof.check_url(url)
        self.pid = pid
        self.every_s = every_s
        self.heap = _Feed(self.url, False, INUSE, SITE, HEAP_EVENT)
        self._feeds = [self.heap]
        goroutines = goroutine_url(self.url)
        if goroutines is not None:
            self._feeds.append(_Feed(goroutines, True, GOROUTINES, GOROUTINE_SITE, GOROUTINE_EVENT))
        self._readings: queue.SimpleQueue[Reading] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._pool = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False)
        self._thread = threading.Thread(target=self._run, name="memsleuth-profiles", daemon=True)

    def start(self) -> ProfileWatch:
        self._thread.start()
        return self

    def stop(self, wait_s: float = 1.0) -> None:
        """No more profiles: one being fetched is left to its daemon thread (and dropped)."""
        self._stop.set()
        self._thread.join(wait_s)
        self._pool.clear()

    def _run(self) -> None:
        go = False  # the heap profile was Go's: ask for its goroutines too
        while not self._stop.is_set():
            for feed in self._feeds:
                if (feed.goroutines and not go) or time.monotonic() < feed.next_at:
                    continue
                reading = self._fetch(feed)
                if reading.profile is not None and reading.profile.sample_type == "inuse_space":
                    go = True
                self._readings.put(reading)
                feed.next_at = time.monotonic() + self.wait_s(feed, reading)
            due = min(f.next_at for f in self._feeds if go or not f.goroutines)
            self._stop.wait(max(0.0, due - time.monotonic()))

    def wait_s(self, feed: _Feed, reading: Reading) -> float:
        """How long until `feed` is asked again: by the budget after a profile read, backing
        off after failures (a timeout is no measure of what a profile costs)."""
        if reading.profile is not None:
            feed.failures = 0
            return max(self.every_s, reading.spent_s / BUDGET)
        feed.failures += 1
        return min(MAX_BACKOFF_S, self.every_s * 2.0 ** (feed.failures - 1))

    def _fetch(self, feed: _Feed) -> Reading:
        t, began = time.time(), time.monotonic()
        profile, error = None, None
        try:
            data = pprof.fetch(feed.url, self._pool)
            profile = pprof.parse(data, feed.url, goroutines=feed.goroutines)
        except SourceError as exc:
            error = exc
        except Exception as exc:  # a decoder's own failure: never the recording's end
            error = SourceError(f"{feed.url} could not be read: {exc}", pprof.ENDPOINT_HINT)
        return Reading(feed, t, profile, error, time.monotonic() - began)

    def drain(self) -> list[Taken]:
        """What the profiles read since the last call add to the run."""
        out: list[Taken] = []
        while True:
            try:
                r = self._readings.get_nowait()
            except queue.Empty:
                return out
            out.append(self._take(r))

    def _foreign(self, profile: pprof.Profile, url: str) -> SourceError | None:
        """Why the profile is not the target's: it names another program than the target's
        and its descendants' (port 6060 is every Go program's default: the profile of another
        service had been read as the target's, its heap more than the target's whole RSS)."""
        if profile.program is None or profile.program.startswith("["):
            return None
        try:
            target = psutil.Process(self.pid)
            exes = {target.exe(), *(c.exe() for c in target.children(recursive=True))}
        except (psutil.Error, OSError):
            return None  # gone, or not ours to read: nothing to compare with
        names = {os.path.basename(e.removesuffix(" (deleted)")) for e in exes if e}
        program = os.path.basename(profile.program.removesuffix(" (deleted)"))
        if not names or program in names:
            return None
        mine = ", ".join(sorted(names))
        return SourceError(
            f"the profile at {url} is of {program}, not of process "
            f"{self.pid} ({mine}) or a process it started: its profiles are not used",
            "another program serves that port: give the URL of the recorded program's own "
            "pprof endpoint",
        )

    def _take(self, r: Reading) -> Taken:
        feed, pid = r.feed, f" [pid {self.pid}]"
        if r.profile is None:
            assert r.error is not None
            if r.error.message in feed.errors or len(feed.errors) >= MAX_SAID:
                return Taken(r.t, feed.event)
            feed.errors.append(r.error.message)
            event = {"url": feed.url, "pid": self.pid, "error": r.error.message}
            return Taken(r.t, feed.event, f"{r.error.message} (hint: {r.error.hint})", event)
        p = r.profile
        foreign = self._foreign(p, feed.url)
        if foreign is not None:
            return self._take(replace(r, profile=None, error=foreign))
        feed.read += 1
        feed.remember(r.t, p)
        new = feed.admit(p)
        points = [(feed.total + pid, r.t, p.total)]
        if p.objects is not None:
            points.append((OBJECTS + pid, r.t, p.objects))
        for name in new:  # what was read of it before, this profile's reading among them
            times, values = feed.candidates.pop(name, (array("d"), array("d")))
            series = f"{feed.site}{name}{pid}"
            points.extend((series, t, v) for t, v in zip(times, values, strict=True) if t < r.t)
        for name in feed.followed:
            site = p.sites.get(name)
            value = site.value if site is not None else 0.0
            points.append((f"{feed.site}{name}{pid}", r.t, value))
        event = {
            "url": feed.url,
            "pid": self.pid,
            "total": p.total,
            "sample_type": p.sample_type,
            "sites": len(p.sites),
            "spent_s": round(r.spent_s, 4),
            # The stacks of the sites followed from this profile on, as it shows them.
            "stacks": {n: list(p.sites[n].stack) for n in new},
        }
        return Taken(r.t, feed.event, "", event, tuple(points))
