"""A watermark inside a filter expression: Exact Online's sync API, ``Timestamp gt N``.

``Timestamp`` is a rowversion integer; the newest one committed is sent back
inside an OData ``$filter`` (``template``), so the next run reads only what
changed, deletions from ``sync/Deleted`` included. Real sockets, sandbox
emulation with its per-division limits.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import syncline
from syncline import Config
from syncline.sandbox import SandboxProcess
from tests.conftest import make_config

DIVISIONS = ["3001", "3002"]


def sync_stream(path: str) -> dict[str, Any]:
    return {
        "path": f"/api/v1/{{division}}/{path}",
        "records": "d.results",
        "primary_key": "ID",
        "updated_at": "Timestamp",
        "paginate": {"type": "next_link", "next_url_path": "d.__next"},
        "incremental": {
            "type": "watermark",
            "param": "$filter",
            "template": "Timestamp gt {value}",
            "format": "raw",
            "initial": 1,
        },
    }


@pytest.fixture
def exact(sandbox: SandboxProcess) -> SandboxProcess:
    sandbox.seed_reset("exact")
    return sandbox


def config_for(api: SandboxProcess, db: Path) -> Config:
    return make_config(
        api.seed_url("exact"),
        db,
        {
            "accounts": sync_stream("sync/CRM/Accounts"),
            "deleted_accounts": sync_stream("sync/Deleted"),
        },
        auth={"type": "bearer", "token": "exact-token"},
        partitions={"division": [int(d) for d in DIVISIONS]},
        limits=[{"calls": 60, "per": "minute"}],
    )


def stored(db: Path, table: str = "accounts") -> dict[tuple[int, str], str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT division, ID, json_extract(_data, '$.Name') FROM {table}")
        return {(division, key): name for division, key, name in rows}


def remote(api: SandboxProcess) -> dict[tuple[int, str], str]:
    return {
        (int(division), record["ID"]): record["Name"]
        for division in DIVISIONS
        for record in api.seed_records("exact", division)
    }


def requests(api: SandboxProcess) -> int:
    tenants = api.seed_stats("exact")["tenants"]
    return sum(int(tenants[d]["requests"]) for d in DIVISIONS)


def test_the_newest_timestamp_goes_back_inside_the_filter(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = config_for(exact, db)
    first = syncline.sync(config)
    assert first.ok, [r.error for r in first.streams]
    assert stored(db) == remote(exact)
    full = requests(exact)
    assert full == 4  # 600 accounts fit one sync page per division; plus the deletion log

    changed = exact.seed_mutate("exact", "3001", update=3, insert=2, delete=1)
    second = syncline.sync(config)
    assert second.ok, [r.error for r in second.streams]
    with sqlite3.connect(db) as conn:
        logged = "SELECT json_extract(_data, '$.EntityKey') FROM deleted_accounts"
        gone = {key for (key,) in conn.execute(logged)}
    assert gone == set(changed["deleted"])
    assert {k: v for k, v in stored(db).items() if k[1] not in gone} == remote(exact)
    assert requests(exact) - full == 4  # one page of changes per stream and division
    accounts = next(r for r in second.streams if r.stream == "accounts" and "3001" in r.partition)
    assert (accounts.inserted, accounts.updated) == (2, 3)
    untouched = next(r for r in second.streams if r.stream == "accounts" and "3002" in r.partition)
    assert untouched.records == 0
    assert sum(t["rate_limited"] for t in exact.seed_stats("exact")["tenants"].values()) == 0


def test_a_template_must_hold_the_value_once(tmp_path: Path) -> None:
    stream = sync_stream("sync/CRM/Accounts")
    stream["incremental"]["template"] = "Timestamp gt 5"
    with pytest.raises(syncline.ConfigError, match="template"):
        make_config("http://127.0.0.1:9", tmp_path / "s.db", {"accounts": stream})
