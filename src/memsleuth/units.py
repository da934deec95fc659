"""Human quantities both ways: parse what people type ("1.5GiB", "2h30m", "50MiB/5min") and
format what they read ("41.2 MiB", "+41.2 MiB/h", "35 min"). Standard library only, so the
probe and the guards can use it without pulling in numpy.

Sizes print in binary (IEC) units everywhere, so a rate and the size it adds up to compare at a
glance. Missing or non-finite values print as `MISSING`.
"""

from __future__ import annotations

import math
import re

MISSING = "n/a"

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_SI = ("", "k", "M", "G", "T")


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _three_digits(value: float) -> str:
    """Three significant digits at most, no trailing zeros noise: 4.12, 41.2, 412."""
    mag = abs(value)
    if mag >= 100_000:  # past the largest unit: 1e300 bytes had printed 282 digits
        return f"{value:.3g}"
    if mag >= 100 or mag == 0:
        return f"{value:.0f}"
    if mag >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def binary_scale(magnitude: float) -> tuple[float, str]:
    """The divisor and unit that show `magnitude` bytes as 1 <= x < 1024 (B below 1 KiB)."""
    idx = 0
    divisor = 1.0
    while idx < len(_BINARY) - 1 and abs(magnitude) >= divisor * 1024:
        divisor *= 1024
        idx += 1
    return divisor, _BINARY[idx]


def format_bytes(n: float | None, *, signed: bool = False) -> str:
    """41.2 MiB; with signed=True a leading + on growth: +41.2 MiB."""
    if n is None or not _finite(n):
        return MISSING
    divisor, unit = binary_scale(n)
    sign = "+" if signed and n > 0 else ""
    if unit == "B":
        return f"{sign}{n:.0f} B"
    return f"{sign}{_three_digits(n / divisor)} {unit}"


def format_rate(bytes_per_hour: float | None) -> str:
    """A growth rate, always signed: +41.2 MiB/h, -3.00 KiB/h, 0 B/h."""
    if bytes_per_hour is None or not _finite(bytes_per_hour):
        return MISSING
    return f"{format_bytes(bytes_per_hour, signed=True)}/h"


def format_rate_ci(ci: tuple[float, float] | None) -> str:
    """A 95% interval of a rate: +38.1 – +44.0 MiB/h."""
    return format_bytes_ci(ci, "/h")


def format_bytes_ci(ci: tuple[float, float] | None, per: str = "") -> str:
    """A 95% interval of bytes (`per` a unit of time or work): +38.1 – +44.0 MiB/h."""
    if ci is None or not (_finite(ci[0]) and _finite(ci[1])):
        return MISSING
    lo, hi = format_bytes(ci[0], signed=True), f"{format_bytes(ci[1], signed=True)}{per}"
    lo_num, _, lo_unit = lo.partition(" ")
    if hi.endswith(f" {lo_unit}{per}"):
        lo = lo_num  # one unit for both ends when they share it: +38.2 – +42.0 MiB/h
        places = _ci_places(ci)
        if places is not None:
            a, b = (_fixed(v, ci[1], places) for v in ci)
            return f"{a} – {b} {lo_unit}{per}"
        return f"{lo} – {hi}"
    # Each end in its own unit, each with its `per`: "-5.62 MiB – +87.9 GiB/h" had been said.
    return f"{lo}{per} – {hi}"


def _ci_places(ci: tuple[float, float]) -> int | None:
    """The decimals an interval's ends need to differ when three digits round them alike
    ("+140 – +140 MiB/h"); None when three digits tell them apart."""
    if ci[0] == ci[1] or format_bytes(ci[0], signed=True) != format_bytes(ci[1], signed=True):
        return None
    for places in range(1, 4):
        if _fixed(ci[0], ci[1], places) != _fixed(ci[1], ci[1], places):
            return places
    return 3


def _fixed(value: float, scale: float, places: int) -> str:
    divisor, _ = binary_scale(scale)
    return f"{value / divisor:+,.{places}f}"


def format_estimate(value: float, ci: tuple[float, float] | None, per: str = "") -> tuple[str, str]:
    """A value and its 95% interval in words, the value with as many digits as the interval
    needed: "+1.68 GiB/h" had stood beside "95% CI +1.676 – +1.677 GiB/h", outside it."""
    shown = f"{format_bytes(value, signed=True)}{per}"
    places = None if ci is None or not _finite(value) else _ci_places(ci)
    if ci is not None and places is not None and binary_scale(value) == binary_scale(ci[1]):
        shown = f"{_fixed(value, ci[1], places)} {binary_scale(ci[1])[1]}{per}"
    return shown, format_bytes_ci(ci, per)


def format_ci(ci: tuple[float, float], spec: str = "+,.0f") -> str:
    """`95% CI -3 to +5` in `spec`; an interval a few samples cannot give says so."""
    lo, hi = ci
    if not (_finite(lo) and _finite(hi)):
        return "too few samples for a 95% CI"
    return f"95% CI {lo:{spec}} to {hi:{spec}}"


def format_time_to_limit(seconds: float | None) -> str:
    """A time to a memory limit; "past it" for none left (a series at 16.6 GiB against a
    4 GiB limit had read "to limit 0 s")."""
    if seconds is not None and math.isfinite(seconds) and seconds <= 0:
        return "past it"
    return format_duration(seconds)


