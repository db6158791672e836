"""A page's rows, tombstones, sweep and change-feed entries in DuckDB, inside its commit.

The decisions (insert, update, unchanged, older copy, deleted) are made by
:mod:`syncline.stores.page_plan`, shared with every store; this module only
looks up what is stored and writes what the plan says. The page's lock (one
writer per database file, see :mod:`.duckdb_store`) keeps the stored rows
still between the lookup and the write, so the upsert writes the plan's rows
as they are: newest-wins was already decided, in Python, in SQLite's order.

Why the page travels as one list parameter per column (``unnest(?::JSON[])``):
measured (``bench/duckdb_bulk.py``, 100,000 records) against ``executemany``
(row at a time: 20 to 80 times slower), one ``VALUES`` list with a parameter
per value (2 to 4 times slower), the page as one JSON document unnested with
``from_json`` and ``read_json`` of a temporary file (both 5 to 20 % slower),
it is the fastest at pages of 100 and 1,000 rows, binds each record's text as
it is (no escaping, no re-encoding: ``_data`` is kept byte for byte), and
needs no file and no temporary table. (Arrow would need pyarrow.)

Why a new row is a plain ``INSERT`` and only a stored one an upsert: the
lookup already says which identities exist (nothing else writes the file
meanwhile), and ``ON CONFLICT`` costs DuckDB a probe and a check per row:
the insert of a 100-row page took 2.2 ms instead of 6.1.

Which rows a page names (lookups, rows seen again, deletions): with a single
key column, ``WHERE key IN ?`` (the list bound as one parameter), which
DuckDB answers from the primary key's index whatever the table's size (2 ms
for 100 keys among a million, where a join scans the table: 9 ms, growing
with it); with several, a join to the page's identities (DuckDB does not
search a composite index, and ``IN`` per column would match across rows).
A row seen again unchanged only gets its ``_synced_at`` (the sweep's proof
it was seen): rewriting all of it cost 40 % more and filled the WAL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from syncline.stores.base import Change, Row, State, Sweep, TableSpec
from syncline.stores.duckdb_schema import META_COLUMNS
from syncline.stores.duckdb_values import SQL_TYPES, from_json, to_json, typed_texts
from syncline.stores.page_plan import PagePlan, Stored, older, plan_page
from syncline.stores.sql import quote_identifier as q
from syncline.timestamps import Comparable

__all__ = [
    "STAMP",
    "TableSql",
    "apply_page",
    "count_moved",
    "fetch_rows",
    "live_row",
    "read_changes",
    "record_feed",
    "start_live_rows",
]

Connection = duckdb.DuckDBPyConnection
Identity = tuple[Any, ...]
STAMP = "strftime({0} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"
"""A ``TIMESTAMPTZ`` back as our fixed-width UTC text (what SQLite stores)."""


@dataclass(frozen=True, slots=True)
class TableSql:
    """The statements one stream table needs, built once per declaration."""

    table: TableSpec
    name: str
    """The quoted table name."""
    insert: str
    """Rows not stored yet (lists: identity columns, ``_data``, ``_updated_at``, hashes,
    typed columns)."""
    upsert: str
    """Rows stored already (the same lists): replaced, undeleted."""
    join: str
    """Matches the table ``t`` to a ``page`` of identities ``k0, k1, …``."""

    @classmethod
    def build(cls, table: TableSpec) -> TableSql:
        name = q(table.name)
        ids = [q(c) for c in table.identity_columns]
        keys = [f"k{i}" for i in range(len(ids))]
        typed = [q(c.name) for c in table.columns]
        values = [f"v{i}" for i in range(len(typed))]
        unnest = ", ".join(
            [f"unnest(?::JSON[]) AS {k}" for k in keys]
            + ["unnest(?::JSON[]) AS d", "unnest(?::JSON[]) AS u", "unnest(?::VARCHAR[]) AS h"]
            + [f"unnest(?::VARCHAR[]) AS {v}" for v in values]
        )
        casts = "".join(
            f", CAST({v} AS {SQL_TYPES[c.type]})"
            for v, c in zip(values, table.columns, strict=True)
        )
        sets = "".join(f", {c} = excluded.{c}" for c in typed)
        columns = ", ".join([*ids, *META_COLUMNS, *typed])
        insert = (
            f"INSERT INTO {name} ({columns}) "
            f"SELECT {', '.join(keys)}, d, u, ?::TIMESTAMPTZ, h, NULL{casts} "
            f"FROM (SELECT {unnest}) AS page"
        )
        upsert = (
            f"{insert} ON CONFLICT ({', '.join(ids)}) DO UPDATE SET _data = excluded._data, "
            "_updated_at = excluded._updated_at, _synced_at = excluded._synced_at, "
            f"_hash = excluded._hash, _deleted_at = NULL{sets}"
        )
        join = " AND ".join(f"t.{c} = page.{k}" for c, k in zip(ids, keys, strict=True))
        return cls(table, name, insert, upsert, join)

    def match(self, identities: Sequence[Identity]) -> tuple[str | None, str, list[Any]]:
        """Which rows of ``t`` are ``identities``: a derived table ``page`` to join (``None``:
        none needed), the condition, and their parameters, in that order."""
        width = len(self.table.identity_columns)
        lists = _columns(identities, width)
        if width == 1:
            return None, f"t.{q(self.table.identity_columns[0])} IN ?", lists
        return self.page(), self.join, lists

    def page(self, extra: Sequence[str] = ()) -> str:
        """A page of identities (one ``?::JSON[]`` per key column, then ``extra`` lists)."""
        width = len(self.table.identity_columns)
        columns = [f"unnest(?::JSON[]) AS k{i}" for i in range(width)]
        columns += [f"unnest(?::{kind}[]) AS {alias}" for alias, kind in (e.split() for e in extra)]
        return f"(SELECT {', '.join(columns)}) AS page"


def _columns(identities: Sequence[Identity], width: int) -> list[list[str]]:
    """Identities as one list of JSON texts per key column."""
    return [[to_json(identity[i]) for identity in identities] for i in range(width)]


def _lookup(
    con: Connection,
    sql: TableSql,
    identities: Iterable[Identity],
    extra: str,
    extra_args: Sequence[Any] = (),
) -> Iterator[tuple[Identity, tuple[Any, ...]]]:
    """``(identity, extra columns)`` for each of ``identities`` that has a row (``extra_args``:
    the parameters of ``extra``)."""
    width = len(sql.table.identity_columns)
    encoded = {tuple(map(to_json, identity)): identity for identity in identities}
    if not encoded:
        return
    selected = ", ".join(f"t.{q(c)}" for c in sql.table.identity_columns)
    page, where, args = sql.match(list(encoded.values()))
    joined = "" if page is None else f", {page}"
    found = con.execute(
        f"SELECT {selected}, {extra} FROM {sql.name} AS t{joined} WHERE {where}",
        [*extra_args, *args],
    ).fetchall()
    for row in found:
        yield encoded[tuple(row[:width])], tuple(row[width:])


def fetch_rows(
    con: Connection, sql: TableSql, identities: Sequence[Identity]
) -> dict[Identity, str]:
    found = _lookup(con, sql, identities, "_data, _deleted_at IS NOT NULL")
    return {identity: data for identity, (data, deleted) in found if not deleted}


def start_live_rows(cur: Connection, sql: TableSql, partition: Sequence[Any]) -> None:
    """Start one query of a partition's live rows on ``cur``, a cursor of its own, for the
    caller to fetch in chunks (see :meth:`.DuckDBStore.iter_rows`); rows: :func:`live_row`."""
    table = sql.table
    selected = ", ".join(q(c) for c in table.identity_columns)
    where = "".join(f" AND {q(c)} = ?::JSON" for c in table.partition_columns)
    cur.execute(
        f"SELECT {selected}, _data FROM {sql.name} WHERE _deleted_at IS NULL{where}",
        [to_json(value) for value in partition],
    )


def live_row(row: tuple[Any, ...]) -> tuple[Identity, str]:
    """``(identity, _data)`` of a row :func:`start_live_rows` read."""
    return tuple(map(from_json, row[:-1])), row[-1]


def count_moved(con: Connection, sql: TableSql, rows: Sequence[Row], since: str) -> int:
    """Rows of ``rows`` this pass already stored (synced since ``since``) with an older
    modification value, compared as the upsert's plan compares (:func:`.page_plan.older`)."""
    width = len(sql.table.identity_columns)
    candidates = [(row[:width], row[-1]) for row in rows if row[-1] is not None]
    if not candidates:
        return 0
    extra = "_updated_at, _synced_at >= ?::TIMESTAMPTZ"
    found = _lookup(con, sql, (c[0] for c in candidates), extra, [since])
    stored = {identity: from_json(updated) for identity, (updated, recent) in found if recent}
    return sum(
        1
        for identity, updated in candidates
        if identity in stored and older(stored[identity], updated)
    )


