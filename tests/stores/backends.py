"""The stores the contract suite runs against, and a normalised export of each.

To add a store (DuckDB, JSON lines): write a :class:`Backend` subclass that
makes fresh store URLs, names the module whose ``lease_now`` the store reads
(for the fake clock), and reads its tables back raw; add it to ``BACKENDS``.
Every contract test then runs against it, and the cross-store test compares
its export with SQLite's.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from decimal import Context, Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from syncline.stores import Store, TableSpec, open_store
from syncline.stores import sqlite as sqlite_module
from syncline.stores.sql import quote_identifier as sqlite_quote
from syncline.timestamps import canonical

BACKENDS = ["sqlite", "postgresql"]

RawRow = tuple[list[Any], Any, Any, bool]
"""Identity values, the record (parsed), ``_updated_at``, deleted or not."""


class Backend:
    name: str
    case_sensitive: bool = True
    """Whether ``Id`` and ``id`` name two columns (SQLite: one, so a clash is an error)."""
    module: ModuleType
    """The store's module: the fake clock replaces its ``lease_now``, failpoints its
    ``failpoint``."""

    def url(self) -> str:
        """A new, empty store."""
        raise NotImplementedError

    def open(self, url: str | None = None) -> Store:
        return open_store(url or self.url())

    def raw_rows(self, url: str, table: TableSpec) -> list[RawRow]:
        raise NotImplementedError

    def raw_feed(self, url: str) -> list[tuple[str, str, str, str, list[Any]]]:
        """``(source, stream, partition, kind, keys)`` per feed entry, in id order."""
        raise NotImplementedError

    def raw_columns(self, url: str, table: TableSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
        """The typed columns of every row (deleted ones too) by identity, as the store holds
        them; :func:`normal` makes them comparable across stores."""
        raise NotImplementedError

    def raw_indexes(self, url: str, table: TableSpec) -> set[str]:
        """The typed columns of ``table`` that have an index."""
        raise NotImplementedError

    def execute(self, url: str, sql: str) -> None:
        """Run one statement of bookkeeping SQL (unqualified ``_syncline_*`` table names)."""
        raise NotImplementedError

    def export(self, url: str, tables: list[TableSpec]) -> dict[str, Any]:
        """Everything a user can observe, without what differs by nature (times, run ids,
        feed ids): rows as sorted JSON, the feed's entries, the checkpoints."""
        store = self.open(url)
        try:
            states = [
                [s.key.source, s.key.stream, s.key.partition, s.watermark, s.cursor,
                 s.position, s.status, s.records, s.pages, s.pass_filter]
                for s in store.all_states()
            ]  # fmt: skip
        finally:
            store.close()
        rows = {
            table.name: sorted(
                json.dumps(
                    {"identity": identity, "data": data, "updated_at": updated, "deleted": deleted},
                    sort_keys=True,
                )
                for identity, data, updated, deleted in self.raw_rows(url, table)
            )
            for table in tables
        }
        feed = sorted(
            json.dumps([source, stream, partition, kind, key])
            for source, stream, partition, kind, keys in self.raw_feed(url)
            for key in keys
        )
        return {"rows": rows, "feed": feed, "states": states}


def normal(kind: str, value: Any) -> Any:
    """A typed column's value as JSON would write it, whatever the store's own type:
    SQLite's 1/0 booleans, PostgreSQL's Decimal and datetime, DuckDB's, a JSON line's."""
    if value is None:
        return None
    if kind == "numeric":
        return format(Decimal(str(value)).normalize(Context(prec=100)), "f")
    if kind == "boolean":
        return bool(value)
    if kind == "real":
        return float(value)
    if kind == "timestamp":
        if isinstance(value, datetime):
            return canonical(value.astimezone(UTC))
        return str(value)
    if kind == "date":
        return value.isoformat() if isinstance(value, date) else str(value)
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    return value


def typed_select(table: TableSpec, quote: Any) -> str:
    return ", ".join(quote(c.name) for c in table.columns)


def by_identity(
    table: TableSpec, found: list[Any], decode: Any = lambda v: v
) -> dict[tuple[Any, ...], dict[str, Any]]:
    width = len(table.identity_columns)
    return {
        tuple(decode(v) for v in row[:width]): {
            c.name: normal(c.type, value)
            for c, value in zip(table.columns, row[width:], strict=True)
        }
        for row in found
    }


