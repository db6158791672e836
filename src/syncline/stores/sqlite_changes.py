"""What a page really changed, decided inside its commit, and written to the change feed.

Why inside the commit: the feed row and the data row must agree whatever
happens. A crash either keeps both (the page is committed) or neither (the
page is read again, and classified again against the same stored rows), so a
change is never recorded twice nor lost.

Why one entry per page and kind, its keys a JSON array (``json_each(keys)`` in
SQL): an initial load inserts every record, and a row per key doubled the
cost of a full sync; a row per page costs nothing measurable.

What counts as an insert, update, unchanged re-read or older copy is decided
in :mod:`syncline.stores.page_plan`, shared with every other store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from syncline.stores.base import Change, PageChanges, Row, State, Sweep, TableSpec
from syncline.stores.page_plan import Stored, content_hash, plan_page
from syncline.stores.sql import quote_identifier as _quote
from syncline.stores.sqlite_columns import bind_typed
from syncline.timestamps import Comparable

__all__ = [
    "CHANGES_SCHEMA",
    "apply_page",
    "content_hash",
    "fetch_rows",
    "lookup_rows",
    "read_changes",
    "record_feed",
    "unseen_rows",
]

CHANGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS _syncline_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT, source TEXT NOT NULL, stream TEXT NOT NULL, partition TEXT NOT NULL,
    kind TEXT NOT NULL, keys TEXT NOT NULL, changed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _syncline_changes_time ON _syncline_changes (changed_at);
CREATE INDEX IF NOT EXISTS _syncline_changes_run ON _syncline_changes (run_id)
"""
_CHUNK = 400
"""Rows looked up per query (SQLite allows 32,766 bound values; keys may be composite)."""


def lookup_rows(
    db: sqlite3.Connection, table: TableSpec, identities: Iterable[tuple[Any, ...]], extra: str
) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """``(identity, extra columns)`` for each of ``identities`` that has a row."""
    columns = table.identity_columns
    width = len(columns)
    join = " AND ".join(f"t.{_quote(c)} = page.c{i}" for i, c in enumerate(columns))
    names = ", ".join(f"c{i}" for i in range(width))
    selected = ", ".join(f"t.{_quote(c)}" for c in columns)
    unique = list(dict.fromkeys(identities))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        values = ", ".join("(" + ", ".join("?" * width) + ")" for _ in chunk)
        sql = (
            f"WITH page({names}) AS (VALUES {values}) "
            f"SELECT {selected}, {extra} FROM page JOIN {_quote(table.name)} AS t ON {join}"
        )
        for row in db.execute(sql, [value for identity in chunk for value in identity]):
            yield tuple(row[:width]), tuple(row[width:])


def _stored(
    db: sqlite3.Connection, table: TableSpec, identities: Iterable[tuple[Any, ...]]
) -> dict[tuple[Any, ...], Stored]:
    """The stored hash, modification value and deletion mark of each identity that exists."""
    extra = "t._hash, t._updated_at, t._deleted_at IS NOT NULL"
    return {
        identity: Stored(digest, updated, bool(deleted))
        for identity, (digest, updated, deleted) in lookup_rows(db, table, identities, extra)
    }


def fetch_rows(
    db: sqlite3.Connection, table: TableSpec, identities: Sequence[tuple[Any, ...]]
) -> dict[tuple[Any, ...], str]:
    return {
        identity: data
        for identity, (data, deleted) in lookup_rows(
            db, table, identities, "t._data, t._deleted_at IS NOT NULL"
        )
        if not deleted
    }


def read_changes(
    db: sqlite3.Connection,
    after_id: int,
    since: str | None,
    run_id: str | None,
    streams: Sequence[tuple[str, str]],
) -> Iterator[Change]:
    sql = (
        "SELECT id, run_id, source, stream, partition, kind, keys, changed_at "
        "FROM _syncline_changes WHERE id > ?"
    )
    args: list[Any] = [after_id]
    if since is not None:
        sql += " AND changed_at >= ?"
        args.append(since)
    if run_id is not None:
        sql += " AND run_id = ?"
        args.append(run_id)
    if streams:
        sql += " AND (" + " OR ".join("(source = ? AND stream = ?)" for _ in streams) + ")"
        args += [part for pair in streams for part in pair]
    for id_, run, source, stream, partition, kind, keys, changed_at in db.execute(
        sql + " ORDER BY id", args
    ):
        for key in orjson.loads(keys):
            yield Change(id_, run, source, stream, partition, key, kind, changed_at)


