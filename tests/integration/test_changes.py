"""The change feed and deletions, against the sandbox over real sockets.

A full-poll stream (no change filter at all, like Fatture in Cloud) must still
tell inserts, updates and deletes apart; a feed with tombstones (CouchDB
``_changes``) must apply them; and the feed must be exact across crashes.
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

import syncline
from syncline.sandbox import SandboxProcess
from tests.conftest import RECORDS, make_config

SIZE = 200


def full_poll(detect_deletes: bool = True) -> dict[str, Any]:
    return {
        "path": "/page/items",
        "records": "data",
        "primary_key": "id",
        "updated_at": "updated_at",
        "paginate": {"type": "page_number", "size_param": "per_page", "size": SIZE,
                     "last_page": "last_page"},
        "incremental": {"type": "none", "detect_deletes": detect_deletes},
    }  # fmt: skip


def feed(on_delete: str = "soft") -> dict[str, Any]:
    return {
        "path": "/changes",
        "records": "results",
        "primary_key": "id",
        "updated_at": "updated_at",
        "deleted": "deleted",
        "on_delete": on_delete,
        "paginate": {"type": "cursor", "cursor_path": "last_seq", "cursor_param": "since",
                     "size_param": "limit", "size": SIZE},
        "incremental": {"type": "cursor"},
    }  # fmt: skip


def kinds(entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = collections.defaultdict(list)
    for entry in entries:
        found[entry["kind"]].append(entry["key"])
    return {kind: sorted(keys) for kind, keys in found.items()}


def live_ids(db: Path, table: str = "items") -> set[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f'SELECT id FROM "{table}" WHERE _deleted_at IS NULL')
        return {row[0] for row in rows}


def test_a_full_poll_tells_inserts_updates_and_deletes_apart(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": full_poll()})
    first = syncline.sync(config)
    assert first.changed() == {"inserted": RECORDS, "updated": 0, "deleted": 0}

    again = syncline.sync(config)  # every record read again, none changed
    assert again.records == RECORDS
    assert again.changed() == {"inserted": 0, "updated": 0, "deleted": 0}

    changed = sandbox.mutate(update=5, insert=3, delete=4)
    third = syncline.sync(config)
    assert third.changed() == {"inserted": 3, "updated": 5, "deleted": 4}
    entries = list(syncline.changes(config, run_id=third.run_id))
    assert kinds(entries) == {
        "insert": changed["inserted"],
        "update": changed["updated"],
        "delete": changed["deleted"],
    }
    by_key = {e["key"]: e for e in entries}
    for key in changed["updated"]:
        assert by_key[key]["record"]["id"] == key
        assert by_key[key]["record"]["version"] == 2
    for key in changed["deleted"]:
        assert by_key[key]["record"] is None
    assert live_ids(db) == {r["id"] for r in sandbox.records()}
    with sqlite3.connect(db) as conn:  # soft delete: the row stays, marked
        marked = conn.execute("SELECT count(*) FROM items WHERE _deleted_at IS NOT NULL")
        assert marked.fetchone()[0] == 4


def test_an_incomplete_full_pass_never_deletes(sandbox: SandboxProcess, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": full_poll()})
    syncline.sync(config)
    changed = sandbox.mutate(delete=6)
    partial = syncline.sync(config, max_calls=3)  # paused after 3 of 12 pages
    assert partial.streams[0].status == "paused"
    assert partial.changed()["deleted"] == 0
    assert len(live_ids(db)) == RECORDS  # nothing swept: the pass did not see everything
    done = syncline.sync(config)  # the same pass, resumed and completed
    assert done.changed()["deleted"] == 6
    deleted = [e["key"] for e in syncline.changes(config) if e["kind"] == "delete"]
    assert sorted(deleted) == changed["deleted"]


def test_tombstones_in_a_feed_delete_rows_hard(sandbox: SandboxProcess, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": feed(on_delete="hard")})
    syncline.sync(config)
    changed = sandbox.mutate(update=2, delete=3)
    run = syncline.sync(config)
    assert run.changed() == {"inserted": 0, "updated": 2, "deleted": 3}
    with sqlite3.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM items")}
    assert ids == {r["id"] for r in sandbox.records()}
    assert not ids & set(changed["deleted"])


def test_changes_cli_and_sync_changes_file(sandbox: SandboxProcess, tmp_path: Path) -> None:
    config = {
        "store": "sqlite:///store.db",
        "sources": {"sb": {"base_url": sandbox.base_url, "streams": {"items": full_poll()}}},
    }
    (tmp_path / "syncline.yaml").write_text(json.dumps(config))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "syncline", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    first = cli("sync", "--json")
    first_run = json.loads(first.stdout)["run_id"]
    changed = sandbox.mutate(update=1, insert=2, delete=1)
    second = cli("sync", "--changes", "out.jsonl")
    assert second.returncode == 0, second.stderr
    assert "changes: 2 inserted, 1 updated, 1 deleted" in second.stdout
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert kinds(lines) == {
        "insert": changed["inserted"],
        "update": changed["updated"],
        "delete": changed["deleted"],
    }
    assert all(e["record"] is not None for e in lines if e["kind"] != "delete")

    listed = cli("changes", "--since", first_run, "--no-records")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["key"] for e in entries] == [e["key"] for e in lines]
    assert all("record" not in e for e in entries)
    everything = cli("changes", "--format", "table")
    assert "insert" in everything.stdout
    bad = cli("changes", "--since", "not-a-run")
    assert bad.returncode == 2
    assert "neither an ISO time nor a run id" in bad.stderr


def test_a_kill_mid_pass_records_every_change_exactly_once(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    """SIGKILL between a page's rows and its commit, rerun: the same feed as without the kill."""
    config = {
        "store": "sqlite:///store.db",
        "sources": {"sb": {"base_url": sandbox.base_url, "streams": {"items": full_poll()}}},
    }
    runs = {}
    for name, failpoint in (("killed", "store.rows_written:3"), ("clean", "")):
        home = tmp_path / name
        home.mkdir()
        (home / "syncline.yaml").write_text(json.dumps(config))
        env = {**os.environ, "SYNCLINE_FAILPOINT": failpoint}
        command = [sys.executable, "-m", "syncline", "sync"]
        done = subprocess.run(
            command, cwd=home, env=env, capture_output=True, timeout=60, check=False
        )
        if failpoint:
            assert done.returncode == -signal.SIGKILL
            done = subprocess.run(command, cwd=home, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(home / "store.db") as conn:
            entries = "SELECT key.value, kind FROM _syncline_changes, json_each(keys) AS key"
            runs[name] = sorted(conn.execute(entries).fetchall())
    assert runs["killed"] == runs["clean"]
    assert len(runs["clean"]) == RECORDS
