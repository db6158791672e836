"""Stores: where records land. One module per backend behind :class:`Store`."""

from __future__ import annotations

from syncline.errors import ConfigError
from syncline.stores.base import (
    COLUMN_TYPES,
    OUTBOX_OPEN,
    OUTBOX_STATUSES,
    Change,
    Column,
    Lease,
    OutboxItem,
    PageChanges,
    PushPlan,
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
    "COLUMN_TYPES",
    "OUTBOX_OPEN",
    "OUTBOX_STATUSES",
    "Change",
    "Column",
    "Lease",
    "OutboxItem",
    "PageChanges",
    "PushPlan",
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


INSTALL_POSTGRES = "pip install 'syncline[postgres]'"
INSTALL_DUCKDB = "pip install 'syncline[duckdb]'"


def open_store(url: str) -> Store:
    """Open the store a config's ``store:`` URL names.

    Backends other than SQLite are optional extras, imported only when named,
    so a SQLite user never needs their drivers.
    """
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    scheme = url.split(":", 1)[0]
    if scheme in ("postgresql", "postgres"):
        try:
            from syncline.stores.postgres import PostgresStore
        except ImportError as exc:
            if exc.name not in ("psycopg", "psycopg_pool") and "libpq" not in str(exc):
                raise
            raise ConfigError(
                f"the PostgreSQL store needs psycopg: {INSTALL_POSTGRES}", key="store"
            ) from None
        return PostgresStore(url)
    if scheme == "duckdb":
        try:
            from syncline.stores.duckdb_store import DuckDBStore
        except ImportError as exc:
            if exc.name != "duckdb":
                raise
            raise ConfigError(
                f"the DuckDB store needs duckdb: {INSTALL_DUCKDB}", key="store"
            ) from None
        return DuckDBStore(url)
    if scheme == "jsonl":
        from syncline.stores.jsonl import JsonlStore

        return JsonlStore(url)
    raise ConfigError(
        f"unsupported store {scheme!r}: this version supports sqlite:///path.db, "
        "postgresql://user@host/db?schema=name, duckdb:///path.duckdb and jsonl:///directory",
        key="store",
    )
