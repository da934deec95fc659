"""memsleuth: find out why a process's memory grows, and keep it from growing again."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]


def __getattr__(name: str) -> object:
    # `memsleuth.soak(fn, cycles=...)`: the soak package is callable; `memsleuth.probe.start()`;
    # both imported on first use so `import memsleuth` stays light.
    if name in ("soak", "probe"):
        import importlib

        return importlib.import_module(f"memsleuth.{name}")
    raise AttributeError(f"module 'memsleuth' has no attribute {name!r}")
