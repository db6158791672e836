"""A stream table in DuckDB, created or brought to its declaration, in one transaction.

``ensure_table`` keeps each table's typed-column declaration
(:func:`~syncline.stores.columns.declared`) in ``_syncline_meta`` under
``columns:<table>`` and applies what :func:`~syncline.stores.columns.column_changes`
says: indexes dropped, columns dropped, columns added and refilled from
``_data``, indexes created, the new declaration saved. A crash leaves the
old declaration and the old columns, or the new ones.

Why a column is dropped by rebuilding the table: DuckDB refuses
``ALTER TABLE … DROP COLUMN`` while any index covers a column after it (the
primary key comes first, but an indexed typed column may follow), and an
index dropped in the same transaction still counts. Copying the rows into a
new table and renaming it works in one transaction; it costs what the refill
of the changed column costs anyway (one pass over the table).

Why the refill goes by ``rowid`` ranges: existing rows are read in batches
(``_data`` converted in Python by :func:`.duckdb_values.typed_texts`, the
same conversion every write uses), and each batch's values are written by
one ``UPDATE … WHERE rowid BETWEEN`` that picks its value from a list
parameter by ``rowid``: no join, no temporary table, bounded memory.

Index names are :func:`~syncline.stores.columns.index_name`'s: a hash of
(table, column), so long or hostile names cannot collide.
"""

from __future__ import annotations

import dataclasses
import hashlib

import duckdb

from syncline.errors import StoreError
from syncline.stores.base import Column, TableSpec
from syncline.stores.columns import column_changes, declared, index_name
from syncline.stores.duckdb_schema import META_COLUMNS, META_DDL, check_names, stored_table_name
from syncline.stores.duckdb_values import SQL_TYPES, typed_texts
from syncline.stores.sql import quote_identifier as q

__all__ = ["REFILL_BATCH", "ensure_table"]

REFILL_BATCH = 20_000
"""Rows read, converted and written back per step of a refill."""


def _hashed(prefix: str, *parts: str) -> str:
    raw = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return prefix + hashlib.blake2b(raw, digest_size=8).hexdigest()


def _create(con: duckdb.DuckDBPyConnection, name: str, table: TableSpec) -> None:
    identity = ", ".join(q(c) for c in table.identity_columns)
    keys = ", ".join(f"{q(c)} JSON NOT NULL" for c in table.identity_columns)
    typed = "".join(f", {q(c.name)} {SQL_TYPES[c.type]}" for c in table.columns)
    con.execute(f"CREATE TABLE {q(name)} ({keys}, {META_DDL}{typed}, PRIMARY KEY ({identity}))")


def _index(con: duckdb.DuckDBPyConnection, table: TableSpec, columns: tuple[Column, ...]) -> None:
    for column in columns:
        con.execute(
            f"CREATE INDEX IF NOT EXISTS {q(index_name(table.name, column.name))} "
            f"ON {q(table.name)} ({q(column.name)})"
        )


def ensure_table(con: duckdb.DuckDBPyConnection, table: TableSpec) -> None:
    """Inside a transaction: create ``table`` or bring its typed columns to its declaration."""
    check_names(table)
    key, wanted = f"columns:{table.name}", declared(table)
    existing = stored_table_name(con, table.name)
    if existing is not None and existing != table.name:
        raise StoreError(
            f"table {table.name!r} would be the existing table {existing!r}: DuckDB names "
            "ignore case; give the stream another table name"
        )
    if existing is None:
        _create(con, table.name, table)
        _index(con, table, tuple(c for c in table.columns if c.index))
    else:
        row = con.execute("SELECT value FROM _syncline_meta WHERE key = ?", [key]).fetchone()
        stored = None if row is None else str(row[0])
        if stored == wanted:
            return
        _change(con, table, stored)
    con.execute("INSERT OR REPLACE INTO _syncline_meta VALUES (?, ?)", [key, wanted])


def _change(con: duckdb.DuckDBPyConnection, table: TableSpec, stored: str | None) -> None:
    changes = column_changes(stored, table)
    for name in changes.unindex:
        con.execute(f"DROP INDEX IF EXISTS {q(index_name(table.name, name))}")
    if changes.drop:
        _rebuild(con, table, changes.add)
    else:
        for column in changes.add:
            con.execute(
                f"ALTER TABLE {q(table.name)} ADD COLUMN {q(column.name)} {SQL_TYPES[column.type]}"
            )
    if changes.refill:
        _refill(con, table, changes.add)
    _index(con, table, changes.index)


def _rebuild(con: duckdb.DuckDBPyConnection, table: TableSpec, added: tuple[Column, ...]) -> None:
    """The table again with its declared columns: identity, meta and unchanged typed columns
    copied, ``added`` left to the refill; the old table (and its indexes) dropped."""
    fresh = {column.name for column in added}
    kept = [c.name for c in table.columns if c.name not in fresh]
    names = ", ".join(q(c) for c in (*table.identity_columns, *META_COLUMNS, *kept))
    scratch = _hashed("_syncline_rebuild_", table.name)
    _create(con, scratch, table)
    con.execute(f"INSERT INTO {q(scratch)} ({names}) SELECT {names} FROM {q(table.name)}")
    con.execute(f"DROP TABLE {q(table.name)}")
    con.execute(f"ALTER TABLE {q(scratch)} RENAME TO {q(table.name)}")


def _refill(con: duckdb.DuckDBPyConnection, table: TableSpec, added: tuple[Column, ...]) -> None:
    """Fill ``added`` for every existing row (soft-deleted ones too) from its ``_data``."""
    name = q(table.name)
    bounds = con.execute(f"SELECT min(rowid), max(rowid) FROM {name}").fetchone()
    if bounds is None or bounds[0] is None:
        return
    low, high = int(bounds[0]), int(bounds[1])
    only = dataclasses.replace(table, columns=added)
    blank = (None,) * len(table.identity_columns)
    for start in range(low, high + 1, REFILL_BATCH):
        end = min(start + REFILL_BATCH, high + 1)
        found = con.execute(
            f"SELECT rowid, _data FROM {name} WHERE rowid >= ? AND rowid < ?", [start, end]
        ).fetchall()
        if not found:
            continue
        texts = typed_texts(only, [(*blank, data, None) for _, data in found])
        lists: list[list[str | None]] = [[None] * (end - start) for _ in added]
        for position, (rowid, _) in enumerate(found):
            for values, column in zip(lists, texts, strict=True):
                values[rowid - start] = column[position]
        sets = ", ".join(
            f"{q(c.name)} = CAST((?::VARCHAR[])[rowid - {start} + 1] AS {SQL_TYPES[c.type]})"
            for c in added
        )
        con.execute(
            f"UPDATE {name} SET {sets} WHERE rowid >= ? AND rowid < ?", [*lists, start, end]
        )
