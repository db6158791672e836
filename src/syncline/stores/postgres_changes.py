"""A page's rows, tombstones, sweep and change-feed entries in PostgreSQL, inside its commit.

The decisions (insert, update, unchanged, older copy, deleted) are made by
:mod:`syncline.stores.page_plan`, shared with SQLite; this module only looks
up what is stored and writes what the plan says, in PostgreSQL's SQL.

Why the page's identities travel as one JSON array (``jsonb_array_elements``):
one parameter, any number of rows and key columns, one round trip, and each
value keeps its JSON type, which is the type of the ``jsonb`` key columns.

Why the upsert is one ``INSERT … SELECT FROM jsonb_array_elements(%s)``, the
page as one JSON document into which each record's JSON text is pasted as it
is: measured (``bench/postgres_bulk.py``) against psycopg's pipelined
``executemany``, ``COPY`` into a temporary table plus ``INSERT … SELECT``,
and ``unnest`` of arrays, it is the fastest at pages of 100 rows and on par
with ``COPY`` at 1,000. Nothing is escaped or re-encoded on our side, it is
one round trip, and it needs no temporary table. Pasting is safe because
every record was first checked to be exactly one JSON value
(:mod:`.postgres_rows`): a complete value cannot change the document's shape.
A statement may not touch one row twice, so the plan's last write per
identity is sent (:meth:`PagePlan.last_writes`), which is what running every
write in order would leave.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from syncline.stores.base import Change, Row, State, Sweep, TableSpec
from syncline.stores.page_plan import PagePlan, Stored, plan_page
from syncline.stores.postgres_columns import document_values, typed_select
from syncline.stores.postgres_names import quote_identifier as q
from syncline.stores.postgres_rows import to_json
from syncline.stores.postgres_schema import xact_lock
from syncline.timestamps import Comparable

__all__ = [
    "TableSql",
    "apply_page",
    "count_moved",
    "fetch_rows",
    "live_rows",
    "not_older",
    "read_changes",
    "record_feed",
    "to_json",
]

Cursor = psycopg.Cursor[tuple[Any, ...]]
Identity = tuple[Any, ...]
STAMP = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
"""A ``timestamptz`` back as our fixed-width UTC text (what SQLite stores)."""


def not_older(new: str, old: str) -> str:
    """SQL: is the ``jsonb`` modification value ``new`` at least as new as ``old`` (both set)?

    The order is SQLite's, which :func:`syncline.stores.page_plan.older` also
    follows: numbers numerically, text byte by byte (``COLLATE "C"``, not the
    database's collation, in which ``"a" < "B"``), and every number before
    every text. jsonb's own ``>=`` would put numbers after text.
    """
    return (
        f"CASE WHEN jsonb_typeof({new}) = 'number' "
        f"THEN jsonb_typeof({old}) = 'number' AND ({new})::numeric >= ({old})::numeric "
        f"WHEN jsonb_typeof({old}) = 'number' THEN true "
        f"ELSE ({new} #>> '{{}}') COLLATE \"C\" >= ({old} #>> '{{}}') COLLATE \"C\" END"
    )


@dataclass(frozen=True, slots=True)
class TableSql:
    """The statements one stream table needs, built once by ``ensure_table``."""

    table: TableSpec
    name: str
    """The quoted, schema-qualified table name."""
    upsert: str
    where: str
    """Matches one identity: ``"c0" = %s::jsonb AND …``."""

    @classmethod
    def build(cls, schema: str, table: TableSpec) -> TableSql:
        name = f"{schema}.{q(table.name)}"
        columns = table.identity_columns
        identity = ", ".join(q(c) for c in columns)
        width = len(columns)
        picks = ", ".join(f"r -> {i}" for i in range(width))
        typed = "".join(f", {q(c.name)}" for c in table.columns)
        typed_picks = "".join(
            f", {typed_select(c, 'r', width + 3 + i)}" for i, c in enumerate(table.columns)
        )
        refresh = "".join(f", {q(c.name)} = excluded.{q(c.name)}" for c in table.columns)
        # Newest wins: a row never moves back in _updated_at; on a tie the later arrival wins.
        upsert = (
            f"INSERT INTO {name} AS t ({identity}, _data, _updated_at, _synced_at, _hash, "
            f"_deleted_at{typed}) SELECT {picks}, r -> {width}, NULLIF(r -> {width + 1}, 'null'), "
            f"%s::timestamptz, r ->> {width + 2}, NULL{typed_picks} "
            "FROM jsonb_array_elements(%s::jsonb) AS page(r) "
            f"ON CONFLICT ({identity}) DO UPDATE SET _data = excluded._data, "
            "_updated_at = excluded._updated_at, _synced_at = excluded._synced_at, "
            f"_hash = excluded._hash, _deleted_at = NULL{refresh} "
            "WHERE excluded._updated_at IS NULL OR t._updated_at IS NULL "
            f"OR {not_older('excluded._updated_at', 't._updated_at')}"
        )
        where = " AND ".join(f"{q(c)} = %s::jsonb" for c in columns)
        return cls(table, name, upsert, where)

    def lookup(self, extra: str) -> str:
        """Rows of the identities in a JSON array parameter: their position (1-based), ``extra``."""
        join = " AND ".join(
            f"t.{q(c)} = page.e -> {i}" for i, c in enumerate(self.table.identity_columns)
        )
        return (
            f"SELECT page.i, {extra} FROM jsonb_array_elements(%s::jsonb) "
            f"WITH ORDINALITY AS page(e, i) JOIN {self.name} AS t ON {join}"
        )


def _lookup(
    cur: Cursor, sql: TableSql, identities: Iterable[Identity], extra: str
) -> Iterator[tuple[Identity, tuple[Any, ...]]]:
    """``(identity, extra columns)`` for each of ``identities`` that has a row."""
    unique = list(dict.fromkeys(identities))
    if not unique:
        return
    cur.execute(sql.lookup(extra), (to_json(unique),))
    for row in cur.fetchall():
        yield unique[row[0] - 1], tuple(row[1:])


def fetch_rows(cur: Cursor, sql: TableSql, identities: Sequence[Identity]) -> dict[Identity, str]:
    found = _lookup(cur, sql, identities, "t._data::text, t._deleted_at IS NOT NULL")
    return {identity: data for identity, (data, deleted) in found if not deleted}


def live_rows(
    cur: Cursor, sql: TableSql, partition: Sequence[Any], after: Sequence[str] | None, limit: int
) -> list[tuple[Identity, str, list[str]]]:
    """Up to ``limit`` live rows of one partition in identity order, after the identity
    ``after``: ``(identity, _data, the identity's values as JSON text)``.

    Why by identity, from the primary key's index, a chunk per call: each chunk is a short
    transaction of its own (no connection is held while the caller works), and a row is read
    at most once whatever is written between chunks. The identity goes back as the JSON
    text PostgreSQL printed, so it compares exactly as stored (a float through Python
    might not).
    """
    table = sql.table
    # Qualified: in ORDER BY a bare name is the output column first (here its text).
    ids = [f"t.{q(c)}" for c in table.identity_columns]
    where = "".join(f" AND t.{q(c)} = %s::jsonb" for c in table.partition_columns)
    args = [to_json(value) for value in partition]
    if after is not None:
        where += f" AND ({', '.join(ids)}) > ({', '.join(['%s::jsonb'] * len(ids))})"
        args += after
    cur.execute(
        f"SELECT {', '.join(f'{c}::text' for c in ids)}, t._data::text FROM {sql.name} AS t "
        f"WHERE t._deleted_at IS NULL{where} ORDER BY {', '.join(ids)} LIMIT {int(limit)}",
        args,
    )
    width = len(ids)
    return [
        (tuple(json.loads(text) for text in row[:width]), row[width], list(row[:width]))
        for row in cur.fetchall()
    ]


def count_moved(cur: Cursor, sql: TableSql, rows: Sequence[Row], since: str) -> int:
    """Rows of ``rows`` this pass already stored (synced since ``since``) with an older
    modification value: records that moved while we were paging."""
    width = len(sql.table.identity_columns)
    candidates = [(*row[:width], row[-1]) for row in rows if row[-1] is not None]
    if not candidates:
        return 0
    join = " AND ".join(
        f"t.{q(c)} = page.e -> {i}" for i, c in enumerate(sql.table.identity_columns)
    )
    cur.execute(
        f"SELECT count(*) FROM jsonb_array_elements(%s::jsonb) AS page(e) "
        f"JOIN {sql.name} AS t ON {join} "
        "WHERE t._synced_at >= %s::timestamptz AND t._updated_at IS NOT NULL "
        f"AND NOT {not_older('t._updated_at', f'page.e -> {width}')}",
        (to_json(candidates), since),
    )
    found = cur.fetchone()
    return 0 if found is None else int(found[0])


def apply_page(
    cur: Cursor,
    sql: TableSql,
    rows: Sequence[Row],
    deletes: Sequence[Row],
    synced_at: str,
    sweep: Sweep | None,
) -> PagePlan:
    """Inside the page's transaction: store ``rows``, apply tombstones and the sweep; the
    plan's ``feed`` is then for :func:`record_feed`."""
    width = len(sql.table.identity_columns)
    extra = "t._hash, t._updated_at, t._deleted_at IS NOT NULL"
    stored = {
        identity: Stored(digest, updated, bool(deleted))
        for identity, (digest, updated, deleted) in _lookup(
            cur, sql, (row[:width] for row in (*rows, *deletes)), extra
        )
    }
    plan = plan_page(width, rows, deletes, stored)
    _upsert(cur, sql, plan, width, synced_at)
    if plan.touched:
        cur.executemany(
            f"UPDATE {sql.name} SET _synced_at = %s::timestamptz WHERE {sql.where}",
            [(synced_at, *map(to_json, identity)) for identity in plan.touched],
        )
    if sweep is not None:
        plan.sweep(_unseen(cur, sql, sweep))
    _remove(cur, sql, plan.gone, synced_at)
    return plan


def _upsert(cur: Cursor, sql: TableSql, plan: PagePlan, width: int, synced_at: str) -> None:
    """The page's last write per identity as one JSON document: each row
    ``[identity…, record, modification, hash, typed…]``, the record's own JSON text pasted in."""
    writes = plan.last_writes(width)
    if not writes:
        return
    typed = document_values(sql.table, [row for row, _ in writes])
    rows = []
    for (row, digest), values in zip(writes, typed, strict=True):
        updated = row[width + 1]
        rows.append(
            f"[{','.join(map(to_json, row[:width]))},{row[width]},"
            f'{"null" if updated is None else to_json(updated)},"{digest}"{values}]'
        )
    cur.execute(sql.upsert, (synced_at, "[" + ",".join(rows) + "]"))


def _unseen(cur: Cursor, sql: TableSql, sweep: Sweep) -> list[Identity]:
    """Live rows of the sweep's partition that the complete pass did not see."""
    table = sql.table
    where = "".join(f" AND {q(c)} = %s::jsonb" for c in table.partition_columns)
    selected = ", ".join(q(c) for c in table.identity_columns)
    cur.execute(
        f"SELECT {selected} FROM {sql.name} "
        f"WHERE _synced_at < %s::timestamptz AND _deleted_at IS NULL{where}",
        (sweep.seen_since, *map(to_json, sweep.partition)),
    )
    return [tuple(row) for row in cur.fetchall()]


def _remove(
    cur: Cursor, sql: TableSql, gone: Sequence[tuple[Comparable | None, Identity]], synced_at: str
) -> None:
    """Delete, or mark deleted as of the tombstone's own modification value, so an older
    copy seen later never brings the row back (newest wins, deletions included)."""
    if not gone:
        return
    if sql.table.on_delete == "hard":
        cur.executemany(
            f"DELETE FROM {sql.name} WHERE {sql.where}",
            [tuple(map(to_json, identity)) for _, identity in gone],
        )
        return
    cur.executemany(
        f"UPDATE {sql.name} SET _deleted_at = %s::timestamptz, _synced_at = %s::timestamptz, "
        f"_updated_at = COALESCE(%s::jsonb, _updated_at) WHERE {sql.where}",
        [
            (synced_at, synced_at, None if updated is None else to_json(updated),
             *map(to_json, identity))
            for updated, identity in gone
        ],
    )  # fmt: skip


def record_feed(
    cur: Cursor,
    table: TableSpec,
    s: str,
    schema: str,
    state: State,
    feed: dict[str, list[Identity]],
    synced_at: str,
) -> None:
    """One feed entry per kind: the keys (without partition values), a scalar when single.

    The feed's ids must grow in commit order, or a reader that saw id 11 would
    never see an id 10 committed after it. A sequence alone does not give that
    when two pages commit at once, so writers of the feed take the schema's feed
    lock, held until their commit; it is taken last, to be held briefly.
    ``s``: the quoted schema; ``schema``: its name.
    """
    entries = [(kind, identities) for kind, identities in feed.items() if identities]
    if not entries:
        return
    skip = len(table.partition_columns)
    single = len(table.key_columns) == 1
    key = state.key
    xact_lock(cur, "syncline-feed", schema)
    cur.executemany(
        f"INSERT INTO {s}._syncline_changes (run_id, source, stream, partition, kind, "
        "keys, changed_at) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::timestamptz)",
        [
            (state.run_id, key.source, key.stream, key.partition, kind,
             to_json([i[skip] if single else list(i[skip:]) for i in identities]), synced_at)
            for kind, identities in entries
        ],
    )  # fmt: skip


def read_changes(
    cur: Cursor,
    s: str,
    after_id: int,
    since: str | None,
    run_id: str | None,
    streams: Sequence[tuple[str, str]],
) -> list[Change]:
    sql = (
        f"SELECT id, run_id, source, stream, partition, kind, keys, {STAMP.format('changed_at')} "
        f"FROM {s}._syncline_changes WHERE id > %s"
    )
    args: list[Any] = [after_id]
    if since is not None:
        sql += " AND changed_at >= %s::timestamptz"
        args.append(since)
    if run_id is not None:
        sql += " AND run_id = %s"
        args.append(run_id)
    if streams:
        sql += " AND (" + " OR ".join("(source = %s AND stream = %s)" for _ in streams) + ")"
        args += [part for pair in streams for part in pair]
    cur.execute(sql + " ORDER BY id", args)
    return [
        Change(id_, run, source, stream, partition, key, kind, changed_at)
        for id_, run, source, stream, partition, kind, keys, changed_at in cur.fetchall()
        for key in keys
    ]
