"""Values PostgreSQL cannot hold, found before they fail a whole page.

PostgreSQL's ``text`` cannot contain NUL, and its ``jsonb`` refuses the
escape ``\\u0000`` and unpaired surrogates (``\\ud800``), all of which an API
can send and SQLite stores. Failing the page would stop the stream forever on
one odd record; so such a record is quarantined in ``_syncline_rejects``
with the reason, in the page's own transaction, like any record syncline
cannot store (see ``on_invalid_record``). Free text we write ourselves (error
messages, reasons) is cleaned instead.

Every record must also be exactly one JSON value: the page reaches the
server as one JSON document with each record's text pasted in (see
:mod:`.postgres_changes`), and only a complete value cannot change the
document's shape. The engine's records always are; a caller that passes
anything else gets a :class:`StoreError` and nothing is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from syncline.errors import StoreError
from syncline.stores.base import Reject, Row

__all__ = ["UNSTORABLE", "clean_text", "split_unstorable", "to_json"]

UNSTORABLE = (
    "PostgreSQL cannot store this record: it contains a NUL character (\\u0000) or an "
    "unpaired surrogate, which text and jsonb cannot hold"
)
_SUSPECT = ("\\u0000", "\\ud", "\\uD")
"""JSON escapes that may be a NUL or a surrogate; only a record holding one is decoded."""

log = logging.getLogger("syncline")


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_value(value: Any) -> bool:
    if isinstance(value, str):
        return _bad_text(value)
    if isinstance(value, dict):
        return any(_bad_text(k) or _bad_value(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_value(item) for item in value)
    return False


def _storable(row: Row, width: int) -> bool:
    for value in (*row[:width], row[width + 1]):
        if isinstance(value, str) and _bad_text(value):
            return False
    data = row[width]
    if not isinstance(data, str):
        raise StoreError(f"a record must be JSON text, got {type(data).__name__}")
    if _bad_text(data):
        return False
    try:
        if any(escape in data for escape in _SUSPECT):
            return not _bad_value(json.loads(data))
        orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError is one too
        raise StoreError(f"a record is not one JSON value: {data[:80]!r}") from None
    return True


def split_unstorable(
    rows: Sequence[Row], deletes: Sequence[Row], width: int
) -> tuple[Sequence[Row], Sequence[Row], list[Reject]]:
    """``rows`` and ``deletes`` without what PostgreSQL cannot hold, and rejects for the rows.

    A tombstone whose key cannot be stored matches no stored row: it is dropped.
    """
    if all(_storable(row, width) for row in rows) and all(_storable(row, width) for row in deletes):
        return rows, deletes, []
    kept = [row for row in rows if _storable(row, width)]
    rejects = [Reject(UNSTORABLE, str(row[width])) for row in rows if not _storable(row, width)]
    log.warning("%d record(s) quarantined: %s", len(rejects), UNSTORABLE)
    return kept, [row for row in deletes if _storable(row, width)], rejects


def clean_text(text: str | None) -> str | None:
    """Free text for a ``text`` column: NUL and unpaired surrogates become U+FFFD."""
    if text is None or not _bad_text(text):
        return text
    return "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in text)


def to_json(value: Any) -> str:
    """JSON text of a value bound to a ``jsonb`` parameter (integers of any size stay exact)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)
