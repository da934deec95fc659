"""Shapes: regimes and change points, jumps, knees and saturating fits."""

from __future__ import annotations

import numpy as np
import pytest

from memsleuth.analysis.shape import find_regimes, fit_knee, fit_saturation, jumps_between


def _noise(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1.0, n)


def test_flat_step_flat_is_two_regimes_and_one_jump() -> None:
    t = np.arange(100.0)
    y = np.where(t < 60, 10.0, 40.0) + _noise(100)
    regimes = find_regimes(t, y, 1.0)
    assert len(regimes) == 2
    assert regimes[1].start == 60
    (jump,) = jumps_between(regimes, t, y, 1.0)
    assert jump.size == pytest.approx(30.0, abs=2.0)


def test_noise_alone_is_one_regime() -> None:
    t = np.arange(120.0)
    assert len(find_regimes(t, _noise(120, 2), 1.0)) == 1


def test_a_ramp_that_stops_has_a_knee_with_no_growth_after_it() -> None:
    t = np.arange(100.0)
    y = np.minimum(t, 60.0) + _noise(100, 3)
    knee = fit_knee(t, y)
    assert knee is not None
    assert knee.t_knee == pytest.approx(60.0, abs=4.0)
    assert knee.before == pytest.approx(1.0, abs=0.1)
    assert abs(knee.after_z) < 2.5
    assert knee.f_stat > 100


def test_a_straight_line_has_no_knee_to_speak_of() -> None:
    t = np.arange(100.0)
    knee = fit_knee(t, 0.5 * t + _noise(100, 4))
    assert knee is not None
    assert knee.f_stat < 10


def test_saturation_finds_the_ceiling_of_a_warm_up() -> None:
    t = np.arange(200.0)
    y = 1000.0 - 800.0 * np.exp(-t / 30.0) + _noise(200, 5) * 5
    sat = fit_saturation(t, y, 5.0)
    assert sat is not None
    assert sat.ceiling == pytest.approx(1000.0, rel=0.02)
    assert sat.tau_s == pytest.approx(30.0, rel=0.35)
    assert abs(sat.line_z) < 3


def test_saturation_keeps_the_line_of_a_leak_after_a_warm_up() -> None:
    t = np.arange(200.0)
    y = 1000.0 - 800.0 * np.exp(-t / 15.0) + 2.0 * t + _noise(200, 6) * 5
    sat = fit_saturation(t, y, 5.0)
    assert sat is not None
    assert sat.line_slope == pytest.approx(2.0, rel=0.2)
    assert sat.line_z > 5
