"""Retry-After: delta-seconds, the three HTTP-date formats, skew, and garbage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncline.retry_after import parse_retry_after

# 08:49:00 UTC, 37 s before the dates below.
NOW = datetime(1994, 11, 6, 8, 49, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  7 ", 7.0),
        ("2.0", 2.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("-0.5", 0.0),
        ("86400000", 86400000.0),  # huge values are the caller's to cap
        ("99999999999", 99999999999.0),
    ],
)
def test_delta_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "later please",
        "1e400",
        "-1e400",
        "inf",
        "-inf",
        "Infinity",
        "NaN",
        "nan",
        "12abc",
        "0x10",
    ],
)
def test_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime, read as UTC
    ],
)
def test_http_date_in_all_three_rfc_9110_formats(value: str) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(37.0)


@pytest.mark.parametrize(
    "value",
    ["Sun, 06 Nov 1994 08:48:00 GMT", "Sunday, 06-Nov-94 08:00:00 GMT", "Sun Nov  6 08:49:00 1994"],
)
def test_past_or_present_date_is_zero(value: str) -> None:
    assert parse_retry_after(value, now=NOW) == 0.0


def test_date_is_measured_against_the_response_date_header_not_our_clock() -> None:
    # Our clock runs an hour fast: against `now` the date is in the past.
    skewed_now = NOW + timedelta(hours=1)
    value = "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_retry_after(value, now=skewed_now) == 0.0
    assert parse_retry_after(value, now=skewed_now, date="Sun, 06 Nov 1994 08:49:07 GMT") == (
        pytest.approx(30.0)
    )


def test_date_header_in_another_zone_is_compared_as_an_instant() -> None:
    value = "Sun, 06 Nov 1994 08:49:37 GMT"
    date = "Sun, 06 Nov 1994 09:49:27 +0100"  # 08:49:27 UTC
    assert parse_retry_after(value, now=NOW, date=date) == pytest.approx(10.0)


def test_unreadable_date_header_falls_back_to_now() -> None:
    value = "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_retry_after(value, now=NOW, date="yesterday") == pytest.approx(37.0)


def test_delta_seconds_ignore_the_date_header() -> None:
    assert parse_retry_after("5", now=NOW, date="Sun, 06 Nov 1994 00:00:00 GMT") == 5.0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=40)))
def test_never_raises_and_never_negative(value: str, date: str | None) -> None:
    result = parse_retry_after(value, now=NOW, date=date)
    assert result is None or result >= 0.0


@given(st.integers(min_value=0, max_value=10**9))
def test_integer_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds), now=NOW) == float(seconds)


@given(st.integers(min_value=0, max_value=10**7))
def test_future_imf_fixdate_is_the_delta_to_it(seconds: int) -> None:
    moment = NOW + timedelta(seconds=seconds)
    value = moment.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(value, now=NOW) == pytest.approx(float(seconds))
