"""Robust trend statistics: binning, floor tracking, Theil–Sen, Mann–Kendall with Hamed–Rao."""

from __future__ import annotations

import numpy as np
import pytest

from memsleuth.analysis.trend import (
    MAX_BINS,
    bin_series,
    despike,
    fast_cycle_samples,
    fit_trend,
    median,
    robust_sigma,
    sawtooth_period,
    z_for,
)


def _rng(seed: int = 1) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_theil_sen_recovers_slope_despite_outliers() -> None:
    t = np.arange(100.0)
    y = 3.0 * t + _rng().normal(0, 5, 100)
    y[::10] += 500.0  # one point in ten is wild
    fit = fit_trend(t, y)
    assert fit is not None
    assert fit.lo < 3.0 < fit.hi
    assert fit.slope == pytest.approx(3.0, abs=0.5)
    assert fit.p_up < 1e-6


def test_mann_kendall_finds_no_trend_in_noise() -> None:
    t = np.arange(120.0)
    fit = fit_trend(t, _rng(2).normal(0, 1, 120))
    assert fit is not None
    assert fit.p_up > 0.01
    assert fit.lo < 0 < fit.hi


def test_hamed_rao_discounts_autocorrelated_noise() -> None:
    # A slow AR(1) wander has runs that look like trends to a naive test.
    rng = _rng(3)
    e = rng.normal(0, 1, 120)
    y = np.empty(120)
    y[0] = e[0]
    for i in range(1, 120):
        y[i] = 0.9 * y[i - 1] + e[i]
    fit = fit_trend(np.arange(120.0), y)
    assert fit is not None
    assert fit.n_eff < 0.5 * fit.n


def _ar1(rng: np.random.Generator, rho: float, n: int) -> np.ndarray:
    e = rng.normal(0, 1, n + 200)
    y = np.empty(e.size)
    y[0] = e[0]
    for i in range(1, e.size):
        y[i] = rho * y[i - 1] + e[i]
    return y[200:]  # past the start-up transient


def test_detrending_a_wander_earns_no_credit_for_negative_autocorrelation() -> None:
    # Removing the fitted slope from a persistent wander leaves residuals that rise and fall
    # once: strongly negative at long lags. Counting those lags shrank the variance inflation
    # and let trendless AR(1) noise (rho 0.8 per bin) pass the 0.1% trend bar in 4% of windows.
    rng = _rng(11)
    need = z_for(1e-3)
    runs = 400
    false = sum(
        abs(f.z) >= need
        for f in (fit_trend(np.arange(120.0), _ar1(rng, 0.8, 120)) for _ in range(runs))
        if f is not None
    )
    assert false / (2 * runs) < 0.02  # one-sided rate; 4.1% when negative lags counted


def test_counts_that_rise_by_one_are_a_certain_trend() -> None:
    # Rounding residuals of an integer staircase are not autocorrelated noise.
    t = np.arange(120.0)
    threads = np.floor(t / 3) + 4
    assert fit_trend(t, threads, resolution=1.0).z > 10  # type: ignore[union-attr]


def test_bins_stay_few_and_keep_the_time_axis() -> None:
    t = np.arange(10_080) * 60.0
    b = bin_series(t, np.full(t.size, 5.0))
    assert len(b) <= MAX_BINS
    assert b.t[0] >= 0 and b.t[-1] <= t[-1]
    assert np.all(np.diff(b.t) > 0)


def test_sawtooth_is_seen_and_its_floor_tracked() -> None:
    n = 3000
    t = np.arange(n, dtype=float)
    floor = 1000.0 + 0.05 * t  # the leak is in the post-GC minima
    x = floor + (t % 40) * 10.0 + _rng(4).normal(0, 2, n)
    period = sawtooth_period(t, x)
    assert period == pytest.approx(40.0, rel=0.2)
    b = bin_series(t, x)
    assert b.sawtooth_period_s is not None
    # The floor sits near the troughs, the median mid-way up the teeth.
    assert np.median(b.floor - (1000.0 + 0.05 * b.t)) < 60
    assert np.median(b.median - b.floor) > 100


def test_spikes_are_not_a_sawtooth() -> None:
    x = _rng(5).normal(0, 1, 2000)
    x[::50] += 40.0  # up and straight back down
    assert sawtooth_period(np.arange(2000.0), x) is None