def apply_page(
    con: Connection,
    sql: TableSql,
    rows: Sequence[Row],
    deletes: Sequence[Row],
    synced_at: str,
    sweep: Sweep | None,
) -> PagePlan:
    """Inside the page's transaction: store ``rows``, apply tombstones and the sweep; the
    plan's ``feed`` is then for :func:`record_feed`."""
    width = len(sql.table.identity_columns)
    extra = "_hash, _updated_at, _deleted_at IS NOT NULL"
    stored = {
        identity: Stored(digest, from_json(updated), bool(deleted))
        for identity, (digest, updated, deleted) in _lookup(
            con, sql, (row[:width] for row in (*rows, *deletes)), extra
        )
    }
    before = dict(stored)  # the plan adds the page's own writes to ``stored``
    plan = plan_page(width, rows, deletes, stored)
    seen = _upsert(con, sql, plan, before, synced_at)
    # Seen again: unchanged rows, and rows of which the page held only an older copy.
    seen = list(dict.fromkeys([*seen, *plan.touched]))
    if seen:
        page, where, args = sql.match(seen)
        joined = "" if page is None else f" FROM {page}"
        con.execute(
            f"UPDATE {sql.name} AS t SET _synced_at = ?::TIMESTAMPTZ{joined} WHERE {where}",
            [synced_at, *args],
        )
    if sweep is not None:
        plan.sweep(_unseen(con, sql, sweep))
    _remove(con, sql, plan.gone, synced_at)
    return plan