def apply_page(
    db: sqlite3.Connection,
    table: TableSpec,
    upsert_sql: str,
    rows: Sequence[Row],
    deletes: Sequence[Row],
    state: State,
    synced_at: str,
    sweep: Sweep | None,
) -> PageChanges:
    """Inside the page's write transaction: store ``rows``, apply tombstones and the sweep,
    and record each real change in ``_syncline_changes`` (decided by :func:`plan_page`)."""
    width = len(table.identity_columns)
    stored = _stored(db, table, (row[:width] for row in (*rows, *deletes)))
    plan = plan_page(width, rows, deletes, stored)
    if plan.writes:
        typed = bind_typed(table, [row for row, _ in plan.writes])
        db.executemany(
            upsert_sql,
            [
                (*row, synced_at, digest, *values)
                for (row, digest), values in zip(plan.writes, typed, strict=True)
            ],
        )
    where = " AND ".join(f"{_quote(c)} = ?" for c in table.identity_columns)
    if plan.touched:
        db.executemany(
            f"UPDATE {_quote(table.name)} SET _synced_at = ? WHERE {where}",
            [(synced_at, *identity) for identity in plan.touched],
        )
    if sweep is not None:
        plan.sweep(unseen_rows(db, table, sweep))
    _remove(db, table, plan.gone, synced_at, where)
    record_feed(db, table, state, plan.feed, synced_at)
    return plan.changes()


def record_feed(
    db: sqlite3.Connection,
    table: TableSpec,
    state: State,
    feed: dict[str, list[tuple[Any, ...]]],
    synced_at: str,
) -> None:
    """One feed entry per kind: the keys (without partition values), a scalar when single."""
    skip = len(table.partition_columns)
    single = len(table.key_columns) == 1
    key = state.key
    db.executemany(
        "INSERT INTO _syncline_changes (run_id, source, stream, partition, kind, keys, "
        "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (state.run_id, key.source, key.stream, key.partition, kind,
             orjson.dumps([i[skip] if single else list(i[skip:]) for i in identities]).decode(),
             synced_at)
            for kind, identities in feed.items()
            if identities
        ],
    )  # fmt: skip


def unseen_rows(db: sqlite3.Connection, table: TableSpec, sweep: Sweep) -> list[tuple[Any, ...]]:
    """Live rows of the sweep's partition that the complete pass did not see."""
    where = "".join(f" AND {_quote(c)} = ?" for c in table.partition_columns)
    selected = ", ".join(_quote(c) for c in table.identity_columns)
    sql = (
        f"SELECT {selected} FROM {_quote(table.name)} "
        f"WHERE _synced_at < ? AND _deleted_at IS NULL{where}"
    )
    return [tuple(row) for row in db.execute(sql, (sweep.seen_since, *sweep.partition))]


def _remove(
    db: sqlite3.Connection,
    table: TableSpec,
    gone: Sequence[tuple[Comparable | None, tuple[Any, ...]]],
    synced_at: str,
    where: str,
) -> None:
    """Delete, or mark deleted as of the tombstone's own modification value, so an older
    copy seen later never brings the row back (newest wins, deletions included)."""
    if not gone:
        return
    name = _quote(table.name)
    if table.on_delete == "hard":
        db.executemany(f"DELETE FROM {name} WHERE {where}", [identity for _, identity in gone])
    else:
        db.executemany(
            f"UPDATE {name} SET _deleted_at = ?, _synced_at = ?, "
            f"_updated_at = COALESCE(?, _updated_at) WHERE {where}",
            [(synced_at, synced_at, updated, *identity) for updated, identity in gone],
        )
