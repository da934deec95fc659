"""Watch the fleet: judge every memory series in a Prometheus, rank them, write alert rules."""

from __future__ import annotations

from memsleuth.fleet.judging import FleetEntry, entry_to_dict, judge_series, rank
from memsleuth.fleet.scan import BatchFailure, ScanResult, ScanSpec, plan_batches, scan

__all__ = [
    "BatchFailure",
    "FleetEntry",
    "ScanResult",
    "ScanSpec",
    "entry_to_dict",
    "judge_series",
    "plan_batches",
    "rank",
    "scan",
]
