"""A Prometheus HTTP API client: series listing and `query_range` split to the API's limits.

Also speaks to Thanos, Mimir and VictoriaMetrics (same API). Matrix answers are parsed without
building a Python object per point; any answer the fast path does not recognise goes to `json`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import ssl
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import urllib3

from memsleuth.errors import SourceError
from memsleuth.model import FloatArray

log = logging.getLogger(__name__)

# Prometheus refuses a query_range with more points per series than this.
MAX_POINTS = 11_000
RETRY_STATUS = frozenset({429, 502, 503, 504, 500})
# How often a request's wait looks for cancel() (Ctrl-C, a scan that gave up on the server).
CANCEL_POLL_S = 0.25

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PromConfig:
    """Where the server is and how to talk to it."""

    url: str
    timeout_s: float = 120.0
    retries: int = 3  # further attempts after the first, on timeouts, resets and 5xx
    backoff_s: float = 0.5  # first wait; doubles each retry
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    ca_file: str | None = None
    insecure: bool = False  # skip TLS verification (never the default)
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series of a matrix answer: `t` in unix seconds, `values` as float64 (NaN kept)."""

    labels: Labels
    t: FloatArray
    values: FloatArray

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(slots=True)
class Timings:
    """Where a client's time went: waiting for the server vs parsing its answers."""

    server_s: float = 0.0  # summed over requests (they overlap when several are in flight)
    busy_s: float = 0.0  # wall time with at least one request in flight
    parse_s: float = 0.0
    requests: int = 0
    bytes: int = 0
    retries: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def plan_windows(
    start: float, end: float, step: float, max_points: int = MAX_POINTS
) -> list[tuple[float, float]]:
    """Split [start, end] into windows of at most `max_points` evaluation steps, no overlap."""
    if step <= 0:
        raise ValueError("step must be positive")
    if end < start:
        raise ValueError("end is before start")
    span = (max_points - 1) * step
    windows = []
    s = start
    while s <= end:
        e = min(end, s + span)
        windows.append((s, e))
        s = e + step
    return windows


def _labels_of(metric: dict[str, Any]) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in metric.items()))


def _malformed(why: str) -> SourceError:
    return SourceError(
        f"Prometheus sent a malformed answer: {why}",
        "check that --prometheus points at the Prometheus HTTP API (the URL without /api/v1)",
    )


def _parse_values_blob(blob: bytes) -> tuple[FloatArray, FloatArray] | None:
    """`[t,"v"],[t,"v"]...` (the inside of "values") as two arrays; None if it is not that."""
    text = blob.translate(None, b'[]"').decode("ascii")
    with warnings.catch_warnings():
        # numpy warns (does not raise) when text stops parsing early: that means malformed.
        warnings.simplefilter("error")
        try:
            flat = np.fromstring(text, dtype=np.float64, sep=",")
        except (ValueError, DeprecationWarning):
            return None
    if flat.size % 2 or flat.size != text.count(",") + 1:
        return None
    return flat[0::2], flat[1::2]


def _fast_matrix(body: bytes) -> list[RangeSeries] | None:
    """The matrix in a Prometheus-shaped answer, or None to fall back to the generic parser."""
    head = body[:120]
    if not head.startswith(b'{"status":"success","data":{"resultType":"matrix","result":['):
        return None
    out: list[RangeSeries] = []
    key_m, key_v = b'{"metric":', b',"values":[['
    pos = 0
    while True:
        i = body.find(key_m, pos)
        if i < 0:
            break
        j = body.find(key_v, i)
        if j < 0:
            return None
        k = body.find(b"]]}", j)
        if k < 0:
            return None
        try:
            metric = json.loads(body[i + len(key_m) : j])
        except ValueError:
            return None
        parsed = _parse_values_blob(body[j + len(key_v) - 1 : k + 1])
        if parsed is None or not isinstance(metric, dict):
            return None
        out.append(RangeSeries(_labels_of(metric), parsed[0], parsed[1]))
        pos = k + 3
    # Every series must have been seen: a "metric" key we did not parse means another layout.
    if body.count(b'"metric":') != len(out):
        return None
    if b'"warnings"' in body[pos:]:
        log.warning("Prometheus answered with warnings: %s", body[pos : pos + 500].decode())
    return out


