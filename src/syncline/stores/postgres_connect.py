"""From a ``postgresql://`` store URL to a connection, and from a failure to a clear error.

The URL is libpq's own (``postgresql://user:pw@host:port/db?sslmode=require``,
``postgres://`` too) plus one parameter of ours, ``schema`` (default
``syncline``), which is removed before libpq sees it. Errors name the server
as ``host:port/db`` and never the password: it is masked wherever it could
appear, because these messages end up in logs and support tickets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from syncline.errors import ConfigError, StoreError
from syncline.redact import Redactor

__all__ = ["DEFAULT_SCHEMA", "Target", "connect", "parse_url"]

DEFAULT_SCHEMA = "syncline"
CONNECT_TIMEOUT = 10
"""Seconds to wait for the server to answer a new connection."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the store lives: libpq's URL (without ``schema``) and the schema to use."""

    conninfo: str = field(repr=False)
    """libpq's connection string (it holds the password: never print it)."""
    schema: str
    where: str
    """``host:port/database``, for messages (no credentials)."""
    redactor: Redactor

    def error(self, doing: str, exc: BaseException) -> StoreError:
        """``doing`` failed: one line naming the server, the reason, no password."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return StoreError(self.redactor.text(f"{doing} at {self.where} failed: {reason}"))


def parse_url(url: str) -> Target:
    """Split the store URL into libpq's part and ours (``ConfigError`` when it is not one)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"not a PostgreSQL URL: {parts.scheme}://…", key="store")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for name, value in query if name == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not schema:
        raise ConfigError("?schema= is empty; leave it out for the default 'syncline'", key="store")
    rest = urlencode([(name, value) for name, value in query if name != "schema"])
    conninfo = urlunsplit(parts._replace(query=rest))
    try:
        fields = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        masked = Redactor([parts.password] if parts.password else []).text(str(exc))
        raise ConfigError(f"invalid PostgreSQL URL: {masked}", key="store") from None
    password = fields.get("password")
    host = str(fields.get("host") or fields.get("hostaddr") or os.environ.get("PGHOST") or "")
    port = str(fields.get("port") or os.environ.get("PGPORT") or "5432")
    dbname = str(fields.get("dbname") or os.environ.get("PGDATABASE") or fields.get("user") or "")
    where = f"{host or 'localhost (local socket)'}:{port}/{dbname}"
    # A bounded wait unless the URL sets its own; UTF-8 on the wire (the store holds JSON).
    options: dict[str, str | int] = {"client_encoding": "UTF8"}
    if "connect_timeout" not in fields:
        options["connect_timeout"] = CONNECT_TIMEOUT
    conninfo = make_conninfo(conninfo, **options)
    return Target(conninfo, schema, where, Redactor([str(password)] if password else []))


def connect(target: Target) -> psycopg.Connection[tuple[object, ...]]:
    """A new connection, or a :class:`StoreError` saying which server did not answer and why."""
    try:
        return psycopg.connect(target.conninfo)
    except psycopg.Error as exc:
        raise target.error("connecting to PostgreSQL", exc) from None
