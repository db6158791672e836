"""Server sync tokens, against the sandbox's Inxmail emulation over real sockets.

The token (a whole URL, ``inx:upcoming-modifications``) is found on the last
page; the next run requests it and gets only what changed, tombstones
included. An expired token (410) means a full resync that keeps the table
readable and deletes only what the complete pass did not see.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
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


def config_for(api: SandboxProcess, db: Path, stream: dict[str, Any] | None = None) -> Config:
    return make_config(
        api.seed_url("inxmail"),
        db,
        {"mailings": stream or inxmail_stream()},
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


def test_an_api_error_code_can_mean_token_expired(inxmail: SandboxProcess, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    stream = inxmail_stream()
    # Recognise the refusal by the problem document's body, not by its status.
    stream["incremental"] |= {"expired_statuses": [], "expired_when": "title == 'Gone'"}
    config = config_for(inxmail, db, stream)
    syncline.sync(config)
    inxmail.seed_mutate("inxmail", SPACE, delete=1)
    inxmail.seed_expire_tokens()
    resync = syncline.sync(config)
    assert resync.ok, [r.error for r in resync.streams]
    assert resync.changed()["deleted"] == 1
    assert stored(db) == remote(inxmail)


def test_a_refusal_that_is_not_an_expiry_fails_the_job(
    inxmail: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    stream = inxmail_stream()
    stream["incremental"] |= {"expired_statuses": [], "expired_when": "title == 'Other'"}
    config = config_for(inxmail, db, stream)
    syncline.sync(config)
    inxmail.seed_expire_tokens()
    failed = syncline.sync(config)
    assert not failed.ok
    assert "410" in str(failed.streams[0].error)
    assert len(stored(db)) == 240  # nothing lost, nothing resynced behind the user's back


def test_a_kill_mid_pass_then_rerun_gives_the_same_store_and_feed(
    inxmail: SandboxProcess, tmp_path: Path
) -> None:
    """SIGKILL inside an incremental pass (a page's rows written, not committed), rerun: the
    same rows and the same change feed as a pass that was never interrupted."""
    inxmail.seed_config("inxmail", default_page_size=10)  # the token's link names no size
    stream = inxmail_stream(page_size=10)
    config = {
        "store": "sqlite:///store.db",
        "sources": {"inx": {
            "base_url": inxmail.seed_url("inxmail"), "streams": {"mailings": stream},
            "auth": {"type": "basic", "username": SPACE, "password": "inx-secret"},
        }},
    }  # fmt: skip
    command = [sys.executable, "-m", "syncline", "sync"]
    homes = {name: tmp_path / name for name in ("killed", "clean")}
    for home in homes.values():
        home.mkdir()
        (home / "syncline.yaml").write_text(json.dumps(config))
        first = subprocess.run(command, cwd=home, capture_output=True, timeout=60, check=False)
        assert first.returncode == 0, first.stderr
    inxmail.seed_mutate("inxmail", SPACE, update=25, insert=20, delete=10)  # ~6 pages of changes

    env = {**os.environ, "SYNCLINE_FAILPOINT": "store.rows_written:3"}
    killed = subprocess.run(
        command, cwd=homes["killed"], env=env, capture_output=True, timeout=60, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    outcome = {}
    for name, home in homes.items():
        done = subprocess.run(command, cwd=home, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(home / "store.db") as conn:
            feed = conn.execute(
                "SELECT key.value, kind FROM _syncline_changes, json_each(keys) AS key"
            ).fetchall()
            rows = conn.execute("SELECT id, _data, _deleted_at IS NULL FROM mailings").fetchall()
        outcome[name] = (sorted(feed), sorted(rows))
        assert stored(home / "store.db") == remote(inxmail)
    assert outcome["killed"] == outcome["clean"]
    kinds_seen = collections.Counter(kind for _, kind in outcome["clean"][0])
    assert kinds_seen == {"insert": 240 + 20, "update": 25, "delete": 10}


def test_a_record_changed_mid_pass_ends_with_its_newest_version(
    inxmail: SandboxProcess, tmp_path: Path
) -> None:
    """Inxmail pages over a live view: a record changed during the pass is served again
    on a later page with a newer modificationDate; the newer copy is the one kept."""
    db = tmp_path / "store.db"
    config = config_for(inxmail, db)
    paused = syncline.sync(config, max_calls=2)  # pages 1-2 of 5, then a pause
    assert paused.streams[0].status == "paused"
    early = sorted(stored(db))[:3]  # already stored by this pass
    before = {key: stored(db)[key] for key in early}
    inxmail.seed_mutate("inxmail", SPACE, update_ids=early)

    rest = syncline.sync(config)
    assert rest.ok, [r.error for r in rest.streams]
    now = stored(db)
    assert now == remote(inxmail)
    assert all(now[key] > before[key] for key in early)  # the newer copy won
    entries = [e for e in syncline.changes(config) if e["key"] in early]
    assert sorted((e["key"], e["kind"]) for e in entries) == sorted(
        [(key, "insert") for key in early] + [(key, "update") for key in early]
    )
    after = syncline.sync(config)  # the token from the end of that pass: nothing new
    assert after.changed() == {"inserted": 0, "updated": 0, "deleted": 0}
