"""Human-written limits for the guards: sizes ("1.5GiB"), windows ("5min") and growth rules."""

from __future__ import annotations

from dataclasses import dataclass

from memsleuth import units
from memsleuth.errors import MemsleuthError


class GuardError(MemsleuthError, ValueError):
    """A guard was configured with something that cannot work (a bad size, policy or window)."""


def parse_size(value: int | float | str) -> int:
    """Bytes from an int or a string like "1.5GiB", "50MiB", "512k", "100MB" (SI) or "4096".

    Binary units are powers of 1024 and SI units powers of 1000, as the names say: "50MB" is
    50,000,000 bytes and "50MiB" is 52,428,800. Seed 003's "50MB" meant MiB; write MiB for that.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | str)
        or (isinstance(value, int | float) and value < 0)
    ):  # nan, inf and sizes past 64 bits are units.parse_size's to refuse (no bound is `None`)
        raise GuardError(f"not a size: {value!r}", "give bytes >= 0 or a string like '50MiB'")
    try:
        return units.parse_size(value)
    except ValueError as exc:
        raise GuardError(
            str(exc), "a number and a unit: B, KiB, MiB, GiB, TiB (x1024) or KB, MB, GB (x1000)"
        ) from None


def parse_duration(value: int | float | str) -> float:
    """Seconds from a number or a string like "5min", "30s", "500ms", "2h", "1d"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise GuardError(f"not a duration: {value!r}", "give seconds or a string like '5min'")
    try:
        seconds = units.parse_duration(value)
    except ValueError as exc:
        raise GuardError(str(exc), "a number and a unit: ms, s, min, h or d") from None
    if not seconds > 0:  # nan too: a watchdog checking every nan seconds spun a core
        raise GuardError(f"duration must be positive: {value!r}", "use e.g. '30s' or '5min'")
    return seconds


@dataclass(frozen=True, slots=True)
class GrowthRule:
    """Fire when memory grew by more than `bytes` within the last `window_s` seconds."""

    bytes: int
    window_s: float

    def __str__(self) -> str:
        return f"{units.format_bytes(self.bytes, signed=True)} in {self.window_s:g}s"


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
