"""`memsleuth soak`: drive a local server with requests, or run a command N times, and judge
whether memory per request (or per run) and latency stay flat."""

from __future__ import annotations

import argparse
import json
import sys

from memsleuth.cli.options import (
    add_store_option,
    count_arg,
    interval_arg,
    pid_arg,
    positive_duration,
    positive_int,
    ratio_arg,
    size_arg,
    whole_number,
)
from memsleuth.errors import ExitCode, UsageError
from memsleuth.store import default_store_path


class SoakCommand:
    """Soak a server or a command, recording its memory as a run of kind "soak".

    With --url: start the server given after `--`, wait until it listens, send --cycles requests
    (plus a tenth as warm-up) from --concurrency connections, record the server's memory, and
    report bytes per request, latency percentiles and the verdict (loopback only).
    Without --url: run the command --cycles times and watch its peak RSS per run, or the memory
    of a long-lived process it talks to (--pid).

      memsleuth soak --cycles 5000 --url http://127.0.0.1:8080/api/items -- python server.py
      memsleuth soak --cycles 200 -- ./cli-tool --once
      memsleuth soak --cycles 200 --pid 4242 -- ./client --ping

    Exits 0 when memory and latency stay within the limits, 3 when they do not, 1 on errors.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--cycles",
            type=whole_number(2),  # a trend needs two runs at least, as soak() asks
            required=True,
            help="requests to send (--url) or runs of the command",
        )
        parser.add_argument(
            "--warmup",
            type=count_arg,
            help="cycles run first and not judged (default: a tenth of --cycles; 0: none)",
        )
        parser.add_argument("--url", help="http://127.0.0.1:PORT/path of the server to drive")
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=4,
            help="requests in flight at once (default 4)",
        )
        parser.add_argument("--method", default="GET", help="HTTP method (default GET)")
        parser.add_argument("--data", help="request body (with --method POST, say)")
        parser.add_argument(
            "--allow-remote", action="store_true", help="allow a URL that is not on loopback"
        )
        parser.add_argument(
            "--listen-timeout",
            type=positive_duration,
            default=15.0,
            help="how long the server may take to listen (default 15s)",
        )
        parser.add_argument(
            "--interval",
            type=interval_arg,
            default=0.2,
            help="sampling interval of the server's memory (default 0.2s)",
        )
        parser.add_argument(
            "--pid", type=pid_arg, help="without --url: watch this process while the command runs"
        )
        parser.add_argument(
            "--max-bytes-per-cycle",
            type=size_arg,
            default=0,
            help="allowed growth per request or run (default 0)",
        )
        parser.add_argument(
            "--max-latency-ratio",
            type=ratio_arg,
            metavar="RATIO",
            help="fail when the last cycles are this many times slower than the first "
            "(at least 1, e.g. 1.5)",
        )
        parser.add_argument(
            "--show-output",
            action="store_true",
            help="without --url: show the command's standard output",
        )
        parser.add_argument("--name", help="a name for the run")
        parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
        add_store_option(parser)
        parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")

    def run(self, args: argparse.Namespace) -> int:
        argv = list(args.command)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            raise UsageError("nothing to soak", "give a command after `--`")
        store_path = default_store_path(args.store)
        if args.url is not None:
            from memsleuth.soak.server import HttpSoakOptions, soak_url

            if args.pid is not None:
                raise UsageError(
                    "--pid is for command soaks",
                    "drop --pid: with --url the server started after `--` is the one recorded",
                )
            result = soak_url(
                argv,
                HttpSoakOptions(
                    url=args.url,
                    requests=args.cycles,
                    store_path=store_path,
                    warmup=args.warmup,
                    concurrency=args.concurrency,
                    method=args.method.upper(),
                    body=None if args.data is None else args.data.encode(),
                    interval_s=args.interval,
                    listen_timeout_s=args.listen_timeout,
                    allow_remote=args.allow_remote,
                    max_bytes_per_request=args.max_bytes_per_cycle,
                    max_latency_ratio=args.max_latency_ratio,
                    name=args.name,
                ),
            )
        else:
            from memsleuth.soak.command import CommandSoakOptions, soak_command

            result = soak_command(
                argv,
                CommandSoakOptions(
                    runs=args.cycles,
                    store_path=store_path,
                    warmup=args.warmup,
                    pid=args.pid,
                    max_bytes_per_run=args.max_bytes_per_cycle,
                    max_latency_ratio=args.max_latency_ratio,
                    show_output=args.show_output,
                    name=args.name,
                ),
            )
        if args.json:
            json.dump(result.as_dict(), sys.stdout, indent=2)
            print()
        else:
            print(result.explain())
        return ExitCode.OK if result.ok else ExitCode.PROBLEM
