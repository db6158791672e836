"""Modification values: one fixed-width, text-sortable form; the API's own form for filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.timestamps import format_filter_value, normalize

CANONICAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01T12:00:00Z",
        "2024-03-01T12:00:00z",
        "2024-03-01T12:00:00+00:00",
        "2024-03-01T12:00:00-00:00",
        "2024-03-01T13:00:00+01:00",
        "2024-03-01T07:30:00-04:30",
        "2024-03-01T12:00:00.000Z",
        "2024-03-01T12:00:00.000000Z",
        "2024-03-01T13:00:00.000000+01:00",
        "2024-03-01 12:00:00Z",
        "2024-03-01T12:00:00",  # zone-less: UTC, never the host's zone
        "2024-03-01 12:00:00",
        "2024-03-01T12:00Z",
        "2024-03-02T00:00:00+12:00",
    ],
)
def test_forms_of_the_same_instant_normalise_equal(value: str) -> None:
    assert normalize(value) == "2024-03-01T12:00:00.000000Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T12:00:00.5Z", "2024-03-01T12:00:00.500000Z"),
        ("2024-03-01T12:00:00.123+00:00", "2024-03-01T12:00:00.123000Z"),
        ("2024-03-01T13:00:00.123456+01:00", "2024-03-01T12:00:00.123456Z"),
        ("2024-03-01T12:00:00.123456Z", "2024-03-01T12:00:00.123456Z"),
        ("2024-03-01", "2024-03-01T00:00:00.000000Z"),
        ("2023-12-31T23:30:00-01:00", "2024-01-01T00:30:00.000000Z"),
    ],
)
def test_fractional_and_shifted_forms(value: str, expected: str) -> None:
    assert normalize(value) == expected


@pytest.mark.parametrize("value", [1700000000, 1700000000123, 0, 3.25, -1])
def test_numbers_are_kept(value: float) -> None:
    assert normalize(value) == value
    assert type(normalize(value)) is type(value)


@pytest.mark.parametrize(
    "value", ["", "yesterday", "v17", "01/03/2024", "2024-03-01Tnoon", "2024-02-30T00:00:00Z "]
)
def test_garbage_text_is_kept_verbatim(value: str) -> None:
    assert normalize(value) == value


@pytest.mark.parametrize("value", [None, True, False])
def test_none_and_booleans_are_none(value: Any) -> None:
    assert normalize(value) is None


OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# One day inside datetime's range: no offset can push the UTC instant out of it.
AWARE = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS
)


@given(AWARE, AWARE)
def test_canonical_text_sorts_in_time_order(a: datetime, b: datetime) -> None:
    na, nb = normalize(a.isoformat()), normalize(b.isoformat())
    assert isinstance(na, str)
    assert isinstance(nb, str)
    assert CANONICAL.match(na)
    assert CANONICAL.match(nb)
    assert (a < b) == (na < nb)
    assert (a == b) == (na == nb)


@given(AWARE)
def test_every_spelling_of_an_instant_is_the_same_value(moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    expected = normalize(moment.isoformat())
    assert normalize(utc.isoformat()) == expected
    assert normalize(utc.isoformat(timespec="microseconds")[:26] + "Z") == expected
    assert normalize(utc.replace(tzinfo=None).isoformat()) == expected


@given(AWARE)
def test_normalize_is_idempotent(moment: datetime) -> None:
    once = normalize(moment.isoformat())
    assert normalize(once) == once


# Regression: strftime("%Y") dropped the leading zeros of years before 1000.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0001-01-01T00:00:00", "0001-01-01T00:00:00.000000Z"),  # .NET DateTime.MinValue
        ("0500-06-01T00:00:00+00:00", "0500-06-01T00:00:00.000000Z"),
    ],
)
def test_years_before_1000_keep_four_digits(value: str, expected: str) -> None:
    assert normalize(value) == expected


# Regression: astimezone(UTC) raised OverflowError at the edges of datetime's range.
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_out_of_range_instants_are_kept_verbatim_not_raised(value: str) -> None:
    assert normalize(value) == value


LOOKBACK_CASES: list[tuple[Any, Any, str, timedelta, Any]] = [
    (
        "2024-03-01T12:05:00.000000Z",
        "raw-a",
        "iso8601",
        timedelta(minutes=5),
        "2024-03-01T12:00:00Z",
    ),
    ("2024-03-01T12:00:00.000000Z", "raw-a", "iso8601", timedelta(0), "2024-03-01T12:00:00Z"),
    ("2024-03-01T12:00:00.500000Z", "raw-a", "iso8601", timedelta(0), "2024-03-01T12:00:00.5Z"),
    (
        "2024-03-01T12:00:00.123456Z",
        "raw-a",
        "iso8601",
        timedelta(0),
        "2024-03-01T12:00:00.123456Z",
    ),
    (
        "2024-03-01T00:02:00.000000Z",
        "raw-a",
        "iso8601",
        timedelta(minutes=5),
        "2024-02-29T23:57:00Z",
    ),
    ("2024-03-01T12:05:00.000000Z", "raw-a", "epoch", timedelta(minutes=5), 1709294400),
    ("2024-03-01T12:05:00.000000Z", "raw-a", "epoch_ms", timedelta(minutes=5), 1709294400000),
    ("2024-03-01T12:00:00.250000Z", "raw-a", "epoch_ms", timedelta(0), 1709294400250),
    (1709294700, 1709294700, "epoch", timedelta(minutes=5), 1709294400),
    (1709294700, 1709294700, "iso8601", timedelta(minutes=5), "2024-03-01T12:00:00Z"),
    (1709294700000, 1709294700000, "epoch_ms", timedelta(minutes=5), 1709294400000),
    (1709294700000, 1709294700000, "epoch", timedelta(0), 1709294700),
    (
        "2024-03-01T12:05:00.000000Z",
        "2024-03-01T13:05:00+01:00",
        "raw",
        timedelta(0),
        "2024-03-01T13:05:00+01:00",
    ),
    ("v17", "v17", "iso8601", timedelta(minutes=5), "v17"),
    ("opaque", {"etag": 1}, "epoch", timedelta(0), {"etag": 1}),
]


@pytest.mark.parametrize(("normalized", "raw", "fmt", "lookback", "expected"), LOOKBACK_CASES)
def test_format_filter_value(
    normalized: Any, raw: Any, fmt: Any, lookback: timedelta, expected: Any
) -> None:
    assert format_filter_value(normalized, raw, fmt, lookback) == expected


@pytest.mark.parametrize("ms", [1709294400250, 1700000000123, 2000000000999])
def test_epoch_ms_round_trips(ms: int) -> None:
    assert format_filter_value(ms, ms, "epoch_ms", timedelta(0)) == ms


# Regression: int(timestamp() * 1000) truncated a float product just below the integer.
@pytest.mark.parametrize(
    "ms",
    [
        1083592114189,  # 2004-05-03
        549755813887,  # 1987-06-03
        2177404089377,  # 2039-01-01
    ],
)
def test_epoch_ms_never_loses_a_millisecond(ms: int) -> None:
    assert format_filter_value(ms, ms, "epoch_ms", timedelta(0)) == ms


def test_epoch_ms_from_an_iso_watermark_never_loses_a_millisecond() -> None:
    normalized = normalize("2004-05-03T13:48:34.189Z")
    assert normalized is not None
    assert format_filter_value(normalized, None, "epoch_ms", timedelta(0)) == 1083592114189


@given(st.integers(min_value=10**11 + 1, max_value=4 * 10**12))
def test_epoch_ms_property_round_trip(ms: int) -> None:
    assert format_filter_value(ms, ms, "epoch_ms", timedelta(0)) == ms


@given(st.integers(min_value=0, max_value=10**11))
def test_epoch_seconds_round_trip(seconds: int) -> None:
    assert format_filter_value(seconds, seconds, "epoch", timedelta(0)) == seconds


@given(AWARE, st.integers(min_value=0, max_value=7 * 86400))
def test_iso_filter_is_lookback_before_the_watermark(moment: datetime, lookback_s: int) -> None:
    lookback = timedelta(seconds=lookback_s)
    normalized = normalize(moment.isoformat())
    assert isinstance(normalized, str)
    sent = format_filter_value(normalized, moment.isoformat(), "iso8601", lookback)
    assert isinstance(sent, str)
    assert sent.endswith("Z")
    expected = moment.astimezone(UTC) - lookback
    assert datetime.fromisoformat(sent[:-1] + "+00:00") == expected


def test_integers_wider_than_64_bits_become_floats_every_store_can_compare() -> None:
    assert normalize(2**70) == float(2**70)
    assert isinstance(normalize(2**63 - 1), int)
    assert normalize(-(2**64)) == -float(2**64)
