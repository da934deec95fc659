"""Errors a user can cause, each with a hint, and the exit codes the CLI maps them to."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What `memsleuth` exits with: a found problem differs from a crash and from bad usage."""

    OK = 0  # nothing wrong
    ERR = 1  # an error: bad input, dead pid, corrupt store, unreachable server
    USAGE = 2  # a bad flag or argument (argparse's own code)
    PROBLEM = 3  # the analysis found a problem: leak, thread- task- or fd-leak, soak failure
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM): a CI job's timeout, `kill`


class MemsleuthError(Exception):
    """An error the user can act on: `message` says what went wrong, `hint` what to do."""

    exit_code: ExitCode = ExitCode.ERR

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so that the same clean-up runs."""


def stopped_by(signal: KeyboardInterrupt) -> tuple[str, ExitCode]:
    """What stopped a command, in words, and the exit code for it."""
    if isinstance(signal, Terminated):
        return "terminated (SIGTERM)", ExitCode.TERMINATED
    return "interrupted", ExitCode.INTERRUPTED


class StoppedError(MemsleuthError):
    """Ctrl-C or SIGTERM stopped a command after it had kept what it had done so far."""

    def __init__(self, message: str, hint: str, *, by: KeyboardInterrupt) -> None:
        super().__init__(message, hint)
        self.exit_code = stopped_by(by)[1]


class UsageError(MemsleuthError):
    """The command line asks for something that cannot be done."""

    exit_code = ExitCode.USAGE


class StoreError(MemsleuthError):
    """The store cannot be opened, read or written: corrupt, foreign, newer, read-only."""


class StoreWriteError(StoreError):
    """A write the store cannot take now but may take later: its disk is full, another
    process holds its write lock, its disk failed or went read-only. `remedy` says what
    frees it; a recorder keeps its samples and tries again."""

    def __init__(self, message: str, hint: str, *, remedy: str) -> None:
        super().__init__(message, hint)
        self.remedy = remedy


class TargetError(MemsleuthError):
    """The watched process is gone, foreign, or cannot be started."""


class SourceError(MemsleuthError):
    """A data source (Prometheus, a profile, a server) failed or answered badly."""
