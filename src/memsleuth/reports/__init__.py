"""Reporters: a RunReport rendered as terminal text, JSON, Markdown or one HTML page.

Formats are imported on demand by get_reporter, so asking for JSON never imports jinja2 or rich.
"""

from __future__ import annotations

from memsleuth.reports.base import (
    FORMATS,
    Reporter,
    ReportOptions,
    RunReport,
    get_reporter,
    write_atomically,
    write_report,
)

__all__ = [
    "FORMATS",
    "ReportOptions",
    "Reporter",
    "RunReport",
    "get_reporter",
    "write_atomically",
    "write_report",
]