def format_duration(seconds: float | None) -> str:
    """35 min, 12 s, 2.5 h, 3.2 d, 1.5 y: the largest unit that keeps the number >= 1."""
    if seconds is None or not _finite(seconds):
        return MISSING
    s = abs(seconds)
    sign = "-" if seconds < 0 else ""
    if 0 < s < 0.1:  # a soak's warm-up of 28 ms had read "the first 0.0 s"
        return f"{sign}{s * 1000:.0f} ms" if s >= 0.001 else f"{sign}{s * 1e6:.0f} µs"
    if s < 60:
        return f"{sign}{s:.0f} s" if s >= 10 or s == 0 else f"{sign}{s:.1f} s"
    if s < 600:  # "1 min" for an 89 s window had misstated it by a third
        return f"{sign}{s / 60:.1f} min"
    if s < 3600:
        return f"{sign}{s / 60:.0f} min"
    if s < 2 * 86400:  # "26 h" reads better than "1.1 d"
        h = s / 3600
        return f"{sign}{h:.1f} h" if h < 10 else f"{sign}{h:.0f} h"
    d = s / 86400
    if d >= 365.25:  # a time to limit of "36525 d" reads as a number, "100 y" as never
        y = d / 365.25
        return f"{sign}{y:.1f} y" if y < 10 else f"{sign}{y:.0f} y"
    return f"{sign}{d:.1f} d" if d < 10 else f"{sign}{d:.0f} d"


def format_count(n: float | None, *, signed: bool = False) -> str:
    """1,203,991 -> 1.20M; 9,800 -> 9.80k; 42 -> 42; signed=True adds a leading +."""
    if n is None or not _finite(n):
        return MISSING
    sign = "+" if signed and n > 0 else ""
    mag = abs(n)
    idx = 0
    while idx < len(_SI) - 1 and mag >= 1000:
        mag /= 1000
        idx += 1
    value = math.copysign(mag, n)
    if idx == 0:
        text = f"{value:.0f}" if float(n).is_integer() or mag >= 100 else _three_digits(value)
        return f"{sign}{text}"
    return f"{sign}{_three_digits(value)}{_SI[idx]}"


def format_quantity(value: float | None, unit: str, *, signed: bool = False) -> str:
    """A value in a culprit's own unit: bytes print as sizes, anything else as a count + unit."""
    if value is None or not _finite(value):
        return MISSING
    if unit == "bytes":
        return format_bytes(value, signed=signed)
    return f"{format_count(value, signed=signed)} {unit}".rstrip()


def format_per_hour(value: float | None, unit: str) -> str:
    """A culprit's growth in its own unit: +9.80k entries/h, +1.20 MiB/h."""
    if value is None or not _finite(value):
        return MISSING
    return f"{format_quantity(value, unit, signed=True)}/h"


def format_percent(fraction: float | None) -> str:
    """0.934 -> 93%; below 1% keeps one decimal so a small share does not read as zero."""
    if fraction is None or not _finite(fraction):
        return MISSING
    pct = fraction * 100
    if 0 < abs(pct) < 1:
        return f"{pct:.1f}%"
    return f"{pct:.0f}%"


def format_ratio(ratio: float | None) -> str:
    """A latency ratio: 14.0×."""
    if ratio is None or not _finite(ratio):
        return MISSING
    return f"{_three_digits(ratio)}×"


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_UNITS = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)\s*([a-z]*)")


MAX_SIZE = 2**63 - 1
MAX_DURATION_S = 100 * 365.25 * 86400


def parse_size(text: str | int | float) -> int:
    """Bytes from "1.5GiB", "512MB", "1048576"; ValueError with the accepted forms otherwise."""
    not_a_size = ValueError(f"not a size: {text!r} (use e.g. 512MiB, 1.5GiB, 2GB or bytes)")
    value: int | float
    if isinstance(text, int | float):
        value = text
    else:
        m = _SIZE_RE.match(text)
        unit = m.group(2).lower() if m else ""
        if not m or unit not in _SIZE_UNITS:
            raise not_a_size
        number = m.group(1)
        # Whole numbers exactly: a float rounds 2**63 - 1 up past the largest size.
        value = (int(number) if number.isdigit() else float(number)) * _SIZE_UNITS[unit]
    if isinstance(value, float) and not math.isfinite(value):  # "1e999", nan, inf
        raise not_a_size
    if value > MAX_SIZE:  # the store's integers (and the kernel's counters) are 64-bit
        raise ValueError(f"too large a size: {text!r} (at most {format_bytes(MAX_SIZE)})")
    return int(value)


def parse_duration(text: str | int | float) -> float:
    """Seconds from "90", "10m", "5min", "2h30m", "1.5h", "250ms". A number alone is seconds;
    in a compound each part has its unit, larger units first, each once ("1.5.3" had been read
    as 1.5 + 0.3 s, and "1s1s" as 2 s)."""
    if isinstance(text, int | float):
        return float(text)
    s = text.strip().lower()
    total, pos = 0.0, 0
    parts: list[str] = []
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos or m.group(2) not in _DURATION_UNITS:
            break
        unit = m.group(2)
        if parts and not (
            parts[-1] and unit and _DURATION_UNITS[unit] < _DURATION_UNITS[parts[-1]]
        ):
            break  # after a bare number, a bare number, or a unit no smaller than the last
        parts.append(unit)
        total += float(m.group(1)) * _DURATION_UNITS[unit]
        pos = m.end()
    else:
        if s and pos == len(s) and math.isfinite(total):
            if total > MAX_DURATION_S:  # Prometheus' durations end at 292 y; ours well before
                raise ValueError(f"too long a duration: {text!r} (at most 100 years)")
            return total
    raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 2h30m, 1.5h or 250ms)")


def parse_rate(text: str) -> tuple[int, float]:
    """A growth rule "50MiB/5min" as (bytes, window seconds)."""
    size, sep, window = text.partition("/")
    if not sep:
        raise ValueError(f"not a rate: {text!r} (use e.g. 50MiB/5min)")
    return parse_size(size), parse_duration(window)
