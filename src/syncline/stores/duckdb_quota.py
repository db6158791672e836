"""The call ledger in DuckDB: the same buckets and rules as :mod:`.sqlite_quota`.

Each function runs inside one write transaction of the store, and every
writer of a database file holds that file's lock (see :mod:`.duckdb_store`),
so reading a window and recording a permit cannot interleave: two store
objects can never both take the last call of a window. (DuckDB's own
optimistic concurrency would instead abort one of two transactions writing
the same bucket row with a conflict error.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from syncline.budget.headers import ServerWindow
from syncline.stores.base import LEDGER_BUCKETS as BUCKETS
from syncline.stores.base import WindowSpec
from syncline.stores.records_of import server_window

__all__ = [
    "observe_server",
    "server_windows",
    "settle_permit",
    "take_permit",
    "window_usage",
]

Connection = duckdb.DuckDBPyConnection


def _changed(con: Connection) -> int:
    """Rows the last ``INSERT``/``UPDATE``/``DELETE`` changed (DuckDB answers it as a row)."""
    row = con.fetchone()
    return 0 if row is None else int(row[0])


def take_permit(
    con: Connection,
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
            wait = max(wait, _declared_wait(con, scope, window, weight, spend_reserve, now))
        wait = max(wait, _server_wait(con, scope, weight, now))
    if wait > 0:
        return wait
    for scope, windows in scopes:
        for window in windows:
            _count(con, scope, window, window.bucket(now), weight)
            con.execute(
                'DELETE FROM _syncline_quota WHERE scope = ? AND "window" = ? AND bucket < ?',
                [scope, window.key, window.bucket(now - window.per)],
            )
        con.execute(
            "UPDATE _syncline_quota_server SET remaining = greatest(0, remaining - ?) "
            "WHERE scope = ? AND (reset_at IS NULL OR reset_at > ?)",
            [weight, scope, now],
        )
    return 0.0


def settle_permit(
    con: Connection,
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
            con.execute(
                "UPDATE _syncline_quota SET used = used - ? "
                'WHERE scope = ? AND "window" = ? AND bucket = ? AND used >= ?',
                [weight, scope, window.key, taken, weight],
            )
            if _changed(con):  # else the bucket already left the window: nothing to move
                _count(con, scope, window, answered, weight)


def _count(con: Connection, scope: str, window: WindowSpec, bucket: int, weight: int) -> None:
    con.execute(
        "INSERT INTO _syncline_quota VALUES (?, ?, ?, ?) "
        'ON CONFLICT (scope, "window", bucket) DO UPDATE SET used = used + excluded.used',
        [scope, window.key, bucket, weight],
    )


def _declared_wait(
    con: Connection,
    scope: str,
    window: WindowSpec,
    weight: int,
    spend_reserve: bool,
    now: float,
) -> float:
    buckets = con.execute(
        'SELECT bucket, used FROM _syncline_quota WHERE scope = ? AND "window" = ? '
        "AND bucket >= ? ORDER BY bucket",
        [scope, window.key, window.bucket(now - window.per)],
    ).fetchall()
    return window.wait(buckets, weight, spend_reserve, now)


def _server_wait(con: Connection, scope: str, weight: int, now: float) -> float:
    """The server said a window is spent: wait for its reset (a little after, never before)."""
    rows = con.execute(
        "SELECT remaining, reset_at FROM _syncline_quota_server "
        "WHERE scope = ? AND reset_at IS NOT NULL AND reset_at > ?",
        [scope, now],
    ).fetchall()
    waits = [reset_at - now for remaining, reset_at in rows if remaining < weight]
    return max(waits, default=0.0)


def observe_server(
    con: Connection, scope: str, windows: Sequence[ServerWindow], now: float
) -> None:
    """Inside a write transaction: the server's numbers replace our guesses for its windows."""
    for window in windows:
        reset_at = None if window.reset is None else now + window.reset
        con.execute(
            "INSERT OR REPLACE INTO _syncline_quota_server VALUES (?, ?, ?, ?, ?, ?, ?)",
            [scope, window.name, window.limit, window.remaining, reset_at, window.period, now],
        )


def window_usage(
    con: Connection, scope: str, window: WindowSpec, now: float
) -> tuple[int, float | None]:
    """Calls that still count against ``window`` at ``now``, and when the oldest stops counting."""
    width = window.per / BUCKETS
    row = con.execute(
        "SELECT coalesce(sum(used), 0), min(bucket) FROM _syncline_quota "
        'WHERE scope = ? AND "window" = ? AND bucket >= ? AND used > 0',
        [scope, window.key, window.bucket(now - window.per)],
    ).fetchone()
    assert row is not None  # an aggregate always answers one row
    used, oldest = row
    return int(used), None if oldest is None else (oldest + 1) * width + window.per


def server_windows(con: Connection, scope: str | None, now: float) -> list[dict[str, Any]]:
    """What the server last reported per scope and window (a spent window shows its reset)."""
    sql = (
        "SELECT scope, name, lim, remaining, reset_at, period, observed_at "
        "FROM _syncline_quota_server"
    )
    args: list[str] = []
    if scope is not None:
        sql, args = sql + " WHERE scope = ?", [scope]
    rows = con.execute(sql + " ORDER BY scope, name", args).fetchall()
    return [server_window(row, now) for row in rows]
