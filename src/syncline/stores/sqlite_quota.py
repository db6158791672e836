"""The call ledger in SQLite and DuckDB: sliding windows in buckets, plus what the server
last said.

Why in the store: a daily budget spent by this morning's run is still spent
this afternoon, and every process on the same store draws from one ledger.
Each permit is one short write transaction, so two processes can never both
take the last call of a window.

A window of length ``per`` is kept as 60 buckets; a call counts until its
whole bucket has left the window. That is conservative (a call may count up
to ``per / 60`` longer than it must), never optimistic: no interval of length
``per`` can hold more than ``calls`` permits.

The SQL here is the part of SQLite's and DuckDB's dialects they share (quoted
``"window"``, ``CASE`` for a floor at zero, ``RETURNING`` instead of a row
count), so both stores run this one module; each creates the tables in its
own DDL. PostgreSQL's ledger (:mod:`.postgres_quota`) differs in its locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from syncline.budget.headers import ServerWindow
from syncline.stores.base import LEDGER_BUCKETS as BUCKETS
from syncline.stores.base import WindowSpec
from syncline.stores.records_of import server_window

__all__ = [
    "QUOTA_SCHEMA",
    "observe_server",
    "server_windows",
    "settle_permit",
    "take_permit",
    "window_usage",
]


class Connection(Protocol):
    """What the ledger needs of a connection: sqlite3's and duckdb's both fit."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...


QUOTA_SCHEMA = """
CREATE TABLE IF NOT EXISTS _syncline_quota (
    scope TEXT NOT NULL, window TEXT NOT NULL, bucket INTEGER NOT NULL,
    used INTEGER NOT NULL, PRIMARY KEY (scope, window, bucket)
);
CREATE TABLE IF NOT EXISTS _syncline_quota_server (
    scope TEXT NOT NULL, name TEXT NOT NULL, lim INTEGER, remaining INTEGER NOT NULL,
    reset_at REAL, period REAL, observed_at REAL NOT NULL, PRIMARY KEY (scope, name)
);
"""


def take_permit(
    db: Connection,
    scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
    weight: int,
    spend_reserve: bool,
    now: float,
) -> float:
    """Inside a write transaction: record a permit in every scope and return 0, or return
    the seconds to wait (nothing recorded: a permit is all scopes or none)."""
    wait = 0.0
    for scope, windows in scopes:
        for window in windows:
            wait = max(wait, _declared_wait(db, scope, window, weight, spend_reserve, now))
        wait = max(wait, _server_wait(db, scope, weight, now))
    if wait > 0:
        return wait
    for scope, windows in scopes:
        for window in windows:
            _count(db, scope, window, window.bucket(now), weight)
            db.execute(
                'DELETE FROM _syncline_quota WHERE scope = ? AND "window" = ? AND bucket < ?',
                (scope, window.key, window.bucket(now - window.per)),
            )
        db.execute(
            "UPDATE _syncline_quota_server "
            "SET remaining = CASE WHEN remaining > ? THEN remaining - ? ELSE 0 END "
            "WHERE scope = ? AND (reset_at IS NULL OR reset_at > ?)",
            (weight, weight, scope, now),
        )
    return 0.0


def settle_permit(
    db: Connection,
    scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
    weight: int,
    taken_at: float,
    now: float,
) -> None:
    """Inside a write transaction: move a permit from its ``taken_at`` bucket to ``now``'s."""
    for scope, windows in scopes:
        for window in windows:
            taken, answered = window.bucket(taken_at), window.bucket(now)
            if answered == taken:
                continue
            moved = db.execute(
                "UPDATE _syncline_quota SET used = used - ? "
                'WHERE scope = ? AND "window" = ? AND bucket = ? AND used >= ? RETURNING bucket',
                (weight, scope, window.key, taken, weight),
            ).fetchall()
            if moved:  # else the bucket already left the window: nothing left to move
                _count(db, scope, window, answered, weight)


def _count(db: Connection, scope: str, window: WindowSpec, bucket: int, weight: int) -> None:
    db.execute(
        "INSERT INTO _syncline_quota VALUES (?, ?, ?, ?) "
        'ON CONFLICT (scope, "window", bucket) DO UPDATE SET used = used + excluded.used',
        (scope, window.key, bucket, weight),
    )


def _declared_wait(
    db: Connection,
    scope: str,
    window: WindowSpec,
    weight: int,
    spend_reserve: bool,
    now: float,
) -> float:
    first = window.bucket(now - window.per)
    buckets = db.execute(
        'SELECT bucket, used FROM _syncline_quota WHERE scope = ? AND "window" = ? AND bucket >= ? '
        "ORDER BY bucket",
        (scope, window.key, first),
    ).fetchall()
    return window.wait(buckets, weight, spend_reserve, now)


def _server_wait(db: Connection, scope: str, weight: int, now: float) -> float:
    """The server said a window is spent: wait for its reset (a little after, never before)."""
    rows = db.execute(
        "SELECT remaining, reset_at FROM _syncline_quota_server "
        "WHERE scope = ? AND reset_at IS NOT NULL AND reset_at > ?",
        (scope, now),
    ).fetchall()
    waits = [reset_at - now for remaining, reset_at in rows if remaining < weight]
    return max(waits, default=0.0)


def observe_server(db: Connection, scope: str, windows: Sequence[ServerWindow], now: float) -> None:
    """Inside a write transaction: the server's numbers replace our guesses for its windows."""
    for window in windows:
        reset_at = None if window.reset is None else now + window.reset
        db.execute(
            "INSERT OR REPLACE INTO _syncline_quota_server VALUES (?, ?, ?, ?, ?, ?, ?)",
            (scope, window.name, window.limit, window.remaining, reset_at, window.period, now),
        )


def window_usage(
    db: Connection, scope: str, window: WindowSpec, now: float
) -> tuple[int, float | None]:
    """Calls that still count against ``window`` at ``now``, and when the oldest stops counting."""
    width = window.per / BUCKETS
    used, oldest = db.execute(
        "SELECT coalesce(sum(used), 0), min(bucket) FROM _syncline_quota "
        'WHERE scope = ? AND "window" = ? AND bucket >= ? AND used > 0',
        (scope, window.key, window.bucket(now - window.per)),
    ).fetchone()
    return int(used), None if oldest is None else (oldest + 1) * width + window.per


def server_windows(db: Connection, scope: str | None, now: float) -> list[dict[str, Any]]:
    """What the server last reported per scope and window (a spent window shows its reset)."""
    sql = (
        "SELECT scope, name, lim, remaining, reset_at, period, observed_at "
        "FROM _syncline_quota_server"
    )
    args: tuple[str, ...] = ()
    if scope is not None:
        sql, args = sql + " WHERE scope = ?", (scope,)
    rows = db.execute(sql + " ORDER BY scope, name", args).fetchall()
    return [server_window(row, now) for row in rows]
