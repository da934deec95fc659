"""`memsleuth runs`: list the recorded runs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math

from memsleuth.cli.options import add_store_option, open_store
from memsleuth.errors import ExitCode
from memsleuth.judgement import how_it_ended


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    if not math.isfinite(ts):  # unreadable in the store, and no sample to date it by
        return "?"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


class RunsCommand:
    """List the runs in the store: id, name, kind, when, how long, samples, how it ended."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        add_store_option(parser)
        parser.add_argument("--json", action="store_true", help="a JSON list instead of a table")

    def run(self, args: argparse.Namespace) -> int:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from memsleuth.reports.json import run_to_dict
        from memsleuth.reports.terminal import printable
        from memsleuth.units import format_duration

        with open_store(args) as store:
            runs = store.list_runs()
            # How each failed: "target exited" had read alike for a panic, SIGKILL and SIGABRT.
            how = {r.id: how_it_ended(r, store.run_meta(r.id)) or "" for r in runs}
        if args.json:
            print(json.dumps([run_to_dict(r) for r in runs], indent=2))
            return ExitCode.OK
        console = Console()
        if not console.is_terminal:  # piped or redirected: whole cells, not 80 columns
            console = Console(width=200)
        if not runs:
            console.print("no runs yet; record one with: memsleuth record -- CMD")
            return ExitCode.OK
        table = Table("id", "name", "kind", "started", "duration", "samples", "pid", "ended")
        table.columns[3].no_wrap = True
        for r in runs:
            span = None if r.ended_at is None else r.ended_at - r.started_at
            # Names and notes are the user's text: not rich markup (Text), and with control
            # characters escaped (a --name holding ANSI sequences had recoloured the terminal).
            table.add_row(
                str(r.id),
                Text(printable(r.name)),
                r.kind,
                _when(r.started_at),
                "-" if span is None else format_duration(span) if math.isfinite(span) else "?",
                str(r.sample_count),
                str(r.pid or "-"),
                Text(
                    printable(r.note or ("recording or killed" if r.ended_at is None else ""))
                    + (f" ({how[r.id].removeprefix('exited with ')})" if how[r.id] else "")
                ),
            )
        console.print(table)
        return ExitCode.OK
