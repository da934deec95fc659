"""`memsleuth fleet`: judge every memory series in a Prometheus and rank them, worst first."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING

from memsleuth.cli.options import (
    count_arg,
    duration_at_least,
    limit_arg,
    positive_duration,
    positive_int,
)
from memsleuth.errors import ExitCode, SourceError, UsageError

if TYPE_CHECKING:
    from memsleuth.fleet.scan import ScanResult, ScanSpec
    from memsleuth.sources.prometheus import PromConfig


def _time_arg(text: str) -> float:
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


def _read_secret(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        msg = f"cannot read the {what} file {path}: {exc.strerror}"
        raise UsageError(msg, "check the path and its permissions") from None


class FleetCommand:
    """Scan every series of a PromQL query over a time range in Prometheus (or Thanos, Mimir,
    VictoriaMetrics), judge each with the same verdict code as `analyze` (restarts split a
    series; the last segment is judged) and rank them: what runs out of memory first on top.

    Exits 3 when a series has a problem verdict, 1 when nothing could be judged, else 0."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add(
            "--prometheus",
            metavar="URL",
            type=_http_url,
            default=os.environ.get("MEMSLEUTH_PROMETHEUS"),
            help="the server's root URL, e.g. http://127.0.0.1:9090 ($MEMSLEUTH_PROMETHEUS)",
        )
        add(
            "--query",
            default="process_resident_memory_bytes",
            help="PromQL giving one memory series per process (default: %(default)s)",
        )
        add(
            "--range",
            type=positive_duration,
            default=7 * 86400.0,
            metavar="DURATION",
            help="how far back from --end (default: 7d)",
        )
        add(
            "--end",
            type=_time_arg,
            default=None,
            metavar="TIME",
            help="end of the range: now (default), now-3h, unix seconds or RFC 3339",
        )
        add(
            "--step",
            type=duration_at_least(1.0, "finer than any scrape interval"),
            default=None,
            metavar="DURATION",
            help="evaluate the query at this step (ranges past 11,000 steps are fetched in "
            "pieces); default: 60s up to a day, else Prometheus sends each step's mean",
        )
        add(
            "--limit",
            type=limit_arg,
            metavar="SIZE",
            help="memory limit for the time-to-limit estimate, e.g. 4GiB",
        )
        add("--batch-size", type=positive_int, default=200, metavar="N", help="series per query")
        add("--concurrency", type=positive_int, default=2, metavar="N", help="queries in flight")
        add(
            "--jobs",
            type=positive_int,  # 0 had been taken, silently read as the default
            default=0,
            metavar="N",
            help="processes judging the series (default: one per CPU, up to 8, from 3,000 "
            "series; 1 judges in this process)",
        )
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
        add("--json", action="store_true", help="print a JSON list, worst first")
        add("--report", metavar="PATH", help="also write a self-contained HTML fleet report")
        add(
            "--top",
            type=count_arg,
            default=25,
            metavar="N",
            help="rows in the terminal table, worst first (default: 25; 0: every series)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from contextlib import nullcontext

        from memsleuth.fleet.scan import ScanSpec, plan_step
        from memsleuth.reports.base import write_atomically

        if not args.prometheus:
            raise UsageError("no Prometheus to scan", "pass --prometheus URL")
        _not_a_counter(args.query)
        config = _config(args)
        end = args.end if args.end is not None else time.time()
        step, aggregate = plan_step(args.range, args.step)
        spec = ScanSpec(
            args.query,
            end - args.range,
            end,
            step,
            args.batch_size,
            args.concurrency,
            args.limit,
            aggregate,
            args.jobs,
        )
        # Opened before the scan: a report path that cannot be written fails now, not after
        # minutes of scanning; a scan that fails leaves an existing report untouched.
        with write_atomically(args.report) if args.report else nullcontext() as report:
            result = _scan(spec, config)
            if report is not None:
                from memsleuth.fleet.report import FleetReportOptions, render_html

                report.write(render_html(result, result.spec or spec, FleetReportOptions()))
        if args.json:
            from memsleuth.fleet.judging import entry_to_dict

            print(json.dumps([entry_to_dict(e) for e in result.entries], indent=1))
        else:
            from memsleuth.fleet.table import print_table

            print_table(result, args.top)
        problems = any(e.verdict is not None and e.verdict.is_problem for e in result.entries)
        return ExitCode.PROBLEM if problems else ExitCode.OK


# Prometheus' naming conventions for what only ever counts up: no memory series ends so.
_COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created")


def _not_a_counter(query: str) -> None:
    """A usage error for a counter's name: judged as memory, a request counter had paged."""
    from memsleuth.fleet.scan import parse_selector

    parsed = parse_selector(query)
    if parsed is not None and parsed[0].endswith(_COUNTER_SUFFIXES):
        raise UsageError(
            f"{parsed[0]} is a counter (by Prometheus' naming), not memory",
            "scan a gauge of bytes, e.g. process_resident_memory_bytes or "
            "container_memory_working_set_bytes",
        )


def _http_url(text: str) -> str:
    """A usage error now, before any request, for what cannot be a server's address."""
    if not text.strip().lower().startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(
            f"not an http(s) URL: {text!r} (e.g. http://127.0.0.1:9090)"
        )
    return text


def _config(args: argparse.Namespace) -> PromConfig:
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
        password=_read_secret(args.password_file, "password"),
        bearer_token=_read_secret(args.bearer_token_file, "bearer token"),
        ca_file=args.ca_file,
        insecure=args.insecure,
    )


def _scan(spec: ScanSpec, config: PromConfig) -> ScanResult:
    """Fetch and judge with a progress bar; an error when nothing could be judged."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from memsleuth.fleet.scan import scan
    from memsleuth.sources.prometheus import PrometheusClient

    # One connection per fetching thread, and one for this thread's floor queries: a pool any
    # smaller logs "Connection pool is full, discarding connection" on stderr.
    client = PrometheusClient(config, pool_size=spec.concurrency + 1)
    err = Console(stderr=True)
    with Progress(
        TextColumn("fetching and judging"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        # Only on a terminal: into a pipe or a log it left a blank line before any error.
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("scan", total=None)
        try:
            result = scan(
                client,
                spec,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        finally:
            client.close()
    # Series that had samples and could not be judged (one of NaN alone has none to judge).
    failed = [e for e in result.entries if e.verdict is None and e.error and e.samples]
    why = ""
    if failed:
        from memsleuth.fleet.report import label_text

        why = (
            f"{len(failed)} series could not be judged; the first, "
            f"{label_text(failed[0])}: {failed[0].error}"
        )
    if not result.judged:  # the reason is said once, as the error (not also a warning)
        if failed and not result.failures:
            crashed = any((e.error or "").startswith("judge failed") for e in failed)
            raise SourceError(
                f"nothing could be judged: {why}",
                "check that --query gives memory in bytes"
                + ("; -v shows each failure's traceback" if crashed else ""),
            )
        if result.failures:
            first = min(result.failures, key=lambda f: f.index)
            many = len(result.failures)
            head = f"{many} batches failed; the first: " if many > 1 else ""
            raise SourceError(f"nothing could be judged: {head}{first.message}", first.hint)
        raise SourceError(
            "nothing could be judged: the query returned no usable samples",
            "check --query, --range and --end in the Prometheus UI",
        )
    if failed:
        print(f"warning: {why}", file=sys.stderr)
    for f in result.failures:
        print(
            f"warning: batch {f.index + 1} of {result.batches} ({f.series} series) "
            f"failed: {f.message}",
            file=sys.stderr,
        )
    return result
