"""`memsleuth fleet`: judge every memory series in a Prometheus and rank them, worst first."""

from __future__ import annotations

import argparse
import json
import os
import time

from memsleuth.cli.options import (
    count_arg,
    duration_at_least,
    limit_arg,
    positive_duration,
    positive_int,
)
from memsleuth.cli.prometheus import (
    add_connection_options,
    http_url,
    not_a_counter,
    prom_config,
    time_arg,
)
from memsleuth.errors import ExitCode, UsageError


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
            type=http_url,
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
            type=time_arg,
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
        add_connection_options(parser)
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

        from memsleuth.analysis.thresholds import MIN_SAMPLES
        from memsleuth.fleet.console import scan_on_console, unjudged
        from memsleuth.fleet.scan import ScanSpec, plan_step
        from memsleuth.reports.base import write_atomically
        from memsleuth.units import format_duration

        if not args.prometheus:
            raise UsageError("no Prometheus to scan", "pass --prometheus URL")
        not_a_counter(args.query)
        config = prom_config(args)
        end = args.end if args.end is not None else time.time()
        step, aggregate = plan_step(args.range, args.step)
        if args.range / step < MIN_SAMPLES:
            # A 90 s range at the default 60 s step had judged every series on 2 samples,
            # all `inconclusive`; `--range 1ms` had been taken, `--step 8d --range 7d` had
            # found "no usable samples".
            given = "--step" if args.step is not None else "the default step"
            raise UsageError(
                f"--range {format_duration(args.range)} holds {int(args.range // step)} steps of "
                f"{format_duration(step)} ({given}): at least {MIN_SAMPLES} are needed to judge",
                "give a longer --range, or a --step as short as the scrape interval (e.g. 15s)",
            )
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
            result = scan_on_console(spec, config)
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
        incomplete = None if problems else unjudged(result)
        if incomplete is not None:
            raise incomplete
        return ExitCode.PROBLEM if problems else ExitCode.OK
