"""`memsleuth record`: watch a process's memory over time."""

from __future__ import annotations

import argparse
from pathlib import Path

from memsleuth.cli.options import (
    add_store_option,
    interval_arg,
    limit_arg,
    pid_arg,
    positive_duration,
)
from memsleuth.errors import SourceError, UsageError
from memsleuth.recorder import RecordOptions
from memsleuth.recording import record_command
from memsleuth.sources.pprof import check_url
from memsleuth.store import default_store_path


def add_record_options(parser: argparse.ArgumentParser, *, attach: bool = True) -> None:
    """The options of record, shared with run and soak."""
    # `run` starts its program itself: it refuses --pid with a hint, and does not offer it.
    attach_help = "attach to a running process instead" if attach else argparse.SUPPRESS
    parser.add_argument("--pid", type=pid_arg, help=attach_help)
    parser.add_argument("--duration", type=positive_duration, help="stop after this (e.g. 10m)")
    parser.add_argument(
        "--interval", type=interval_arg, default=1.0, help="sampling interval (default 1s)"
    )
    parser.add_argument("--name", help="a name for the run (default: the command's name)")
    parser.add_argument(
        "--limit", type=limit_arg, help="memory limit, e.g. 2GiB (default: cgroup memory.max)"
    )
    parser.add_argument(
        "--children", action="store_true", help="sum the memory of the whole process tree"
    )
    parser.add_argument(
        "--work-file",
        type=Path,
        metavar="PATH",
        help="a file where the target writes its work counter (frames, requests): "
        "growth is also given per unit of work",
    )
    if attach:  # `run`'s probe reads the allocator of its Python targets itself
        parser.add_argument(
            "--malloc-stats",
            action="store_true",
            help="load a reader of glibc's malloc into the command (LD_PRELOAD): tells "
            "fragmentation from a leak in native programs (builds with gcc on first use)",
        )
        parser.add_argument(
            "--heap-profile",
            metavar="URL",
            help="read the target's heap profile (pprof's format) from this URL every few "
            "seconds, e.g. Go's http://127.0.0.1:6060/debug/pprof/heap: names the "
            "allocation sites that grow",
        )
        parser.add_argument(
            "--heap-profile-every",
            type=heap_profile_every,
            default=5.0,
            metavar="DURATION",
            help="how often to read it at most (default 5s, at least 1s; never more than 1%% "
            "of the time goes into reading it)",
        )
    parser.add_argument("-q", "--quiet", action="store_true", help="no live status line")
    add_store_option(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...] to start")


def heap_profile_every(text: str) -> float:
    """--heap-profile-every: a duration of a second or more (a profile a second is already
    more than a program's heap changes between its collections)."""
    seconds = positive_duration(text)
    if seconds < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is under a second: give 1s or more")
    return seconds


def options_from_args(args: argparse.Namespace) -> tuple[list[str], RecordOptions]:
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if argv and args.pid is not None:
        raise UsageError("give either a command or --pid, not both", "drop one of them")
    if not argv and args.pid is None:
        raise UsageError(
            "nothing to record", "give a command after `--` (record -- ./server) or --pid PID"
        )
    work = args.work_file
    # A FIFO or a device is never read (the sampler does not wait on one): refused up front.
    odd = work is not None and work.exists() and not work.is_file()
    if work is not None and (odd or not work.parent.is_dir()):
        what = (
            ("is a directory" if work.is_dir() else "is not a regular file (a FIFO or a device)")
            if odd
            else f"is in {work.parent}, which does not exist"
        )
        raise UsageError(
            f"--work-file {work} {what}",
            "pass the file the target writes its work counter to (it may not exist yet)",
        )
    url = getattr(args, "heap_profile", None)
    if url is not None:
        try:
            check_url(url)
        except SourceError as exc:
            raise UsageError(f"--heap-profile: {exc.message}", exc.hint) from None
    options = RecordOptions(
        store_path=default_store_path(args.store),
        interval_s=args.interval,
        duration_s=args.duration,
        name=args.name,
        limit_bytes=args.limit,
        children=args.children,
        work_file=args.work_file,
        malloc_stats=getattr(args, "malloc_stats", False),
        heap_profile=url,
        heap_profile_every_s=getattr(args, "heap_profile_every", 5.0),
        pid=args.pid,
        quiet=args.quiet,
    )
    return argv, options


class RecordCommand:
    """Record a process's memory (RSS, PSS, USS, anon, swap, heap), threads, fds, cgroup usage
    and CPU time into the store, until it exits, --duration passes, or Ctrl-C.

      memsleuth record -- ./server --port 8080
      memsleuth record --pid 4242 --duration 10m

    The run is always saved. Exits with the command's own status when it fails (128 + N when
    signal N killed it: 137 for SIGKILL), else 0, also when --duration or Ctrl-C ended it.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        add_record_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        argv, options = options_from_args(args)
        return record_command(argv, options)