class SQLiteBackend(Backend):
    name = "sqlite"
    module = sqlite_module
    case_sensitive = False

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.count = 0

    def url(self) -> str:
        self.count += 1
        return f"sqlite:///{self.tmp_path}/store{self.count}.db"

    def _path(self, url: str) -> str:
        return url.removeprefix("sqlite:///")

    def raw_rows(self, url: str, table: TableSpec) -> list[RawRow]:
        q = sqlite_quote
        identity = ", ".join(q(c) for c in table.identity_columns)
        width = len(table.identity_columns)
        with sqlite3.connect(self._path(url)) as conn:
            found = conn.execute(
                f"SELECT {identity}, _data, _updated_at, _deleted_at IS NOT NULL "
                f"FROM {q(table.name)}"
            ).fetchall()
        return [(list(r[:width]), json.loads(r[width]), r[width + 1], bool(r[-1])) for r in found]

    def raw_feed(self, url: str) -> list[tuple[str, str, str, str, list[Any]]]:
        with sqlite3.connect(self._path(url)) as conn:
            found = conn.execute(
                "SELECT source, stream, partition, kind, keys FROM _syncline_changes ORDER BY id"
            ).fetchall()
        return [(*row[:4], json.loads(row[4])) for row in found]

    def execute(self, url: str, sql: str) -> None:
        with sqlite3.connect(self._path(url)) as conn:
            conn.execute(sql)

    def raw_columns(self, url: str, table: TableSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
        q = sqlite_quote
        identity = ", ".join(q(c) for c in table.identity_columns)
        with sqlite3.connect(self._path(url)) as conn:
            found = conn.execute(
                f"SELECT {identity}, {typed_select(table, q)} FROM {q(table.name)}"
            ).fetchall()
        return by_identity(table, found)

    def raw_indexes(self, url: str, table: TableSpec) -> set[str]:
        with sqlite3.connect(self._path(url)) as conn:
            names = [
                row[1] for row in conn.execute(f"PRAGMA index_list({sqlite_quote(table.name)})")
            ]
            return {
                column[2]
                for name in names
                if name.startswith("_syncline_ix_")
                for column in conn.execute(f"PRAGMA index_info({sqlite_quote(name)})")
            }


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, schemas: Any) -> None:
        from syncline.stores import postgres

        self.module = postgres
        self.schemas = schemas

    def url(self) -> str:
        return str(self.schemas.url())

    def _connect(self, url: str) -> Any:
        import psycopg

        base, _, schema = url.partition("?schema=")
        conn = psycopg.connect(base, autocommit=True)
        conn.execute(f'SET search_path TO "{schema}"'.encode())
        return conn

    def raw_rows(self, url: str, table: TableSpec) -> list[RawRow]:
        from syncline.stores.postgres_names import quote_identifier as q

        identity = ", ".join(q(c) for c in table.identity_columns)
        width = len(table.identity_columns)
        with self._connect(url) as conn:
            found = conn.execute(
                f"SELECT {identity}, _data::text, _updated_at, _deleted_at IS NOT NULL "
                f"FROM {q(table.name)}",
                (),
            ).fetchall()
        return [(list(r[:width]), json.loads(r[width]), r[width + 1], bool(r[-1])) for r in found]

    def raw_feed(self, url: str) -> list[tuple[str, str, str, str, list[Any]]]:
        with self._connect(url) as conn:
            found = conn.execute(
                "SELECT source, stream, partition, kind, keys FROM _syncline_changes ORDER BY id"
            ).fetchall()
        return [tuple(row) for row in found]

    def execute(self, url: str, sql: str) -> None:
        with self._connect(url) as conn:
            conn.execute(sql.encode())

    def raw_columns(self, url: str, table: TableSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
        from syncline.stores.postgres_names import quote_identifier as q

        identity = ", ".join(q(c) for c in table.identity_columns)
        with self._connect(url) as conn:
            found = conn.execute(
                f"SELECT {identity}, {typed_select(table, q)} FROM {q(table.name)}", ()
            ).fetchall()
        return by_identity(table, found)

    def raw_indexes(self, url: str, table: TableSpec) -> set[str]:
        from syncline.stores.postgres_names import pg_name

        with self._connect(url) as conn:
            found = conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_class t ON t.oid = i.indrelid "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey) "
                "WHERE t.relname = %s AND t.relnamespace = current_schema()::regnamespace "
                "AND c.relname LIKE '\\_syncline\\_ix\\_%%'",
                (pg_name(table.name),),
            ).fetchall()
        names = {pg_name(c.name): c.name for c in table.columns}
        return {names.get(row[0], row[0]) for row in found}


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if name == "sqlite":
        return SQLiteBackend(tmp_path)
    if name == "postgresql":
        return PostgresBackend(request.getfixturevalue("postgres_schemas"))
    raise ValueError(f"unknown backend {name}")
