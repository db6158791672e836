"""Leases in DuckDB: one row per (source, stream, partition), a fencing token that grows.

The same rules as SQLite's: taken inside a write transaction (the database
file's writers are serialised by the store), proved at every commit by
:func:`extend` inside the page's transaction, so a holder whose token is no
longer the current one writes nothing.
"""

from __future__ import annotations

import duckdb

from syncline.errors import LeaseHeld, LeaseLost
from syncline.stores.base import Lease, StateKey

__all__ = ["KEY_WHERE", "acquire", "extend", "release"]

KEY_WHERE = "source = ? AND stream = ? AND partition = ?"


def acquire(
    con: duckdb.DuckDBPyConnection,
    key: StateKey,
    holder: str,
    ttl: float,
    take_over: str | None,
    now: float,
) -> Lease:
    """Inside a write transaction: take the lease or raise :class:`LeaseHeld`."""
    row = con.execute(
        f"SELECT holder, token, expires_at FROM _syncline_leases WHERE {KEY_WHERE}",
        [key.source, key.stream, key.partition],
    ).fetchone()
    if row is not None and row[0] not in (holder, take_over) and row[2] > now:
        raise LeaseHeld(
            f"{key.source}.{key.stream} {key.partition} is being synced by "
            f"{row[0]} (lease expires in {row[2] - now:.0f}s)",
            holder=row[0],
            expires_at=row[2],
        )
    token = (row[1] if row is not None else 0) + 1
    con.execute(
        "INSERT OR REPLACE INTO _syncline_leases VALUES (?, ?, ?, ?, ?, ?)",
        [key.source, key.stream, key.partition, holder, token, now + ttl],
    )
    return Lease(key, holder, token, now + ttl, ttl)


def extend(con: duckdb.DuckDBPyConnection, lease: Lease, ttl: float, now: float) -> Lease:
    """Inside a transaction: prove the fencing token is current, then push the expiry."""
    key, expires = lease.key, now + ttl
    row = con.execute(
        f"UPDATE _syncline_leases SET expires_at = ? WHERE {KEY_WHERE} AND token = ? "
        "AND holder = ?",
        [expires, key.source, key.stream, key.partition, lease.token, lease.holder],
    ).fetchone()
    if row is None or row[0] != 1:
        raise LeaseLost(
            f"{key.source}.{key.stream} {key.partition}: our lease expired and another "
            "process took over; nothing was written (it will resume from its checkpoint)"
        )
    return Lease(key, lease.holder, lease.token, expires, ttl)


def release(con: duckdb.DuckDBPyConnection, lease: Lease) -> None:
    """Expire rather than delete: fencing tokens must keep growing."""
    key = lease.key
    con.execute(
        f"UPDATE _syncline_leases SET expires_at = 0 WHERE {KEY_WHERE} AND token = ?",
        [key.source, key.stream, key.partition, lease.token],
    )
