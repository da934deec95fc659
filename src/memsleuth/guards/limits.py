"""Human-written limits for the guards: sizes ("1.5GiB"), windows ("5min") and growth rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from memsleuth.errors import MemsleuthError


class GuardError(MemsleuthError, ValueError):
    """A guard was configured with something that cannot work (a bad size, policy or window)."""


# Binary units are powers of 1024 and SI units powers of 1000, as the names say: "50MB" is
# 50,000,000 bytes and "50MiB" is 52,428,800. Seed 003's "50MB" meant MiB; write MiB for that.
_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}
_DURATION_UNITS: dict[str, float] = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str) -> int:
    """Bytes from an int or a string like "1.5GiB", "50MiB", "512k", "100MB" (SI) or "4096"."""
    if isinstance(value, bool):
        raise GuardError(f"not a size: {value!r}", "give bytes as an int or a string like '50MiB'")
    if isinstance(value, int | float):
        if value < 0:
            raise GuardError(f"negative size: {value!r}", "sizes are >= 0 bytes")
        return int(value)
    match = _QUANTITY.match(value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise GuardError(
            f"not a size: {value!r}",
            "write a number and a unit: B, KiB, MiB, GiB, TiB (x1024) or KB, MB, GB, TB (x1000)",
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(value: int | float | str) -> float:
    """Seconds from a number or a string like "5min", "30s", "500ms", "2h", "1d"."""
    if isinstance(value, bool):
        raise GuardError(f"not a duration: {value!r}", "give seconds or a string like '5min'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _QUANTITY.match(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _DURATION_UNITS:
            raise GuardError(
                f"not a duration: {value!r}", "write a number and a unit: ms, s, min, h or d"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    if seconds <= 0:
        raise GuardError(f"duration must be positive: {value!r}", "use e.g. '30s' or '5min'")
    return seconds


@dataclass(frozen=True, slots=True)
class GrowthRule:
    """Fire when memory grew by more than `bytes` within the last `window_s` seconds."""

    bytes: int
    window_s: float

    def __str__(self) -> str:
        return f"+{format_bytes(self.bytes)} in {self.window_s:g}s"


def parse_growth(value: str | GrowthRule) -> GrowthRule:
    """A growth rule from "50MiB/5min" (seed 003's rule: RSS +50 MB in 5 minutes)."""
    if isinstance(value, GrowthRule):
        return value
    size, sep, window = value.partition("/")
    if not sep:
        raise GuardError(f"not a growth rule: {value!r}", "write SIZE/WINDOW, e.g. '50MiB/5min'")
    rule = GrowthRule(parse_size(size), parse_duration(window))
    if rule.bytes <= 0:
        raise GuardError(f"growth must be positive: {value!r}", "e.g. '50MiB/5min'")
    return rule


def resolve_limit(value: int | float | str | None, total_bytes: int | None) -> int | None:
    """A limit in bytes: a size, or "90%" of `total_bytes` (the cgroup limit, else physical RAM)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().endswith("%"):
        if total_bytes is None:
            raise GuardError(
                f"a percentage limit ({value!r}) needs a known total",
                "no cgroup memory limit or RAM size was found: give the limit in bytes",
            )
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            raise GuardError(f"not a percentage: {value!r}", "e.g. '90%'") from None
        if not 0 < percent <= 100:
            raise GuardError(f"percentage out of range: {value!r}", "use 0% < limit <= 100%")
        return int(total_bytes * percent / 100)
    return parse_size(value)


def format_bytes(n: float) -> str:
    """'1.5 MiB': for log lines."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return f"{sign}{n:.1f} GiB"  # pragma: no cover - loop always returns
