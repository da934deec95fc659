"""A recording as the CLI runs it: the recorder with its live line, then what is said as it ends
(processes left running, a work file never read, samples not stored) and the exit code."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from memsleuth.errors import ExitCode, StoreWriteError
from memsleuth.liveline import LiveLine
from memsleuth.model import STOPPED_NOTES, Run, RunKind
from memsleuth.process_tree import still_running
from memsleuth.recorder import STORE_FAILED, Recorder, RecordOptions, RecordResult
from memsleuth.store import Store, run_ref
from memsleuth.write_buffer import sample_words, say


def record_command(
    argv: Sequence[str],
    options: RecordOptions,
    *,
    kind: RunKind = "record",
    env_for_run: Callable[[Run], dict[str, str]] | None = None,
) -> int:
    """Record, print where the run went, and return the exit code for the CLI: the target's
    own status when it failed (as time(1) does), so scripts and CI see the failure."""
    live = None if options.quiet else LiveLine()
    with Store(options.store_path) as store:
        try:
            result = Recorder(store, options, on_sample=live).record(
                argv, kind=kind, env_for_run=env_for_run
            )
        finally:
            if live is not None:
                live.close()
        worked = (
            options.work_file is None
            or result.stored == 0
            or store.has_values(result.run_id, "work")
        )
    if result.survivors:
        # Said even with --quiet: left running, and perhaps what the user meant to watch (a
        # daemon, a child sent to the background).
        pid = result.survivors[0][0]
        say(
            f"memsleuth: the target exited; {still_running(result.survivors)} (not stopped: "
            f"`memsleuth record --pid {pid}` watches one)"
        )
    if not worked:
        # Said even with --quiet: the growth per unit of work asked for is not there.
        say(
            f"memsleuth: warning: the work file {options.work_file} was never read (missing, "
            "not a regular file, or not a number): no growth per unit of work"
        )
    failure = result.store_failure
    lost = result.unstored > 0 or result.reason == STORE_FAILED
    if lost and failure is not None and options.pid is None:
        # Said even with --quiet; the exit status stays the command's own.
        unstored = sample_words(result.unstored)
        say(f"memsleuth: warning: {unstored} could not be stored: {failure.message}")
    line = closing_line(result, options.store_path, options.quiet)
    if line is not None:
        say(line)
    if lost and failure is not None and options.pid is not None:
        what = f"{sample_words(result.unstored)} could not be stored" if result.unstored else ""
        raise StoreWriteError(
            f"{what or 'recording stopped early'}: {failure.message}",
            f"{failure.remedy}, then record again (process {options.pid} goes on running)",
            remedy=failure.remedy,
        )
    if result.target_failed and result.exit_status is not None:
        return result.exit_status
    return ExitCode.OK


def closing_line(result: RecordResult, store_path: Path, quiet: bool) -> str | None:
    """The line `record` ends with: where the run went, and how the target ended. Said even
    with --quiet when the target failed (a non-zero exit needs its reason, and the run is not
    lost) or left no sample (then with nothing to see: `analyze` of it is an error)."""
    see = f"; see: memsleuth analyze {run_ref(store_path, result.run_id)}"
    if result.samples == 0:
        see = "; it ended before its first sample: nothing to analyze"
    elif result.stored == 0:
        see = "; the store took none of its samples: nothing to analyze"
    samples = sample_words(result.stored)
    if result.target_failed and result.exit_status is not None:
        return f"memsleuth: run {result.run_id} saved ({samples}); {_target_failure(result)}{see}"
    if quiet and result.stored and not result.unstored:
        return None
    status = "" if result.exit_status is None else f" ({_status_words(result)})"
    return f"memsleuth: run {result.run_id}: {samples}, {result.reason}{status}{see}"


def _target_failure(result: RecordResult) -> str:
    if result.killed_by is None:
        return f"the target exited with status {result.exit_status}, and so does memsleuth"
    try:
        name = signal.Signals(result.killed_by).name
    except ValueError:
        name = f"signal {result.killed_by}"
    return (
        f"the target was killed by {name}, so memsleuth exits {result.exit_status} "
        f"(128 + {result.killed_by}, as a shell does)"
    )


def _status_words(result: RecordResult) -> str:
    """ "exit status 143" alone, after --duration, had read as the target failing."""
    if result.reason.startswith(STOPPED_NOTES):
        return f"stopped by memsleuth: exit status {result.exit_status}"
    return f"exit status {result.exit_status}"
