"""The words every format shares: what a verdict means, how severe it is, and its key numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from memsleuth import units
from memsleuth.model import Culprit, Run, Verdict, VerdictName

Severity = Literal["problem", "warning", "info", "ok"]

MEANINGS: dict[VerdictName, str] = {
    "leak": "memory grows without bound",
    "plateau": "memory grows to a ceiling and no further (bounded)",
    # Not "flat": said of a GC sawtooth, and beside a rate of memory given back.
    "stable": "memory is not growing",
    "step": "memory jumped, then stayed flat",
    "thread-leak": "the number of threads keeps growing",
    "task-leak": "the number of pending tasks (asyncio tasks, goroutines) keeps growing",
    "fd-leak": "the number of open file descriptors keeps growing",
    # "Mostly": live memory may grow too, by under a quarter of RSS's growth ("RSS grows while
    # live allocations do not" had headed "memory in use grew +1.07 GiB/h").
    "fragmentation": "RSS grows mostly in memory malloc holds free (fragmentation)",
    "degradation": "latency grows while memory stays flat",
    "inconclusive": "not enough data to decide yet",
}

_SEVERITY: dict[VerdictName, Severity] = {
    "leak": "problem",
    "thread-leak": "problem",
    "task-leak": "problem",
    "fd-leak": "problem",
    "fragmentation": "problem",
    "degradation": "problem",
    "step": "warning",
    "inconclusive": "warning",
    "plateau": "info",
    "stable": "ok",
}


def exit_status(run: Run) -> str | None:
    """The target's exit status, and who ended it when memsleuth did (at --duration or on
    Ctrl-C): "exit status 143" alone had read as the target failing."""
    if run.exit_status is None:
        return None
    return (
        f"{run.exit_status} (stopped by memsleuth)"
        if run.stopped_by_memsleuth
        else str(run.exit_status)
    )


def _rose_since(verdict: Verdict) -> bool:
    ci = verdict.growth_ci_bytes_per_hour
    return ci is not None and ci[0] > 0


def growth_rate(verdict: Verdict) -> str:
    """The growth rate with the digits its interval needed, wherever it is shown: the headline
    had said "+13.5 GiB/h" beside "95% CI +13.45 – +13.47 GiB/h"."""
    if verdict.growth_bytes_per_hour is None:
        return units.MISSING
    rate, _ = units.format_estimate(
        verdict.growth_bytes_per_hour, verdict.growth_ci_bytes_per_hour, "/h"
    )
    return rate


def severity(verdict: Verdict) -> Severity:
    """problem (red), warning (amber), info (blue) or ok (green)."""
    return _SEVERITY.get(verdict.verdict, "warning")


def headline(verdict: Verdict) -> str:
    """One sentence: 'Memory grows without bound: +41.2 MiB/h; limit reached in 3.4 h'."""
    meaning = MEANINGS.get(verdict.verdict, verdict.verdict)
    if verdict.verdict == "leak" and verdict.cause == "backlog":
        meaning = "a backlog grows without bound (a queue filled faster than it is drained)"
    if verdict.verdict == "leak" and verdict.cause == "in-slack":
        what = (
            "the heap in use grows"
            if verdict.metric == "heap_inuse_bytes"
            else "Python objects grow"
        )
        meaning = f"{what} without bound in memory already held (RSS follows once it is used)"
    if verdict.verdict == "plateau" and verdict.cause == "bounded-fill":
        # Still filling: "grows to a ceiling and no further" had stood beside +14.9 GiB/h.
        meaning = "memory fills a bounded cache or queue, and levels off at its bound"
    if verdict.verdict == "plateau" and verdict.cause == "copy-on-write":
        meaning = "memory shared with another process becomes private (copy-on-write), up to RSS"
    if verdict.cause == "recycled-workers":
        meaning = "memory stays bounded because the processes that grow are replaced"
    # Named for the past, still rising since (a `more_time_s` on a step or plateau): "Memory
    # jumped, then stayed flat" had headed "+29.3 MiB/h (95% CI +28.8 – +29.8) … still rising".
    rising = verdict.verdict in ("step", "plateau") and verdict.more_time_s is not None
    if rising:
        past = "jumped" if verdict.verdict == "step" else "grew"
        meaning = f"memory {past} and still rises, not yet told from a leak"
    elif verdict.verdict == "step" and _rose_since(verdict):
        # Rising since, by its interval, though under a leak's bars: "then stayed flat" had
        # headed "+42.1 MiB/h (95% CI +21.1 – +60.9 MiB/h) since".
        meaning = "memory jumped, and has risen since, by less than a leak would show"
    parts = [meaning[:1].upper() + meaning[1:]]
    tail: list[str] = []
    # Each verdict quotes its own quantity: threads or fds for their leaks, none for a step or
    # a flat memory (an RSS rate had read "fds keep growing: 0 B/h", "jumped once, then stayed
    # flat: +198 MiB/h").
    if verdict.verdict == "plateau" and verdict.ceiling_bytes is not None:
        tail.append(f"ceiling {units.format_bytes(verdict.ceiling_bytes)}")
    elif verdict.verdict == "thread-leak" and verdict.thread_growth_per_hour is not None:
        tail.append(units.format_per_hour(verdict.thread_growth_per_hour, "threads"))
    elif verdict.verdict == "fd-leak" and verdict.fd_growth_per_hour is not None:
        tail.append(units.format_per_hour(verdict.fd_growth_per_hour, "fds"))
    elif verdict.verdict == "task-leak" and verdict.task_growth_per_hour is not None:
        tail.append(units.format_per_hour(verdict.task_growth_per_hour, verdict.task_unit))
    elif verdict.growth_bytes_per_hour is not None and verdict.verdict not in (
        "stable",
        "step",
        "degradation",
        "thread-leak",
        "task-leak",
        "fd-leak",
    ):
        tail.append(growth_rate(verdict))
    if verdict.time_to_limit_s is not None and math.isfinite(verdict.time_to_limit_s):
        left = verdict.time_to_limit_s
        tail.append(
            "at the limit" if left <= 0 else f"limit reached in {units.format_duration(left)}"
        )
    if (verdict.verdict == "inconclusive" or rising) and verdict.more_time_s is not None:
        tail.append(f"record {units.format_duration(verdict.more_time_s)} more")
    if verdict.verdict == "degradation" and verdict.latency_ratio is not None:
        tail.append(f"latency {units.format_ratio(verdict.latency_ratio)}")
    text = parts[0]
    if tail:
        text += ": " + "; ".join(tail)
    return text


@dataclass(frozen=True, slots=True)
class KeyNumber:
    """A labelled number for the verdict's summary: label, human value, optional detail."""

    label: str
    value: str
    detail: str = ""


