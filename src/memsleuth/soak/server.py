"""The HTTP soak: start a local server, drive a bounded concurrent request loop against it while
its memory is recorded, and judge bytes per request, latency and the verdict."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from memsleuth.errors import (
    MemsleuthError,
    SourceError,
    StoppedError,
    TargetError,
    UsageError,
    stopped_by,
)
from memsleuth.soak.outcome import ProcessSoak, judge_process, kept_hint
from memsleuth.soak.target import SampledRun
from memsleuth.store import Store
from memsleuth.target import command_name, start_target, stop_target

# Abort when more than this share of requests failed (after MIN_REQUESTS_BEFORE_ABORT).
MAX_ERROR_SHARE = 0.1
MIN_REQUESTS_BEFORE_ABORT = 20
MILESTONES = 50  # samples taken at evenly spaced request counts, on top of the timer


@dataclass(frozen=True, slots=True)
class HttpSoakOptions:
    url: str
    requests: int
    store_path: Path
    warmup: int | None = None  # default: a tenth of the requests
    concurrency: int = 4
    method: str = "GET"
    body: bytes | None = None
    interval_s: float = 0.2
    listen_timeout_s: float = 15.0
    request_timeout_s: float = 10.0
    allow_remote: bool = False
    max_bytes_per_request: float = 0.0
    max_latency_ratio: float | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    path: str

    @property
    def address(self) -> str:
        """host:port as a URL writes it: [::1]:8080 for IPv6 ("::1:8080" had been printed)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# How long a failing soak waits to see whether its server died (then that is the cause).
DEATH_GRACE_S = 1.0


def parse_url(url: str, allow_remote: bool = False) -> Target:
    """host, port and path of an http:// URL on loopback (anything else needs allow_remote)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(
            f"not an http:// URL: {url!r}", "give the server's URL, e.g. http://127.0.0.1:8080/"
        )
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise UsageError(
            f"{host} is not a loopback address: memsleuth soaks local servers only",
            "use http://127.0.0.1:PORT/..., or pass --allow-remote to load a server you run "
            "elsewhere (its memory cannot be recorded from here)",
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise UsageError(f"bad port in {url!r}", "use http://127.0.0.1:PORT/path") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(host, port, path)


def wait_listening(target: Target, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until a TCP connect succeeds; a TargetError if the server exits, SourceError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = proc.poll()
        if status is not None:
            raise TargetError(
                f"the server exited (status {status}) before listening on {target.address}",
                "run the command by hand to see why it stops",
            )
        try:
            with socket.create_connection((target.host, target.port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise SourceError(
                f"nothing listens on {target.address} after {timeout_s:g} s",
                "check that the URL's port is the one the server listens on, or raise "
                "--listen-timeout for a slow start",
            )
        time.sleep(0.05)


def _listeners(port: int) -> dict[int, str]:
    """{pid: command} of the processes listening on a TCP port (those psutil may see)."""
    out: dict[int, str] = {}
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return out
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                argv = psutil.Process(c.pid).cmdline()
                out[c.pid] = " ".join([Path(argv[0]).name, *argv[1:4]]) if argv else "?"
            except psutil.Error:
                out[c.pid] = "?"
    return out


def _held_by(held: dict[int, str]) -> str:
    """ " (pid 123: python3 -m http.server)" of what _listeners found; "" when it saw none."""
    return "".join(f" (pid {pid}: {cmd})" for pid, cmd in sorted(held.items())[:2])


def port_taken(target: Target) -> None:
    """A TargetError when something already answers on the soak's port, before the server is
    started: the server then cannot bind, and the soak had driven the other process and judged
    the dead server's start-up ("FAILED (leak)" in one run, "ok" in the next)."""
    try:
        with socket.create_connection((target.host, target.port), timeout=0.5):
            pass
    except OSError:
        return
    raise TargetError(
        f"something already listens on {target.address}"
        f"{_held_by(_listeners(target.port))}, "
        "before the server was started",
        "stop it, or start the server on another port and give that port in --url",
    )


def served_by(target: Target, proc: subprocess.Popen[bytes]) -> None:
    """A TargetError when what answers on the port is not the server started nor one of its
    processes (something took the port between the check and the start)."""
    try:
        tree = psutil.Process(proc.pid)
        pids = {proc.pid, *(c.pid for c in tree.children(recursive=True))}
    except psutil.Error:
        return  # gone: wait_listening and the drive say so
    held = _listeners(target.port)
    if held and not pids & held.keys():
        raise TargetError(
            f"another process answers on {target.address}{_held_by(held)}, "
            f"not the server started (pid {proc.pid})",
            "stop it, or start the server on another port and give that port in --url",
        )


