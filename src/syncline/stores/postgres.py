"""The PostgreSQL store: one schema per config, the same contract and tables as SQLite.

``store: postgresql://user@host:port/db?schema=name`` (``postgres://`` too;
default schema ``syncline``). A pool of connections serves the engine's
worker threads; every method is one transaction on one of them.

Where SQLite serialises all writers with one file lock, PostgreSQL runs
transactions side by side, so each guarantee names its lock:

- a page (rows, tombstones, sweep, feed entries, checkpoint, lease check) is
  one transaction; its (table, partition) is held by an advisory lock, so the
  stored rows it classified against cannot change under it;
- feed entries are written under the schema's feed lock, held until commit,
  so feed ids grow in commit order (see :func:`.postgres_changes.record_feed`);
- a call permit holds its scopes' ledger locks (see :mod:`.postgres_quota`);
- a lease is taken under the lease's own lock and proved at every commit by
  its fencing token (``UPDATE … WHERE token = …`` inside the page's
  transaction).

A settled push item (:meth:`PostgresStore.settle_outbox`) is written like a
page without a checkpoint: the same lease proof, page lock, upsert and feed
entries, and the item's status, in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from syncline.budget.headers import ServerWindow
from syncline.errors import StoreError
from syncline.failpoints import failpoint
from syncline.stores import outbox_sql
from syncline.stores import postgres_leases as leases
from syncline.stores import postgres_quota as quota
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
from syncline.stores.page_plan import PagePlan
from syncline.stores.postgres_changes import (
    TableSql,
    apply_page,
    count_moved,
    fetch_rows,
    live_rows,
    read_changes,
    record_feed,
    to_json,
)
from syncline.stores.postgres_columns import sync_columns
from syncline.stores.postgres_connect import Target, connect, parse_url
from syncline.stores.postgres_leases import KEY_WHERE
from syncline.stores.postgres_names import pg_name, quote_identifier
from syncline.stores.postgres_rows import clean_text, split_unstorable
from syncline.stores.postgres_schema import prepare, table_ddl, xact_lock
from syncline.stores.postgres_state import STATE_COLUMNS, from_row, write_state

__all__ = ["PostgresStore", "lease_now"]

POOL_SIZE = 8
"""Connections at most: the engine's concurrent jobs, lease keepers and permits."""
ROW_CHUNK = 1000
"""Rows :meth:`PostgresStore.iter_rows` reads per transaction."""

log = logging.getLogger("syncline")
Cursor = psycopg.Cursor[tuple[Any, ...]]