def _generic_matrix(doc: Any) -> list[RangeSeries]:
    result = _data(doc)
    if not isinstance(result, dict) or result.get("resultType") != "matrix":
        raise _malformed("expected a matrix result")
    out = []
    for item in result.get("result") or []:
        try:
            pts = item.get("values") or []
            t = np.array([float(p[0]) for p in pts], dtype=np.float64)
            v = np.array([float(p[1]) for p in pts], dtype=np.float64)
            out.append(RangeSeries(_labels_of(item["metric"]), t, v))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            # A partial answer: keep the series that are whole, say which one was not.
            log.warning("skipping a malformed series in Prometheus' answer: %.200r", item)
    return out


def _data(doc: Any) -> Any:
    if not isinstance(doc, dict) or "status" not in doc:
        raise _malformed("no 'status' field")
    if doc["status"] != "success":
        raise SourceError(
            f"Prometheus refused the query: {doc.get('errorType', 'error')}: "
            f"{doc.get('error', '(no message)')}",
            "check the PromQL in --query, and that --range/--step stay within the server's limits",
        )
    for w in doc.get("warnings") or ():
        log.warning("Prometheus warning: %s", w)
    return doc.get("data")


def parse_matrix(body: bytes) -> list[RangeSeries]:
    """A query_range answer as series; raises SourceError on a malformed or failed answer."""
    fast = _fast_matrix(body)
    if fast is not None:
        return fast
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise _malformed(f"not JSON ({exc}); it starts with {body[:80]!r}") from None
    return _generic_matrix(doc)


