"""`memsleuth rules`: Prometheus recording and alerting rules for memory leaks."""

from __future__ import annotations

import argparse
import re

from memsleuth.cli.options import finite_number, positive_duration
from memsleuth.cli.prometheus import COUNTER_SUFFIXES
from memsleuth.errors import ExitCode, UsageError


class RulesCommand:
    """Print Prometheus rules: a recorded floor and its robust growth rate, and a MemoryLeak
    alert that fires when the floor (memory after GC and cache flushes) rises in each of four
    consecutive windows. Check them with `promtool check rules FILE`."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--for",
            dest="for_",
            default="30m",
            type=self._duration,
            metavar="DURATION",
            help="the alert's `for` (default: 30m)",
        )
        parser.add_argument(
            "--window",
            default="15m",
            type=self._duration,
            metavar="DURATION",
            help="floor window; at least one GC/cache cycle (default: 15m)",
        )
        parser.add_argument(
            "--metric",
            type=self._metric,
            default="process_resident_memory_bytes",
            help="the memory metric (default: %(default)s)",
        )
        parser.add_argument(
            "--min-growth",
            type=finite_number(0.0, "a share", "0.01 for 1%"),
            default=0.01,
            metavar="SHARE",
            help="floor growth over 3 windows to alert on (default: 0.01)",
        )
        parser.add_argument(
            "--season",
            type=self._season,
            default="1d",
            metavar="DURATION",
            help="the load cycle's period: quiet while the floor is not above its level one "
            "season earlier (default: 1d; none: no such check)",
        )

    @staticmethod
    def _season(text: str) -> str | None:
        if text.strip().lower() in ("0", "none", "off"):
            return None
        return RulesCommand._duration(text)

    @staticmethod
    def _metric(text: str) -> str:
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
            raise argparse.ArgumentTypeError(
                f"not a Prometheus metric name: {text!r} (letters, digits, _ and :)"
            )
        if text.endswith(COUNTER_SUFFIXES):  # as `fleet --query` refuses one
            raise argparse.ArgumentTypeError(
                f"{text} is a counter (by Prometheus' naming), not memory: give a gauge of "
                "bytes, e.g. process_resident_memory_bytes"
            )
        return text

    @staticmethod
    def _duration(text: str) -> str:
        seconds = positive_duration(text)
        if seconds < 1 or seconds != int(seconds):
            raise argparse.ArgumentTypeError(f"use whole seconds: {text!r}")
        from memsleuth.fleet.rules import _fmt

        return _fmt(seconds)

    def run(self, args: argparse.Namespace) -> int:
        from memsleuth.fleet.rules import RuleOptions, render_rules
        from memsleuth.units import parse_duration

        if args.season is not None and parse_duration(args.season) < 4 * parse_duration(
            args.window
        ):
            raise UsageError(
                f"--season {args.season} is shorter than four windows of {args.window}",
                "the check compares the last four windows with the same four a season "
                "earlier: pass the load cycle's period (e.g. 1d), or --season none",
            )

        opts = RuleOptions(
            metric=args.metric,
            window=args.window,
            for_=args.for_,
            min_growth=args.min_growth,
            season=args.season,
        )
        print(render_rules(opts), end="")
        return ExitCode.OK
