"""Checkpoints in PostgreSQL: the same columns and JSON-in-text encoding as SQLite.

Text, not ``jsonb``: a checkpoint must come back exactly as it was written
(key order, number spelling), and ``jsonb`` would normalise both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from syncline.errors import StoreError
from syncline.stores.base import State, StateKey
from syncline.stores.postgres_rows import clean_text

__all__ = ["STATE_COLUMNS", "from_row", "write_state"]

Cursor = psycopg.Cursor[tuple[Any, ...]]
STATE_COLUMNS = (
    "watermark", "cursor", "position", "pass_filter", "pass_max",
    "run_id", "status", "error", "records", "pages", "requests", "updated_at",
    "pass_restarts", "not_before", "pass_started", "pass_drift",
    "pass_requests", "last_pass_requests",
)  # fmt: skip
_JSON_STATE = frozenset({"watermark", "cursor", "position", "pass_filter", "pass_max"})


def write_state(cur: Cursor, s: str, state: State) -> None:
    """Insert or replace the checkpoint of ``state.key`` (``s``: the quoted schema)."""
    values = [
        json.dumps(getattr(state, c)) if c in _JSON_STATE else getattr(state, c)
        for c in STATE_COLUMNS
    ]
    values[STATE_COLUMNS.index("error")] = clean_text(state.error)
    marks = ", ".join("%s" for _ in STATE_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS)
    cur.execute(
        f"INSERT INTO {s}._syncline_state (source, stream, partition, "
        f"{', '.join(STATE_COLUMNS)}) VALUES (%s, %s, %s, {marks}) "
        f"ON CONFLICT (source, stream, partition) DO UPDATE SET {updates}",
        (state.key.source, state.key.stream, state.key.partition, *values),
    )


def from_row(key: StateKey, row: Sequence[Any], where: str) -> State:
    """The state of ``key`` from its ``STATE_COLUMNS`` values; a corrupt one is reported."""
    fields: dict[str, Any] = {}
    for column, stored in zip(STATE_COLUMNS, row, strict=True):
        if column in _JSON_STATE and stored is not None:
            try:
                fields[column] = json.loads(stored)
            except ValueError:
                raise StoreError(
                    f"{where}: the checkpoint of {key.source}.{key.stream} {key.partition} "
                    "is corrupt; run `syncline reset` for that stream"
                ) from None
        else:
            fields[column] = stored
    fields["pass_drift"] = bool(fields.get("pass_drift"))
    return State(key=key, **fields)