def parse_json(body: bytes) -> Any:
    """The `data` of a non-matrix answer, checked."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise _malformed(f"not JSON ({exc}); it starts with {body[:80]!r}") from None
    return _data(doc)


def _tls_hint(base: str, exc: Exception) -> str:
    """What to do about a failed handshake: a server answering plain HTTP on an https://
    URL fails it too, where --ca-file would not help (the hint had said to pass one)."""
    words = str(exc).lower()
    if any(w in words for w in ("wrong version number", "record layer failure", "http request")):
        plain = "http://" + base.removeprefix("https://")
        return f"the server may not speak TLS: try {plain}"
    return "pass the server's CA with --ca-file PATH (or --insecure to skip checks)"


def _redirected(status: int, url: str, location: str) -> SourceError:
    """A redirect, which is not followed: a POST followed as a GET loses the query, and one
    to itself never ends (a redirect loop had read "not JSON ... starts with b''")."""
    to = urllib.parse.urljoin(url, location) if location else ""
    if not to or to == url:
        return SourceError(
            f"{url} redirected the request (HTTP {status}) "
            + ("to itself: a redirect loop" if to else "without saying where"),
            "check the --prometheus URL: a proxy in front of it may be misconfigured",
        )
    return SourceError(
        f"{url} redirected the request (HTTP {status}) to {to}; memsleuth does not follow "
        "redirects",
        "pass the address it redirects to as --prometheus (without /api/v1)",
    )


class PrometheusClient:
    """Thread-safe: one connection pool, shared by the fleet scan's workers."""

    def __init__(self, config: PromConfig, *, pool_size: int = 4) -> None:
        self.config = config
        self.base = config.url.rstrip("/")
        if not re.match(r"^https?://", self.base):
            raise SourceError(
                f"not an http(s) URL: {config.url!r}",
                "pass e.g. --prometheus http://127.0.0.1:9090",
            )
        try:
            host = urllib3.util.parse_url(self.base).host
        except urllib3.exceptions.LocationParseError:
            host = None  # a bad port (99999), an unclosed [ipv6, a space in the host
        if not host:
            raise SourceError(
                f"not a valid URL: {config.url!r} (check its host and port)",
                "pass e.g. --prometheus http://127.0.0.1:9090",
            )
        headers = dict(config.headers)
        if config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        elif config.username is not None:
            headers.update(
                urllib3.make_headers(basic_auth=f"{config.username}:{config.password or ''}")
            )
        kwargs: dict[str, Any] = {}
        if self.base.startswith("https://"):
            if config.insecure:
                kwargs["cert_reqs"] = ssl.CERT_NONE
            else:
                kwargs["cert_reqs"] = ssl.CERT_REQUIRED
                if config.ca_file:
                    kwargs["ca_certs"] = config.ca_file
        self._pool = urllib3.PoolManager(
            num_pools=2, maxsize=pool_size, headers=headers, retries=False, **kwargs
        )
        self.timings = Timings()
        self._cancelled = threading.Event()
        self._credentials = bool(config.username or config.bearer_token)
        self._why = ""
        self._lock = threading.Lock()
        self._in_flight = 0
        self._busy_since = 0.0
        self._sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        self._pool.clear()

    def cancel(self, why: str = "the scan was stopped") -> None:
        """Stop every request in flight within CANCEL_POLL_S, and refuse new ones: each fails
        as "not fetched: <why>"."""
        self._why = why
        self._cancelled.set()

    def _not_fetched(self) -> SourceError:
        return SourceError(f"not fetched: {self._why}", "run the scan again")

    def _request(self, url: str, fields: Sequence[tuple[str, str]]) -> tuple[int, bytes, str]:
        """(status, body, Location header) of one POST, waited for at most `timeout_s` in
        all. urllib3's timeouts bound each socket read, so a server trickling its answer a
        byte at a time would hold a read open forever: the request runs on a daemon thread,
        and a wait that passes the deadline or sees cancel() leaves it behind."""
        timeout = urllib3.Timeout(
            connect=min(10.0, self.config.timeout_s), read=self.config.timeout_s
        )
        box: list[tuple[int, bytes, str] | BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                resp = self._pool.request(
                    "POST", url, fields=list(fields), encode_multipart=False, timeout=timeout
                )
                box.append((resp.status, resp.data, resp.headers.get("Location", "")))
            except BaseException as exc:  # handed to the waiting thread, which raises it
                box.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="memsleuth-prometheus", daemon=True).start()
        deadline = time.monotonic() + self.config.timeout_s
        while not done.wait(CANCEL_POLL_S):
            if self._cancelled.is_set():
                raise self._not_fetched()
            if time.monotonic() > deadline:
                raise urllib3.exceptions.TimeoutError("the whole answer took too long")
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def _post(self, path: str, fields: Sequence[tuple[str, str]]) -> bytes:
        url = self.base + path
        attempt = 0
        while True:
            if self._cancelled.is_set():
                raise self._not_fetched()
            started = time.perf_counter()
            with self._lock:
                if self._in_flight == 0:
                    self._busy_since = started
                self._in_flight += 1
            try:
                status, body, location = self._request(url, fields)
                failure: SourceError | None = None
                if status in RETRY_STATUS:
                    failure = _http_error(status, body, url, self._credentials)
            except urllib3.exceptions.SSLError as exc:
                raise SourceError(
                    f"TLS handshake with {self.base} failed: {exc}", _tls_hint(self.base, exc)
                ) from None
            # NewConnectionError is a subclass of the timeout error in urllib3: catch it first.
            except urllib3.exceptions.NewConnectionError as exc:
                failure = SourceError(
                    f"cannot reach Prometheus at {self.base}: {_reason(exc)}",
                    "check the --prometheus URL and that the server runs (curl URL/-/ready)",
                )
            except urllib3.exceptions.TimeoutError:
                failure = SourceError(
                    f"Prometheus at {self.base} did not answer in full within "
                    f"{self.config.timeout_s:g} s",
                    "raise --timeout, shorten --range, or lower --batch-size",
                )
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError) as exc:
                # Cut connections and truncated bodies: a partial answer, worth another try.
                failure = SourceError(
                    f"the connection to {self.base} broke: {_reason(exc)}",
                    "check the --prometheus URL; a proxy in between may cut long answers",
                )
            finally:
                now = time.perf_counter()
                with self._lock:
                    self.timings.server_s += now - started
                    self.timings.requests += 1
                    self._in_flight -= 1
                    if self._in_flight == 0:
                        self.timings.busy_s += now - self._busy_since
            if failure is None:
                if status >= 400:
                    raise _http_error(status, body, url, self._credentials)
                if 300 <= status < 400:
                    raise _redirected(status, url, location)
                with self._lock:
                    self.timings.bytes += len(body)
                return body
            if attempt >= self.config.retries:
                raise failure
            wait = self.config.backoff_s * 2**attempt
            log.info("%s; retrying in %.1f s", failure.message, wait)
            with self._lock:
                self.timings.retries += 1
            self._sleep(wait)
            attempt += 1

    def series(self, selector: str, start: float, end: float) -> list[Labels]:
        """The label sets of the series matching a selector in [start, end]."""
        body = self._post(
            "/api/v1/series", [("match[]", selector), ("start", _ts(start)), ("end", _ts(end))]
        )
        data = parse_json(body)
        if not isinstance(data, list):
            raise _malformed("the series list is not a list")
        return [_labels_of(d) for d in data if isinstance(d, dict)]

    def query(self, expr: str, at: float) -> list[tuple[Labels, float]]:
        """An instant query: each series' labels and value (vector answers only)."""
        data = parse_json(self._post("/api/v1/query", [("query", expr), ("time", _ts(at))]))
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            raise _malformed("expected a vector result")
        out = []
        for item in data.get("result") or []:
            try:
                out.append((_labels_of(item["metric"]), float(item["value"][1])))
            except (KeyError, TypeError, ValueError, IndexError):
                log.warning("skipping a malformed sample: %.200r", item)
        return out

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[RangeSeries]:
        """All series of `expr`, split into windows of <= MAX_POINTS steps and joined again."""
        parts: dict[Labels, list[RangeSeries]] = {}
        for s, e in plan_windows(start, end, step):
            body = self._post(
                "/api/v1/query_range",
                [("query", expr), ("start", _ts(s)), ("end", _ts(e)), ("step", _ts(step))],
            )
            started = time.perf_counter()
            for rs in parse_matrix(body):
                parts.setdefault(rs.labels, []).append(rs)
            with self._lock:
                self.timings.parse_s += time.perf_counter() - started
        return [_join(labels, ps) for labels, ps in parts.items()]


