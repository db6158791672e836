"""Durations as users write them: numbers, unit suffixes, compounds and words."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.durations import parse_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, timedelta(0)),
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(minutes=3), timedelta(minutes=3)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("5M", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("500ms", timedelta(milliseconds=500)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1m500ms", timedelta(minutes=1, milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
        ("  5m  ", timedelta(minutes=5)),
        ("10 s", timedelta(seconds=10)),
        ("0s", timedelta(0)),
        ("second", timedelta(seconds=1)),
        ("seconds", timedelta(seconds=1)),
        ("minute", timedelta(minutes=1)),
        ("Minutes", timedelta(minutes=1)),
        ("hour", timedelta(hours=1)),
        ("hours", timedelta(hours=1)),
        ("day", timedelta(days=1)),
        ("week", timedelta(weeks=1)),
        ("m", timedelta(minutes=1)),
        ("ms", timedelta(milliseconds=1)),
    ],
)
def test_parse_duration(value: Any, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "soon",
        "5x",
        "m5",
        "5m garbage",
        "garbage 5m",
        "1h x 30m",
        "-5m",
        "5m-",
        "1..5s",
        "fortnight",
        -1,
        -0.5,
        True,
        None,
        [5],
        {"m": 5},
    ],
)
def test_invalid_durations_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(value)


@given(
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
)
def test_compound_durations_add_up(h: int, m: int, s: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s") == timedelta(hours=h, minutes=m, seconds=s)


@pytest.mark.parametrize(("value", "seconds"), [("300", 300), ("0", 0), ("1.5", 1.5)])
def test_numeric_string_is_seconds(value: str, seconds: float) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["9999999999d", float("inf"), 1e20])
def test_out_of_range_duration_is_a_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(value)
