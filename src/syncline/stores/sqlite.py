"""The embedded default store: one SQLite file, WAL mode, one table per stream.

Durability: ``synchronous=NORMAL`` under WAL survives any process crash (the
guarantee syncline promises); a power cut may lose the last commits but never
splits a page from its checkpoint, because both are in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stamina

from syncline.budget.headers import ServerWindow
from syncline.errors import LeaseHeld, LeaseLost, StoreError
from syncline.failpoints import failpoint
from syncline.stores import outbox_sql, sqlite_changes, sqlite_quota
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
from syncline.stores.columns import check_names
from syncline.stores.records_of import STATE_COLUMNS, state_from_row, state_values
from syncline.stores.sql import quote_identifier
from syncline.stores.sqlite_columns import sync_columns

__all__ = ["SQLiteStore", "quote_identifier"]

SCHEMA_VERSION = 4
ROW_CHUNK = 1000
"""Rows :meth:`SQLiteStore.iter_rows` reads per lock hold."""
_META_COLUMNS = ("_data", "_updated_at", "_synced_at", "_hash", "_deleted_at")
_ADDED_COLUMNS = {"_hash": "TEXT", "_deleted_at": "TEXT"}
"""Meta columns a stream table created by an older syncline lacks (added on first use)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _syncline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _syncline_state (
    source TEXT NOT NULL, stream TEXT NOT NULL, partition TEXT NOT NULL,
    watermark TEXT, cursor TEXT, position TEXT, pass_filter TEXT, pass_max TEXT,
    run_id TEXT, status TEXT, error TEXT,
    records INTEGER NOT NULL DEFAULT 0, pages INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0, updated_at TEXT,
    pass_restarts INTEGER NOT NULL DEFAULT 0, not_before TEXT,
    pass_started TEXT, pass_drift INTEGER NOT NULL DEFAULT 0,
    pass_requests INTEGER NOT NULL DEFAULT 0, last_pass_requests INTEGER,
    PRIMARY KEY (source, stream, partition)
);
CREATE TABLE IF NOT EXISTS _syncline_leases (
    source TEXT NOT NULL, stream TEXT NOT NULL, partition TEXT NOT NULL,
    holder TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (source, stream, partition)
);
CREATE TABLE IF NOT EXISTS _syncline_rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, stream TEXT NOT NULL, partition TEXT NOT NULL,
    run_id TEXT, reason TEXT NOT NULL, record TEXT NOT NULL, rejected_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _syncline_runs (
    id TEXT PRIMARY KEY, started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL,
    records INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0, errors TEXT
);
"""
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # version reached -> statements that bring the previous version there
    2: (
        "ALTER TABLE _syncline_state ADD COLUMN pass_restarts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE _syncline_state ADD COLUMN not_before TEXT",
        "ALTER TABLE _syncline_state ADD COLUMN pass_started TEXT",
        "ALTER TABLE _syncline_state ADD COLUMN pass_drift INTEGER NOT NULL DEFAULT 0",
    ),
    3: (
        "ALTER TABLE _syncline_state ADD COLUMN pass_requests INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE _syncline_state ADD COLUMN last_pass_requests INTEGER",
    ),
    4: (),  # the change feed (a new table) and stream tables' _hash/_deleted_at (ensure_table)
}


log = logging.getLogger("syncline")


def _create_private(path: Path) -> None:
    """A new store file is private to its owner (0600, in a 0700 directory we create).

    The store holds the API's data and our checkpoints; other local users have
    no business reading either. An existing world-readable file is reported.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & stat.S_IROTH:
            log.warning(
                "store file %s is readable by every local user (mode %o); run chmod 600 on it",
                path,
                stat.S_IMODE(mode),
            )
        return
    except OSError:
        return  # let sqlite report the real problem with its own message
    os.close(fd)


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _enter_wal(db: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch to WAL, retrying while another process holds the file (bounded by the timeout).

    Why the retry: SQLite answers this pragma "database is locked" at once,
    without its busy handler, while another connection is creating or
    recovering the WAL, which is exactly what two processes starting on a new
    store do.
    """
    for attempt in stamina.retry_context(
        on=_is_locked, attempts=None, timeout=busy_timeout, wait_initial=0.01, wait_max=0.2
    ):
        with attempt:
            db.execute("PRAGMA journal_mode=WAL")


def lease_now() -> float:
    """Wall-clock seconds: leases are compared across processes, so not a monotonic clock."""
    return time.time()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SQLiteStore:
    """A :class:`~syncline.stores.base.Store` on one SQLite file, safe to share across threads."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            _create_private(Path(self.path))
        self._lock = threading.Lock()
        self._upserts: dict[str, str] = {}
        try:
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, check_same_thread=False, isolation_level=None
            )
            _enter_wal(self._db, busy_timeout)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
            version = self._schema_version()
            if version is not None and version > SCHEMA_VERSION:
                self._db.execute("ROLLBACK")
                raise StoreError(
                    f"{self.path} was written by a newer syncline (schema {version}); "
                    "upgrade syncline"
                )
            # One transaction (SQLite DDL is transactional): a migration is all or nothing.
            for target in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                for statement in _MIGRATIONS[target + 1]:
                    self._db.execute(statement)
            schema = (
                _SCHEMA
                + sqlite_quota.QUOTA_SCHEMA
                + sqlite_changes.CHANGES_SCHEMA
                + ";"
                + outbox_sql.OUTBOX_SCHEMA
            )
            for statement in schema.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "INSERT OR REPLACE INTO _syncline_meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback_quietly()
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from None

    def _clock(self) -> float:
        """Wall-clock seconds for leases and the call ledger (a subclass may read another
        module's ``lease_now``, so tests swap one fake clock per store module)."""
        return lease_now()

    def _schema_version(self) -> int | None:
        """The stored schema version; ``None`` for a new file."""
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='_syncline_meta'"
        ).fetchone()
        if exists is None:
            return None
        row = self._db.execute(
            "SELECT value FROM _syncline_meta WHERE key='schema_version'"
        ).fetchone()
        return None if row is None else int(row[0])

    def _rollback_quietly(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except (sqlite3.Error, AttributeError):
            pass

    def ensure_table(self, table: TableSpec) -> None:
        check_names(table, _META_COLUMNS, fold=True)
        q = quote_identifier
        identity = ", ".join(q(c) for c in table.identity_columns)
        ddl = (
            f"CREATE TABLE IF NOT EXISTS {q(table.name)} ({identity}, _data TEXT NOT NULL, "
            "_updated_at, _synced_at TEXT NOT NULL, _hash TEXT, _deleted_at TEXT, "
            f"PRIMARY KEY ({identity}))"
        )
        with self._write(f"creating table {table.name} in {self.path}"):
            self._db.execute(ddl)
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({q(table.name)})")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE {q(table.name)} ADD COLUMN {column} {kind}")
            sync_columns(self._db, table)
        typed = [q(c.name) for c in table.columns]
        names = ", ".join([*map(q, table.identity_columns), *_META_COLUMNS[:-1], *typed])
        marks = ", ".join("?" for _ in range(len(table.identity_columns) + 4 + len(typed)))
        refresh = "".join(f", {c} = excluded.{c}" for c in typed)
        # Newest wins: a row never moves back in _updated_at; on a tie the later arrival wins.
        self._upserts[table.name] = (
            f"INSERT INTO {q(table.name)} ({names}, _deleted_at) VALUES ({marks}, NULL) "
            f"ON CONFLICT ({identity}) DO UPDATE SET "
            "_data = excluded._data, _updated_at = excluded._updated_at, "
            "_synced_at = excluded._synced_at, _hash = excluded._hash, "
            f"_deleted_at = NULL{refresh} "
            f"WHERE excluded._updated_at IS NULL OR {q(table.name)}._updated_at IS NULL "
            f"OR excluded._updated_at >= {q(table.name)}._updated_at"
        )

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
        sql = self._upserts[table.name]
        with self._write(f"writing {table.name} to {self.path}"):
            if lease is not None:
                self._extend(lease, lease.ttl)
            changes = sqlite_changes.apply_page(
                self._db, table, sql, rows, deletes, state, synced_at, sweep
            )
            if rejects:
                key = state.key
                self._db.executemany(
                    "INSERT INTO _syncline_rejects (source, stream, partition, run_id, "
                    "reason, record, rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (key.source, key.stream, key.partition, state.run_id, r.reason,
                         r.record, synced_at)
                        for r in rejects
                    ],
                )  # fmt: skip
            failpoint("store.rows_written")
            self._write_state(state)
            failpoint("store.before_commit")
        return changes

    def count_moved(self, table: TableSpec, rows: Sequence[Row], since: str) -> int:
        """Rows of ``rows`` already stored by this pass (synced at or after ``since``) with
        an older modification value: records that moved while we were paging."""
        identity = table.identity_columns
        width = len(identity)
        q = quote_identifier
        join = " AND ".join(f"t.{q(c)} = page.c{i}" for i, c in enumerate(identity))
        names = ", ".join(f"c{i}" for i in range(width))
        moved = 0
        candidates = [(*row[:width], row[-1]) for row in rows if row[-1] is not None]
        with self._lock:
            for start in range(0, len(candidates), 500):
                chunk = candidates[start : start + 500]
                values = ", ".join("(" + ", ".join("?" * (width + 1)) + ")" for _ in chunk)
                sql = (
                    f"WITH page({names}, u) AS (VALUES {values}) "
                    f"SELECT count(*) FROM page JOIN {q(table.name)} AS t ON {join} "
                    "WHERE t._synced_at >= ? AND t._updated_at < page.u"
                )
                args = [value for row in chunk for value in row] + [since]
                moved += int(self._db.execute(sql, args).fetchone()[0])
        return moved

    # -- call ledger -----------------------------------------------------------

    def take_permit(
        self,
        scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
        weight: int,
        spend_reserve: bool,
        *,
        now: float | None = None,
    ) -> float:
        moment = self._clock() if now is None else now
        with self._write(f"updating the call ledger in {self.path}"):
            return sqlite_quota.take_permit(self._db, scopes, weight, spend_reserve, moment)

    def settle_permit(
        self,
        scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
        weight: int,
        taken_at: float,
    ) -> None:
        with self._write(f"updating the call ledger in {self.path}"):
            sqlite_quota.settle_permit(self._db, scopes, weight, taken_at, self._clock())

    def observe_server(self, scope: str, windows: Sequence[ServerWindow]) -> None:
        if not windows:
            return
        with self._write(f"updating the call ledger in {self.path}"):
            sqlite_quota.observe_server(self._db, scope, windows, self._clock())

    def window_used(self, scope: str, window: WindowSpec) -> int:
        return self.window_usage(scope, window)[0]

    def window_usage(self, scope: str, window: WindowSpec) -> tuple[int, float | None]:
        with self._lock:
            return sqlite_quota.window_usage(self._db, scope, window, self._clock())

    def server_windows(self, scope: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return sqlite_quota.server_windows(self._db, scope, self._clock())

    # -- leases ----------------------------------------------------------------

    def acquire_lease(
        self, key: StateKey, holder: str, ttl: float, *, take_over: str | None = None
    ) -> Lease:
        now = self._clock()
        with self._write(f"taking a lease in {self.path}"):
            row = self._db.execute(
                "SELECT holder, token, expires_at FROM _syncline_leases "
                "WHERE source = ? AND stream = ? AND partition = ?",
                (key.source, key.stream, key.partition),
            ).fetchone()
            if row is not None and row[0] not in (holder, take_over) and row[2] > now:
                raise LeaseHeld(
                    f"{key.source}.{key.stream} {key.partition} is being synced by "
                    f"{row[0]} (lease expires in {row[2] - now:.0f}s)",
                    holder=row[0],
                    expires_at=row[2],
                )
            token = (row[1] if row is not None else 0) + 1
            self._db.execute(
                "INSERT OR REPLACE INTO _syncline_leases VALUES (?, ?, ?, ?, ?, ?)",
                (key.source, key.stream, key.partition, holder, token, now + ttl),
            )
        return Lease(key, holder, token, now + ttl, ttl)

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        with self._write(f"renewing a lease in {self.path}"):
            return self._extend(lease, ttl)

    def _extend(self, lease: Lease, ttl: float) -> Lease:
        """Inside a transaction: prove the fencing token is current, then push the expiry."""
        key, expires = lease.key, self._clock() + ttl
        changed = self._db.execute(
            "UPDATE _syncline_leases SET expires_at = ? "
            "WHERE source = ? AND stream = ? AND partition = ? AND token = ? AND holder = ?",
            (expires, key.source, key.stream, key.partition, lease.token, lease.holder),
        ).rowcount
        if changed != 1:
            raise LeaseLost(
                f"{key.source}.{key.stream} {key.partition}: our lease expired and another "
                "process took over; nothing was written (it will resume from its checkpoint)"
            )
        return Lease(key, lease.holder, lease.token, expires, ttl)

    def release_lease(self, lease: Lease) -> None:
        key = lease.key
        with self._lock:
            try:
                # Expire rather than delete: fencing tokens must keep growing.
                self._db.execute(
                    "UPDATE _syncline_leases SET expires_at = 0 "
                    "WHERE source = ? AND stream = ? AND partition = ? AND token = ?",
                    (key.source, key.stream, key.partition, lease.token),
                )
            except sqlite3.Error as exc:
                log.warning("could not release the lease on %s: %s", key.stream, exc)

    def count_rejects(self, key: StateKey, run_id: str | None = None) -> int:
        sql = "SELECT count(*) FROM _syncline_rejects WHERE source = ? AND stream = ? "
        sql += "AND partition = ?"
        args: tuple[str, ...] = (key.source, key.stream, key.partition)
        if run_id is not None:
            sql, args = sql + " AND run_id = ?", (*args, run_id)
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])

    def save_state(self, state: State) -> None:
        with self._write(f"saving state to {self.path}"):
            self._write_state(state)

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[None]:
        """One write transaction under the lock: committed on success, rolled back on any error.

        SQLite errors become a :class:`StoreError` saying what failed; our own errors
        (a lost or held lease) pass through unchanged.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"{what} failed: {exc}") from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _write_state(self, state: State) -> None:
        state.updated_at = _now()
        values = [*state_values(state)]
        marks = ", ".join("?" for _ in STATE_COLUMNS)
        self._db.execute(
            f"INSERT OR REPLACE INTO _syncline_state (source, stream, partition, "
            f"{', '.join(STATE_COLUMNS)}) VALUES (?, ?, ?, {marks})",
            (state.key.source, state.key.stream, state.key.partition, *values),
        )

    def load_state(self, key: StateKey) -> State | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(STATE_COLUMNS)} FROM _syncline_state "
                "WHERE source = ? AND stream = ? AND partition = ?",
                (key.source, key.stream, key.partition),
            ).fetchone()
        return None if row is None else self._state(key, row)

    def _state(self, key: StateKey, row: Sequence[Any]) -> State:
        return state_from_row(key, row, self.path)

    def all_states(self) -> list[State]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT source, stream, partition, {', '.join(STATE_COLUMNS)} "
                "FROM _syncline_state ORDER BY source, stream, partition"
            ).fetchall()
        return [self._state(StateKey(*row[:3]), row[3:]) for row in rows]

    def delete_state(self, source: str, stream: str, partition: str | None = None) -> int:
        sql = "DELETE FROM _syncline_state WHERE source = ? AND stream = ?"
        args: tuple[str, ...] = (source, stream)
        if partition is not None:
            sql, args = sql + " AND partition = ?", (*args, partition)
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def count_rows(self, table: str, partition_columns: dict[str, Any]) -> int | None:
        where = "".join(f" AND {quote_identifier(c)} = ?" for c in partition_columns)
        sql = f"SELECT count(*) FROM {quote_identifier(table)} WHERE _deleted_at IS NULL{where}"
        with self._lock:
            try:
                row = self._db.execute(sql, tuple(partition_columns.values())).fetchone()
            except sqlite3.OperationalError:
                return None  # table not created yet (or by a syncline without deletions)
        return int(row[0])

    # -- change feed -----------------------------------------------------------

    def changes(
        self,
        *,
        after_id: int = 0,
        since: str | None = None,
        run_id: str | None = None,
        streams: Sequence[tuple[str, str]] = (),
    ) -> Iterator[Change]:
        with self._lock:
            found = list(sqlite_changes.read_changes(self._db, after_id, since, run_id, streams))
        yield from found

    def last_change_of(self, run_id: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT max(id) FROM _syncline_changes WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def prune_changes(self, before: str) -> int:
        with self._write(f"pruning the change feed of {self.path}"):
            return self._db.execute(
                "DELETE FROM _syncline_changes WHERE changed_at < ?", (before,)
            ).rowcount

    def fetch_rows(
        self, table: TableSpec, identities: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], str]:
        with self._lock:
            return sqlite_changes.fetch_rows(self._db, table, identities)

    def iter_rows(
        self, table: TableSpec, partition: Sequence[Any]
    ) -> Iterator[tuple[tuple[Any, ...], str]]:
        q = quote_identifier
        identity = ", ".join(q(c) for c in table.identity_columns)
        where = "".join(f" AND {q(c)} = ?" for c in table.partition_columns)
        sql = (
            f"SELECT rowid, {identity}, _data FROM {q(table.name)} "
            f"WHERE rowid > ? AND _deleted_at IS NULL{where} ORDER BY rowid LIMIT {ROW_CHUNK}"
        )
        after = -(2**63)
        while True:
            with self._lock:
                chunk = self._db.execute(sql, (after, *partition)).fetchall()
            for row in chunk:
                yield tuple(row[1:-1]), row[-1]
            if len(chunk) < ROW_CHUNK:
                return
            after = chunk[-1][0]

    def add_push_plan(self, plan: PushPlan, items: Sequence[OutboxItem]) -> None:
        with self._write(f"writing push plan {plan.id} to {self.path}"):
            outbox_sql.add_push_plan(self._db, plan, items, _now())

    def push_plans(self, source: str | None = None, stream: str | None = None) -> list[PushPlan]:
        with self._lock:
            return outbox_sql.push_plans(self._db, source, stream)

    def outbox_items(
        self, plan_id: str, *, statuses: Sequence[str] = (), partition: str | None = None
    ) -> list[OutboxItem]:
        with self._lock:
            return outbox_sql.outbox_items(self._db, plan_id, statuses, partition)

    def outbox_counts(self, plan_id: str | None = None) -> list[tuple[str, str, str, int]]:
        with self._lock:
            return outbox_sql.outbox_counts(self._db, plan_id)

    def open_outbox_keys(self, source: str, stream: str) -> set[tuple[str, str]]:
        with self._lock:
            return outbox_sql.open_outbox_keys(self._db, source, stream)

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
        now = _now()
        with self._write(f"settling push items in {self.path}"):
            if lease is not None:
                self._extend(lease, lease.ttl)
            if rows:
                state = outbox_sql.feed_state(key, run_id)
                sqlite_changes.apply_page(
                    self._db, table, self._upserts[table.name], rows, (), state, now, None
                )
            outbox_sql.save_items(self._db, items, now)
            failpoint("store.outbox_settled")

    def start_run(self, run: RunRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO _syncline_runs (id, started_at, status) VALUES (?, ?, ?)",
                (run.id, run.started_at, run.status),
            )

    def finish_run(self, run: RunRecord) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE _syncline_runs SET ended_at = ?, status = ?, records = ?, requests = ?, "
                "errors = ? WHERE id = ?",
                (
                    run.ended_at,
                    run.status,
                    run.records,
                    run.requests,
                    json.dumps(run.errors),
                    run.id,
                ),
            )

    def last_runs(self, limit: int = 10) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, started_at, ended_at, status, records, requests, errors "
                "FROM _syncline_runs ORDER BY started_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            RunRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else [])
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
