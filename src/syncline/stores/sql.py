"""The one way an identifier enters SQL in the SQLite store."""

from __future__ import annotations

from syncline.errors import StoreError

__all__ = ["quote_identifier"]


def quote_identifier(name: str) -> str:
    """Double-quoted, inner quotes doubled: no field name can end the identifier early."""
    if "\x00" in name:
        raise StoreError(f"identifier {name!r} contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'
