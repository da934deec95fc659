"""The Prometheus exporter: per-process memory and memsleuth's judgement as metrics."""

from __future__ import annotations

from memsleuth.exporter.collector import ExporterCollector, History, ProcessWatcher

__all__ = ["ExporterCollector", "History", "ProcessWatcher"]
