"""The command line: main() runs one subcommand (cli.parser finds it) and maps what it raises
to an exit code; console_main() is the installed script."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from memsleuth.cli.output import guarded_stdout
from memsleuth.cli.parser import TOP_LEVEL, Command, build_parser, chosen_command
from memsleuth.errors import ExitCode, MemsleuthError, Terminated, stopped_by


def main(argv: Sequence[str] | None = None) -> int:
    """Run memsleuth with argv; return the exit code (never raises MemsleuthError)."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as exc:
        # Wherever it comes: also while the parser is built (it imports the subcommand's
        # modules, ~0.1 s) or parses, which had ended in a traceback and exit 1.
        what, code = stopped_by(exc)
        print(f"error: {what}", file=sys.stderr)
        print("hint: nothing already saved was lost; run the command again", file=sys.stderr)
        return code


def _main(args_list: list[str]) -> int:
    chosen = chosen_command(args_list)
    parser = build_parser(only=chosen or "")
    if chosen is not None:
        at = args_list.index(chosen)
        before = [a for a in args_list[:at] if a not in TOP_LEVEL]
        if before:
            kept = [a for a in args_list[:at] if a in TOP_LEVEL]
            parser.moved = shlex.join(["memsleuth", *kept, chosen, *before, *args_list[at + 1 :]])
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="memsleuth: %(levelname)s: %(name)s: %(message)s",
    )
    command: Command | None = getattr(args, "_command", None)
    if command is None:
        parser.print_help()
        return ExitCode.USAGE
    try:
        with guarded_stdout():
            return command.run(args)
    except MemsleuthError as exc:
        if args.verbose:
            logging.getLogger(__name__).exception("error")
        print(f"error: {_printable(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {_printable(exc.hint)}", file=sys.stderr)
        return int(exc.exit_code)


def _printable(text: str) -> str:
    """An error names what the user gave (a run's name, a path): its control characters are
    escaped, so that a name holding ANSI sequences cannot drive the terminal."""
    if text.isprintable():
        return text
    from memsleuth.reports.terminal import printable

    return printable(text)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated  # a CI timeout's SIGTERM cleans up as Ctrl-C does


def _hold_standard_fds() -> None:
    """Point a closed stdin, stdout or stderr at /dev/null. Left closed, the next file
    memsleuth opens takes its number, and a target it starts writes its output into that
    file; and Python's print() to a stderr it left as None goes to stdout instead (`record
    2>&-` had printed its closing line into the stdout a script reads). A closed stdout is
    still reported by commands that write to it (`cli.output`)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def console_main() -> None:
    # Commands that must end otherwise (record saves and stops its target, the exporter
    # stops serving) put their own SIGTERM handler in place while they run.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        _hold_standard_fds()
        code = main()
    except KeyboardInterrupt as exc:  # in the instants before main() takes over
        code = stopped_by(exc)[1]
    # From here a signal ends the process as signals do (128 + N to a shell), not in a
    # traceback from the interpreter's exit.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(code)
