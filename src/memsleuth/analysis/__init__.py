"""Pure analysis, series in and verdicts out: trends, shapes, growth and the verdict. No I/O."""

from __future__ import annotations

from memsleuth.analysis.verdict import judge

__all__ = ["judge"]