def _join(labels: Labels, parts: list[RangeSeries]) -> RangeSeries:
    if len(parts) == 1:
        return parts[0]
    return RangeSeries(
        labels, np.concatenate([p.t for p in parts]), np.concatenate([p.values for p in parts])
    )


def _ts(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if math.isfinite(x) else str(x)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    # urllib3 wraps the errno text after a colon: keep the part a person can act on.
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text


def _http_error(status: int, body: bytes, url: str, credentials: bool = False) -> SourceError:
    detail = ""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            detail = str(doc.get("error") or "")
    except ValueError:
        text = body[:2000].decode("utf-8", "replace")
        if "<" in text:  # an HTML error page: its title, not its markup (one line, error:)
            m = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
            text = m.group(1) if m else ""
        detail = " ".join(text.split())[:200]
    msg = f"Prometheus answered HTTP {status} to {url.rsplit('/api/', 1)[-1]}"
    if detail:
        msg += f": {detail}"
    if status in (401, 403) and credentials:
        # They were sent: "pass credentials" had been the hint to a wrong password.
        hint = "the credentials given were refused: check --user, --password-file or the token"
    elif status in (401, 403):
        hint = "pass credentials: --user NAME with --password-file, or --bearer-token-file"
    elif status in (404, 405, 501):
        hint = (
            "this does not look like the Prometheus HTTP API: check the --prometheus URL "
            "(the server's root, without /api/v1)"
        )
    elif status in (400, 422):
        hint = "check the PromQL in --query and the --range/--step it asks for"
    elif status == 429:
        hint = "the server limits the request rate: lower --concurrency or --batch-size"
    else:
        hint = "the server is failing: check its logs, or retry with a smaller --batch-size"
    return SourceError(msg, hint)
