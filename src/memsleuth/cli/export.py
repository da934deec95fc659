"""`memsleuth export`: write a run's samples as CSV or JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import TextIO

from memsleuth.cli.options import (
    add_run_argument,
    add_store_option,
    find_run,
    open_store,
    output_path,
)
from memsleuth.errors import ExitCode
from memsleuth.model import SAMPLE_FIELDS
from memsleuth.reports.base import write_atomically

_FIELDS = ("t", *SAMPLE_FIELDS)


class ExportCommand:
    """Write every sample of a run, one row each, as CSV (with a header) or JSON lines.
    Times are unix seconds; sizes are bytes; empty / null where not read."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        add_run_argument(parser)
        parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
        parser.add_argument(
            "-o", "--output", type=output_path, help="file to write (default, or -: stdout)"
        )
        add_store_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        with open_store(args) as store:
            run = find_run(store, args.run)
            rows = [[getattr(s, f) for f in _FIELDS] for s in store.iter_samples(run.id)]

        if args.output is None:
            _write(rows, args.format, sys.stdout)
        else:
            with write_atomically(args.output) as out:
                _write(rows, args.format, out)
        return ExitCode.OK


def _write(rows: list[list[object]], fmt: str, out: TextIO) -> None:
    if fmt == "csv":
        w = csv.writer(out)
        w.writerow(_FIELDS)
        w.writerows(rows)
    else:
        for row in rows:
            out.write(json.dumps(dict(zip(_FIELDS, row, strict=True))) + "\n")
