"""Profiles read while recording (`record --heap-profile URL`): the heap profile, and Go's
goroutine profile beside it. Fetched on a thread of their own, so a slow or dead endpoint never
delays a sample, and reduced to the sites worth following (bytes in use where they were
allocated, goroutines where they wait), written as named points beside the samples."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

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
# And never more often than this share of the time goes into fetching and reading them (a
# profile that took 0.2 s is asked for again after 20 s at the least).
BUDGET = 0.01
# Allocation sites followed in one run (a point each a profile): each profile's largest sites
# are taken up until this many, so a site that starts to grow late is still followed.
MAX_SITES = 100
TOP_SITES = 10
# Distinct failures said (and stored) a feed at most; later ones are counted, not said.
MAX_SAID = 5


@dataclass(frozen=True, slots=True)
class Reading:
    """One profile of a feed as read at `t` (unix time), or why it could not be."""

    feed: _Feed
    t: float
    profile: pprof.Profile | None
    error: SourceError | None


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
    followed: dict[str, None] = field(default_factory=dict)  # sites, in the order taken up

    def admit(self, profile: pprof.Profile) -> list[str]:
        """The sites new to this run among the profile's largest. Once MAX_SITES are followed,
        a new one takes the place of the smallest now, if it is larger (an hour's profiles
        bring up many short-lived sites; a leak that starts late must still be followed)."""
        largest = sorted(profile.sites.items(), key=lambda kv: -kv[1].value)[:TOP_SITES]
        new = []
        for name, site in largest:
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
            began = time.monotonic()
            for feed in self._feeds:
                if feed.goroutines and not go:
                    continue
                reading = self._fetch(feed)
                if reading.profile is not None and reading.profile.sample_type == "inuse_space":
                    go = True
                self._readings.put(reading)
            spent = time.monotonic() - began
            self._stop.wait(max(self.every_s, spent / BUDGET))

    def _fetch(self, feed: _Feed) -> Reading:
        t = time.time()
        try:
            data = pprof.fetch(feed.url, self._pool)
            return Reading(feed, t, pprof.parse(data, feed.url, goroutines=feed.goroutines), None)
        except SourceError as exc:
            return Reading(feed, t, None, exc)
        except Exception as exc:  # a decoder's own failure: never the recording's end
            why = SourceError(f"{feed.url} could not be read: {exc}", pprof.ENDPOINT_HINT)
            return Reading(feed, t, None, why)

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
        feed, pid = r.feed, f" [pid {self.pid}]"
        if r.profile is None:
            assert r.error is not None
            if r.error.message in feed.errors or len(feed.errors) >= MAX_SAID:
                return Taken(r.t, feed.event)
            feed.errors.append(r.error.message)
            event = {"url": feed.url, "pid": self.pid, "error": r.error.message}
            return Taken(r.t, feed.event, f"{r.error.message} (hint: {r.error.hint})", event)
        p = r.profile
        feed.read += 1
        new = feed.admit(p)
        points = [(feed.total + pid, r.t, p.total)]
        if p.objects is not None:
            points.append((OBJECTS + pid, r.t, p.objects))
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
            # The stacks of the sites followed from this profile on, as it shows them.
            "stacks": {n: list(p.sites[n].stack) for n in new},
        }
        return Taken(r.t, feed.event, "", event, tuple(points))
