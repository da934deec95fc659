"""Human formatting: what every reporter prints for sizes, rates, durations and counts."""

from __future__ import annotations

import math

import pytest

from memsleuth import units

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1536, "1.50 KiB"),
        (41.2 * MIB, "41.2 MiB"),
        (412 * MIB, "412 MiB"),
        (3.5 * 1024 * MIB, "3.50 GiB"),
        (-5 * MIB, "-5.00 MiB"),
    ],
)
def test_bytes_are_binary_with_three_significant_digits(n: float, text: str) -> None:
    assert units.format_bytes(n) == text


def test_rates_are_signed_per_hour() -> None:
    assert units.format_rate(41.2 * MIB) == "+41.2 MiB/h"
    assert units.format_rate(-3 * 1024) == "-3.00 KiB/h"
    assert units.format_rate(0) == "0 B/h"


def test_a_rate_interval_shares_its_unit() -> None:
    assert units.format_rate_ci((38.2 * MIB, 42.0 * MIB)) == "+38.2 – +42.0 MiB/h"
    # Ends in different units each carry the rate ("-5.62 MiB – +87.9 GiB/h" had been read as
    # bytes against a rate).
    assert units.format_rate_ci((-512.0, 2 * MIB)) == "-512 B/h – +2.00 MiB/h"
    # Ends three digits round alike get the digits that tell them apart (had: +140 – +140).
    assert units.format_rate_ci((139.8 * MIB, 140.3 * MIB)) == "+139.8 – +140.3 MiB/h"
    assert units.format_rate_ci((7.03 * MIB, 7.031 * MIB)) == "+7.030 – +7.031 MiB/h"
    # The estimate gets the digits its interval needed: "+1.68 GiB/h" had stood beside
    # "95% CI +1.676 – +1.677 GiB/h", outside it.
    gib = 1024.0 * MIB
    assert units.format_estimate(1.6764 * gib, (1.6762 * gib, 1.6768 * gib), "/h") == (
        "+1.676 GiB/h",
        "+1.676 – +1.677 GiB/h",
    )
    assert units.format_estimate(41 * MIB, (38 * MIB, 44 * MIB), "/h")[0] == "+41.0 MiB/h"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.028, "28 ms"),
        (0.0004, "400 µs"),
        (0, "0 s"),
        (5.5, "5.5 s"),
        (42, "42 s"),
        (89, "1.5 min"),
        (9.5 * 60, "9.5 min"),
        (35 * 60, "35 min"),
        (2.5 * 3600, "2.5 h"),
        (26 * 3600, "26 h"),
        (3.2 * 86400, "3.2 d"),
        (300 * 86400, "300 d"),
        (1.5 * 365.25 * 86400, "1.5 y"),
        (36525 * 86400, "100 y"),
    ],
)
def test_durations_use_the_largest_fitting_unit(seconds: float, text: str) -> None:
    assert units.format_duration(seconds) == text


@pytest.mark.parametrize("missing", [None, math.nan, math.inf, -math.inf])
def test_missing_and_non_finite_values_print_as_na(missing: float | None) -> None:
    for fmt in (units.format_bytes, units.format_rate, units.format_duration, units.format_count):
        assert fmt(missing) == units.MISSING
    assert units.format_rate_ci((0.0, math.nan)) == units.MISSING


def test_counts_and_quantities_in_a_culprits_unit() -> None:
    assert units.format_count(42) == "42"
    assert units.format_count(9_800) == "9.80k"
    assert units.format_count(1_203_991) == "1.20M"
    assert units.format_per_hour(576_000, "entries") == "+576k entries/h"
    assert units.format_per_hour(2 * MIB, "bytes") == "+2.00 MiB/h"
    assert units.format_percent(0.934) == "93%"
    assert units.format_percent(0.004) == "0.4%"
    assert units.format_ratio(14.0) == "14.0×"


def test_an_interval_too_few_samples_cannot_give_says_so() -> None:
    assert units.format_ci((-2731.4, 3151.0)) == "95% CI -2,731 to +3,151"
    assert units.format_ci((0.25, 1.5), "+.1f") == "95% CI +0.2 to +1.5"
    assert units.format_ci((-math.inf, math.inf)) == "too few samples for a 95% CI"
    assert units.format_ci((math.nan, 1.0)) == "too few samples for a 95% CI"


def test_sizes_past_any_memory_print_in_a_few_characters() -> None:
    # 1e300 bytes had printed as a 282-digit number of PiB and broken the fleet's table.
    assert units.format_bytes(2.0**64) == "16.0 EiB"
    assert units.format_bytes(1e300) == "8.67e+281 EiB"
    assert units.format_rate(-6e301) == "-5.2e+283 EiB/h"
    assert units.format_bytes(1023 * 1024**5) == "1023 PiB"


def test_no_time_left_to_a_limit_reads_past_it() -> None:
    # A series at 16.6 GiB against a 4 GiB limit had read "to limit 0 s".
    assert units.format_time_to_limit(0.0) == "past it"
    assert units.format_time_to_limit(90.0) == "1.5 min"
    assert units.format_time_to_limit(None) == units.format_duration(None)
