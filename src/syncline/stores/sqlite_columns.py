"""Typed columns in the SQLite store: their SQL types, and bringing a table to its declaration.

SQLite has no decimal or timestamp type, so the mapping favours what SQL
users then write: a ``numeric`` value is stored as a number (integer or
float) when that number reads back as exactly the digits the API sent, so
``SUM(price)`` works, and as its exact text when it would not (20 significant
digits, say). The column is declared without a type for that: a ``NUMERIC``
column would turn such text into a rounded float. Timestamps are fixed-width
UTC ISO-8601 text, which sorts and which SQLite's date functions read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from syncline.stores.base import Row, TableSpec
from syncline.stores.columns import (
    column_changes,
    declared,
    index_name,
    typed_rows,
)
from syncline.stores.sql import quote_identifier

__all__ = ["SQL_TYPES", "bind_typed", "sync_columns"]

SQL_TYPES = {
    "text": "TEXT",
    "integer": "INTEGER",
    "numeric": "",
    "real": "REAL",
    "boolean": "INTEGER",
    "timestamp": "TEXT",
    "date": "TEXT",
    "json": "TEXT",
}
_REFILL_BATCH = 1000
_INT64 = 2**63


def _number(value: Decimal) -> int | float | str:
    """An SQLite number when it reads back as exactly ``value``, else the exact text."""
    if value == value.to_integral_value() and -_INT64 <= value < _INT64:
        return int(value)
    number = float(value)
    return number if Decimal(repr(number)) == value else str(value)


def bind_typed(table: TableSpec, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    """The typed columns' values of ``rows`` as SQLite binds them."""
    exact = [i for i, column in enumerate(table.columns) if column.type == "numeric"]
    found = typed_rows(table, rows)
    if not exact:
        return found
    bound = []
    for values in found:
        row = list(values)
        for i in exact:
            if row[i] is not None:
                row[i] = _number(row[i])
        bound.append(tuple(row))
    return bound


def sync_columns(db: sqlite3.Connection, table: TableSpec) -> None:
    """Inside the caller's write transaction: add, drop, refill and index typed columns until
    the table matches its declaration, which is then remembered in ``_syncline_meta``."""
    q = quote_identifier
    key = f"columns:{table.name}"
    row = db.execute("SELECT value FROM _syncline_meta WHERE key = ?", (key,)).fetchone()
    changes = column_changes(None if row is None else row[0], table)
    name = q(table.name)
    for column in changes.unindex:
        db.execute(f"DROP INDEX IF EXISTS {q(index_name(table.name, column))}")
    for column in changes.drop:
        db.execute(f"ALTER TABLE {name} DROP COLUMN {q(column)}")
    for added in changes.add:
        db.execute(
            f"ALTER TABLE {name} ADD COLUMN {q(added.name)} {SQL_TYPES[added.type]}".rstrip()
        )
    if changes.refill:
        _refill(db, table, [c.name for c in changes.add])
    for indexed in changes.index:
        db.execute(
            f"CREATE INDEX IF NOT EXISTS {q(index_name(table.name, indexed.name))} "
            f"ON {name} ({q(indexed.name)})"
        )
    db.execute("INSERT OR REPLACE INTO _syncline_meta VALUES (?, ?)", (key, declared(table)))


def _refill(db: sqlite3.Connection, table: TableSpec, names: list[str]) -> None:
    """Fill newly added columns of the rows already stored, from their ``_data``."""
    q = quote_identifier
    positions = [i for i, c in enumerate(table.columns) if c.name in set(names)]
    assignments = ", ".join(f"{q(table.columns[i].name)} = ?" for i in positions)
    width = len(table.identity_columns)
    last = -(2**63)
    select = f"SELECT rowid, _data FROM {q(table.name)} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    # By rowid ranges, not one open cursor: the UPDATEs below write the table it would read.
    while batch := db.execute(select, (last, _REFILL_BATCH)).fetchall():
        last = batch[-1][0]
        rows = [(*(None,) * width, data, None) for _, data in batch]
        values = bind_typed(table, rows)
        db.executemany(
            f"UPDATE {q(table.name)} SET {assignments} WHERE rowid = ?",
            [
                (*(typed[i] for i in positions), rowid)
                for (rowid, _), typed in zip(batch, values, strict=True)
            ],
        )
