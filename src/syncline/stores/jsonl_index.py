"""The sidecar's view of each table: which file it is, and an index of its rows.

The index holds, per identity (partition and key values), what newest-wins,
the content hash, tombstones and the sweep need (``_updated_at``, ``_hash``,
``_synced_at``, ``_deleted_at``) and where the identity's newest line is
(``_offset``, ``_length``, ``_pass``: in the partition's pass file rather
than the table's file); never the record itself, which lives only in the
JSON lines file.

Why its columns are ``c0, c1, …`` in a table named by number rather than
the table's own names: SQLite compares names without case, a JSON key does
not (``Id`` and ``id`` are two keys), and no stream name can then clash
with a bookkeeping table. With the same column meanings as a SQLite stream
table, the SQLite store's lookups (:mod:`.sqlite_changes`) serve it as they are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from syncline.errors import StoreError
from syncline.stores.base import Column, Sweep, TableSpec
from syncline.stores.page_plan import Stored
from syncline.stores.sql import quote_identifier as q
from syncline.stores.sqlite_changes import lookup_rows, unseen_rows

__all__ = [
    "TABLES_SCHEMA",
    "Found",
    "IndexEntry",
    "Placement",
    "Registered",
    "Remap",
    "delete",
    "identity_order",
    "live",
    "located",
    "lookup",
    "partition_key",
    "partition_where",
    "register",
    "registered",
    "touch",
    "unseen",
    "upsert",
]

TABLES_SCHEMA = """
CREATE TABLE IF NOT EXISTS _syncline_jsonl_tables (
    name TEXT PRIMARY KEY, file TEXT NOT NULL UNIQUE, idx INTEGER NOT NULL UNIQUE,
    partition_columns TEXT NOT NULL, key_columns TEXT NOT NULL, mode TEXT NOT NULL,
    on_delete TEXT NOT NULL, columns TEXT NOT NULL
)
"""
_REGISTERED = "name, file, idx, partition_columns, key_columns, mode, on_delete, columns"


@dataclass(frozen=True, slots=True)
class Registered:
    """A table as the sidecar knows it."""

    name: str
    file: str
    number: int
    partition_columns: tuple[str, ...]
    key_columns: tuple[str, ...]
    mode: str
    on_delete: str
    columns: str
    """The typed columns' declaration (:func:`syncline.stores.columns.declared`)."""

    @property
    def index(self) -> TableSpec:
        """The index table, as a spec the SQLite store's lookups take."""
        parts = len(self.partition_columns)
        width = parts + len(self.key_columns)
        names = tuple(f"c{i}" for i in range(width))
        return TableSpec(f"_syncline_jsonl_index_{self.number}", names[:parts], names[parts:])

    def spec(self) -> TableSpec:
        """The table as it was last declared (for a compaction without a config)."""
        columns = tuple(
            Column(name, path, kind, indexed)
            for name, (path, kind, indexed) in orjson.loads(self.columns).items()
        )
        return TableSpec(self.name, self.partition_columns, self.key_columns, self.on_delete,
                         columns, self.mode)  # fmt: skip


def partition_key(values: Sequence[Any]) -> str:
    """One partition's values as canonical text (names a pass file), the same whether they
    come from a page or back from the index (where SQLite stores ``True`` as ``1``)."""
    return orjson.dumps([int(v) if isinstance(v, bool) else v for v in values]).decode()


def registered(db: sqlite3.Connection, name: str | None = None) -> list[Registered]:
    sql = f"SELECT {_REGISTERED} FROM _syncline_jsonl_tables"
    args: tuple[str, ...] = ()
    if name is not None:
        sql, args = sql + " WHERE name = ?", (name,)
    return [
        Registered(row[0], row[1], row[2], tuple(orjson.loads(row[3])),
                   tuple(orjson.loads(row[4])), row[5], row[6], row[7])
        for row in db.execute(sql + " ORDER BY name", args)
    ]  # fmt: skip


def register(db: sqlite3.Connection, table: TableSpec, file: str, columns: str) -> Registered:
    """Record a new table and create its (empty) index."""
    number = db.execute("SELECT coalesce(max(idx), 0) + 1 FROM _syncline_jsonl_tables").fetchone()
    found = Registered(table.name, file, int(number[0]), table.partition_columns,
                       table.key_columns, table.mode, table.on_delete, columns)  # fmt: skip
    save(db, found)
    index = found.index
    identity = ", ".join(q(c) for c in index.identity_columns)
    db.execute(
        f"CREATE TABLE {q(index.name)} ({identity}, _updated_at, _synced_at TEXT NOT NULL, "
        "_hash TEXT, _deleted_at TEXT, _offset INTEGER, _length INTEGER, "
        f"_pass INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ({identity})) WITHOUT ROWID"
    )
    return found