class Driver:
    """A bounded request loop: `concurrency` workers, one keep-alive connection each."""

    def __init__(self, target: Target, options: HttpSoakOptions, total: int) -> None:
        self.target = target
        self.options = options
        self.total = total
        self.latencies = np.full(total, np.nan)
        self.done = 0
        self.errors = 0
        self.last_error = ""
        self._next = 0
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self.milestone_every = max(1, total // MILESTONES)

    def _claim(self) -> int | None:
        with self._lock:
            if self._next >= self.total or self._abort.is_set():
                return None
            self._next += 1
            return self._next - 1

    def _finish(self, i: int, seconds: float, error: str | None) -> bool:
        with self._lock:
            self.done += 1
            self.latencies[i] = seconds
            if error is not None:
                self.errors += 1
                self.last_error = error
                if self.done >= MIN_REQUESTS_BEFORE_ABORT and (
                    self.errors > MAX_ERROR_SHARE * self.done
                ):
                    self._abort.set()
            return self.done % self.milestone_every == 0

    def _worker(self, poke: Callable[[], None] | None) -> None:
        opts = self.options
        conn: http.client.HTTPConnection | None = None
        while (i := self._claim()) is not None:
            if conn is None:
                conn = http.client.HTTPConnection(
                    self.target.host, self.target.port, timeout=opts.request_timeout_s
                )
            error: str | None = None
            started = time.perf_counter()
            try:
                conn.request(opts.method, self.target.path, body=opts.body)
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    error = f"HTTP {response.status} {response.reason}"
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
                if conn is not None:
                    conn.close()
                conn = None
            if self._finish(i, time.perf_counter() - started, error) and poke is not None:
                poke()
        if conn is not None:
            conn.close()

    def run(self, poke: Callable[[], None] | None = None) -> None:
        workers = [
            threading.Thread(target=self._worker, args=(poke,), name=f"memsleuth-load-{n}")
            for n in range(max(1, self.options.concurrency))
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        # A short soak never reaches MIN_REQUESTS_BEFORE_ABORT: judge its share at the end.
        if self._abort.is_set() or self.errors > MAX_ERROR_SHARE * self.done:
            raise SourceError(
                f"{self.errors} of {self.done} requests to {self.options.url} failed "
                f"(last: {self.last_error})",
                "check the URL's path and that the server answers it with a 2xx status",
            )


def soak_url(argv: Sequence[str], options: HttpSoakOptions) -> ProcessSoak:
    """Start argv, wait for it to listen, drive options.requests requests, judge; run kept."""
    target = parse_url(options.url, options.allow_remote)
    if not argv:
        raise UsageError("no server to start", "give the server's command after `--`")
    warm = max(1, options.requests // 10) if options.warmup is None else options.warmup
    port_taken(target)
    with Store(options.store_path) as store:
        run = store.create_run(
            name=options.name or command_name(argv),
            kind="soak",
            command=list(argv),
            pid=None,
            interval_s=options.interval_s,
            meta={"url": options.url, "requests": options.requests, "warmup": warm},
        )
        proc = start_target(argv, stdin=subprocess.DEVNULL)
        store.update_run(run.id, pid=proc.pid)
        driver = Driver(target, options, warm + options.requests)
        note = "stopped by an error"
        status: int | None = None
        recent = lambda: _recent_latency(driver, warm)  # noqa: E731
        try:
            wait_listening(target, proc, options.listen_timeout_s)
            served_by(target, proc)
            with SampledRun(
                store,
                run.id,
                proc.pid,
                interval_s=options.interval_s,
                work=lambda: float(driver.done),
                latency=recent,
            ) as sampled:
                try:
                    driver.run(poke=sampled.poke)
                except SourceError:
                    died = _exit_status(proc)
                    if died is None:
                        raise
                    # Its requests failed because it is gone: say that, not "check the URL".
                    raise TargetError(
                        # Answered ones: those sent to a dead server failed (with one
                        # connection it had read "after 166 requests" for 149 answered).
                        f"the server exited (status {died}) after answering "
                        f"{driver.done - driver.errors} requests",
                        "run the command by hand to see why it stops",
                    ) from None
                finally:
                    sampled.take()
            samples = sampled.samples
            note = f"soak done: {driver.done} requests, {driver.errors} failed"
        except KeyboardInterrupt as exc:
            note = f"{stopped_by(exc)[0]} after {driver.done} requests"
            # Stopped before the server listened, no sample was taken: "`memsleuth analyze
            # N` judges it" had led to "run N has no samples".
            held = store.get_run(run.id).sample_count
            kept = kept_hint(store.path, run.id) if held else "nothing had been measured yet"
            raise StoppedError(note, kept, by=exc) from None
        except MemsleuthError as exc:
            note = exc.message
            exc.hint = f"{exc.hint}; the partial run is kept as run {run.id}".lstrip("; ")
            raise
        finally:
            status = stop_target(proc)
            store.finish_run(run.id, exit_status=status, note=note)
        latencies = driver.latencies[warm:]
        result = judge_process(
            store_path=store.path,
            run_id=run.id,
            samples=samples,
            unit="request",
            warmup=warm,
            allowance=options.max_bytes_per_request,
            durations=latencies[~np.isnan(latencies)],
            max_latency_ratio=options.max_latency_ratio,
            errors=driver.errors,
        )
        store.set_run_meta(run.id, ok=result.ok, bytes_per_request=result.bytes_per_unit)
        return result


def _exit_status(proc: subprocess.Popen[bytes]) -> int | None:
    """The server's status if it has exited, or does within DEATH_GRACE_S: one that dies in a
    request resets the connection a moment before it is gone (poll() had said "running")."""
    try:
        return proc.wait(timeout=DEATH_GRACE_S)
    except subprocess.TimeoutExpired:
        return None


def _recent_latency(driver: Driver, warm: int) -> float | None:
    # The median of the last few hundred finished requests past the warm-up (as the soak's
    # own ratio leaves the warm-up out): the latency column of the run.
    upto = driver.done
    window = driver.latencies[max(warm, upto - 200) : upto]
    window = window[~np.isnan(window)]
    return float(np.median(window)) if window.size else None


__all__ = ["HttpSoakOptions", "parse_url", "soak_url"]
