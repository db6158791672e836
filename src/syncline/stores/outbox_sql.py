"""The push outbox in SQL every store speaks: plans, and one row per record to change.

Why one module for SQLite, DuckDB and PostgreSQL: the outbox is plain rows of
text and integers, read and written by primary key, so the three dialects
agree on all of it but the parameter mark (``?`` or ``%s``) and where the
tables live (``prefix``: PostgreSQL names its schema, the others need none).
Each store calls these functions inside its own transaction, next to its own
mirror writes: that is what settles an item's status and its mirror row
together.

Lists of plans and counts are sorted here, not by ``ORDER BY``: text orders
by the database's collation in PostgreSQL (where ``"a" < "B"``), byte by byte
in SQLite and DuckDB; Python's order of ``str`` is SQLite's (code points, the
order of UTF-8 bytes), whatever the store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from syncline.stores.base import OUTBOX_OPEN, OutboxItem, PushPlan, State, StateKey

__all__ = [
    "OUTBOX_SCHEMA",
    "add_push_plan",
    "feed_state",
    "open_outbox_keys",
    "outbox_counts",
    "outbox_items",
    "outbox_schema",
    "push_plans",
    "save_items",
]


class Cursor(Protocol):
    """What the outbox needs: sqlite3's and duckdb's connections and psycopg's cursor fit."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


def outbox_schema(prefix: str = "", *, index: bool = True) -> str:
    """The outbox's DDL, ``;``-separated, its tables named with ``prefix`` (PostgreSQL's quoted
    schema and a dot). ``index``: the index of open items by stream, which DuckDB goes without
    (its bookkeeping tables have none: an ART index slows its writes down, and the outbox of
    one stream is scanned quickly anyway)."""
    ddl = f"""
CREATE TABLE IF NOT EXISTS {prefix}_syncline_push_plans (
    id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, source TEXT NOT NULL,
    stream TEXT NOT NULL, statement TEXT NOT NULL, priority TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS {prefix}_syncline_outbox (
    plan_id TEXT NOT NULL, seq INTEGER NOT NULL, source TEXT NOT NULL, stream TEXT NOT NULL,
    partition TEXT NOT NULL, key TEXT NOT NULL, patch TEXT NOT NULL, previous TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT, updated_at TEXT NOT NULL,
    PRIMARY KEY (plan_id, seq)
)"""
    if index:
        ddl += (
            ";\nCREATE INDEX IF NOT EXISTS _syncline_outbox_open "
            f"ON {prefix}_syncline_outbox (source, stream, status)\n"
        )
    return ddl


OUTBOX_SCHEMA = outbox_schema()
_ITEM_COLUMNS = "plan_id, seq, partition, key, patch, previous, status, attempts, error, updated_at"
_PLAN_COLUMNS = "id, fingerprint, source, stream, statement, priority, created_at"


def key_text(key: Sequence[Any]) -> str:
    """A key as the outbox stores it: a JSON list (``1`` and ``"1"`` stay apart)."""
    return _dumps(list(key))


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # an integer beyond 64 bits: the standard library keeps every digit
        return json.dumps(value, default=str, separators=(",", ":"))


def _loads(text: str) -> Any:
    """JSON text back to values; integers beyond 64 bits stay exact (orjson would float them)."""
    value = orjson.loads(text)
    return json.loads(text) if _has_float(value) else value


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def feed_state(key: StateKey | None, run_id: str | None) -> State:
    """The checkpoint a settled row's feed entries are recorded under: transient, never saved
    (settling a push item writes no checkpoint)."""
    if key is None:
        raise ValueError("settle_outbox: rows need the key of their partition")
    return State(key, run_id=run_id)


