"""Opaque keyset cursors shared by the REST, HAL and GraphQL endpoints.

Why keyset and not offsets: a cursor names the last record a client saw by its
``(updated_at, id)`` key, so inserts, updates and deletes between two requests
never make the next page skip or repeat an unchanged record.  The encoding is
urlsafe base64 of ``v1:<seconds>:<id>`` so clients treat it as opaque, and a
version tag lets us reject garbled input with a 400 rather than guess.
"""

from __future__ import annotations

import base64
import binascii

from syncline.sandbox.dataset import Dataset

_PREFIX = "v1"


class InvalidCursorError(ValueError):
    """The client sent a cursor this sandbox never issued."""


def encode_cursor(updated_ts: int, rid: int) -> str:
    raw = f"{_PREFIX}:{updated_ts}:{rid}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Return the ``(updated_at seconds, id)`` key inside ``cursor``."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidCursorError(f"invalid cursor: {cursor!r}") from exc
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != _PREFIX or not all(p.isdigit() for p in parts[1:]):
        raise InvalidCursorError(f"invalid cursor: {cursor!r}")
    return int(parts[1]), int(parts[2])


def cursor_at(dataset: Dataset, position: int) -> str:
    """Cursor naming the record at listing ``position``."""
    return encode_cursor(*dataset.key_at(position))


def start_after(dataset: Dataset, cursor: str | None, floor: int) -> int:
    """Listing position to continue from: after ``cursor``, never before ``floor``.

    ``floor`` is the ``updated_since`` start, so a filter given alongside a
    cursor still applies.  An empty/missing cursor starts at ``floor``.
    """
    if not cursor:
        return floor
    return max(floor, dataset.position_after(*decode_cursor(cursor)))
