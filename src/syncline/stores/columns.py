"""Typed columns: values read from a record by a path, converted once, for every store.

A stream's ``columns:`` puts chosen fields next to ``_data`` as real columns,
so users write ``SELECT name, price FROM products`` in any store. Why the
conversion lives here and not in each store: ``"12.50"`` must become the same
number in SQLite, PostgreSQL, DuckDB and a JSON line, and a value that is not
a number must be treated the same everywhere (``NULL``, and one warning),
never fail a page. The data itself stays whole in ``_data``: a column is a
derived copy, dropped and refilled whenever its declaration changes.

The Python value of each type, which every store binds as it is:

============  ==========================================================
``text``      ``str`` (numbers and booleans as JSON writes them; objects
              and lists as JSON text)
``integer``   ``int`` within 64 bits
``numeric``   ``decimal.Decimal``, exactly the digits the API sent
``real``      ``float``
``boolean``   ``bool`` (also from ``0``/``1`` and ``"true"``/``"false"``)
``timestamp`` ``str``: fixed-width UTC ISO-8601, ``_updated_at``'s form
              (from ISO-8601 text, zone-less read as UTC, or epoch
              seconds or milliseconds); every store casts it
``date``      ``str`` ``YYYY-MM-DD`` (also the UTC day of a timestamp)
``json``      JSON text of the value, whatever it is
============  ==========================================================
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import orjson

from syncline.errors import StoreError
from syncline.jpath import Getter, compile_path
from syncline.stores.base import COLUMN_TYPES, Column, Row, TableSpec
from syncline.timestamps import canonical, parse_iso

__all__ = [
    "ColumnChanges",
    "check_names",
    "column_changes",
    "declared",
    "encode_json_value",
    "index_name",
    "typed_rows",
    "typed_values",
    "warn_again",
]

log = logging.getLogger("syncline")

_INT64 = 2**63
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CANONICAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


class _Unfit(Exception):
    """The value cannot be the column's type: the column gets NULL."""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise _Unfit
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _Unfit from None
    if not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise _Unfit
    return value


