"""Plot geometry: downsampling keeps peaks and floors; axis ticks are round in human units."""

from __future__ import annotations

import numpy as np

from memsleuth.reports.plot import byte_axis, downsample_minmax, nice_ticks, tick_label, time_unit


def test_downsampling_keeps_every_peak_and_floor_within_the_budget() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(200_000, dtype=np.float64)
    y = 1e8 + 1e3 * t + rng.normal(0, 1e5, t.size)
    y[123_457] = 5e9  # a single spike must survive
    y[7] = -1.0  # and a single dip
    td, yd = downsample_minmax(t, y, 2000)
    assert td.size <= 2000
    assert yd.max() == 5e9 and yd.min() == -1.0
    assert np.all(np.diff(td) > 0), "points stay in time order"
    # Each kept point is a real sample, not an average.
    assert np.array_equal(yd, y[td.astype(np.int64)])


def test_downsampling_drops_missing_samples_and_leaves_short_series_alone() -> None:
    t = np.arange(10, dtype=np.float64)
    y = np.where(t == 3, np.nan, t)
    td, yd = downsample_minmax(t, y, 2000)
    assert td.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert np.array_equal(td, yd)


def test_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 10) == (0, 2, 4, 6, 8, 10)
    ticks = nice_ticks(13.7, 96.2)
    assert ticks[0] <= 13.7 and ticks[-1] >= 96.2
    assert len(set(np.round(np.diff(ticks), 9))) == 1
    assert tick_label(2.5, 0.5) == "2.5"
    assert tick_label(1200, 200) == "1,200"
    # A step of 2.5 above 1 keeps its decimal: 0, 2.5, 5 ... had been labelled 0, 2, 5, 8.
    assert [tick_label(v, 2.5) for v in (0, 2.5, 7.5, 12.5)] == ["0.0", "2.5", "7.5", "12.5"]


def test_byte_axis_ticks_are_round_in_mib_and_time_units_follow_the_span() -> None:
    mib = 1024.0 * 1024.0
    ticks, unit, divisor = byte_axis(20 * mib, 165 * mib)
    assert unit == "MiB" and divisor == mib
    assert [v / mib for v in ticks] == [0, 50, 100, 150, 200]
    assert time_unit(60) == (1.0, "s")
    assert time_unit(7200) == (60.0, "min")
    assert time_unit(12 * 3600) == (3600.0, "h")
    assert time_unit(7 * 86400) == (86400.0, "d")