def _upsert(
    con: Connection,
    sql: TableSql,
    plan: PagePlan,
    before: dict[Identity, Stored],
    synced_at: str,
) -> list[Identity]:
    """The page's last write per identity (a statement may not touch one row twice): new
    identities inserted, changed or undeleted ones replaced. Returns the identities read
    again exactly as stored, left to the caller to mark seen."""
    width = len(sql.table.identity_columns)
    fresh: list[tuple[Row, str]] = []
    changed: list[tuple[Row, str]] = []
    unchanged: list[Identity] = []
    for row, digest in plan.last_writes(width):
        identity = row[:width]
        stored = before.get(identity)
        if stored is None:
            fresh.append((row, digest))
        elif stored.deleted or stored.hash != digest or not _same(stored.updated_at, row[-1]):
            changed.append((row, digest))
        else:
            unchanged.append(identity)
    for statement, writes in ((sql.insert, fresh), (sql.upsert, changed)):
        if writes:
            rows = [row for row, _ in writes]
            lists: list[list[Any]] = [*_columns(rows, width), [row[width] for row in rows]]
            lists += [_updated(rows, width), [digest for _, digest in writes]]
            lists += typed_texts(sql.table, rows)
            con.execute(statement, [synced_at, *lists])
    return unchanged


def _same(stored: Any, updated: Any) -> bool:
    """The same modification value, of the same JSON type (``2`` is not ``2.0``)."""
    return type(stored) is type(updated) and stored == updated


def _updated(rows: Sequence[Row], width: int) -> list[str | None]:
    """The rows' modification values as JSON text (``None``: SQL NULL)."""
    return [None if row[width + 1] is None else to_json(row[width + 1]) for row in rows]


