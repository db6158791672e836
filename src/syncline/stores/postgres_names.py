"""The one way an identifier enters SQL in the PostgreSQL store.

Two PostgreSQL rules shape it. A quoted identifier is taken verbatim and is
case-sensitive, so ``Name`` and ``name`` stay two columns, and doubling inner
quotes is all the escaping there is. And an identifier is at most 63 bytes:
PostgreSQL silently cuts longer ones, so two long field names sharing their
first 63 bytes would land in one column. Longer names are therefore shortened
by us, deterministically: a prefix that ends on a character boundary, ``_``
and 8 hex digits of a hash of the whole name. The same name always maps to
the same identifier, and two different names collide only if their hashes do
(the stores also check the mapped names of one table are distinct).

The quoted form is SQL text for psycopg, whose placeholders are ``%s``: a
``%`` in a name is doubled, so every statement must be executed with a
parameter sequence (``()`` when it has none), which turns ``%%`` back into
``%``. A name like ``50%s`` then can neither inject nor shift a parameter.
"""

from __future__ import annotations

import hashlib

from syncline.errors import StoreError

__all__ = ["MAX_IDENTIFIER_BYTES", "pg_name", "quote_identifier"]

MAX_IDENTIFIER_BYTES = 63
"""PostgreSQL's ``NAMEDATALEN - 1`` (the default build)."""
_SUFFIX = 9  # "_" + 8 hex digits


def pg_name(name: str) -> str:
    """The identifier PostgreSQL stores for ``name`` (unquoted): ``name`` itself when it fits."""
    if "\x00" in name:
        raise StoreError(f"identifier {name!r} contains a NUL byte")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"identifier {name!r} is not valid UTF-8") from None
    if len(raw) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.blake2b(raw, digest_size=4).hexdigest()
    prefix = raw[: MAX_IDENTIFIER_BYTES - _SUFFIX].decode("utf-8", "ignore")  # whole characters
    return f"{prefix}_{digest}"


def quote_identifier(name: str) -> str:
    """Double-quoted, inner quotes and ``%`` doubled, long names shortened: nothing can end it
    early or pass for a placeholder."""
    return '"' + pg_name(name).replace('"', '""').replace("%", "%%") + '"'
