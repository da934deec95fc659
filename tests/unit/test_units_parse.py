"""Sizes and durations as people type them."""

from __future__ import annotations

import pytest

from memsleuth.units import parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1 << 20),
        ("512MiB", 512 << 20),
        ("1.5GiB", 3 << 29),
        ("2GB", 2 * 10**9),
        ("64k", 64_000),
        ("50 MiB", 50 << 20),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("30s", 30.0),
        ("10m", 600.0),
        ("5min", 300.0),
        ("2h30m", 9000.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("7d", 604800.0),
    ],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["", "ten", "5 parsecs", "10m x", "-"])
def test_bad_input_says_what_is_accepted(bad: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\."):
        parse_duration(bad)
    with pytest.raises(ValueError, match=r"e\.g\."):
        parse_size(bad)


@pytest.mark.parametrize("bad", ["1e999", "9" * 400 + "GiB"])
def test_sizes_too_big_for_a_float_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\.|at most"):
        parse_size(bad)


def test_durations_too_big_for_a_float_are_refused() -> None:
    with pytest.raises(ValueError, match=r"e\.g\."):
        parse_duration("9" * 400 + "s")


def test_parse_rate() -> None:
    assert parse_rate("50MiB/5min") == (50 << 20, 300.0)


@pytest.mark.parametrize("big", ["99999999999999999999999", "9223372036854775808", "1e19"])
def test_sizes_past_64_bits_are_refused_not_crashed_on(big: str) -> None:
    # `record --limit 9223372036854775808` had crashed in SQLite with an OverflowError.
    with pytest.raises(ValueError, match="too large a size"):
        parse_size(big)
    assert parse_size("9223372036854775807") == 2**63 - 1
    for number in (float("inf"), float("nan"), 2**64):  # numbers as well as text
        with pytest.raises(ValueError):
            parse_size(number)


def test_durations_past_a_century_are_refused() -> None:
    # `rules --for 99999999999999d` had printed a `for:` promtool refuses.
    with pytest.raises(ValueError, match="too long a duration"):
        parse_duration("99999999999999d")
    assert parse_duration("3650d") == 3650 * 86400


@pytest.mark.parametrize("bad", ["1.5.3", "1s1s", "1m1h", "2h30", "1min1m", "1.5.3ms", "5 5s"])
def test_malformed_durations_are_refused_not_summed(bad: str) -> None:
    # "1.5.3" had been read as 1.5 + 0.3 = 1.8 s, and "1s1s" as 2 s.
    with pytest.raises(ValueError, match=rf"not a duration: {bad!r} \(use e\.g\."):
        parse_duration(bad)


def test_compound_durations_run_from_larger_units_to_smaller() -> None:
    assert parse_duration("1h1m1s") == 3661.0
    assert parse_duration("1m30s500ms") == pytest.approx(90.5)
    assert parse_duration("2w3d") == (14 + 3) * 86400.0
