"""Soak tests: `memsleuth.soak(fn, cycles=...)` and the pytest plugin.

Kept light: the pytest plugin imports this package at start-up, so the harness (numpy, scipy)
is only imported when a soak runs.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memsleuth.soak.harness import soak
    from memsleuth.soak.result import SoakResult

__all__ = ["InconclusiveSoakWarning", "SoakResult", "soak"]


class InconclusiveSoakWarning(UserWarning):
    """A `leak_free` test whose soak could not decide: it passes, and says so in pytest's
    warnings summary (`-W error::memsleuth.soak.InconclusiveSoakWarning` fails it instead)."""


def __getattr__(name: str) -> Any:
    if name == "soak":
        from memsleuth.soak.harness import soak

        return soak
    if name == "SoakResult":
        from memsleuth.soak.result import SoakResult

        return SoakResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """Lets `memsleuth.soak(fn, ...)` work although `memsleuth.soak` is this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from memsleuth.soak.harness import soak

        return soak(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
