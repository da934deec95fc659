"""The command line: a lazy registry of subcommands, one module each, and the error wrapper."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn, Protocol

from memsleuth import __version__
from memsleuth.cli.output import guarded_stdout
from memsleuth.errors import ExitCode, MemsleuthError, Terminated, stopped_by

# name -> (module, class): imported only when that subcommand runs, so --help stays instant.
COMMANDS: dict[str, tuple[str, str]] = {
    "record": ("memsleuth.cli.record", "RecordCommand"),
    "run": ("memsleuth.cli.run", "RunCommand"),
    "runs": ("memsleuth.cli.runs", "RunsCommand"),
    "analyze": ("memsleuth.cli.analyze", "AnalyzeCommand"),
    "report": ("memsleuth.cli.report", "ReportCommand"),
    "export": ("memsleuth.cli.export", "ExportCommand"),
    "exporter": ("memsleuth.cli.exporter", "ExporterCommand"),
    "fleet": ("memsleuth.cli.fleet", "FleetCommand"),
    "rules": ("memsleuth.cli.rules", "RulesCommand"),
    "soak": ("memsleuth.cli.soak", "SoakCommand"),
}
SUMMARIES: dict[str, str] = {
    "record": "record a process's memory over time into the store",
    "run": "record a Python program with an in-process probe that names what grows",
    "runs": "list the recorded runs",
    "analyze": "judge a run: leak, plateau, stable, step, thread-leak, fd-leak ...",
    "report": "render a run as terminal text, JSON, Markdown or one HTML page",
    "export": "write a run's samples as CSV or JSON lines",
    "exporter": "serve per-process memory and leak judgements as Prometheus metrics",
    "fleet": "judge every memory series in a Prometheus and rank them, worst first",
    "rules": "print Prometheus recording and alerting rules for memory leaks",
    "soak": "drive a server or run a command N times; fail when memory or latency grows",
}


class Command(Protocol):
    """A subcommand: its class docstring is the --help text."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


DASHDASH = "expected a value, not '--'"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors read like every other: one `error:` line and a `hint:`."""

    # The subcommand on the command line: its --help is the one to read, also for an option
    # the top-level parser found unknown (the hint had named `memsleuth --help`).
    help_for: str | None = None
    # `memsleuth --store x.db runs`: what came before the subcommand that is not one of the
    # top-level options, and the command line with it moved after ("invalid choice: 'x.db'"
    # had been all it said).
    moved: str | None = None

    def error(self, message: str) -> NoReturn:
        prog = self.help_for or self.prog
        hint = f"`{prog} --help` lists the options and their forms"
        if message.endswith("expected one argument"):
            # `--duration -5m`: argparse reads a value that starts with "-" as an option.
            hint = "give it a value; one that starts with '-' is read as an option (--opt=VALUE)"
        elif message.endswith(DASHDASH):
            hint = "give it a value: `--` alone ends the options, it is no option's value"
        if self.moved is not None:
            hint = f"options go after the subcommand: `{self.moved}`"
        self.exit(ExitCode.USAGE, f"error: {message}\nhint: {hint}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        # `--until=--`: argparse drops the "--" as the end of options and stores an empty
        # list, never calling the option's type, so no check ran (a traceback later, or a
        # target started and then killed). Any single-valued option holding a list is one.
        for action in self._actions:
            if not action.option_strings or action.nargs not in (None, argparse.OPTIONAL):
                continue
            value = getattr(parsed, action.dest, None)
            if isinstance(action, argparse._AppendAction):  # `--pid=-- --pid 5`: [[], 5]
                given = value if isinstance(value, list) else []
            elif isinstance(action, argparse._StoreAction):
                given = [value]
            else:
                continue
            if any(isinstance(v, list) for v in given):
                self.error(f"argument {'/'.join(action.option_strings)}: {DASHDASH}")
        return parsed, extras


def _load(name: str) -> Command:
    module, cls = COMMANDS[name]
    command: Command = getattr(importlib.import_module(module), cls)()
    return command


def build_parser(only: str | None = None) -> _Parser:
    parser = _Parser(
        prog="memsleuth",
        description="Find out why a process's memory grows, and keep it from growing again.",
    )
    if only:
        parser.help_for = f"memsleuth {only}"
    parser.add_argument("--version", action="version", version=f"memsleuth {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details; tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=SUMMARIES[name], add_help=False)
            continue
        command = _load(name)
        p = sub.add_parser(
            name,
            help=SUMMARIES[name],
            description=(type(command).__doc__ or "").strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.prepare_parser(p)
        # After the subcommand too (`memsleuth analyze -v 1`); SUPPRESS keeps the top-level one.
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
        p.set_defaults(_command=command)
    return parser


# What may come before the subcommand.
_TOP_LEVEL = frozenset({"-v", "--verbose", "-h", "--help", "--version"})


def _chosen(argv: Sequence[str]) -> str | None:
    for a in argv:
        if a == "--":
            return None
        if a in COMMANDS:
            return a
    return None


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
    chosen = _chosen(args_list)
    parser = build_parser(only=chosen or "")
    if chosen is not None:
        at = args_list.index(chosen)
        before = [a for a in args_list[:at] if a not in _TOP_LEVEL]
        if before:
            kept = [a for a in args_list[:at] if a in _TOP_LEVEL]
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