def _numeric(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _Unfit
    try:
        number = Decimal(value if isinstance(value, Decimal | int) else str(value).strip())
    except InvalidOperation:
        raise _Unfit from None
    if not number.is_finite():
        raise _Unfit
    return number


def _real(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _Unfit
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise _Unfit from None
    if not math.isfinite(number):
        raise _Unfit
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Unfit


def _moment(value: Any) -> datetime:
    if isinstance(value, bool):
        raise _Unfit
    if isinstance(value, int | float):
        try:
            if abs(value) > 10**11:  # epoch milliseconds, as the watermark reads them
                return _EPOCH + timedelta(milliseconds=value)
            return _EPOCH + timedelta(seconds=value)
        except (OverflowError, ValueError):
            raise _Unfit from None
    if isinstance(value, str):
        moment = parse_iso(value)
        if moment is not None:
            return moment
    raise _Unfit


def _timestamp(value: Any) -> str:
    if isinstance(value, str) and _CANONICAL.match(value):
        return value if len(value) == 27 else value[:19] + ".000000Z"
    return canonical(_moment(value))


def _date(value: Any) -> str:
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise _Unfit from None
    return _moment(value).date().isoformat()


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "integer": _integer,
    "numeric": _numeric,
    "real": _real,
    "boolean": _boolean,
    "timestamp": _timestamp,
    "date": _date,
    "json": _json,
}
assert set(_CONVERT) == set(COLUMN_TYPES)


@dataclass(frozen=True, slots=True)
class _Reader:
    table: str
    column: Column
    get: Getter
    convert: Callable[[Any], Any]


_warned: set[tuple[str, str]] = set()
"""(table, column) pairs already warned about in this run."""


def warn_again() -> None:
    """Start a new run: a column that could not hold a value is reported once more."""
    _warned.clear()


@lru_cache(maxsize=256)
def _readers(table: TableSpec) -> tuple[_Reader, ...]:
    """Built once per table declaration: the JSON lines store asks per record."""
    return tuple(
        _Reader(table.name, column, compile_path(column.path), _CONVERT[column.type])
        for column in table.columns
    )


def _parse(data: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # integers beyond 64 bits: orjson refuses, json does not
        return json.loads(data)


def _unfit(reader: _Reader, found: Any) -> None:
    """A value the column cannot hold (it gets NULL): said once per run and column."""
    key = (reader.table, reader.column.name)
    if key not in _warned:
        _warned.add(key)
        log.warning(
            "table %s, column %s (%s from %r): %s is not a %s; stored NULL there "
            "(the record itself is kept whole in _data; warned once per run)",
            reader.table, reader.column.name, reader.column.type, reader.column.path,
            _text(found)[:80], reader.column.type,
        )  # fmt: skip


def typed_values(table: TableSpec, data: str) -> tuple[Any, ...]:
    """The typed columns' values for one record given as its JSON text (``_data``)."""
    if not table.columns:
        return ()
    width = len(table.identity_columns)
    return typed_rows(table, [(*(None,) * width, data, None)])[0]


def typed_rows(table: TableSpec, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    """The typed columns' values of each row (``row[width]`` is ``_data``), in row order."""
    if not table.columns:
        return [() for _ in rows]
    readers = [(reader.get, reader.convert, reader) for reader in _readers(table)]
    width = len(table.identity_columns)
    values = []
    for row in rows:
        record = _parse(row[width])
        typed: list[Any] = []
        for get, convert, reader in readers:
            found = get(record)
            if found is None:
                typed.append(None)
                continue
            try:
                typed.append(convert(found))
            except _Unfit:
                _unfit(reader, found)
                typed.append(None)
        values.append(tuple(typed))
    return values


def encode_json_value(value: Any) -> Any:
    """A typed value as a JSON document holds it: a ``Decimal`` as its exact text; every
    other type already is what JSON and text-only stores hold."""
    return str(value) if isinstance(value, Decimal) else value


def declared(table: TableSpec) -> str:
    """The columns' declaration as canonical JSON: stores keep it to see what changed."""
    return json.dumps({c.name: [c.path, c.type, c.index] for c in table.columns}, sort_keys=True)


@dataclass(frozen=True, slots=True)
class ColumnChanges:
    """What ``ensure_table`` must do to bring a table's typed columns to its declaration."""

    add: tuple[Column, ...]
    """New columns, and columns whose path or type changed (dropped first: see ``drop``)."""
    drop: tuple[str, ...]
    """Columns no longer declared, or declared differently (re-added by ``add``)."""
    index: tuple[Column, ...]
    """Columns that must have an index (created if missing)."""
    unindex: tuple[str, ...]
    """Columns whose index must go."""

    @property
    def refill(self) -> bool:
        """Whether existing rows must be read again to fill the added columns."""
        return bool(self.add)


def column_changes(stored: str | None, table: TableSpec) -> ColumnChanges:
    """Compare the declaration a store kept (:func:`declared`, ``None``: none) with ``table``'s."""
    before: dict[str, list[Any]] = json.loads(stored) if stored else {}
    add: list[Column] = []
    drop: list[str] = []
    for column in table.columns:
        was = before.get(column.name)
        if was is None:
            add.append(column)
        elif was[:2] != [column.path, column.type]:
            drop.append(column.name)
            add.append(column)
    names = {c.name for c in table.columns}
    drop += [name for name in before if name not in names]
    index = tuple(c for c in table.columns if c.index)
    unindex = tuple(
        name
        for name, (_, _, was_indexed) in before.items()
        if was_indexed and (name not in names or name in drop or not _indexed(table, name))
    )
    return ColumnChanges(tuple(add), tuple(drop), index, unindex)


def _indexed(table: TableSpec, name: str) -> bool:
    return any(c.name == name and c.index for c in table.columns)


def index_name(table: str, column: str) -> str:
    """A short index name no two (table, column) pairs share, whatever their length or text."""
    digest = hashlib.blake2b(f"{table}\x1f{column}".encode(), digest_size=8).hexdigest()
    return f"_syncline_ix_{digest}"


def check_names(table: TableSpec, meta: Sequence[str], fold: bool) -> None:
    """Refuse a table whose identity, meta and typed column names collide (``fold``: the
    database compares names case-insensitively, as SQLite and DuckDB do)."""
    names = [*table.identity_columns, *meta, *(c.name for c in table.columns)]
    seen = [name.lower() if fold else name for name in names]
    if len(set(seen)) != len(seen) or not table.identity_columns:
        raise StoreError(f"table {table.name!r}: column names collide: {names}")
