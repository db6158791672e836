"""Shared fixtures: one real sandbox API process for the session, real SQLite files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncline import Config, config_from_dict
from syncline.sandbox import SandboxProcess

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
