"""Modification values: one comparable form for the store, the API's own form for filters.

Timestamps are compared as instants, not strings (``+01:00`` vs ``Z``), so
ISO-8601 text is normalised to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width,
sorts as text). Zone-less timestamps are read as UTC, never the host's zone.
Numbers (epoch values, integer versions) stay numbers. Anything else is kept
verbatim rather than failing a sync over one odd record.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = ["format_filter_value", "normalize"]

_CANONICAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
_ISO_START = re.compile(r"^\d{4}-\d\d-\d\d")

Comparable = str | int | float


def normalize(value: Any) -> Comparable | None:
    """The form stored in ``_updated_at`` and compared by the newest-wins upsert."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if not isinstance(value, str):
        return str(value)
    if _CANONICAL.match(value):
        return value if len(value) == 27 else value[:19] + ".000000Z"
    parsed = parse_iso(value)
    return value if parsed is None else _canonical(parsed)


def parse_iso(value: str) -> datetime | None:
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
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _canonical(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        return int(moment.timestamp())
    if fmt == "epoch_ms":
        return int(moment.timestamp() * 1000)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _to_datetime(value: Comparable) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10**11 else value  # epoch ms vs s
        return datetime.fromtimestamp(seconds, tz=UTC)
    return parse_iso(value)
