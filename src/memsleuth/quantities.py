"""Parse the sizes and durations people type: "1.5GiB", "512M", "10m", "5min", "2h30m"."""

from __future__ import annotations

import re

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
    "d": 86400.0,
    "w": 604800.0,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)\s*([a-z]*)")


def parse_size(text: str | int | float) -> int:
    """Bytes from "1.5GiB", "512MB", "1048576"; ValueError with the accepted forms otherwise."""
    if isinstance(text, int | float):
        return int(text)
    m = _SIZE_RE.match(text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 512MiB, 1.5GiB, 2GB or bytes)")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_duration(text: str | int | float) -> float:
    """Seconds from "90", "10m", "5min", "2h30m", "1.5h", "250ms"."""
    if isinstance(text, int | float):
        return float(text)
    s = text.strip().lower()
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos or m.group(2) not in _DURATION_UNITS:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    else:
        if s and pos == len(s):
            return total
    raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 2h30m)")


def parse_rate(text: str) -> tuple[int, float]:
    """A growth rule "50MiB/5min" as (bytes, window seconds)."""
    size, sep, window = text.partition("/")
    if not sep:
        raise ValueError(f"not a rate: {text!r} (use e.g. 50MiB/5min)")
    return parse_size(size), parse_duration(window)