# A judged column's name in the box, where its upper-cased name would not do.
_METRICS = {
    "rss_less_file_bytes": "RSS less mapped files",
    "rss_less_lazyfree_bytes": "RSS less lazily freed pages",
    "python_object_bytes": "Python objects",
    "heap_inuse_bytes": "heap in use",
}


def key_numbers(verdict: Verdict) -> tuple[KeyNumber, ...]:
    """The numbers worth showing for this verdict; absent ones are left out, not shown as n/a."""
    metric = _METRICS.get(verdict.metric) or verdict.metric.removesuffix("_bytes").upper()
    out: list[KeyNumber] = [
        KeyNumber("confidence", units.format_percent(verdict.confidence)),
    ]
    if verdict.growth_bytes_per_hour is not None:
        ci = verdict.growth_ci_bytes_per_hour
        _, shown_ci = units.format_estimate(verdict.growth_bytes_per_hour, ci, "/h")
        detail = f"95% CI {shown_ci}" if ci is not None else ""
        out.append(KeyNumber(f"{metric} growth", growth_rate(verdict), detail))
    if verdict.ceiling_bytes is not None:
        out.append(KeyNumber("ceiling", units.format_bytes(verdict.ceiling_bytes)))
    if verdict.time_to_limit_s is not None:
        limit = units.format_bytes(verdict.limit_bytes) if verdict.limit_bytes else ""
        out.append(
            KeyNumber(
                "time to limit",
                units.format_time_to_limit(verdict.time_to_limit_s),
                f"limit {limit}" if limit else "",
            )
        )
    elif verdict.limit_bytes:
        out.append(KeyNumber("memory limit", units.format_bytes(verdict.limit_bytes)))
    if verdict.warmup_end_s is not None:
        out.append(KeyNumber("warm-up ends", units.format_duration(verdict.warmup_end_s)))
    if verdict.growth_per_work is not None:
        out.append(KeyNumber("per unit of work", units.format_bytes(verdict.growth_per_work)))
    if verdict.latency_ratio is not None:
        out.append(
            KeyNumber("latency ratio", units.format_ratio(verdict.latency_ratio), "last / first")
        )
    # A count's rate only when it grows: a flat one is 0 (its level is in the evidence, "threads
    # flat (2)"), and "0 threads/h", "0 fds/h" had sat in every leak's box.
    if verdict.thread_growth_per_hour:
        out.append(
            KeyNumber("threads", units.format_per_hour(verdict.thread_growth_per_hour, "threads"))
        )
    if verdict.fd_growth_per_hour:
        out.append(KeyNumber("fds", units.format_per_hour(verdict.fd_growth_per_hour, "fds")))
    if verdict.task_growth_per_hour:
        unit = verdict.task_unit
        out.append(KeyNumber(unit, units.format_per_hour(verdict.task_growth_per_hour, unit)))
    if verdict.more_time_s is not None:
        out.append(KeyNumber("record more", units.format_duration(verdict.more_time_s)))
    if verdict.samples:
        out.append(
            KeyNumber(
                "samples", f"{verdict.samples:,}", f"over {units.format_duration(verdict.span_s)}"
            )
        )
    return tuple(out)


def culprit_size(culprit: Culprit) -> str:
    """What a culprit holds at the end: its bytes when known, else its last size in its unit."""
    if culprit.bytes_estimate is not None:
        return units.format_bytes(culprit.bytes_estimate)
    if culprit.points:
        return units.format_quantity(culprit.points[-1][1], culprit.unit)
    return units.MISSING


def overlapping_shares(verdict: Verdict) -> str | None:
    """Why shares add to more than the whole, when they do: two dicts keyed by the same strings
    had read 75% and 51%, and a reader had looked for the other quarter of a leak twice over."""
    total = sum(c.share for c in verdict.culprits if c.kind != "process")
    if total <= OVERLAP_SHOWN:
        return None
    return (
        f"Shares add to {units.format_percent(total)}: culprits can hold the same objects "
        "(each is sized with all it keeps alive)"
    )


# Shares add to more than this before the overlap is said (their rounding is not overlap).
OVERLAP_SHOWN = 1.05


def shown_culprits(verdict: Verdict, limit: int) -> tuple[tuple[Culprit, ...], int]:
    """The first `limit` culprits, in the analysis's ranking, and how many were left out."""
    shown = verdict.culprits[: max(limit, 0)]
    return shown, len(verdict.culprits) - len(shown)
