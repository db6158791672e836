"""The PostgreSQL store's tables: one schema per config, created and versioned in one transaction.

Column types, and why:

- partition and key columns are ``jsonb``: an API's keys are numbers or
  strings, and ``1`` and ``"1"`` are two records (as in SQLite, whose columns
  keep each value's type). Query them as JSON scalars: ``WHERE id = '42'``.
- ``_data`` is ``jsonb``: ``_data->>'name'``, GIN-indexable.
- ``_updated_at`` is ``jsonb`` too: a normalised modification value is a
  number (epoch, version) or text (fixed-width UTC ISO-8601), and newest-wins
  must compare both exactly as SQLite does: numbers numerically, text byte by
  byte (``COLLATE "C"``, whatever the database's collation), every number
  before every text. See :func:`syncline.stores.postgres_changes.not_older`.
- ``_synced_at``, ``_deleted_at`` and the feed's ``changed_at`` are
  ``timestamptz``: our own clock, queried by users (``> now() - interval``).
- checkpoints, runs and rejects keep SQLite's text: a checkpoint must come
  back exactly as it was written.
- the push outbox is SQLite's own DDL and SQL (:mod:`.outbox_sql`), in this
  schema: plain text and integers, which PostgreSQL spells the same.

Versions: 2 added the outbox. Every statement is ``IF NOT EXISTS``, so a
schema of any older version is brought up to date by running them all again.

Two processes opening a new schema at once are serialised by an advisory
lock, so ``CREATE … IF NOT EXISTS`` never races into a duplicate-key error.
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors

from syncline.errors import StoreError
from syncline.stores.base import TableSpec
from syncline.stores.outbox_sql import outbox_schema
from syncline.stores.postgres_connect import Target
from syncline.stores.postgres_names import pg_name, quote_identifier

__all__ = ["META_COLUMNS", "SCHEMA_VERSION", "prepare", "table_ddl", "xact_lock"]

SCHEMA_VERSION = 2
META_COLUMNS = ("_data", "_updated_at", "_synced_at", "_hash", "_deleted_at")

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS {s}._syncline_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}._syncline_state (
    source text NOT NULL, stream text NOT NULL, partition text NOT NULL,
    watermark text, cursor text, position text, pass_filter text, pass_max text,
    run_id text, status text, error text,
    records bigint NOT NULL DEFAULT 0, pages bigint NOT NULL DEFAULT 0,
    requests bigint NOT NULL DEFAULT 0, updated_at text,
    pass_restarts integer NOT NULL DEFAULT 0, not_before text,
    pass_started text, pass_drift boolean NOT NULL DEFAULT false,
    pass_requests bigint NOT NULL DEFAULT 0, last_pass_requests bigint,
    PRIMARY KEY (source, stream, partition)
);
CREATE TABLE IF NOT EXISTS {s}._syncline_leases (
    source text NOT NULL, stream text NOT NULL, partition text NOT NULL,
    holder text NOT NULL, token bigint NOT NULL, expires_at double precision NOT NULL,
    PRIMARY KEY (source, stream, partition)
);
CREATE TABLE IF NOT EXISTS {s}._syncline_rejects (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL, stream text NOT NULL, partition text NOT NULL,
    run_id text, reason text NOT NULL, record text NOT NULL, rejected_at text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}._syncline_runs (
    id text PRIMARY KEY, started_at text NOT NULL, ended_at text, status text NOT NULL,
    records bigint NOT NULL DEFAULT 0, requests bigint NOT NULL DEFAULT 0, errors text
);
CREATE TABLE IF NOT EXISTS {s}._syncline_quota (
    scope text NOT NULL, "window" text NOT NULL, bucket bigint NOT NULL,
    used bigint NOT NULL, PRIMARY KEY (scope, "window", bucket)
);
CREATE TABLE IF NOT EXISTS {s}._syncline_quota_server (
    scope text NOT NULL, name text NOT NULL, lim bigint, remaining bigint NOT NULL,
    reset_at double precision, period double precision, observed_at double precision NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE IF NOT EXISTS {s}._syncline_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text, source text NOT NULL, stream text NOT NULL, partition text NOT NULL,
    kind text NOT NULL, keys jsonb NOT NULL, changed_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS _syncline_changes_time ON {s}._syncline_changes (changed_at);
CREATE INDEX IF NOT EXISTS _syncline_changes_run ON {s}._syncline_changes (run_id)
"""


