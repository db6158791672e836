"""Python values to and from the DuckDB store's columns.

Three decisions live here:

- **Keys as canonical JSON text.** Partition and key columns are ``JSON``
  holding the compact JSON of the value, so ``1`` and ``"1"`` stay two
  records (as in SQLite, whose columns keep each value's type) and read back
  as the values they were. Lookups compare that text, so it must be written
  the same way every time: :func:`to_json`.
- **What DuckDB's JSON refuses, quarantined.** DuckDB's ``JSON`` type rejects
  an unpaired surrogate escape (``"\\ud800"``), which an API can send and
  SQLite stores. Failing the page would stop the stream forever on one odd
  record, so such a record goes to ``_syncline_rejects`` with the reason, in
  the page's own transaction. Any other text that is not one JSON value fails
  the page with a :class:`StoreError` (DuckDB validates it; nothing is written).
- **Typed columns travel as text** and are cast in SQL: a ``Decimal`` keeps
  every digit, a ``float`` its shortest round-trip form, a timestamp (already
  fixed-width UTC text, see :mod:`.columns`) its microseconds. ``numeric`` is
  ``DECIMAL(38,10)``: exact, 28 digits before the point and 10 after (every
  currency, every exchange rate, any 64-bit integer). A number that does not
  fit becomes NULL with one warning rather than failing the page or being
  rounded silently; the record stays whole in ``_data``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from syncline.errors import StoreError
from syncline.stores.base import Reject, Row, TableSpec
from syncline.stores.columns import typed_rows

__all__ = [
    "NUMERIC",
    "SQL_TYPES",
    "UNSTORABLE",
    "clean_text",
    "from_json",
    "split_unstorable",
    "to_json",
    "typed_texts",
]

log = logging.getLogger("syncline")

NUMERIC = "DECIMAL(38,10)"
_SCALE = 10
_LIMIT = Decimal(10) ** (38 - _SCALE)
SQL_TYPES = {
    "text": "VARCHAR",
    "integer": "BIGINT",
    "numeric": NUMERIC,
    "real": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "json": "JSON",
}
"""Each :data:`~syncline.stores.base.COLUMN_TYPES` entry as a DuckDB type."""

UNSTORABLE = (
    "DuckDB cannot store this record: it contains an unpaired surrogate (\\ud800-\\udfff), "
    "which DuckDB's JSON type refuses"
)
_SUSPECT = ("\\ud", "\\uD")
"""JSON escapes that may be a lone surrogate; only a record holding one is decoded."""

_warned: set[tuple[str, str]] = set()


def to_json(value: Any) -> str:
    """Compact JSON text of a key or modification value (integers of any size stay exact)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def from_json(text: str | None) -> Any:
    """The value :func:`to_json` wrote (``None`` for SQL NULL)."""
    return None if text is None else json.loads(text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return not _encodable(value)
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(item) for item in value)
    return False


def _storable(row: Row, width: int) -> bool:
    for value in (*row[:width], row[width + 1]):
        if isinstance(value, str) and not _encodable(value):
            return False
    data = row[width]
    if not isinstance(data, str):
        raise StoreError(f"a record must be JSON text, got {type(data).__name__}")
    if not _encodable(data):
        return False
    if any(escape in data for escape in _SUSPECT):
        try:
            return not _lone_surrogate(json.loads(data))
        except ValueError:
            raise StoreError(f"a record is not one JSON value: {data[:80]!r}") from None
    return True


def split_unstorable(
    rows: Sequence[Row], deletes: Sequence[Row], width: int
) -> tuple[Sequence[Row], Sequence[Row], list[Reject]]:
    """``rows`` and ``deletes`` without what DuckDB cannot hold, and rejects for the rows.

    A tombstone whose key cannot be stored matches no stored row: it is dropped.
    """
    if all(_storable(row, width) for row in rows) and all(_storable(row, width) for row in deletes):
        return rows, deletes, []
    kept = [row for row in rows if _storable(row, width)]
    rejects = [Reject(UNSTORABLE, row[width]) for row in rows if not _storable(row, width)]
    log.warning("%d record(s) quarantined: %s", len(rejects), UNSTORABLE)
    return kept, [row for row in deletes if _storable(row, width)], rejects


def clean_text(text: str | None) -> str | None:
    """Free text for a ``VARCHAR`` column: unpaired surrogates (not UTF-8) become U+FFFD."""
    if text is None or _encodable(text):
        return text
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def _fits(value: Decimal) -> bool:
    """Whether ``value`` is exact in ``DECIMAL(38,10)`` (trailing zeros do not count)."""
    if value.copy_abs() >= _LIMIT:  # copy_abs: abs() would round to 28 digits
        return False
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # typed_rows only gives finite numbers
    extra = -exponent - _SCALE
    return extra <= 0 or all(digit == 0 for digit in digits[-extra:])


def _text(table: str, column: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        if _fits(value):
            return format(value, "f")
        if (table, column) not in _warned:
            _warned.add((table, column))
            log.warning(
                "table %s, column %s: %s does not fit DuckDB's %s (28 digits before the "
                "point, 10 after); stored NULL there (the record itself is kept whole in "
                "_data; warned once)",
                table, column, str(value)[:80], NUMERIC,
            )  # fmt: skip
        return None
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    raise StoreError(f"table {table}, column {column}: unexpected value {value!r}")


def typed_texts(table: TableSpec, rows: Sequence[Row]) -> list[list[str | None]]:
    """Per typed column (declaration order), each row's value as text for a SQL cast."""
    names = [column.name for column in table.columns]
    columns: list[list[str | None]] = [[] for _ in names]
    for values in typed_rows(table, rows):
        for index, value in enumerate(values):
            columns[index].append(_text(table.name, names[index], value))
    return columns
