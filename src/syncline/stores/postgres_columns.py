"""Typed columns in the PostgreSQL store: real types, filled from the page document.

The page reaches the server as one JSON document (see :mod:`.postgres_changes`);
a typed value rides in it as JSON (exact decimal text, fixed-width UTC
timestamps) and is cast by the server into the column's type, so the bulk
path stays one statement. ``json`` columns are ``jsonb`` and take the value
itself, not its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from syncline.stores.base import Column, Row, TableSpec
from syncline.stores.columns import (
    column_changes,
    declared,
    encode_json_value,
    index_name,
    typed_rows,
)
from syncline.stores.postgres_names import quote_identifier as q
from syncline.stores.postgres_rows import to_json

__all__ = ["SQL_TYPES", "document_values", "sync_columns", "typed_select"]

Cursor = psycopg.Cursor[tuple[Any, ...]]

SQL_TYPES = {
    "text": "text",
    "integer": "bigint",
    "numeric": "numeric",
    "real": "double precision",
    "boolean": "boolean",
    "timestamp": "timestamptz",
    "date": "date",
    "json": "jsonb",
}
_REFILL_BATCH = 1000


def typed_select(column: Column, array: str, position: int) -> str:
    """SQL reading ``column``'s value from item ``position`` of the JSON array ``array``."""
    if column.type == "json":
        return f"NULLIF({array} -> {position}, 'null'::jsonb)"
    as_text = f"{array} ->> {position}"
    if column.type == "text":
        return as_text
    return f"({as_text})::{SQL_TYPES[column.type]}"


def document_values(table: TableSpec, rows: Sequence[Row]) -> list[str]:
    """Each row's typed values as JSON text to paste after its other fields (``,v1,v2``)."""
    if not table.columns:
        return ["" for _ in rows]
    kinds = [c.type for c in table.columns]
    pasted = []
    for values in typed_rows(table, rows):
        parts = [
            value if kind == "json" and value is not None else to_json(encode_json_value(value))
            for kind, value in zip(kinds, values, strict=True)
        ]
        pasted.append("," + ",".join(parts))
    return pasted


def sync_columns(cur: Cursor, s: str, name: str, table: TableSpec) -> None:
    """Inside the caller's transaction: add, drop, refill and index typed columns until the
    table matches its declaration, then remember it in ``_syncline_meta``.
    ``s``: the quoted schema; ``name``: the quoted, qualified table."""
    key = f"columns:{table.name}"
    cur.execute(f"SELECT value FROM {s}._syncline_meta WHERE key = %s", (key,))
    found = cur.fetchone()
    changes = column_changes(None if found is None else str(found[0]), table)
    for column in changes.unindex:
        cur.execute(f"DROP INDEX IF EXISTS {s}.{q(index_name(table.name, column))}", ())
    for dropped in changes.drop:
        cur.execute(f"ALTER TABLE {name} DROP COLUMN IF EXISTS {q(dropped)}", ())
    for added in changes.add:
        cur.execute(f"ALTER TABLE {name} ADD COLUMN {q(added.name)} {SQL_TYPES[added.type]}", ())
    if changes.refill:
        _refill(cur, name, table, changes.add)
    for indexed in changes.index:
        cur.execute(
            f"CREATE INDEX IF NOT EXISTS {q(index_name(table.name, indexed.name))} "
            f"ON {name} ({q(indexed.name)})",
            (),
        )
    cur.execute(
        f"INSERT INTO {s}._syncline_meta VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, declared(table)),
    )


def _refill(cur: Cursor, name: str, table: TableSpec, added: Sequence[Column]) -> None:
    """Fill newly added columns of the rows already stored, from their ``_data``, walking the
    primary key in batches (an UPDATE moves rows on disk, so not by physical position)."""
    identity = table.identity_columns
    width = len(identity)
    keys = ", ".join(q(c) for c in identity)
    only = TableSpec(table.name, table.partition_columns, table.key_columns, columns=tuple(added))
    sets = ", ".join(
        f"{q(c.name)} = {typed_select(c, 'r', width + i)}" for i, c in enumerate(added)
    )
    match = " AND ".join(f"t.{q(c)} = r -> {i}" for i, c in enumerate(identity))
    after: tuple[Any, ...] | None = None
    while True:
        where = "" if after is None else f"WHERE ({keys}) > ({', '.join(['%s::jsonb'] * width)})"
        cur.execute(
            f"SELECT {keys}, _data::text FROM {name} {where} ORDER BY {keys} LIMIT {_REFILL_BATCH}",
            () if after is None else tuple(map(to_json, after)),
        )
        batch = cur.fetchall()
        if not batch:
            return
        after = tuple(batch[-1][:width])
        rows = [(*row[:width], row[width], None) for row in batch]
        pasted = document_values(only, rows)
        document = ",".join(
            f"[{','.join(map(to_json, row[:width]))}{values}]"
            for row, values in zip(rows, pasted, strict=True)
        )
        cur.execute(
            f"UPDATE {name} AS t SET {sets} FROM jsonb_array_elements(%s::jsonb) AS page(r) "
            f"WHERE {match}",
            (f"[{document}]",),
        )
