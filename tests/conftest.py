"""Shared fixtures: one real sandbox API process for the session, real SQLite files, and one
real PostgreSQL server for the session (a schema per test)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncline import Config, config_from_dict
from syncline.sandbox import SandboxProcess
from tests.pg_server import PostgresServer

RECORDS = 2345


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxProcess]:
    with SandboxProcess(records=RECORDS, seed=7) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxProcess) -> SandboxProcess:
    """The shared sandbox, reset to its seeded 2,345 records and zero request counts."""
    sandbox_server.admin_reset(records=RECORDS, seed=7)
    return sandbox_server


def make_config(base_url: str, db: Path, streams: dict[str, Any], **source: Any) -> Config:
    raw = {
        "store": f"sqlite:///{db}",
        "sources": {"sb": {"base_url": base_url, "streams": streams, **source}},
    }
    return config_from_dict(raw, base_dir=db.parent)


def stored(db: Path, table: str = "items") -> dict[Any, dict[str, Any]]:
    """The rows of a stream table as {primary key: record}."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f'SELECT id, _data FROM "{table}"').fetchall()
    return {key: json.loads(data) for key, data in rows}


def state_rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM _syncline_state")]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server from the Debian binaries, for the session; fails (never skips)
    when they are missing, naming the package to install."""
    with PostgresServer() as server:
        yield server


class PostgresSchemas:
    """Fresh store URLs on the session's server, one schema each, dropped after the test."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.created: list[str] = []

    def url(self, *, user: str | None = None) -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        self.created.append(schema)
        if user is None:
            return self.server.url(schema)
        return self.server.url(schema, user=user)

    def drop(self) -> None:
        for schema in self.created:
            self.server.drop_schema(schema)


@pytest.fixture
def postgres_schemas(postgres_server: PostgresServer) -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas(postgres_server)
    yield schemas
    schemas.drop()


@pytest.fixture
def postgres_url(postgres_schemas: PostgresSchemas) -> str:
    """A store URL in a schema of its own on the session's PostgreSQL server."""
    return postgres_schemas.url()
