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


INSTALL_POSTGRES = "pip install 'syncline[postgres]'"


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
    raise ConfigError(
        f"unsupported store {scheme!r}: this version supports sqlite:///path.db and "
        "postgresql://user@host/db?schema=name",
        key="store",
    )
