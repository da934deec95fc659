"""`memsleuth report`: a run rendered for people (terminal, Markdown, HTML) or scripts (JSON)."""

from __future__ import annotations

import argparse
import math
import sys

from memsleuth.cli.options import (
    add_run_argument,
    add_store_option,
    find_run,
    open_store,
    output_path,
    positive_seconds,
)
from memsleuth.errors import ExitCode, UsageError
from memsleuth.judgement import judge_run

FORMATS = ("terminal", "json", "markdown", "html")


class ReportCommand:
    """Render a run: the verdict and evidence, memory over time with the fitted trend, the
    warm-up boundary and plateau ceiling, threads and fds, and the culprits.

      memsleuth report --format html -o leak.html
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        add_run_argument(parser)
        parser.add_argument("--format", choices=FORMATS, default="terminal")
        parser.add_argument(
            "-o", "--output", type=output_path, help="file to write (default, or -: stdout)"
        )
        parser.add_argument(
            "--samples",
            action="store_true",
            help="JSON: add every sample column, the probe's points and the culprits' points",
        )
        parser.add_argument(
            "--until",
            type=positive_seconds,
            metavar="DURATION",
            help="only the first DURATION of the run (90, 40s, 10m)",
        )
        add_store_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from memsleuth.analysis.profiles import GOROUTINE_SITE, SITE
        from memsleuth.reports.base import ReportOptions, RunReport, get_reporter, write_report

        if args.format == "html" and args.output is None and sys.stdout.isatty():
            raise UsageError("an HTML report needs a file", "add -o report.html")
        with open_store(args) as store:
            run = find_run(store, args.run)
            series, verdict = judge_run(store, run, args.until)
            t0 = store.first_sample_time(run.id) or run.started_at
            end = math.inf if args.until is None else args.until  # what was known then
            extras = {
                name: kept
                for name, points in store.load_points(run.id).items()
                if (kept := tuple((t - t0, v) for t, v in points if t - t0 <= end))
                and any(v for _, v in kept)  # a run without children: no chart of zeros
                # Each of up to 100 sites a heap profile follows: drawn with its culprit, if it
                # is one (a chart each had filled a goroutine leak's report, runtime waits too).
                and not name.startswith((SITE, GOROUTINE_SITE))
            }
        report = RunReport(run=run, series=series, verdict=verdict, extras=extras)
        reporter = get_reporter(args.format)
        if args.samples and args.format != "json":
            raise UsageError("--samples is for --format json", "add --format json")
        options = ReportOptions(include_samples=args.samples)
        if args.output is None:
            reporter.render(report, options, sys.stdout)
        else:
            write_report(reporter, report, options, args.output)
            print(f"memsleuth: wrote {args.output}", file=sys.stderr)
        return ExitCode.OK