def add_push_plan(
    db: Cursor,
    plan: PushPlan,
    items: Sequence[OutboxItem],
    now: str,
    mark: str = "?",
    *,
    prefix: str = "",
) -> None:
    plan_marks = ", ".join([mark] * 7)
    db.execute(
        f"INSERT INTO {prefix}_syncline_push_plans ({_PLAN_COLUMNS}) VALUES ({plan_marks})",
        (plan.id, plan.fingerprint, plan.source, plan.stream, plan.statement, plan.priority,
         plan.created_at),
    )  # fmt: skip
    if not items:
        return  # DuckDB's executemany refuses an empty list
    item_marks = ", ".join([mark] * 12)
    db.executemany(
        f"INSERT INTO {prefix}_syncline_outbox (source, stream, {_ITEM_COLUMNS}) "
        f"VALUES ({item_marks})",
        [
            (plan.source, plan.stream, item.plan_id, item.seq, item.partition,
             key_text(item.key), _dumps(item.patch), _dumps(item.before), item.status,
             item.attempts, item.error, item.updated_at or now)
            for item in items
        ],
    )  # fmt: skip


def save_items(
    db: Cursor, items: Sequence[OutboxItem], now: str, mark: str = "?", *, prefix: str = ""
) -> None:
    """Write the status, attempts and error of ``items`` (their plan and seq name them)."""
    if not items:
        return  # DuckDB's executemany refuses an empty list
    for item in items:
        item.updated_at = now
    db.executemany(
        f"UPDATE {prefix}_syncline_outbox SET status = {mark}, attempts = {mark}, error = {mark}, "
        f"updated_at = {mark} WHERE plan_id = {mark} AND seq = {mark}",
        [(item.status, item.attempts, item.error, now, item.plan_id, item.seq) for item in items],
    )


def push_plans(
    db: Cursor, source: str | None, stream: str | None, mark: str = "?", *, prefix: str = ""
) -> list[PushPlan]:
    sql = f"SELECT {_PLAN_COLUMNS} FROM {prefix}_syncline_push_plans"
    clauses, args = [], []
    for column, value in (("source", source), ("stream", stream)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            args.append(value)
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    plans = [PushPlan(*row) for row in db.execute(sql, args).fetchall()]
    return sorted(plans, key=lambda plan: (plan.created_at, plan.id))


def outbox_items(
    db: Cursor,
    plan_id: str,
    statuses: Sequence[str],
    partition: str | None,
    mark: str = "?",
    *,
    prefix: str = "",
) -> list[OutboxItem]:
    sql = f"SELECT {_ITEM_COLUMNS} FROM {prefix}_syncline_outbox WHERE plan_id = {mark}"
    args: list[Any] = [plan_id]
    if statuses:
        sql += f" AND status IN ({', '.join([mark] * len(statuses))})"
        args += statuses
    if partition is not None:
        sql += f" AND partition = {mark}"
        args.append(partition)
    rows = db.execute(sql + " ORDER BY seq", args).fetchall()
    return [
        OutboxItem(
            plan_id=row[0],
            seq=int(row[1]),
            partition=row[2],
            key=tuple(_loads(row[3])),
            patch=_loads(row[4]),
            before=_loads(row[5]),
            status=row[6],
            attempts=int(row[7]),
            error=row[8],
            updated_at=row[9],
        )
        for row in rows
    ]


def outbox_counts(
    db: Cursor, plan_id: str | None, mark: str = "?", *, prefix: str = ""
) -> list[tuple[str, str, str, int]]:
    sql = f"SELECT plan_id, partition, status, count(*) FROM {prefix}_syncline_outbox"
    args: list[Any] = []
    if plan_id is not None:
        sql, args = sql + f" WHERE plan_id = {mark}", [plan_id]
    rows = db.execute(sql + " GROUP BY plan_id, partition, status", args).fetchall()
    return sorted((row[0], row[1], row[2], int(row[3])) for row in rows)


def open_outbox_keys(
    db: Cursor, source: str, stream: str, mark: str = "?", *, prefix: str = ""
) -> set[tuple[str, str]]:
    statuses = ", ".join([mark] * len(OUTBOX_OPEN))
    rows = db.execute(
        f"SELECT partition, key FROM {prefix}_syncline_outbox WHERE source = {mark} "
        f"AND stream = {mark} AND status IN ({statuses})",
        (source, stream, *OUTBOX_OPEN),
    ).fetchall()
    return {(row[0], row[1]) for row in rows}
