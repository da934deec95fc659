"""A steady climb with page-size jitter in its steps is not a GC sawtooth (a real C leak)."""

from __future__ import annotations

import numpy as np

from memsleuth.analysis.trend import sawtooth_period
from memsleuth.analysis.verdict import judge
from memsleuth.model import Series

# KiB added per 0.5 s sample by examples/frame_processor.c, as recorded: 104-116, never a fall.
STEPS_KIB = [304] + [112, 116, 112, 108, 116, 112, 112, 116, 112, 112, 108, 112, 108, 108] * 6


def _climb() -> Series:
    rss = 1.17 * 2**20 + np.concatenate([[0.0], np.cumsum(STEPS_KIB)]) * 1024
    return Series.from_arrays(np.arange(rss.size) * 0.5, rss)


def test_jitter_on_a_climb_is_not_a_sawtooth() -> None:
    s = _climb()
    assert sawtooth_period(s.t, s.rss) is None


def test_the_climb_is_a_leak_not_a_plateau() -> None:
    v = judge(_climb())
    assert v.verdict == "leak"
    assert v.ceiling_bytes is None


def test_a_real_sawtooth_is_still_found() -> None:
    t = np.arange(400.0)
    rss = 100e6 + (t % 20) * 1e6 + t * 1e4  # 20 s teeth of 19 MB on a slow rise
    period = sawtooth_period(t, rss)
    assert period is not None and 18 <= period <= 22
