"""memsleuth: find out why a process's memory grows, and keep it from growing again."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
