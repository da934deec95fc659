"""`memsleuth analyze`: the verdict on a run, with its evidence."""

from __future__ import annotations

import argparse
import json

from memsleuth.cli.options import (
    add_run_argument,
    add_store_option,
    find_run,
    open_store,
    positive_seconds,
)
from memsleuth.errors import ExitCode
from memsleuth.judgement import judge_run


class AnalyzeCommand:
    """Judge a run: leak, plateau, stable, step, thread-leak, task-leak, fd-leak, fragmentation,
    degradation or inconclusive, with the growth rate, its confidence, the evidence and the
    time until the memory limit. Exits 3 when a problem was found, 0 when not."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        add_run_argument(parser)
        parser.add_argument("--json", action="store_true", help="print JSON (docs/json.md)")
        parser.add_argument(
            "--until",
            type=positive_seconds,
            metavar="DURATION",
            help="judge only the first DURATION of the run (90, 40s, 10m: what an alert knew then)",
        )
        add_store_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        with open_store(args) as store:
            run = find_run(store, args.run)
            _series, verdict = judge_run(store, run, args.until)
        if args.json:
            from memsleuth.reports.json import run_to_dict, verdict_to_dict

            doc = {"run": run_to_dict(run), **verdict_to_dict(verdict)}
            print(json.dumps(doc, indent=2))
        else:
            from rich.console import Console

            from memsleuth.reports.terminal import printable, render_verdict

            console = Console()
            console.print(f"run {run.id} · {printable(run.name)}", style="bold", markup=False)
            render_verdict(verdict, console)
        return ExitCode.PROBLEM if verdict.is_problem else ExitCode.OK
