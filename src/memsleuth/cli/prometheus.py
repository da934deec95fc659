"""How the command line reaches a Prometheus: its URL, time, credentials, TLS and retries as
options, the PromConfig they make, and the queries that cannot be memory."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

from memsleuth.cli.options import count_arg, positive_duration
from memsleuth.errors import UsageError

if TYPE_CHECKING:
    from memsleuth.sources.prometheus import PromConfig


def time_arg(text: str) -> float:
    """`now`, `now-3h`, unix seconds, or an ISO 8601 / RFC 3339 time."""
    import datetime as dt

    from memsleuth.units import parse_duration

    s = text.strip()
    try:
        if s == "now" or s.startswith("now-"):
            return time.time() - (parse_duration(s[4:]) if s != "now" else 0.0)
        if s.replace(".", "", 1).isdigit():
            return float(s)
        when = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use now, now-2h, unix seconds or 2024-05-01T12:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def http_url(text: str) -> str:
    """A usage error now, before any request, for what cannot be a server's address."""
    if not text.strip().lower().startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(
            f"not an http(s) URL: {text!r} (e.g. http://127.0.0.1:9090)"
        )
    return text


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """How long to wait, how often to retry, and the credentials and TLS of the server."""
    add = parser.add_argument
    add("--timeout", type=positive_duration, default=120.0, metavar="DURATION")
    add(
        "--retries",
        type=count_arg,
        default=3,
        metavar="N",
        help="retries of a failed query, with exponential backoff",
    )
    add("--user", metavar="NAME", help="basic auth user (password from --password-file)")
    add("--password-file", metavar="PATH")
    add("--bearer-token-file", metavar="PATH")
    add("--ca-file", metavar="PATH", help="CA bundle that signed the server's certificate")
    add("--insecure", action="store_true", help="do not verify TLS certificates")


def prom_config(args: argparse.Namespace) -> PromConfig:
    """How to reach the server; contradictory or incomplete credentials are usage errors."""
    from memsleuth.sources.prometheus import PromConfig

    if args.user is not None and args.password_file is None:
        raise UsageError("--user needs --password-file", "pass the password in a file")
    if args.password_file is not None and args.user is None:
        raise UsageError("--password-file needs --user", "pass the basic auth user name")
    if args.bearer_token_file is not None and args.user is not None:
        raise UsageError(
            "--bearer-token-file and --user both set credentials",
            "the server expects one of them: pass basic auth or a bearer token",
        )
    if args.insecure and args.ca_file is not None:
        raise UsageError(
            "--insecure and --ca-file contradict each other",
            "pass --ca-file to verify the server with that CA, or --insecure not to verify",
        )
    if args.ca_file is not None and not os.path.isfile(args.ca_file):
        raise UsageError(f"no CA file at {args.ca_file}", "pass the PEM bundle's path")
    return PromConfig(
        args.prometheus,
        timeout_s=args.timeout,
        retries=args.retries,
        username=args.user,
        password=read_secret(args.password_file, "password"),
        bearer_token=read_secret(args.bearer_token_file, "bearer token"),
        ca_file=args.ca_file,
        insecure=args.insecure,
    )


def read_secret(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        msg = f"cannot read the {what} file {path}: {exc.strerror}"
        raise UsageError(msg, "check the path and its permissions") from None


# Prometheus' naming conventions for what only ever counts up: no memory series ends so.
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created")


def not_a_counter(query: str) -> None:
    """A usage error for a counter's name (judged as memory, a request counter had paged), or
    for no query at all."""
    from memsleuth.fleet.scan import parse_selector

    if not query.strip():  # it had gone to Prometheus, and come back an HTTP 400
        raise UsageError("--query is empty", "e.g. --query process_resident_memory_bytes")
    parsed = parse_selector(query)
    if parsed is not None and parsed[0].endswith(COUNTER_SUFFIXES):
        raise UsageError(
            f"{parsed[0]} is a counter (by Prometheus' naming), not memory",
            "scan a gauge of bytes, e.g. process_resident_memory_bytes or "
            "container_memory_working_set_bytes",
        )
