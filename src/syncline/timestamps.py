"""Modification values: one comparable form for the store, the API's own form for filters.

Timestamps are compared as instants, not strings (``+01:00`` vs ``Z``), so
ISO-8601 text is normalised to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width,
sorts as text). Zone-less timestamps are read as UTC, never the host's zone.
Numbers (epoch values, integer versions) stay numbers. Anything else is kept
verbatim rather than failing a sync over one odd record.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

__all__ = ["canonical", "format_filter_value", "is_zoneless", "normalize", "parse_iso"]

_CANONICAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
_ISO_START = re.compile(r"^\d{4}-\d\d-\d\d")
_HAS_ZONE = re.compile(r"(?:[zZ]|[+-]\d\d(?::?\d\d(?::?\d\d(?:\.\d+)?)?)?)$")
_HAS_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d")

Comparable = str | int | float
_INT64 = 2**63
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_zoneless(value: Any) -> bool:
    """True for ISO date-times written without ``Z`` or an offset (``2024-03-01T10:00:00``)."""
    if not isinstance(value, str) or not _HAS_TIME.match(value):
        return False
    return _HAS_ZONE.search(value.strip()[10:]) is None


def normalize(value: Any, zone: tzinfo = UTC) -> Comparable | None:
    """The form stored in ``_updated_at`` and compared by the newest-wins upsert.

    ``zone`` is the source's declared time zone, applied to zone-less timestamps
    (DST folds resolve to the first occurrence, as :mod:`zoneinfo` does).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        # No store compares integers wider than 64 bits; as a float it still orders
        # among the numbers (a version this large is off by at most its last digits).
        return float(value)
    if isinstance(value, int | float):
        return value
    if not isinstance(value, str):
        return str(value)
    if _CANONICAL.match(value):
        return value if len(value) == 27 else value[:19] + ".000000Z"
    parsed = parse_iso(value, zone)
    return value if parsed is None else canonical(parsed)


def parse_iso(value: str, zone: tzinfo = UTC) -> datetime | None:
    """An aware UTC datetime from ISO-8601 text, or ``None`` if it is not one."""
    if not _ISO_START.match(value):
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        return None


def canonical(moment: datetime) -> str:
    # Not strftime("%Y"): it drops the leading zeros of years before 1000 on glibc.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def format_filter_value(
    normalized: Comparable,
    raw: Any,
    fmt: Literal["iso8601", "epoch", "epoch_ms", "raw"],
    lookback: timedelta,
) -> Any:
    """The value sent to the API's updated-since filter, ``lookback`` earlier than the watermark."""
    if fmt == "raw":
        return raw
    moment = _to_datetime(normalized)
    if moment is None:
        return raw
    moment -= lookback
    if fmt == "epoch":
        return (moment - _EPOCH) // timedelta(seconds=1)
    if fmt == "epoch_ms":
        return (moment - _EPOCH) // timedelta(milliseconds=1)  # integer maths: no float rounding
    text = canonical(moment)[:19]
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _to_datetime(value: Comparable) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            if value > 10**11:  # epoch milliseconds, not seconds
                return _EPOCH + timedelta(milliseconds=value)
            return _EPOCH + timedelta(seconds=value)
        except OverflowError:
            return None
    return parse_iso(value)
