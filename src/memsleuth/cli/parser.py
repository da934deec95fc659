"""The command line's parser: the lazy registry of subcommands (each imported only when it is
the one that runs) and argparse made to fail as every other error does."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import NoReturn, Protocol

from memsleuth import __version__
from memsleuth.errors import ExitCode

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


class Parser(argparse.ArgumentParser):
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


def build_parser(only: str | None = None) -> Parser:
    parser = Parser(
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
TOP_LEVEL = frozenset({"-v", "--verbose", "-h", "--help", "--version"})


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand argv names (before any `--`), or None."""
    for a in argv:
        if a == "--":
            return None
        if a in COMMANDS:
            return a
    return None