def lease_now() -> float:
    """Wall-clock seconds: leases and the ledger are compared across processes and hosts."""
    return time.time()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PostgresStore:
    """A :class:`~syncline.stores.base.Store` in one schema of a PostgreSQL database."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.target: Target = parse_url(url)
        self.where = self.target.where
        self.schema = pg_name(self.target.schema)
        self._s = quote_identifier(self.target.schema)
        self._prefix = f"{self._s}."
        """Where the outbox's tables are, for :mod:`.outbox_sql`."""
        self._place = f"{self.where} schema {self.schema}"
        self._tables: dict[str, TableSql] = {}
        conn = connect(self.target)
        try:
            if _server_encoding(conn) != "UTF8":
                raise StoreError(
                    f"database {self.where} does not use the UTF8 encoding; "
                    "syncline stores JSON text, which needs it"
                )
            prepare(conn, self.target)
        except psycopg.Error as exc:
            raise self.target.error("preparing the store", exc) from None
        finally:
            conn.close()
        self._pool = ConnectionPool(
            self.target.conninfo,
            min_size=1,
            max_size=max(1, pool_size),
            # Plan every statement afresh: a plan cached while a table was empty (a
            # sequential scan) would stay in use as it grows, making every page cost O(table).
            kwargs={"prepare_threshold": None},
            open=True,
            check=ConnectionPool.check_connection,
            name="syncline",
        )

    @contextlib.contextmanager
    def _tx(self, what: str) -> Iterator[Cursor]:
        """One transaction: committed when the block ends, rolled back on any error.

        Database errors become a :class:`StoreError` saying what failed and where;
        our own errors (a lost or held lease) pass through unchanged.
        """
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            raise self.target.error(what, exc) from None

    def _sql(self, table: TableSpec) -> TableSql:
        sql = self._tables.get(table.name)
        if sql is None or sql.table != table:
            sql = self._tables[table.name] = TableSql.build(self._s, table)
        return sql

    def ensure_table(self, table: TableSpec) -> None:
        ddl = table_ddl(self._s, table)
        with self._tx(f"creating table {table.name}") as cur:
            xact_lock(cur, "syncline-table", self.schema, pg_name(table.name))
            if not _table_exists(cur, self.schema, table.name):
                xact_lock(cur, "syncline-schema", self.schema)
                cur.execute(ddl, ())
            sync_columns(cur, self._s, f"{self._s}.{quote_identifier(table.name)}", table)
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
        synced_at = _now()
        with self._tx(f"writing {table.name}") as cur:
            if lease is not None:
                leases.extend(cur, self._s, lease, lease.ttl, lease_now())
            plan = self._write_rows(cur, table, state, rows, deletes, rejects, sweep, synced_at)
            failpoint("store.rows_written")
            self._write_state(cur, state)
            record_feed(cur, table, self._s, self.schema, state, plan.feed, synced_at)
            failpoint("store.before_commit")
        return plan.changes()

    def _write_rows(
        self,
        cur: Cursor,
        table: TableSpec,
        state: State,
        rows: Sequence[Row],
        deletes: Sequence[Row],
        rejects: Sequence[Reject],
        sweep: Sweep | None,
        synced_at: str,
    ) -> PagePlan:
        """Inside a write transaction: under the page's lock, the rows, tombstones and sweep,
        and the rejects (with the records PostgreSQL cannot hold). One path for a page and a
        settled push item, so a row is stored the same whoever writes it; the plan's feed is
        left to :func:`record_feed`, taken last."""
        width = len(table.identity_columns)
        rows, deletes, unstorable = split_unstorable(rows, deletes, width)
        xact_lock(cur, "syncline-page", self.schema, pg_name(table.name), state.key.partition)
        plan = apply_page(cur, self._sql(table), rows, deletes, synced_at, sweep)
        self._reject(cur, state, [*rejects, *unstorable], synced_at)
        return plan

    def _reject(self, cur: Cursor, state: State, rejects: Sequence[Reject], at: str) -> None:
        if not rejects:
            return
        key = state.key
        cur.executemany(
            f"INSERT INTO {self._s}._syncline_rejects (source, stream, partition, run_id, "
            "reason, record, rejected_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (key.source, key.stream, key.partition, state.run_id, clean_text(r.reason),
                 clean_text(r.record), at)
                for r in rejects
            ],
        )  # fmt: skip

    def count_moved(self, table: TableSpec, rows: Sequence[Row], since: str) -> int:
        with self._tx(f"reading {table.name}") as cur:
            return count_moved(cur, self._sql(table), rows, since)

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
        with self._tx("updating the call ledger") as cur:
            quota.lock_scopes(cur, self.schema, [scope for scope, _ in scopes])
            return quota.take_permit(cur, self._s, scopes, weight, spend_reserve, moment)

    def settle_permit(
        self,
        scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
        weight: int,
        taken_at: float,
    ) -> None:
        with self._tx("updating the call ledger") as cur:
            quota.lock_scopes(cur, self.schema, [scope for scope, _ in scopes])
            quota.settle_permit(cur, self._s, scopes, weight, taken_at, lease_now())

    def observe_server(self, scope: str, windows: Sequence[ServerWindow]) -> None:
        if not windows:
            return
        with self._tx("updating the call ledger") as cur:
            quota.lock_scopes(cur, self.schema, [scope])
            quota.observe_server(cur, self._s, scope, windows, lease_now())

    def window_used(self, scope: str, window: WindowSpec) -> int:
        return self.window_usage(scope, window)[0]

    def window_usage(self, scope: str, window: WindowSpec) -> tuple[int, float | None]:
        with self._tx("reading the call ledger") as cur:
            return quota.window_usage(cur, self._s, scope, window, lease_now())

    def server_windows(self, scope: str | None = None) -> list[dict[str, Any]]:
        with self._tx("reading the call ledger") as cur:
            return quota.server_windows(cur, self._s, scope, lease_now())

    # -- leases ----------------------------------------------------------------

    def acquire_lease(
        self, key: StateKey, holder: str, ttl: float, *, take_over: str | None = None
    ) -> Lease:
        with self._tx("taking a lease") as cur:
            return leases.acquire(
                cur, self._s, self.schema, key, holder, ttl, take_over, lease_now()
            )

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        with self._tx("renewing a lease") as cur:
            return leases.extend(cur, self._s, lease, ttl, lease_now())

    def release_lease(self, lease: Lease) -> None:
        try:
            with self._tx("releasing a lease") as cur:
                leases.release(cur, self._s, lease)
        except StoreError as exc:
            log.warning("could not release the lease on %s: %s", lease.key.stream, exc)

    # -- checkpoints -----------------------------------------------------------

    def count_rejects(self, key: StateKey, run_id: str | None = None) -> int:
        sql = f"SELECT count(*) FROM {self._s}._syncline_rejects WHERE {KEY_WHERE}"
        args: tuple[str, ...] = (key.source, key.stream, key.partition)
        if run_id is not None:
            sql, args = sql + " AND run_id = %s", (*args, run_id)
        with self._tx("counting rejects") as cur:
            cur.execute(sql, args)
            return _scalar(cur)

    def save_state(self, state: State) -> None:
        with self._tx("saving state") as cur:
            self._write_state(cur, state)

    def _write_state(self, cur: Cursor, state: State) -> None:
        state.updated_at = _now()
        write_state(cur, self._s, state)

    def load_state(self, key: StateKey) -> State | None:
        with self._tx("loading state") as cur:
            cur.execute(
                f"SELECT {', '.join(STATE_COLUMNS)} FROM {self._s}._syncline_state "
                f"WHERE {KEY_WHERE}",
                (key.source, key.stream, key.partition),
            )
            row = cur.fetchone()
        return None if row is None else from_row(key, row, self._place)

    def all_states(self) -> list[State]:
        with self._tx("loading state") as cur:
            cur.execute(
                f"SELECT source, stream, partition, {', '.join(STATE_COLUMNS)} "
                f"FROM {self._s}._syncline_state "
                'ORDER BY source COLLATE "C", stream COLLATE "C", partition COLLATE "C"',
                (),
            )
            rows = cur.fetchall()
        return [from_row(StateKey(*row[:3]), row[3:], self._place) for row in rows]

    def delete_state(self, source: str, stream: str, partition: str | None = None) -> int:
        sql = f"DELETE FROM {self._s}._syncline_state WHERE source = %s AND stream = %s"
        args: tuple[str, ...] = (source, stream)
        if partition is not None:
            sql, args = sql + " AND partition = %s", (*args, partition)
        with self._tx("deleting state") as cur:
            cur.execute(sql, args)
            return cur.rowcount

    def count_rows(self, table: str, partition_columns: dict[str, Any]) -> int | None:
        where = "".join(f" AND {quote_identifier(c)} = %s::jsonb" for c in partition_columns)
        with self._tx(f"counting rows of {table}") as cur:
            if not _table_exists(cur, self.schema, table):
                return None
            cur.execute(
                f"SELECT count(*) FROM {self._s}.{quote_identifier(table)} "
                f"WHERE _deleted_at IS NULL{where}",
                tuple(map(to_json, partition_columns.values())),
            )
            return _scalar(cur)

    # -- change feed -----------------------------------------------------------

    def changes(
        self,
        *,
        after_id: int = 0,
        since: str | None = None,
        run_id: str | None = None,
        streams: Sequence[tuple[str, str]] = (),
    ) -> Iterator[Change]:
        with self._tx("reading the change feed") as cur:
            found = read_changes(cur, self._s, after_id, since, run_id, streams)
        yield from found

    def last_change_of(self, run_id: str) -> int | None:
        with self._tx("reading the change feed") as cur:
            cur.execute(
                f"SELECT max(id) FROM {self._s}._syncline_changes WHERE run_id = %s", (run_id,)
            )
            row = cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def prune_changes(self, before: str) -> int:
        with self._tx("pruning the change feed") as cur:
            cur.execute(
                f"DELETE FROM {self._s}._syncline_changes WHERE changed_at < %s::timestamptz",
                (before,),
            )
            return cur.rowcount

    def fetch_rows(
        self, table: TableSpec, identities: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], str]:
        with self._tx(f"reading {table.name}") as cur:
            return fetch_rows(cur, self._sql(table), identities)

    def iter_rows(
        self, table: TableSpec, partition: Sequence[Any]
    ) -> Iterator[tuple[tuple[Any, ...], str]]:
        sql = self._sql(table)
        after: list[str] | None = None
        while True:
            with self._tx(f"reading {table.name}") as cur:
                chunk = live_rows(cur, sql, partition, after, ROW_CHUNK)
            for identity, data, _ in chunk:
                yield identity, data
            if len(chunk) < ROW_CHUNK:
                return
            after = chunk[-1][2]

    # -- push outbox -------------------------------------------------------------

    def add_push_plan(self, plan: PushPlan, items: Sequence[OutboxItem]) -> None:
        with self._tx(f"writing push plan {plan.id}") as cur:
            outbox_sql.add_push_plan(cur, plan, items, _now(), "%s", prefix=self._prefix)

    def push_plans(self, source: str | None = None, stream: str | None = None) -> list[PushPlan]:
        with self._tx("reading push plans") as cur:
            return outbox_sql.push_plans(cur, source, stream, "%s", prefix=self._prefix)

    def outbox_items(
        self, plan_id: str, *, statuses: Sequence[str] = (), partition: str | None = None
    ) -> list[OutboxItem]:
        with self._tx(f"reading push plan {plan_id}") as cur:
            return outbox_sql.outbox_items(
                cur, plan_id, statuses, partition, "%s", prefix=self._prefix
            )

    def outbox_counts(self, plan_id: str | None = None) -> list[tuple[str, str, str, int]]:
        with self._tx("counting push items") as cur:
            return outbox_sql.outbox_counts(cur, plan_id, "%s", prefix=self._prefix)

    def open_outbox_keys(self, source: str, stream: str) -> set[tuple[str, str]]:
        with self._tx("reading push items") as cur:
            return outbox_sql.open_outbox_keys(cur, source, stream, "%s", prefix=self._prefix)

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
        now = _now()
        with self._tx(f"settling push items of {table.name}") as cur:
            if lease is not None:
                leases.extend(cur, self._s, lease, lease.ttl, lease_now())
            outbox_sql.save_items(cur, items, now, "%s", prefix=self._prefix)
            if state is not None:
                plan = self._write_rows(cur, table, state, rows, (), (), None, now)
                record_feed(cur, table, self._s, self.schema, state, plan.feed, now)
            failpoint("store.outbox_settled")

    # -- runs ------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> None:
        with self._tx("recording a run") as cur:
            cur.execute(
                f"INSERT INTO {self._s}._syncline_runs (id, started_at, status) "
                "VALUES (%s, %s, %s)",
                (run.id, run.started_at, run.status),
            )

    def finish_run(self, run: RunRecord) -> None:
        with self._tx("recording a run") as cur:
            cur.execute(
                f"UPDATE {self._s}._syncline_runs SET ended_at = %s, status = %s, records = %s, "
                "requests = %s, errors = %s WHERE id = %s",
                (run.ended_at, run.status, run.records, run.requests, json.dumps(run.errors),
                 run.id),
            )  # fmt: skip

    def last_runs(self, limit: int = 10) -> list[RunRecord]:
        with self._tx("reading runs") as cur:
            cur.execute(
                "SELECT id, started_at, ended_at, status, records, requests, errors "
                f'FROM {self._s}._syncline_runs ORDER BY started_at COLLATE "C" DESC LIMIT %s',
                (limit,),
            )
            rows = cur.fetchall()
        return [
            RunRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else [])
            for r in rows
        ]

    def close(self) -> None:
        self._pool.close()


def _server_encoding(conn: psycopg.Connection[tuple[Any, ...]]) -> str | None:
    return conn.info.parameter_status("server_encoding")


def _table_exists(cur: Cursor, schema: str, table: str) -> bool:
    cur.execute(
        "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = %s",
        (schema, pg_name(table)),
    )
    return cur.fetchone() is not None


def _scalar(cur: Cursor) -> int:
    row = cur.fetchone()
    return 0 if row is None else int(row[0])