def _unseen(con: Connection, sql: TableSql, sweep: Sweep) -> list[Identity]:
    """Live rows of the sweep's partition that the complete pass did not see."""
    table = sql.table
    where = "".join(f" AND {q(c)} = ?::JSON" for c in table.partition_columns)
    selected = ", ".join(q(c) for c in table.identity_columns)
    found = con.execute(
        f"SELECT {selected} FROM {sql.name} "
        f"WHERE _synced_at < ?::TIMESTAMPTZ AND _deleted_at IS NULL{where}",
        [sweep.seen_since, *map(to_json, sweep.partition)],
    ).fetchall()
    return [tuple(map(from_json, row)) for row in found]


def _remove(
    con: Connection,
    sql: TableSql,
    gone: Sequence[tuple[Comparable | None, Identity]],
    synced_at: str,
) -> None:
    """Delete, or mark deleted as of the tombstone's own modification value, so an older
    copy seen later never brings the row back (newest wins, deletions included)."""
    if not gone:
        return
    last = {identity: updated for updated, identity in gone}  # the last tombstone counts
    if sql.table.on_delete == "hard":
        page, where, args = sql.match(list(last))
        using = "" if page is None else f" USING {page}"
        con.execute(f"DELETE FROM {sql.name} AS t{using} WHERE {where}", args)
        return
    updated = [None if value is None else to_json(value) for value in last.values()]
    con.execute(
        f"UPDATE {sql.name} AS t SET _deleted_at = ?::TIMESTAMPTZ, _synced_at = ?::TIMESTAMPTZ, "
        f"_updated_at = COALESCE(page.u, t._updated_at) FROM {sql.page(['u JSON'])} "
        f"WHERE {sql.join}",
        [synced_at, synced_at, *_columns(list(last), len(sql.table.identity_columns)), updated],
    )


def record_feed(
    con: Connection,
    table: TableSpec,
    state: State,
    feed: dict[str, list[Identity]],
    synced_at: str,
) -> None:
    """One feed entry per kind: the keys (without partition values), a scalar when single.

    Ids come from a sequence; writers of one database file are serialised (see
    :mod:`.duckdb_store`), so they grow in commit order.
    """
    entries = [(kind, identities) for kind, identities in feed.items() if identities]
    if not entries:
        return
    skip = len(table.partition_columns)
    single = len(table.key_columns) == 1
    key = state.key
    marks = ", ".join("(?, ?, ?, ?, ?, ?, ?::TIMESTAMPTZ)" for _ in entries)
    con.execute(
        "INSERT INTO _syncline_changes (run_id, source, stream, partition, kind, keys, "
        f"changed_at) VALUES {marks}",
        [
            value
            for kind, identities in entries
            for value in (
                state.run_id, key.source, key.stream, key.partition, kind,
                orjson.dumps([i[skip] if single else list(i[skip:]) for i in identities]).decode(),
                synced_at,
            )
        ],
    )  # fmt: skip


def read_changes(
    con: Connection,
    after_id: int,
    since: str | None,
    run_id: str | None,
    streams: Sequence[tuple[str, str]],
) -> list[Change]:
    sql = (
        f"SELECT id, run_id, source, stream, partition, kind, keys, {STAMP.format('changed_at')} "
        "FROM _syncline_changes WHERE id > ?"
    )
    args: list[Any] = [after_id]
    if since is not None:
        sql += " AND changed_at >= ?::TIMESTAMPTZ"
        args.append(since)
    if run_id is not None:
        sql += " AND run_id = ?"
        args.append(run_id)
    if streams:
        sql += " AND (" + " OR ".join("(source = ? AND stream = ?)" for _ in streams) + ")"
        args += [part for pair in streams for part in pair]
    return [
        Change(id_, run, source, stream, partition, key, kind, changed_at)
        for id_, run, source, stream, partition, kind, keys, changed_at in con.execute(
            sql + " ORDER BY id", args
        ).fetchall()
        for key in from_json(keys)
    ]
