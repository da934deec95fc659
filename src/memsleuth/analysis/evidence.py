"""Plain words for the evidence of a verdict: sizes, rates and durations a person reads."""

from __future__ import annotations

import math

_SIZE_STEPS = ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"))


def size(n_bytes: float) -> str:
    """ "41 MB", "1.2 GB", "512 B" (decimal units, as memory graphs usually show)."""
    a = abs(n_bytes)
    for step, unit in _SIZE_STEPS:
        if a >= step:
            v = n_bytes / step
            return f"{v:.0f} {unit}" if abs(v) >= 10 else f"{v:.1f} {unit}"
    return f"{n_bytes:.0f} B"


def rate(bytes_per_hour: float) -> str:
    return f"{size(bytes_per_hour)}/h"


def duration(seconds: float) -> str:
    """ "35 min", "2.5 h", "40 s", "3.1 d"."""
    s = abs(seconds)
    if s < 90:
        return f"{seconds:.0f} s"
    if s < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if s < 48 * 3600:
        h = seconds / 3600
        return f"{h:.0f} h" if abs(h) >= 10 else f"{h:.1f} h"
    return f"{seconds / 86400:.1f} d"


def count_rate(per_hour: float, unit: str) -> str:
    if abs(per_hour) >= 60 and math.isfinite(per_hour):
        return f"{per_hour / 60:.1f} {unit}/min"
    return f"{per_hour:.1f} {unit}/h"
