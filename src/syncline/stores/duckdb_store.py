"""The DuckDB store: one file, the same contract and bookkeeping tables as SQLite.

``store: duckdb:///path.duckdb`` (relative to the config file) or
``duckdb:////absolute/path.duckdb``; needs ``pip install 'syncline[duckdb]'``.
Opening, the one-process rule, the per-file lock and private files are in
:mod:`.duckdb_connect`; column types in :mod:`.duckdb_schema`; the page's
write path in :mod:`.duckdb_page`; typed columns in :mod:`.duckdb_columns`.

Every method is one transaction (or one read) under the file's lock, which
all store objects of one file in this process share: a page's lookup, plan
and write, a call permit and a lease therefore see the rows still when they
write them, and feed ids (a sequence) grow in commit order.

**Durability.** Every commit is written and fsynced to DuckDB's WAL before
``commit_page`` returns; a process killed at any point leaves the last
committed page and its checkpoint, replayed from the WAL on the next open.

A settled push item (:meth:`DuckDBStore.settle_outbox`) is written like a
page without a checkpoint: the same lease proof, upsert and feed entries, and
the item's status, in one transaction; the outbox's SQL is SQLite's
(:mod:`.outbox_sql`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from syncline.budget.headers import ServerWindow
from syncline.errors import StoreError
from syncline.failpoints import failpoint
from syncline.stores import duckdb_leases as leases
from syncline.stores import outbox_sql
from syncline.stores import sqlite_quota as quota  # the same ledger SQL serves both
from syncline.stores.base import (
    Change,
    Lease,
    OutboxItem,
    PageChanges,
    PushPlan,
    Reject,
    Row,
    RunRecord,
    State,
    StateKey,
    Sweep,
    TableSpec,
    WindowSpec,
)
from syncline.stores.duckdb_columns import ensure_table
from syncline.stores.duckdb_connect import (
    check_private,
    connect,
    file_lock,
    parse_url,
    private_umask,
    reason,
)
from syncline.stores.duckdb_page import (
    TableSql,
    apply_page,
    count_moved,
    fetch_rows,
    live_row,
    read_changes,
    record_feed,
    start_live_rows,
)
from syncline.stores.duckdb_schema import prepare, stored_table_name
from syncline.stores.duckdb_values import clean_text, split_unstorable, to_json
from syncline.stores.page_plan import PagePlan
from syncline.stores.records_of import STATE_COLUMNS, state_from_row, state_values
from syncline.stores.sql import quote_identifier

__all__ = ["DuckDBStore", "lease_now"]

log = logging.getLogger("syncline")
Connection = duckdb.DuckDBPyConnection
ROW_CHUNK = 1000
"""Rows :meth:`DuckDBStore.iter_rows` fetches per hold of the file's lock."""


