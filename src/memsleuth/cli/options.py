"""Options shared by several subcommands: the store, the run, and argparse types that turn a
value into a usage error the way every other option does."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from memsleuth.errors import StoreError
from memsleuth.model import Run
from memsleuth.store import Store, default_store_path
from memsleuth.units import parse_duration, parse_size

T = TypeVar("T")


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="the store file (default: $MEMSLEUTH_STORE or ./memsleuth.db)",
    )


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", nargs="?", metavar="RUN", help="run id or name (default: the newest run)"
    )


def open_store(args: argparse.Namespace, *, readonly: bool = True) -> Store:
    return Store(default_store_path(args.store), readonly=readonly)


def find_run(store: Store, ref: str | None) -> Run:
    """The run RUN names: a number is a run id first, and a name when no run has that id (a
    run named `123` could not be picked at all)."""
    try:
        return store.get_run(ref)
    except StoreError:
        if ref is None or not ref.isdigit():
            raise
        named = [r for r in store.list_runs() if r.name == ref]
        if not named:
            raise
        return named[-1]  # the newest of that name, as for any other name


def parsed(kind: str, parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type=` that turns ValueError into a clean usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = kind
    return convert


size_arg = parsed("size", parse_size)
duration_arg = parsed("duration", parse_duration)


def output_path(text: str) -> Path | None:
    """`-o FILE`; `-` is standard output, as for most Unix tools. An empty path is refused:
    Path("") is the current directory ("cannot write /home/me: Is a directory")."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (use -o FILE, or -o - for stdout)")
    return None if text == "-" else Path(text)


def positive_seconds(text: str) -> float:
    """A duration past zero: seconds, or with a unit as --duration takes them (`--until 40s`
    had been refused: "not a number of seconds")."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than zero seconds: {text!r}")
    return value


def _whole(text: str, least: int, not_whole: str, too_low: str) -> int:
    """A whole number of at least `least`; the messages are formatted with the text as `t`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(not_whole.format(t=text)) from None
    if value < least:
        raise argparse.ArgumentTypeError(too_low.format(t=text))
    return value


def whole_number(least: int) -> Callable[[str], int]:
    """An argparse `type=`: a whole number of at least `least` (int() alone takes -1)."""

    def convert(text: str) -> int:
        return _whole(
            text, least, "not a whole number: {t!r}", f"must be at least {least}: {{t!r}}"
        )

    convert.__name__ = f"whole number from {least}"
    return convert


def pid_arg(text: str) -> int:
    """A process id: a whole number above zero (psutil refuses the rest with a ValueError)."""
    return _whole(text, 1, "not a pid: {t!r}", "not a pid: {t!r} (pids are 1 and above)")


positive_int = whole_number(1)
count_arg = whole_number(0)


def port_arg(text: str) -> int:
    """A TCP port to listen on: 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r} (use 0 to 65535)")
    return value


def positive_duration(text: str) -> float:
    value = duration_arg(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than zero: {text!r}")
    return value


def duration_at_least(least_s: float, why: str) -> Callable[[str], float]:
    """An argparse `type=`: a duration of at least `least_s` seconds; `why` says what a
    shorter one would do."""
    least = f"{least_s * 1000:.0f}ms" if least_s < 1 else f"{least_s:g}s"

    def convert(text: str) -> float:
        value = duration_arg(text)
        if value < least_s:
            raise argparse.ArgumentTypeError(f"must be at least {least} ({why}): {text!r}")
        return value

    convert.__name__ = "duration"
    return convert


# Reading /proc takes ~45 us a sample; below 10 ms the recorder would spin a whole core and fill
# the store with samples no verdict needs (its bins hold many samples each).
MIN_INTERVAL_S = 0.01
interval_arg = duration_at_least(MIN_INTERVAL_S, "a faster sampler takes a whole core")


def limit_arg(text: str) -> int:
    """A memory limit: a size above zero (0 would read as "no limit given" and be ignored)."""
    value = size_arg(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a memory limit must be at least 1 byte: {text!r}")
    return value


def finite_number(least: float, what: str, example: str) -> Callable[[str], float]:
    """A parser of finite numbers from `least` (nan and inf are refused: a bound that never
    or always holds), saying `not {what}: ... (e.g. {example})` otherwise."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= least):
            raise argparse.ArgumentTypeError(f"not {what}: {text!r} (e.g. {example})")
        return value

    return parse


# How many times slower is too slow.
ratio_arg = finite_number(1.0, "a ratio of at least 1", "1.5")
