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

BACKENDS = ["sqlite", "postgresql", "duckdb", "jsonl"]

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


class DuckDBBackend(Backend):
    """Read back with duckdb itself. In this process DuckDB shares one database instance per
    file (same default configuration as the store's), so this works while a store is open;
    each read closes its connection, so a later process can open the file."""

    name = "duckdb"
    case_sensitive = False

    def __init__(self, tmp_path: Path) -> None:
        from syncline.stores import duckdb_store

        self.module = duckdb_store
        self.tmp_path = tmp_path
        self.count = 0

    def url(self) -> str:
        self.count += 1
        return f"duckdb:///{self.tmp_path}/store{self.count}.duckdb"

    def _query(self, url: str, sql: str, args: list[Any] | None = None) -> list[Any]:
        import duckdb

        conn = duckdb.connect(url.removeprefix("duckdb:///"))
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def raw_rows(self, url: str, table: TableSpec) -> list[RawRow]:
        q = sqlite_quote  # DuckDB quotes identifiers as SQLite does
        identity = ", ".join(q(c) for c in table.identity_columns)
        width = len(table.identity_columns)
        found = self._query(
            url,
            f"SELECT {identity}, _data, _updated_at, _deleted_at IS NOT NULL FROM {q(table.name)}",
        )
        return [
            ([json.loads(v) for v in r[:width]], json.loads(r[width]),
             None if r[width + 1] is None else json.loads(r[width + 1]), bool(r[-1]))
            for r in found
        ]  # fmt: skip

    def raw_feed(self, url: str) -> list[tuple[str, str, str, str, list[Any]]]:
        found = self._query(
            url, "SELECT source, stream, partition, kind, keys FROM _syncline_changes ORDER BY id"
        )
        return [(*row[:4], json.loads(row[4])) for row in found]

    def execute(self, url: str, sql: str) -> None:
        self._query(url, sql)

    def raw_columns(self, url: str, table: TableSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
        q = sqlite_quote
        identity = ", ".join(q(c) for c in table.identity_columns)
        # TIMESTAMPTZ as text: duckdb's Python client needs pytz to return it as a datetime
        typed = ", ".join(
            f"strftime({q(c.name)} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"
            if c.type == "timestamp"
            else q(c.name)
            for c in table.columns
        )
        found = self._query(url, f"SELECT {identity}, {typed} FROM {q(table.name)}")
        return by_identity(table, found, json.loads)

    def raw_indexes(self, url: str, table: TableSpec) -> set[str]:
        from syncline.stores.columns import index_name

        found = {row[0] for row in self._query(url, "SELECT index_name FROM duckdb_indexes()")}
        return {c.name for c in table.columns if index_name(table.name, c.name) in found}


class JsonlBackend(Backend):
    """Reads back as a consumer would: ``manifest.json`` names each table's file, its key
    columns and how many bytes are committed; the file is replayed up to there (the last
    line of an identity wins; a hard-deleted identity is absent). Nothing asks the index."""

    name = "jsonl"

    def __init__(self, tmp_path: Path) -> None:
        from syncline.stores import jsonl

        self.module = jsonl
        self.tmp_path = tmp_path
        self.count = 0

    def url(self) -> str:
        self.count += 1
        return f"jsonl:///{self.tmp_path}/store{self.count}"

    def _root(self, url: str) -> Path:
        return Path(url.removeprefix("jsonl:///"))

    def _lines(self, url: str, file: str) -> list[dict[str, Any]]:
        root = self._root(url)
        manifest = json.loads((root / "manifest.json").read_text())
        committed = manifest["files"][file]["bytes"]
        data = (root / file).read_bytes()[:committed]
        assert not data or data.endswith(b"\n"), f"{file}: a torn line inside the committed bytes"
        return [json.loads(line) for line in data.splitlines()]

    def _replay(self, url: str, table: TableSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
        manifest = json.loads((self._root(url) / "manifest.json").read_text())
        described = manifest["tables"].get(table.name)
        if described is None:
            return {}
        last: dict[tuple[Any, ...], dict[str, Any]] = {}
        for line in self._lines(url, described["file"]):
            identity = tuple(line[c] for c in table.identity_columns)
            last.pop(identity, None)
            last[identity] = line
        if described["on_delete"] == "hard":
            return {i: line for i, line in last.items() if line["_deleted_at"] is None}
        return last

    def raw_rows(self, url: str, table: TableSpec) -> list[RawRow]:
        return [
            (list(identity), line["_data"], line["_updated_at"], line["_deleted_at"] is not None)
            for identity, line in self._replay(url, table).items()
        ]

    def raw_feed(self, url: str) -> list[tuple[str, str, str, str, list[Any]]]:
        return [
            (entry["source"], entry["stream"],
             entry["partition"] if isinstance(entry["partition"], str)
             else json.dumps(entry["partition"], sort_keys=True, separators=(",", ":")),
             entry["kind"], entry["keys"])
            for entry in self._lines(url, "_changes.jsonl")
        ]  # fmt: skip

    def execute(self, url: str, sql: str) -> None:
        with sqlite3.connect(self._root(url) / "_syncline.db") as conn:
            conn.execute(sql)

    def raw_columns(self, url: str, table: TableSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
        return by_identity(
            table,
            [(*identity, *(line.get(c.name) for c in table.columns))
             for identity, line in self._replay(url, table).items()],
        )  # fmt: skip

    def raw_indexes(self, url: str, table: TableSpec) -> set[str]:
        """A JSON lines file has no index: the declaration the store recorded, as it holds it."""
        manifest = json.loads((self._root(url) / "manifest.json").read_text())
        columns = manifest["tables"].get(table.name, {}).get("columns", {})
        return {name for name, (_, _, indexed) in columns.items() if indexed}


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if name == "sqlite":
        return SQLiteBackend(tmp_path)
    if name == "postgresql":
        return PostgresBackend(request.getfixturevalue("postgres_schemas"))
    if name == "duckdb":
        return DuckDBBackend(tmp_path)
    if name == "jsonl":
        return JsonlBackend(tmp_path)
    raise ValueError(f"unknown backend {name}")