def lease_now() -> float:
    """Wall-clock seconds: leases and the ledger outlive the process, so not a monotonic clock."""
    return time.time()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DuckDBStore:
    """A :class:`~syncline.stores.base.Store` on one DuckDB file, safe to share across threads."""

    def __init__(self, url: str) -> None:
        self.path = parse_url(url) if url.startswith("duckdb:") else url
        memory = self.path == ":memory:"
        self._lock = threading.RLock() if memory else file_lock(self.path)
        self._tables: dict[str, TableSql] = {}
        with self._locked():
            if not memory:
                check_private(Path(self.path))
            self._con = connect(self.path)
            try:
                with self._tx("preparing the store") as con:
                    prepare(con, self.path)
            except BaseException:
                self._con.close()
                raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, private_umask():
            yield

    @contextlib.contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        """The connection under the file's lock; DuckDB errors become a :class:`StoreError`."""
        with self._locked():
            try:
                yield self._con
            except duckdb.Error as exc:
                raise StoreError(f"{what} in {self.path} failed: {reason(exc)}") from None

    @contextlib.contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        """One write transaction under the file's lock: committed on success, rolled back on any
        error. DuckDB errors become a :class:`StoreError` saying what failed; our own errors (a
        lost or held lease) pass through unchanged."""
        with self._locked():
            con = self._con
            try:
                con.execute("BEGIN TRANSACTION")
                yield con
                con.execute("COMMIT")
            except duckdb.Error as exc:
                self._rollback()
                raise StoreError(f"{what} in {self.path} failed: {reason(exc)}") from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self._con.execute("ROLLBACK")

    def _sql(self, table: TableSpec) -> TableSql:
        sql = self._tables.get(table.name)
        if sql is None or sql.table != table:
            sql = self._tables[table.name] = TableSql.build(table)
        return sql

    def ensure_table(self, table: TableSpec) -> None:
        with self._tx(f"preparing table {table.name}") as con:
            ensure_table(con, table)
        self._sql(table)

    def commit_page(
        self,
        table: TableSpec,
        rows: Sequence[Row],
        state: State,
        *,
        lease: Lease | None = None,
        rejects: Sequence[Reject] = (),
        deletes: Sequence[Row] = (),
        sweep: Sweep | None = None,
    ) -> PageChanges:
        rows, deletes, unstorable = split_unstorable(rows, deletes, len(table.identity_columns))
        synced_at = _now()
        with self._tx(f"writing {table.name}") as con:
            if lease is not None:
                leases.extend(con, lease, lease.ttl, lease_now())
            plan = self._write_rows(con, table, state, rows, deletes, sweep, synced_at)
            self._reject(con, state, [*rejects, *unstorable], synced_at)
            failpoint("store.rows_written")
            self._write_state(con, state)
            failpoint("store.before_commit")
        return plan.changes()

    def _write_rows(
        self,
        con: Connection,
        table: TableSpec,
        state: State,
        rows: Sequence[Row],
        deletes: Sequence[Row],
        sweep: Sweep | None,
        synced_at: str,
    ) -> PagePlan:
        """Inside a write transaction: the rows (already split from what DuckDB cannot hold),
        tombstones and sweep, and their feed entries. One path for a page and a settled push
        item, so a row is stored the same whoever writes it."""
        plan = apply_page(con, self._sql(table), rows, deletes, synced_at, sweep)
        record_feed(con, table, state, plan.feed, synced_at)
        return plan

    def _reject(self, con: Connection, state: State, rejects: Sequence[Reject], at: str) -> None:
        if not rejects:
            return
        key = state.key
        con.execute(
            "INSERT INTO _syncline_rejects (source, stream, partition, run_id, reason, record, "
            "rejected_at) SELECT ?, ?, ?, ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), ?",
            [
                key.source, key.stream, key.partition, state.run_id,
                [clean_text(r.reason) for r in rejects], [clean_text(r.record) for r in rejects],
                at,
            ],
        )  # fmt: skip

    def count_moved(self, table: TableSpec, rows: Sequence[Row], since: str) -> int:
        with self._read(f"reading {table.name}") as con:
            return count_moved(con, self._sql(table), rows, since)

    # -- call ledger -----------------------------------------------------------

    def take_permit(
        self,
        scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
        weight: int,
        spend_reserve: bool,
        *,
        now: float | None = None,
    ) -> float:
        moment = lease_now() if now is None else now
        with self._tx("updating the call ledger") as con:
            return quota.take_permit(con, scopes, weight, spend_reserve, moment)

    def settle_permit(
        self,
        scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
        weight: int,
        taken_at: float,
    ) -> None:
        with self._tx("updating the call ledger") as con:
            quota.settle_permit(con, scopes, weight, taken_at, lease_now())

    def observe_server(self, scope: str, windows: Sequence[ServerWindow]) -> None:
        if not windows:
            return
        with self._tx("updating the call ledger") as con:
            quota.observe_server(con, scope, windows, lease_now())

    def window_used(self, scope: str, window: WindowSpec) -> int:
        return self.window_usage(scope, window)[0]

    def window_usage(self, scope: str, window: WindowSpec) -> tuple[int, float | None]:
        with self._read("reading the call ledger") as con:
            return quota.window_usage(con, scope, window, lease_now())

    def server_windows(self, scope: str | None = None) -> list[dict[str, Any]]:
        with self._read("reading the call ledger") as con:
            return quota.server_windows(con, scope, lease_now())

    # -- leases ----------------------------------------------------------------

    def acquire_lease(
        self, key: StateKey, holder: str, ttl: float, *, take_over: str | None = None
    ) -> Lease:
        with self._tx("taking a lease") as con:
            return leases.acquire(con, key, holder, ttl, take_over, lease_now())

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        with self._tx("renewing a lease") as con:
            return leases.extend(con, lease, ttl, lease_now())

    def release_lease(self, lease: Lease) -> None:
        try:
            with self._tx("releasing a lease") as con:
                leases.release(con, lease)
        except StoreError as exc:
            log.warning("could not release the lease on %s: %s", lease.key.stream, exc)

    # -- checkpoints -----------------------------------------------------------

    def count_rejects(self, key: StateKey, run_id: str | None = None) -> int:
        sql = f"SELECT count(*) FROM _syncline_rejects WHERE {leases.KEY_WHERE}"
        args = [key.source, key.stream, key.partition]
        if run_id is not None:
            sql, args = sql + " AND run_id = ?", [*args, run_id]
        with self._read("counting rejects") as con:
            return _scalar(con.execute(sql, args).fetchone())

    def save_state(self, state: State) -> None:
        with self._tx("saving state") as con:
            self._write_state(con, state)

    def _write_state(self, con: Connection, state: State) -> None:
        """Update the checkpoint, or insert it the first time (an ``INSERT OR REPLACE`` costs
        DuckDB three times as much, on every page)."""
        state.updated_at = _now()
        values = state_values(state)
        values[STATE_COLUMNS.index("error")] = clean_text(state.error)
        key = [state.key.source, state.key.stream, state.key.partition]
        sets = ", ".join(f"{column} = ?" for column in STATE_COLUMNS)
        changed = con.execute(
            f"UPDATE _syncline_state SET {sets} WHERE {leases.KEY_WHERE}", [*values, *key]
        ).fetchone()
        if _scalar(changed) == 0:
            marks = ", ".join("?" for _ in STATE_COLUMNS)
            con.execute(
                f"INSERT INTO _syncline_state (source, stream, partition, "
                f"{', '.join(STATE_COLUMNS)}) VALUES (?, ?, ?, {marks})",
                [*key, *values],
            )

    def load_state(self, key: StateKey) -> State | None:
        with self._read("loading state") as con:
            row = con.execute(
                f"SELECT {', '.join(STATE_COLUMNS)} FROM _syncline_state WHERE {leases.KEY_WHERE}",
                [key.source, key.stream, key.partition],
            ).fetchone()
        return None if row is None else state_from_row(key, row, self.path)

    def all_states(self) -> list[State]:
        with self._read("loading state") as con:
            rows = con.execute(
                f"SELECT source, stream, partition, {', '.join(STATE_COLUMNS)} "
                "FROM _syncline_state ORDER BY source, stream, partition"
            ).fetchall()
        return [state_from_row(StateKey(*row[:3]), row[3:], self.path) for row in rows]

    def delete_state(self, source: str, stream: str, partition: str | None = None) -> int:
        sql = "DELETE FROM _syncline_state WHERE source = ? AND stream = ?"
        args = [source, stream]
        if partition is not None:
            sql, args = sql + " AND partition = ?", [*args, partition]
        with self._tx("deleting state") as con:
            return _scalar(con.execute(sql, args).fetchone())

    def count_rows(self, table: str, partition_columns: dict[str, Any]) -> int | None:
        q = quote_identifier
        where = "".join(f" AND {q(c)} = ?::JSON" for c in partition_columns)
        with self._read(f"counting rows of {table}") as con:
            if stored_table_name(con, table) is None:
                return None
            row = con.execute(
                f"SELECT count(*) FROM {q(table)} WHERE _deleted_at IS NULL{where}",
                [to_json(value) for value in partition_columns.values()],
            ).fetchone()
        return _scalar(row)

    # -- change feed -----------------------------------------------------------

    def changes(
        self,
        *,
        after_id: int = 0,
        since: str | None = None,
        run_id: str | None = None,
        streams: Sequence[tuple[str, str]] = (),
    ) -> Iterator[Change]:
        with self._read("reading the change feed") as con:
            found = read_changes(con, after_id, since, run_id, streams)
        yield from found

    def last_change_of(self, run_id: str) -> int | None:
        with self._read("reading the change feed") as con:
            row = con.execute(
                "SELECT max(id) FROM _syncline_changes WHERE run_id = ?", [run_id]
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def prune_changes(self, before: str) -> int:
        with self._tx("pruning the change feed") as con:
            return _scalar(
                con.execute(
                    "DELETE FROM _syncline_changes WHERE changed_at < ?::TIMESTAMPTZ", [before]
                ).fetchone()
            )

    def fetch_rows(
        self, table: TableSpec, identities: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], str]:
        with self._read(f"reading {table.name}") as con:
            return fetch_rows(con, self._sql(table), identities)

    def iter_rows(
        self, table: TableSpec, partition: Sequence[Any]
    ) -> Iterator[tuple[tuple[Any, ...], str]]:
        """One query on a cursor of its own (a read snapshot), fetched a chunk per hold of the
        file's lock, so writers go on between chunks.

        Why not a chunk per query, as SQLite reads by rowid: DuckDB's rowids move when a
        checkpoint reclaims deleted rows, so rows could be skipped or read twice; and a
        chunk per query by identity scans the table once per chunk (DuckDB does not range-
        scan its keys' index). One streamed query reads each row once, and as a snapshot
        it needs the lock only while it fetches: writers commit between chunks.
        """
        what = f"reading {table.name}"
        sql = self._sql(table)
        with self._read(what) as con:
            cur = con.cursor()
        try:
            with self._read(what):
                start_live_rows(cur, sql, partition)
            while True:
                with self._read(what):
                    chunk = cur.fetchmany(ROW_CHUNK)
                yield from map(live_row, chunk)
                if len(chunk) < ROW_CHUNK:
                    return
        finally:
            with self._locked(), contextlib.suppress(duckdb.Error):
                cur.close()

    # -- push outbox -------------------------------------------------------------

    def add_push_plan(self, plan: PushPlan, items: Sequence[OutboxItem]) -> None:
        with self._tx(f"writing push plan {plan.id}") as con:
            outbox_sql.add_push_plan(con, plan, items, _now())

    def push_plans(self, source: str | None = None, stream: str | None = None) -> list[PushPlan]:
        with self._read("reading push plans") as con:
            return outbox_sql.push_plans(con, source, stream)

    def outbox_items(
        self, plan_id: str, *, statuses: Sequence[str] = (), partition: str | None = None
    ) -> list[OutboxItem]:
        with self._read(f"reading push plan {plan_id}") as con:
            return outbox_sql.outbox_items(con, plan_id, statuses, partition)

    def outbox_counts(self, plan_id: str | None = None) -> list[tuple[str, str, str, int]]:
        with self._read("counting push items") as con:
            return outbox_sql.outbox_counts(con, plan_id)

    def open_outbox_keys(self, source: str, stream: str) -> set[tuple[str, str]]:
        with self._read("reading push items") as con:
            return outbox_sql.open_outbox_keys(con, source, stream)

    def settle_outbox(
        self,
        table: TableSpec,
        items: Sequence[OutboxItem],
        rows: Sequence[Row] = (),
        *,
        key: StateKey | None = None,
        run_id: str | None = None,
        lease: Lease | None = None,
    ) -> None:
        state = outbox_sql.feed_state(key, run_id) if rows else None
        rows, _, unstorable = split_unstorable(rows, (), len(table.identity_columns))
        now = _now()
        with self._tx(f"settling push items of {table.name}") as con:
            if lease is not None:
                leases.extend(con, lease, lease.ttl, lease_now())
            outbox_sql.save_items(con, items, now)
            if state is not None:
                self._write_rows(con, table, state, rows, (), None, now)
                self._reject(con, state, unstorable, now)
            failpoint("store.outbox_settled")

    # -- runs ------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> None:
        with self._tx("recording a run") as con:
            con.execute(
                "INSERT INTO _syncline_runs (id, started_at, status) VALUES (?, ?, ?)",
                [run.id, run.started_at, run.status],
            )

    def finish_run(self, run: RunRecord) -> None:
        with self._tx("recording a run") as con:
            con.execute(
                "UPDATE _syncline_runs SET ended_at = ?, status = ?, records = ?, requests = ?, "
                "errors = ? WHERE id = ?",
                [run.ended_at, run.status, run.records, run.requests, json.dumps(run.errors),
                 run.id],
            )  # fmt: skip

    def last_runs(self, limit: int = 10) -> list[RunRecord]:
        with self._read("reading runs") as con:
            rows = con.execute(
                "SELECT id, started_at, ended_at, status, records, requests, errors "
                "FROM _syncline_runs ORDER BY started_at DESC LIMIT ?",
                [limit],
            ).fetchall()
        return [
            RunRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else [])
            for r in rows
        ]

    def close(self) -> None:
        with self._locked(), contextlib.suppress(duckdb.Error):
            self._con.close()


def _scalar(row: tuple[Any, ...] | None) -> int:
    return 0 if row is None else int(row[0])
