"""What a soak's numbers may be, checked before the first cycle (light: the pytest plugin uses
it at collection, without the harness's numpy and scipy)."""

from __future__ import annotations

import math


def check_soak_args(
    *,
    cycles: object,
    warmup: object = None,
    max_bytes_per_cycle: object = 0.0,
    max_latency_ratio: object = None,
    grace_s: object = 1.0,
    max_retained_bytes: object = 0,
    batches: object = 2,
) -> None:
    """ValueError naming the first argument that makes no sense: a guard that cannot fail (a
    nan bound) or that cannot run (cycles="abc") is worse than none."""
    if not _whole(cycles, 2):
        raise ValueError(f"cycles must be a whole number of at least 2, not {cycles!r}")
    if warmup is not None and not _whole(warmup, 0):
        raise ValueError(f"warmup must be a whole number from 0 (0: no warm-up), not {warmup!r}")
    if not _finite(max_bytes_per_cycle, 0.0):
        raise ValueError(
            f"max_bytes_per_cycle must be a finite number from 0, not {max_bytes_per_cycle!r}"
        )
    if max_latency_ratio is not None and not _finite(max_latency_ratio, 1.0):
        raise ValueError(
            f"max_latency_ratio must be a finite number of at least 1, not {max_latency_ratio!r}"
        )
    if not _finite(grace_s, 0.0):
        raise ValueError(f"grace_s must be a finite number of seconds from 0, not {grace_s!r}")
    if not _whole(max_retained_bytes, 0):
        raise ValueError(
            f"max_retained_bytes must be a whole number of bytes from 0, not {max_retained_bytes!r}"
        )
    if not _whole(batches, 2):
        raise ValueError(f"batches must be a whole number of at least 2, not {batches!r}")


def _whole(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _finite(value: object, low: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return low <= float(value) < math.inf