def save(db: sqlite3.Connection, found: Registered) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO _syncline_jsonl_tables ({_REGISTERED}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (found.name, found.file, found.number, orjson.dumps(found.partition_columns).decode(),
         orjson.dumps(found.key_columns).decode(), found.mode, found.on_delete, found.columns),
    )  # fmt: skip


def check_identity(found: Registered, table: TableSpec) -> None:
    if (found.partition_columns, found.key_columns) != (
        table.partition_columns,
        table.key_columns,
    ):
        raise StoreError(
            f"table {table.name!r} was created with partition {list(found.partition_columns)} "
            f"and key {list(found.key_columns)}, now {list(table.partition_columns)} and "
            f"{list(table.key_columns)}: give the stream another table name"
        )


@dataclass(slots=True)
class Found:
    """An identity's index row: the plan's view of it, and where its newest line is."""

    stored: Stored
    offset: int | None
    length: int | None
    in_pass: bool


def lookup(
    db: sqlite3.Connection, index: TableSpec, identities: Iterable[tuple[Any, ...]]
) -> dict[tuple[Any, ...], Found]:
    extra = "t._hash, t._updated_at, t._deleted_at IS NOT NULL, t._offset, t._length, t._pass"
    return {
        identity: Found(Stored(digest, updated, bool(deleted)), offset, length, bool(in_pass))
        for identity, (digest, updated, deleted, offset, length, in_pass) in lookup_rows(
            db, index, identities, extra
        )
    }


def unseen(db: sqlite3.Connection, index: TableSpec, sweep: Sweep) -> list[tuple[Any, ...]]:
    return unseen_rows(db, index, sweep)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    identity: tuple[Any, ...]
    updated_at: Any
    synced_at: str
    hash: str | None
    deleted_at: str | None
    offset: int | None
    length: int | None
    in_pass: bool


def _where(index: TableSpec) -> str:
    return " AND ".join(f"{q(c)} = ?" for c in index.identity_columns)


def upsert(db: sqlite3.Connection, index: TableSpec, entries: Sequence[IndexEntry]) -> None:
    names = ", ".join(q(c) for c in index.identity_columns)
    marks = ", ".join("?" for _ in range(len(index.identity_columns) + 7))
    db.executemany(
        f"INSERT OR REPLACE INTO {q(index.name)} ({names}, _updated_at, _synced_at, _hash, "
        f"_deleted_at, _offset, _length, _pass) VALUES ({marks})",
        [(*e.identity, e.updated_at, e.synced_at, e.hash, e.deleted_at, e.offset, e.length,
          int(e.in_pass)) for e in entries],
    )  # fmt: skip


def touch(
    db: sqlite3.Connection, index: TableSpec, identities: Sequence[tuple[Any, ...]], at: str
) -> None:
    """Seen again, unchanged or in an older copy: only ``_synced_at`` moves (for the sweep)."""
    db.executemany(
        f"UPDATE {q(index.name)} SET _synced_at = ? WHERE {_where(index)}",
        [(at, *identity) for identity in identities],
    )


def delete(db: sqlite3.Connection, index: TableSpec, identities: Sequence[tuple[Any, ...]]) -> None:
    db.executemany(f"DELETE FROM {q(index.name)} WHERE {_where(index)}", identities)


class Remap:
    """Where the lines of one rewritten file went: ``(old offset, new offset, length)``,
    collected in a temporary table and applied to the index in one statement."""

    _BATCH = 10_000

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._pending: list[tuple[int, int, int]] = []
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _syncline_remap "
            "(old INTEGER PRIMARY KEY, new INTEGER NOT NULL, length INTEGER NOT NULL)"
        )
        db.execute("DELETE FROM temp._syncline_remap")

    def add(self, old: int, new: int, length: int) -> None:
        self._pending.append((old, new, length))
        if len(self._pending) >= self._BATCH:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO temp._syncline_remap VALUES (?, ?, ?)", self._pending)
        self._pending = []

    def apply(self, index: TableSpec, in_pass: bool, partition: Sequence[Any] = ()) -> None:
        """Point the index rows of the table's file (``in_pass``: of ``partition``'s pass
        file) whose line was at an old offset to where it is now."""
        self._flush()
        where = "".join(f" AND t.{q(c)} = ?" for c in index.partition_columns[: len(partition)])
        self.db.execute(
            f"UPDATE {q(index.name)} AS t SET _offset = r.new, _length = r.length "
            f"FROM temp._syncline_remap AS r WHERE t._offset = r.old AND t._pass = ?{where}",
            (int(in_pass), *partition),
        )
        self.db.execute("DELETE FROM temp._syncline_remap")


