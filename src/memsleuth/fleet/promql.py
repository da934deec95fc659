"""The PromQL a fleet scan sends: selectors parsed and narrowed into batches, each step's raw
samples reduced to an aggregate, and the step a range is fetched at."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from memsleuth.fleet.judging import Labels

# The resolution of a scan when --step is not given: a minute, as scrapes usually are.
BASE_STEP_S = 60.0
# The verdict reduces a series to at most 120 bins (analysis/trend.py). Up to a day at a minute
# (12 raw samples a bin) the raw samples are fetched. A longer range is reduced by Prometheus
# before it answers: each step's raw samples to their mean (and, to confirm a problem, their
# minimum), the aggregates Thanos and Mimir keep in downsampled blocks, 2.5x cheaper than a
# quantile. Two means a bin then: more would only be averaged again by the binning, and
# every point costs JSON to parse (7 days at 2 a bin: 85 MB for 10,000 series, not 413 MB).
RAW_POINTS = 1440
JUDGE_POINTS = 120
MEAN = "avg_over_time({})"
FLOOR = "min_over_time({})"
LATEST = "max_over_time({})"  # in a step that holds a restart: the new start time, not a mean

_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.S)
_SIMPLE_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
# PromQL's string literals: double- or single-quoted with backslash escapes, or raw in backticks.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.S)


def plan_step(range_s: float, step_s: float | None) -> tuple[float, bool]:
    """(step, aggregate): an explicit step as is; else a minute up to a day, then whole
    minutes of per-step means, JUDGE_POINTS a series."""
    if step_s is not None:
        return step_s, False
    if range_s <= RAW_POINTS * BASE_STEP_S:
        return BASE_STEP_S, False
    return math.ceil(range_s / BASE_STEP_S / JUDGE_POINTS) * BASE_STEP_S, True


def step_expr(
    template: str, query: str, step_s: float, window_s: float | None = None
) -> str | None:
    """`template` over each step's raw samples (or the last `window_s`); None when the labels
    would collide.

    A selector becomes a range selector; another expression a subquery at BASE_STEP_S. The
    `*_over_time` functions drop the metric name, so a selector without one (`{job="x"}`, which
    may match several metrics) is not aggregated.
    """
    window = f"{window_s or step_s:.0f}s"
    parsed = parse_selector(query)
    if parsed is None:
        return template.format(f"({query})[{window}:{BASE_STEP_S:.0f}s]")
    if not parsed[0]:
        return None
    return template.format(f"{query.strip()}[{window}]")


def matchers(labels: Iterable[tuple[str, str]], sep: str = ", ") -> str:
    """`k="v"` for each label, values quoted and escaped as PromQL strings."""
    return sep.join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in labels)


def exact_selector(name: str, labels: Labels) -> str:
    """A selector for one series by all of its labels (values escaped as PromQL strings)."""
    inner = matchers(((k, v) for k, v in labels if k != "__name__"), sep=",")
    return f"{name}{{{inner}}}"


def parse_selector(query: str) -> tuple[str, str] | None:
    """(metric name, matchers) of a plain selector like `m{job="x"}`, or None for expressions."""
    m = _SELECTOR.match(query)
    if not m or not (m.group(1) or m.group(2)):
        return None
    name, inner = m.group(1) or "", (m.group(2) or "").strip()
    if name and name in {"sum", "avg", "min", "max", "count", "rate", "by", "without"}:
        return None
    # Braces inside quoted values are fine; braces outside them are another expression
    # (`m{a="x"} + m{b="y"}` matches the pattern with `a="x"} + m{b="y"` inside).
    unquoted = _QUOTED.sub("", inner)
    if "{" in unquoted or "}" in unquoted or '"' in unquoted or "'" in unquoted:
        return None
    return name, inner.rstrip(", ")


def _promql_regex_string(values: Sequence[str]) -> str:
    alternatives = "|".join(sorted(re.escape(v) for v in values))
    if "`" not in alternatives:
        return f"`{alternatives}`"  # a raw string: no second level of escaping
    # A double-quoted string with Go's escapes, which JSON's are: a raw newline in a label
    # value (with a backtick beside it) had left the string unterminated, failing the batch.
    return json.dumps(alternatives, ensure_ascii=False)


def plan_batches(query: str, listed: Sequence[Labels], batch_size: int) -> list[tuple[str, int]]:
    """(query, series count) per batch: the selector narrowed by the most selective label."""
    parsed = parse_selector(query)
    if parsed is None or not listed:
        return [(query, len(listed))]
    name, inner = parsed
    values: dict[str, Counter[str]] = {}
    for labels in listed:
        for k, v in labels:
            values.setdefault(k, Counter())[v] += 1
    keys = [k for k in values if k != "__name__"] or list(values)
    key = max(keys, key=lambda k: (len(values[k]), k == "instance"))
    per_value = Counter(dict(labels).get(key, "") for labels in listed)
    batches: list[tuple[list[str], int]] = []
    current: list[str] = []
    count = 0
    for value, n in sorted(per_value.items()):
        if current and count + n > batch_size:
            batches.append((current, count))
            current, count = [], 0
        current.append(value)
        count += n
    if current:
        batches.append((current, count))
    out = []
    for vals, n in batches:
        matcher = f"{key}=~{_promql_regex_string(vals)}"
        matchers = f"{inner}, {matcher}" if inner else matcher
        out.append((f"{name}{{{matchers}}}", n))
    return out
