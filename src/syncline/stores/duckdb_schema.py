"""The DuckDB store's tables: the same bookkeeping as SQLite, versioned in ``_syncline_meta``.

Column types, and why:

- partition and key columns are ``JSON`` (compact JSON text of the value):
  ``1`` and ``"1"`` are two records, as in SQLite. Query them as JSON
  scalars: ``WHERE id = '42'`` or ``WHERE id = '"abc"'``, ``id::BIGINT``.
- ``_data`` is ``JSON``, kept byte for byte as the API's record was encoded:
  ``_data->>'$.name'``, ``json_extract(_data, '$.price')``.
- ``_updated_at`` is ``JSON`` too: a modification value is a number (epoch,
  version) or text (fixed-width UTC ISO-8601) and must come back as the one
  it was. Newest-wins compares them in Python (:func:`.page_plan.older`,
  SQLite's order) under the page's lock, so no SQL ordering is needed.
- ``_synced_at``, ``_deleted_at`` and the feed's ``changed_at`` are
  ``TIMESTAMPTZ`` (microseconds, exactly what our clock writes): users ask
  ``WHERE _synced_at > now() - INTERVAL 1 DAY``.
- checkpoints, runs and rejects keep SQLite's text: a checkpoint must come
  back exactly as it was written.
- the push outbox is SQLite's own DDL and SQL (:mod:`.outbox_sql`): plain
  text and integers, which DuckDB spells the same.

No secondary indexes on the bookkeeping tables: DuckDB prunes the feed's
time and id ranges with its zone maps, and an ART index would only slow the
writes down (the outbox's index of open items, which SQLite and PostgreSQL
keep, is left out: it would be rewritten at every status an item settles).

Versions: 2 added the outbox. Every statement is ``IF NOT EXISTS``, so a file
of any older version is brought up to date by running them all again.
"""

from __future__ import annotations

import duckdb

from syncline.errors import StoreError
from syncline.stores.base import COLUMN_TYPES, TableSpec
from syncline.stores.outbox_sql import outbox_schema
from syncline.stores.sql import quote_identifier as q

__all__ = [
    "META_COLUMNS",
    "SCHEMA_VERSION",
    "check_names",
    "fold",
    "prepare",
    "stored_table_name",
]

