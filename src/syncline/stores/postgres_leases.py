"""Leases in PostgreSQL: one row per (source, stream, partition), a fencing token that grows.

A lease is taken under an advisory lock on its key, so two processes racing
for a free lease (no row yet to lock) cannot both win. It is proved at every
commit by :func:`extend` inside the page's transaction: a holder whose token
is no longer the current one writes nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg

from syncline.errors import LeaseHeld, LeaseLost
from syncline.stores.base import Lease, StateKey
from syncline.stores.postgres_schema import xact_lock

__all__ = ["KEY_WHERE", "acquire", "extend", "release"]

Cursor = psycopg.Cursor[tuple[Any, ...]]
KEY_WHERE = "source = %s AND stream = %s AND partition = %s"


def acquire(
    cur: Cursor,
    s: str,
    schema: str,
    key: StateKey,
    holder: str,
    ttl: float,
    take_over: str | None,
    now: float,
) -> Lease:
    """Take the lease or raise :class:`LeaseHeld` (``s``: the quoted schema, ``schema``: its
    name)."""
    xact_lock(cur, "syncline-lease", schema, key.source, key.stream, key.partition)
    cur.execute(
        f"SELECT holder, token, expires_at FROM {s}._syncline_leases WHERE {KEY_WHERE}",
        (key.source, key.stream, key.partition),
    )
    row = cur.fetchone()
    if row is not None and row[0] not in (holder, take_over) and row[2] > now:
        raise LeaseHeld(
            f"{key.source}.{key.stream} {key.partition} is being synced by "
            f"{row[0]} (lease expires in {row[2] - now:.0f}s)",
            holder=row[0],
            expires_at=row[2],
        )
    token = (row[1] if row is not None else 0) + 1
    cur.execute(
        f"INSERT INTO {s}._syncline_leases VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (source, stream, partition) DO UPDATE SET holder = excluded.holder, "
        "token = excluded.token, expires_at = excluded.expires_at",
        (key.source, key.stream, key.partition, holder, token, now + ttl),
    )
    return Lease(key, holder, token, now + ttl, ttl)


def extend(cur: Cursor, s: str, lease: Lease, ttl: float, now: float) -> Lease:
    """Inside a transaction: prove the fencing token is current, then push the expiry."""
    key, expires = lease.key, now + ttl
    cur.execute(
        f"UPDATE {s}._syncline_leases SET expires_at = %s "
        f"WHERE {KEY_WHERE} AND token = %s AND holder = %s",
        (expires, key.source, key.stream, key.partition, lease.token, lease.holder),
    )
    if cur.rowcount != 1:
        raise LeaseLost(
            f"{key.source}.{key.stream} {key.partition}: our lease expired and another "
            "process took over; nothing was written (it will resume from its checkpoint)"
        )
    return Lease(key, lease.holder, lease.token, expires, ttl)


def release(cur: Cursor, s: str, lease: Lease) -> None:
    """Expire rather than delete: fencing tokens must keep growing."""
    key = lease.key
    cur.execute(
        f"UPDATE {s}._syncline_leases SET expires_at = 0 WHERE {KEY_WHERE} AND token = %s",
        (key.source, key.stream, key.partition, lease.token),
    )