def xact_lock(cur: psycopg.Cursor[tuple[object, ...]], *key: str) -> None:
    """Block until this transaction holds the advisory lock named by ``key`` (released at its
    end). Keys are hashed to 64 bits; a collision only serialises two unrelated writers."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("\x1f".join(key),))


def prepare(conn: psycopg.Connection[tuple[object, ...]], target: Target) -> None:
    """Create the schema and bookkeeping tables if needed; refuse a newer syncline's schema."""
    schema = pg_name(target.schema)
    s = quote_identifier(target.schema)
    with conn.transaction(), conn.cursor() as cur:
        xact_lock(cur, "syncline-schema", schema)
        cur.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,))
        if cur.fetchone() is None:
            _create_schema(cur, target, s)
        version = _schema_version(cur, schema, s)
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"schema {schema!r} at {target.where} was written by a newer syncline "
                f"(schema {version}; this one knows {SCHEMA_VERSION}); upgrade syncline"
            )
        if version == SCHEMA_VERSION:
            return  # all there (written in one transaction): no DDL, so no CREATE right needed
        try:
            for statement in _bookkeeping(s):
                cur.execute(statement, ())
        except pg_errors.InsufficientPrivilege as exc:
            raise _denied(target, schema, exc, "tables in schema") from None
        cur.execute(
            f"INSERT INTO {s}._syncline_meta VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )


def _bookkeeping(s: str) -> list[str]:
    """Every statement that creates the store's own tables in schema ``s`` (quoted)."""
    ddl = _BOOKKEEPING.format(s=s) + ";" + outbox_schema(f"{s}.")
    return [statement for statement in ddl.split(";") if statement.strip()]


def _create_schema(cur: psycopg.Cursor[tuple[object, ...]], target: Target, s: str) -> None:
    try:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {s}", ())
    except pg_errors.InsufficientPrivilege as exc:
        raise _denied(target, pg_name(target.schema), exc, "schema") from None


def _denied(target: Target, schema: str, exc: Exception, what: str) -> StoreError:
    reason = " ".join(str(exc).split())
    return StoreError(
        target.redactor.text(
            f"cannot create the store's {what} {schema!r} at {target.where}: {reason}. "
            f'Ask an administrator to run CREATE SCHEMA "{schema}" AUTHORIZATION <your role>, '
            "or name a schema you own with ?schema= in the store URL"
        )
    )


def _schema_version(cur: psycopg.Cursor[tuple[object, ...]], schema: str, s: str) -> int | None:
    cur.execute(
        "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = '_syncline_meta'",
        (schema,),
    )
    if cur.fetchone() is None:
        return None
    cur.execute(f"SELECT value FROM {s}._syncline_meta WHERE key = 'schema_version'", ())
    row = cur.fetchone()
    return None if row is None else int(str(row[0]))


def table_ddl(s: str, table: TableSpec) -> str:
    """``CREATE TABLE`` for one stream (``s``: the quoted schema)."""
    mapped = [pg_name(c) for c in (*table.identity_columns, *(c.name for c in table.columns))]
    clash = set(META_COLUMNS) & set(mapped)
    if clash or len(set(mapped)) != len(mapped) or not table.identity_columns:
        columns = [*table.identity_columns, *META_COLUMNS, *(c.name for c in table.columns)]
        raise StoreError(f"table {table.name!r}: column names collide: {columns}")
    q = quote_identifier
    identity = ", ".join(q(c) for c in table.identity_columns)
    typed = ", ".join(f"{q(c)} jsonb NOT NULL" for c in table.identity_columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {s}.{q(table.name)} ({typed}, _data jsonb NOT NULL, "
        "_updated_at jsonb, _synced_at timestamptz NOT NULL, _hash text, "
        f"_deleted_at timestamptz, PRIMARY KEY ({identity}))"
    )