class Placement:
    """Where a rewrite put each identity's line, collected in a temporary table (the rows
    are read from a cursor on the index meanwhile) and applied in one statement."""

    _BATCH = 10_000

    def __init__(self, db: sqlite3.Connection, index: TableSpec) -> None:
        self.db, self.index = db, index
        width = len(index.identity_columns)
        self._names = ", ".join(q(c) for c in index.identity_columns)
        self._pending: list[tuple[Any, ...]] = []
        db.execute("DROP TABLE IF EXISTS temp._syncline_placed")
        db.execute(
            f"CREATE TEMP TABLE _syncline_placed ({self._names}, _offset INTEGER NOT NULL, "
            f"_length INTEGER NOT NULL, PRIMARY KEY ({self._names}))"
        )
        self._insert = f"INSERT INTO temp._syncline_placed VALUES ({', '.join('?' * (width + 2))})"

    def add(self, identity: Sequence[Any], offset: int, length: int) -> None:
        self._pending.append((*identity, offset, length))
        if len(self._pending) >= self._BATCH:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany(self._insert, self._pending)
        self._pending = []

    def apply(self) -> None:
        """Every placed identity's line is now in the table's file, where it was put."""
        self._flush()
        join = " AND ".join(f"t.{q(c)} = p.{q(c)}" for c in self.index.identity_columns)
        self.db.execute(
            f"UPDATE {q(self.index.name)} AS t SET _offset = p._offset, _length = p._length, "
            f"_pass = 0 FROM temp._syncline_placed AS p WHERE {join}"
        )
        self.db.execute("DROP TABLE temp._syncline_placed")


def located(
    db: sqlite3.Connection,
    index: TableSpec,
    where: str,
    args: Sequence[Any],
    order: str,
    limit: int | None = None,
) -> Iterator[tuple[Any, ...]]:
    """``(identity…, _offset, _length, _pass, _updated_at, _synced_at, _deleted_at)`` of the
    index rows matching ``where``, in ``order`` (SQL over the index's columns), the first
    ``limit`` of them (``None``: all)."""
    names = ", ".join(q(c) for c in index.identity_columns)
    cut = "" if limit is None else f" LIMIT {int(limit)}"
    yield from db.execute(
        f"SELECT {names}, _offset, _length, _pass, _updated_at, _synced_at, _deleted_at "
        f"FROM {q(index.name)} WHERE {where} ORDER BY {order}{cut}",
        args,
    )


def live(
    db: sqlite3.Connection,
    index: TableSpec,
    partition: Sequence[Any],
    after: Sequence[Any] | None,
    limit: int,
) -> list[tuple[tuple[Any, ...], int, int, bool]]:
    """Up to ``limit`` live rows of one partition, in identity order after the identity
    ``after``: ``(identity, offset, length, in the partition's pass file)`` of each newest line.

    In identity order, the index's primary key: each chunk is one range of it, and a row
    is read at most once whatever is written between chunks.
    """
    where, args = partition_where(index, partition)
    where += " AND _deleted_at IS NULL AND _offset IS NOT NULL"
    order = identity_order(index)
    if after is not None:
        where += f" AND ({order}) > ({', '.join('?' * len(after))})"
        args += after
    width = len(index.identity_columns)
    return [
        (tuple(row[:width]), int(row[width]), int(row[width + 1]), bool(row[width + 2]))
        for row in located(db, index, where, args, order, limit)
    ]


def identity_order(index: TableSpec) -> str:
    return ", ".join(q(c) for c in index.identity_columns)


def partition_where(index: TableSpec, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """SQL selecting one partition's index rows (every row when unpartitioned)."""
    clause = " AND ".join(f"{q(c)} = ?" for c in index.partition_columns) or "1"
    return clause, list(values)