def test_robust_sigma_ignores_a_step() -> None:
    y = _rng(6).normal(0, 2.0, 200)
    y[100:] += 1000.0
    assert robust_sigma(y) == pytest.approx(2.0, rel=0.2)


def test_despike_removes_a_spike_but_keeps_a_step() -> None:
    y = np.zeros(40)
    y[10] = 100.0
    y[25:] = 50.0
    out = despike(y, sigma=1.0)
    assert out[10] == 0.0
    assert np.all(out[25:] == 50.0)


def test_z_for_is_the_one_sided_normal_quantile() -> None:
    assert z_for(0.001) == pytest.approx(3.0902, abs=1e-3)


def test_a_count_that_blips_is_not_binned_as_a_sawtooth() -> None:
    # threads: flat, then +2 a minute, with one-sample blips of +1 (a worker starting).
    t = np.arange(480) * 60.0
    rng = np.random.default_rng(3)
    x = 4.0 + 2.0 * np.floor(np.maximum(t - 5760.0, 0) / 60.0) + (rng.random(t.size) < 0.1)
    assert bin_series(t, x, sawtooth=False).sawtooth_period_s is None
    assert len(bin_series(t, x, sawtooth=False)) == 120


@pytest.mark.parametrize("n", [1, 2, 3, 10, 119, 120, 121])
def test_median_is_numpys_to_the_last_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    for v in (rng.normal(1e8, 3e6, n), rng.integers(0, 5, n).astype(float)):
        assert median(v) == float(np.median(v))


def _busy_idle(seconds: int, period: int, leak_per_s: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(float(seconds))
    busy = ((t / period + rng.uniform()) % 1) < 0.5
    return 20e6 + 40e6 * busy + leak_per_s * t + rng.normal(0, 0.2e6, t.size)


def test_a_fast_load_cycle_is_found_by_its_period_in_samples() -> None:
    assert fast_cycle_samples(_busy_idle(600, 4, 0.0), 29) == 4
    assert fast_cycle_samples(_busy_idle(600, 10, 0.5e6), 29) == 10  # a leak under it too
    assert fast_cycle_samples(_busy_idle(600, 30, 0.0), 29) is None  # slower: season.py's
    assert fast_cycle_samples(_rng(4).normal(0, 1, 600), 29) is None


def test_a_fast_cycle_is_its_shortest_period_not_a_multiple() -> None:
    # A thread started every 2 s and sampled every 1 s, as recorded: 72 KiB more every other
    # sample after an irregular start (two steps at once, then a pause of three). Twice the
    # period repeated a hair better (autocorrelation 0.905 against 0.899) and had been called
    # the period: "allocations in bursts every 4.0 s".
    steps = np.zeros(161)
    steps[[1, 2, *range(5, 161, 2)]] = 72 * 1024
    x = 10e6 + np.cumsum(steps)
    assert fast_cycle_samples(x, 11) == 2


def test_red_noise_is_no_fast_cycle() -> None:
    rng = _rng(6)
    found = 0
    for _ in range(200):
        e = rng.normal(0, 1, 800)
        w = np.empty(800)
        w[0] = e[0]
        for i in range(1, 800):
            w[i] = 0.95 * w[i - 1] + e[i]
        found += fast_cycle_samples(w[200:], 29) is not None
    assert found == 0  # 0 of 2,500 measured at rho 0 to 1


def test_bins_hold_whole_fast_cycles_and_average_them() -> None:
    # Two minutes at 1 s with a 4 s cycle: bins of two samples held half a cycle each, and
    # their levels swung 40 MB from bin to bin.
    x = _busy_idle(120, 4, 0.0)
    b = bin_series(np.arange(120.0), x)
    assert b.per_bin % 4 == 0 and b.fast_cycle_s == pytest.approx(4.0)
    assert float(np.ptp(b.level)) < 2e6  # the swing is gone from the levels


def test_the_verdict_engine_does_not_import_scipy() -> None:
    # The watchdog's trend mode runs it inside the host: scipy cost 25 MiB of RSS there.
    import subprocess
    import sys

    code = "import sys, memsleuth.analysis.verdict; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_normal_quantiles_are_exact() -> None:
    from memsleuth.analysis.trend import z_for

    assert z_for(0.001) == pytest.approx(3.090232306167813, abs=1e-12)
    assert z_for(0.01) == pytest.approx(2.3263478740408408, abs=1e-12)
