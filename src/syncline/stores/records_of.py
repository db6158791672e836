"""Rows of the bookkeeping tables to and from Python values, the same in every store.

Why one module: a checkpoint must mean the same thing whichever database
holds it, and the encoding (JSON text for the structured fields) is the
part that must not drift between backends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from syncline.errors import StoreError
from syncline.stores.base import State, StateKey

__all__ = ["STATE_COLUMNS", "server_window", "state_from_row", "state_values"]

STATE_COLUMNS = (
    "watermark", "cursor", "position", "pass_filter", "pass_max",
    "run_id", "status", "error", "records", "pages", "requests", "updated_at",
    "pass_restarts", "not_before", "pass_started", "pass_drift",
    "pass_requests", "last_pass_requests",
)  # fmt: skip
_JSON_STATE = frozenset({"watermark", "cursor", "position", "pass_filter", "pass_max"})


def state_values(state: State) -> list[Any]:
    """``STATE_COLUMNS`` of ``state``: structured fields as JSON text, exactly as written."""
    return [
        json.dumps(getattr(state, c)) if c in _JSON_STATE else getattr(state, c)
        for c in STATE_COLUMNS
    ]


def state_from_row(key: StateKey, row: Sequence[Any], where: str) -> State:
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


def server_window(row: Sequence[Any], now: float | datetime) -> dict[str, Any]:
    """What the server last said about one of its windows; a window past its reset is full."""
    scope, name, lim, remaining, reset_at, period, observed = row
    expired = reset_at is not None and reset_at <= now
    return {
        "scope": scope,
        "name": name,
        "limit": lim,
        "remaining": lim if expired and lim is not None else remaining,
        "reset_at": None if expired else reset_at,
        "period": period,
        "observed_at": observed,
    }
