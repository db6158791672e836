"""Server sync tokens, against the sandbox's Inxmail emulation over real sockets.

The token (a whole URL, ``inx:upcoming-modifications``) is found on the last
page; the next run requests it and gets only what changed, tombstones
included. An expired token (410) means a full resync that keeps the table
readable and deletes only what the complete pass did not see.
"""

from __future__ import annotations

import collections
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import syncline
from syncline import Config
from syncline.sandbox import SandboxProcess
from tests.conftest import make_config

PATH = "/integrations/inxmail-professional/mailing-synchronizations"
SPACE = "acme"


def inxmail_stream(page_size: int = 50) -> dict[str, Any]:
    return {
        "path": PATH,
        "params": {"syncModifications": "true", "pageSize": page_size},
        "records": '_embedded."inx:mailing-synchronizations"',
        "primary_key": "id",
        "updated_at": "modificationDate",
        "deleted": "deleted",
        "paginate": {"type": "next_link", "next_url_path": "_links.next.href"},
        "incremental": {
            "type": "sync_token",
            "link_path": '_links."inx:upcoming-modifications".href',
        },
    }


@pytest.fixture
def inxmail(sandbox: SandboxProcess) -> SandboxProcess:
    sandbox.seed_reset("inxmail")
    return sandbox


def config_for(api: SandboxProcess, db: Path) -> Config:
    return make_config(
        api.seed_url("inxmail"),
        db,
        {"mailings": inxmail_stream()},
        auth={"type": "basic", "username": SPACE, "password": "inx-secret"},
    )


def stored(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, json_extract(_data, '$.modificationDate') FROM mailings "
            "WHERE _deleted_at IS NULL"
        )
        return dict(rows.fetchall())


def remote(api: SandboxProcess) -> dict[str, str]:
    return {r["id"]: r["modificationDate"] for r in api.seed_records("inxmail", SPACE)}


def requests(api: SandboxProcess) -> int:
    return int(api.seed_stats("inxmail")["tenants"][SPACE]["requests"])


def kinds(entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = collections.defaultdict(list)
    for entry in entries:
        found[entry["kind"]].append(entry["key"])
    return {kind: sorted(keys) for kind, keys in found.items()}


def test_the_token_from_the_last_page_fetches_only_the_changes(
    inxmail: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = config_for(inxmail, db)
    first = syncline.sync(config)
    assert first.ok, [r.error for r in first.streams]
    assert stored(db) == remote(inxmail)
    full_cost = requests(inxmail)
    assert full_cost == 240 // 50 + 1  # 5 pages of 50

    changed = inxmail.seed_mutate("inxmail", SPACE, update=3, insert=2, delete=2)
    second = syncline.sync(config)
    assert second.ok, [r.error for r in second.streams]
    assert requests(inxmail) - full_cost == 1  # one page of changes, nothing else
    assert stored(db) == remote(inxmail)
    assert kinds(list(syncline.changes(config, run_id=second.run_id))) == {
        "insert": sorted(changed["inserted"]),
        "update": sorted(changed["updated"]),
        "delete": sorted(changed["deleted"]),
    }

    third = syncline.sync(config)  # nothing changed: one request, no change recorded
    assert requests(inxmail) - full_cost == 2
    assert third.changed() == {"inserted": 0, "updated": 0, "deleted": 0}


def test_an_expired_token_resyncs_in_full_and_deletes_what_is_gone(
    inxmail: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = config_for(inxmail, db)
    syncline.sync(config)
    changed = inxmail.seed_mutate("inxmail", SPACE, update=2, delete=3)
    inxmail.seed_expire_tokens()
    partial = syncline.sync(config, max_calls=3)  # the 410, then 2 pages of the resync
    assert partial.streams[0].status == "paused"
    assert len(stored(db)) == 240  # the table stays whole (and readable) mid-resync
    resync = syncline.sync(config)
    assert resync.ok, [r.error for r in resync.streams]
    assert stored(db) == remote(inxmail)
    assert partial.changed()["deleted"] + resync.changed()["deleted"] == 3
    assert resync.changed()["deleted"] == 3  # only once the full pass is complete
    gone = [e["key"] for e in syncline.changes(config, run_id=resync.run_id)
            if e["kind"] == "delete"]  # fmt: skip
    assert sorted(gone) == sorted(changed["deleted"])

    inxmail.seed_mutate("inxmail", SPACE, update=1)
    before = requests(inxmail)
    after = syncline.sync(config)  # a fresh token came with the resync
    assert after.changed()["updated"] == 1
    assert requests(inxmail) - before == 1


def test_a_token_sent_back_as_a_parameter_couchdb_style(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    stream = {
        "path": "/changes",
        "records": "results",
        "primary_key": "id",
        "updated_at": "updated_at",
        "deleted": "deleted",
        "paginate": {"type": "cursor", "cursor_path": "last_seq", "cursor_param": "since",
                     "size_param": "limit", "size": 500},
        "incremental": {"type": "sync_token", "token_path": "last_seq", "param": "since"},
    }  # fmt: skip
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": stream})
    first = syncline.sync(config)
    assert first.changed()["inserted"] == 2345
    sandbox.reset_stats()
    changed = sandbox.mutate(update=4, delete=2)
    second = syncline.sync(config)
    assert second.changed() == {"inserted": 0, "updated": 4, "deleted": 2}
    assert sandbox.stats()["total"] <= 2  # the changes, and the empty page that ends them
    with sqlite3.connect(db) as conn:
        live = {row[0] for row in conn.execute("SELECT id FROM items WHERE _deleted_at IS NULL")}
    assert live == {r["id"] for r in sandbox.records()}
    assert not live & set(changed["deleted"])
