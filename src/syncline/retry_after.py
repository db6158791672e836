"""``Retry-After`` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.

A date is turned into a delay against the response's own ``Date`` header when
present, which cancels any skew between our clock and the server's. Garbage
yields ``None`` (fall back to backoff); negative values and past dates yield 0.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]


def parse_retry_after(value: str | None, *, now: datetime, date: str | None = None) -> float | None:
    """Seconds to wait, or ``None`` when the header is absent or unreadable."""
    if value is None:
        return None
    text = value.split(",")[0].strip() if not _looks_like_date(value) else value.strip()
    if not text or "_" in text:  # float() accepts "1_000"; no server means that
        return None
    try:
        seconds = float(text)
    except ValueError:
        moment = _http_date(text)
        if moment is None:
            return None
        reference = _http_date(date) if date else None
        return max(0.0, (moment - (reference or now)).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _looks_like_date(value: str) -> bool:
    return any(ch.isalpha() for ch in value)


def _http_date(text: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # asctime has no zone: RFC 9110 says it is GMT
        moment = moment.replace(tzinfo=UTC)
    return moment
