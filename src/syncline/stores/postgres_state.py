"""Checkpoints in PostgreSQL: the same columns and JSON-in-text encoding as SQLite.

Text, not ``jsonb``: a checkpoint must come back exactly as it was written
(key order, number spelling), and ``jsonb`` would normalise both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from syncline.stores.base import State, StateKey
from syncline.stores.postgres_rows import clean_text
from syncline.stores.records_of import STATE_COLUMNS, state_from_row, state_values

__all__ = ["STATE_COLUMNS", "from_row", "write_state"]

Cursor = psycopg.Cursor[tuple[Any, ...]]


def write_state(cur: Cursor, s: str, state: State) -> None:
    """Insert or replace the checkpoint of ``state.key`` (``s``: the quoted schema)."""
    values = state_values(state)
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
    return state_from_row(key, row, where)
