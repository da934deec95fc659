"""A fleet scan as the command line runs it: a progress bar on stderr while it fetches and
judges, then an error when nothing could be judged, else a warning for each part that could not."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from memsleuth.errors import SourceError

if TYPE_CHECKING:
    from memsleuth.fleet.scan import BatchFailure, ScanResult, ScanSpec
    from memsleuth.sources.prometheus import PromConfig


def scan_warnings(result: ScanResult) -> list[str]:
    """The warnings a scan that judged something ends with; a SourceError, saying why once,
    when it judged nothing."""
    # Series that had samples and could not be judged (one of NaN alone has none to judge).
    failed = [e for e in result.entries if e.verdict is None and e.error and e.samples]
    why = ""
    if failed:
        from memsleuth.fleet.report import label_text

        why = (
            f"{len(failed)} series could not be judged; the first, "
            f"{label_text(failed[0])}: {failed[0].error}"
        )
    if not result.judged:  # the reason is said once, as the error (not also a warning)
        if failed and not result.failures:
            crashed = any((e.error or "").startswith("judge failed") for e in failed)
            raise SourceError(
                f"nothing could be judged: {why}",
                "check that --query gives memory in bytes"
                + ("; -v shows each failure's traceback" if crashed else ""),
            )
        if result.failures:
            first = min(result.failures, key=lambda f: f.index)
            many = len(result.failures)
            head = f"{many} batches failed; the first: " if many > 1 else ""
            raise SourceError(f"nothing could be judged: {head}{first.message}", first.hint)
        raise SourceError(
            "nothing could be judged: the query returned no usable samples",
            "check --query, --range and --end in the Prometheus UI",
        )
    warnings = [why] if failed else []
    short = _short_of_range(result)
    if short:
        warnings.append(short)
    for said, batches in result.unrefined.items():
        warnings.append(f"{said} (in {'one batch' if batches == 1 else f'{batches} batches'})")
    # One line a reason: a server that went away had given 52 lines, one a batch.
    by_message: dict[str, list[BatchFailure]] = {}
    for f in sorted(result.failures, key=lambda f: f.index):
        by_message.setdefault(f.message, []).append(f)
    for message, group in by_message.items():
        series = sum(f.series for f in group)
        which = (
            f"batch {group[0].index + 1} of {result.batches}"
            if len(group) == 1
            else f"{len(group)} batches of {result.batches}"
        )
        warnings.append(f"{which} ({series} series) failed: {message}")
    return warnings


def _short_of_range(result: ScanResult) -> str | None:
    """A warning when most series hold under half the points the range would give: the step
    was chosen for the range, and a 365-day scan of 7 days of data had judged 3 means a
    series, `inconclusive` for every leak, without a word."""
    from memsleuth.fleet.scan import JUDGE_POINTS

    spec = result.spec
    points = sorted(e.samples for e in result.judged)
    if spec is None or not spec.aggregate or not points:
        return None
    held = points[len(points) // 2]
    if held >= JUDGE_POINTS / 2:
        return None
    from memsleuth.units import format_duration

    return (
        f"most series have {held} of the {JUDGE_POINTS} points this --range gives (means of "
        f"{format_duration(spec.step_s)}): they hold less history than it asks for, and a "
        "narrower --range judges them on finer steps"
    )


def unjudged(result: ScanResult) -> SourceError | None:
    """The error a scan exits with when it judged part of the fleet and found no problem
    there: exit 0 had passed a CI gate with 20 of 264 series judged."""
    if not result.failures:
        return None
    lost = sum(f.series for f in result.failures)
    return SourceError(
        f"the scan is incomplete: {lost} series in {len(result.failures)} batches were not "
        f"judged, and the {len(result.judged)} judged show no problem",
        "see the warnings above; a slow server may need a larger --timeout or a smaller "
        "--batch-size",
    )


def scan_on_console(spec: ScanSpec, config: PromConfig) -> ScanResult:
    """Fetch and judge with a progress bar on stderr, then say what could not be judged: a
    SourceError when nothing could, else a warning each."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from memsleuth.fleet.scan import scan
    from memsleuth.sources.prometheus import PrometheusClient

    # One connection per fetching thread, and one for this thread's floor queries: a pool any
    # smaller logs "Connection pool is full, discarding connection" on stderr.
    client = PrometheusClient(config, pool_size=spec.concurrency + 1)
    err = Console(stderr=True)
    with Progress(
        TextColumn("fetching and judging"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        # Only on a terminal: into a pipe or a log it left a blank line before any error.
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("scan", total=None)
        try:
            result = scan(
                client,
                spec,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        finally:
            client.close()
    for warning in scan_warnings(result):
        print(f"warning: {warning}", file=sys.stderr)
    return result
