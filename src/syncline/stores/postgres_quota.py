"""The call ledger in PostgreSQL: the same buckets and rules as :mod:`.sqlite_quota`.

Why an advisory lock per scope: SQLite serialises every writer, so reading a
window and recording a permit cannot interleave. PostgreSQL lets transactions
run side by side, and a bucket row that does not exist yet cannot be locked
with ``SELECT … FOR UPDATE``; so each permit first takes a transaction-level
advisory lock on every scope it spends from (in sorted order: no deadlock),
and two processes can never both take the last call of a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from syncline.budget.headers import ServerWindow
from syncline.stores.base import LEDGER_BUCKETS as BUCKETS
from syncline.stores.base import WindowSpec
from syncline.stores.postgres_schema import xact_lock
from syncline.stores.records_of import server_window

__all__ = [
    "lock_scopes",
    "observe_server",
    "server_windows",
    "settle_permit",
    "take_permit",
    "window_usage",
]

Cursor = psycopg.Cursor[tuple[Any, ...]]


def lock_scopes(cur: Cursor, schema: str, scopes: Sequence[str]) -> None:
    """Hold every scope's ledger lock until the transaction ends (sorted: no deadlock)."""
    for scope in sorted(set(scopes)):
        xact_lock(cur, "syncline-quota", schema, scope)


def take_permit(
    cur: Cursor,
    s: str,
    scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
    weight: int,
    spend_reserve: bool,
    now: float,
) -> float:
    """Under the scopes' locks: record a permit in every scope and return 0, or return the
    seconds to wait (nothing recorded: a permit is all scopes or none)."""
    wait = 0.0
    for scope, windows in scopes:
        for window in windows:
            wait = max(wait, _declared_wait(cur, s, scope, window, weight, spend_reserve, now))
        wait = max(wait, _server_wait(cur, s, scope, weight, now))
    if wait > 0:
        return wait
    for scope, windows in scopes:
        for window in windows:
            _count(cur, s, scope, window, window.bucket(now), weight)
            cur.execute(
                f'DELETE FROM {s}._syncline_quota WHERE scope = %s AND "window" = %s '
                "AND bucket < %s",
                (scope, window.key, window.bucket(now - window.per)),
            )
        cur.execute(
            f"UPDATE {s}._syncline_quota_server SET remaining = GREATEST(0, remaining - %s) "
            "WHERE scope = %s AND (reset_at IS NULL OR reset_at > %s)",
            (weight, scope, now),
        )
    return 0.0


def settle_permit(
    cur: Cursor,
    s: str,
    scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
    weight: int,
    taken_at: float,
    now: float,
) -> None:
    """Under the scopes' locks: move a permit from its ``taken_at`` bucket to ``now``'s."""
    for scope, windows in scopes:
        for window in windows:
            taken, answered = window.bucket(taken_at), window.bucket(now)
            if answered == taken:
                continue
            cur.execute(
                f"UPDATE {s}._syncline_quota SET used = used - %s "
                'WHERE scope = %s AND "window" = %s AND bucket = %s AND used >= %s',
                (weight, scope, window.key, taken, weight),
            )
            if cur.rowcount:  # else the bucket already left the window: nothing left to move
                _count(cur, s, scope, window, answered, weight)


def _count(cur: Cursor, s: str, scope: str, window: WindowSpec, bucket: int, weight: int) -> None:
    cur.execute(
        f"INSERT INTO {s}._syncline_quota AS q VALUES (%s, %s, %s, %s) "
        'ON CONFLICT (scope, "window", bucket) DO UPDATE SET used = q.used + excluded.used',
        (scope, window.key, bucket, weight),
    )


def _declared_wait(
    cur: Cursor,
    s: str,
    scope: str,
    window: WindowSpec,
    weight: int,
    spend_reserve: bool,
    now: float,
) -> float:
    cur.execute(
        f"SELECT bucket, used FROM {s}._syncline_quota "
        'WHERE scope = %s AND "window" = %s AND bucket >= %s ORDER BY bucket',
        (scope, window.key, window.bucket(now - window.per)),
    )
    buckets = cur.fetchall()
    return window.wait(buckets, weight, spend_reserve, now)


def _server_wait(cur: Cursor, s: str, scope: str, weight: int, now: float) -> float:
    """The server said a window is spent: wait for its reset (a little after, never before)."""
    cur.execute(
        f"SELECT remaining, reset_at FROM {s}._syncline_quota_server "
        "WHERE scope = %s AND reset_at IS NOT NULL AND reset_at > %s",
        (scope, now),
    )
    waits = [reset_at - now for remaining, reset_at in cur.fetchall() if remaining < weight]
    return max(waits, default=0.0)


def observe_server(
    cur: Cursor, s: str, scope: str, windows: Sequence[ServerWindow], now: float
) -> None:
    """Under the scope's lock: the server's numbers replace our guesses for its windows."""
    for window in windows:
        reset_at = None if window.reset is None else now + window.reset
        cur.execute(
            f"INSERT INTO {s}._syncline_quota_server VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (scope, name) DO UPDATE SET lim = excluded.lim, "
            "remaining = excluded.remaining, reset_at = excluded.reset_at, "
            "period = excluded.period, observed_at = excluded.observed_at",
            (scope, window.name, window.limit, window.remaining, reset_at, window.period, now),
        )


def window_usage(
    cur: Cursor, s: str, scope: str, window: WindowSpec, now: float
) -> tuple[int, float | None]:
    """Calls that still count against ``window`` at ``now``, and when the oldest stops counting."""
    width = window.per / BUCKETS
    cur.execute(
        f"SELECT coalesce(sum(used), 0), min(bucket) FROM {s}._syncline_quota "
        'WHERE scope = %s AND "window" = %s AND bucket >= %s AND used > 0',
        (scope, window.key, window.bucket(now - window.per)),
    )
    row = cur.fetchone()
    assert row is not None  # an aggregate always answers one row
    used, oldest = row
    return int(used), None if oldest is None else (oldest + 1) * width + window.per


def server_windows(cur: Cursor, s: str, scope: str | None, now: float) -> list[dict[str, Any]]:
    """What the server last reported per scope and window (a spent window shows its reset)."""
    sql = (
        "SELECT scope, name, lim, remaining, reset_at, period, observed_at "
        f"FROM {s}._syncline_quota_server"
    )
    args: tuple[str, ...] = ()
    if scope is not None:
        sql, args = sql + " WHERE scope = %s", (scope,)
    cur.execute(sql + ' ORDER BY scope COLLATE "C", name COLLATE "C"', args)
    return [server_window(row, now) for row in cur.fetchall()]
