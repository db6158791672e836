"""Stores: where records land. One module per backend behind :class:`Store`."""

from __future__ import annotations

from syncline.errors import ConfigError
from syncline.stores.base import (
    Change,
    Lease,
    PageChanges,
    Reject,
    Row,
    RunRecord,
    State,
    StateKey,
    Store,
    Sweep,
    TableSpec,
    WindowSpec,
)
from syncline.stores.sqlite import SQLiteStore

__all__ = [
    "Change",
    "Lease",
    "PageChanges",
    "Reject",
    "Row",
    "RunRecord",
    "SQLiteStore",
    "State",
    "StateKey",
    "Store",
    "Sweep",
    "TableSpec",
    "WindowSpec",
    "open_store",
]


def open_store(url: str) -> Store:
    """Open the store a config's ``store:`` URL names."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    scheme = url.split(":", 1)[0]
    raise ConfigError(
        f"unsupported store {scheme!r}: this version supports sqlite:///path.db", key="store"
    )