SCHEMA_VERSION = 2
META_COLUMNS = ("_data", "_updated_at", "_synced_at", "_hash", "_deleted_at")
META_DDL = (
    "_data JSON NOT NULL, _updated_at JSON, _synced_at TIMESTAMPTZ NOT NULL, "
    "_hash VARCHAR, _deleted_at TIMESTAMPTZ"
)

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS _syncline_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS _syncline_state (
    source VARCHAR NOT NULL, stream VARCHAR NOT NULL, partition VARCHAR NOT NULL,
    watermark VARCHAR, cursor VARCHAR, position VARCHAR, pass_filter VARCHAR, pass_max VARCHAR,
    run_id VARCHAR, status VARCHAR, error VARCHAR,
    records BIGINT NOT NULL DEFAULT 0, pages BIGINT NOT NULL DEFAULT 0,
    requests BIGINT NOT NULL DEFAULT 0, updated_at VARCHAR,
    pass_restarts INTEGER NOT NULL DEFAULT 0, not_before VARCHAR,
    pass_started VARCHAR, pass_drift BOOLEAN NOT NULL DEFAULT false,
    pass_requests BIGINT NOT NULL DEFAULT 0, last_pass_requests BIGINT,
    PRIMARY KEY (source, stream, partition)
);
CREATE TABLE IF NOT EXISTS _syncline_leases (
    source VARCHAR NOT NULL, stream VARCHAR NOT NULL, partition VARCHAR NOT NULL,
    holder VARCHAR NOT NULL, token BIGINT NOT NULL, expires_at DOUBLE NOT NULL,
    PRIMARY KEY (source, stream, partition)
);
CREATE SEQUENCE IF NOT EXISTS _syncline_rejects_id;
CREATE TABLE IF NOT EXISTS _syncline_rejects (
    id BIGINT PRIMARY KEY DEFAULT nextval('_syncline_rejects_id'),
    source VARCHAR NOT NULL, stream VARCHAR NOT NULL, partition VARCHAR NOT NULL,
    run_id VARCHAR, reason VARCHAR NOT NULL, record VARCHAR NOT NULL,
    rejected_at VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS _syncline_runs (
    id VARCHAR PRIMARY KEY, started_at VARCHAR NOT NULL, ended_at VARCHAR,
    status VARCHAR NOT NULL, records BIGINT NOT NULL DEFAULT 0,
    requests BIGINT NOT NULL DEFAULT 0, errors VARCHAR
);
CREATE TABLE IF NOT EXISTS _syncline_quota (
    scope VARCHAR NOT NULL, "window" VARCHAR NOT NULL, bucket BIGINT NOT NULL,
    used BIGINT NOT NULL, PRIMARY KEY (scope, "window", bucket)
);
CREATE TABLE IF NOT EXISTS _syncline_quota_server (
    scope VARCHAR NOT NULL, name VARCHAR NOT NULL, lim BIGINT, remaining BIGINT NOT NULL,
    reset_at DOUBLE, period DOUBLE, observed_at DOUBLE NOT NULL, PRIMARY KEY (scope, name)
);
CREATE SEQUENCE IF NOT EXISTS _syncline_changes_id;
CREATE TABLE IF NOT EXISTS _syncline_changes (
    id BIGINT PRIMARY KEY DEFAULT nextval('_syncline_changes_id'),
    run_id VARCHAR, source VARCHAR NOT NULL, stream VARCHAR NOT NULL,
    partition VARCHAR NOT NULL, kind VARCHAR NOT NULL, keys JSON NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
)
"""

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """The form DuckDB compares identifiers in: ASCII letters case-insensitively, nothing else
    (``Id`` and ``id`` are one column, ``É`` and ``é`` two)."""
    return name.translate(_ASCII_LOWER)


def prepare(con: duckdb.DuckDBPyConnection, where: str) -> None:
    """Inside a transaction: create the bookkeeping tables; refuse a newer syncline's file."""
    version = _schema_version(con)
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} was written by a newer syncline (schema {version}; this one knows "
            f"{SCHEMA_VERSION}); upgrade syncline"
        )
    if version == SCHEMA_VERSION:
        return
    for statement in (_BOOKKEEPING + ";" + outbox_schema(index=False)).split(";"):
        if statement.strip():
            con.execute(statement)
    con.execute(
        "INSERT OR REPLACE INTO _syncline_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
    )


def _schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    if stored_table_name(con, "_syncline_meta") is None:
        return None
    row = con.execute("SELECT value FROM _syncline_meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def stored_table_name(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """The spelling of the table DuckDB would use for ``name`` (``None``: there is none)."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = current_schema() "
        "AND NOT temporary"
    ).fetchall()
    folded = fold(name)
    return next((row[0] for row in rows if fold(row[0]) == folded), None)


def check_names(table: TableSpec) -> None:
    """Refuse a table whose columns would collide in DuckDB (which folds ASCII case), naming
    both; a NUL or an unknown column type is refused too."""
    q(table.name)  # refuses NUL
    if not table.identity_columns:
        raise StoreError(f"table {table.name!r}: no key columns")
    for column in table.columns:
        if column.type not in COLUMN_TYPES:
            raise StoreError(
                f"table {table.name!r}, column {column.name!r}: unknown type {column.type!r} "
                f"(one of {', '.join(COLUMN_TYPES)})"
            )
    named = [
        *((name, "key") for name in table.identity_columns),
        *((name, "meta") for name in META_COLUMNS),
        *((column.name, "typed") for column in table.columns),
    ]
    seen: dict[str, tuple[str, str]] = {}
    for name, kind in named:
        q(name)  # refuses NUL
        before = seen.setdefault(fold(name), (name, kind))
        if before != (name, kind) or named.count((name, kind)) > 1:
            raise StoreError(
                f"table {table.name!r}: column names collide: the {kind} column {name!r} and "
                f"the {before[1]} column {before[0]!r} would be one column in DuckDB (its "
                "names ignore case); rename one"
            )
