"""The contract end to end: real syncs from the sandbox into each store, kill -9 included,
and one export compared across every store: identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import syncline
from syncline import Config, config_from_dict
from syncline.sandbox import SandboxProcess
from syncline.stores import TableSpec
from tests.conftest import RECORDS
from tests.integration.streams import STYLES_BY_NAME, expected_records
from tests.stores.backends import BACKENDS, Backend, make_backend

SIZE = 200
ITEMS = TableSpec("items", (), ("id",))
FEED = TableSpec("feed", (), ("id",))


def full_poll() -> dict[str, Any]:
    return {
        "path": "/page/items", "records": "data", "primary_key": "id", "updated_at": "updated_at",
        "paginate": {"type": "page_number", "size_param": "per_page", "size": SIZE,
                     "last_page": "last_page"},
        "incremental": {"type": "none", "detect_deletes": True},
    }  # fmt: skip


def tombstone_feed() -> dict[str, Any]:
    return {
        "path": "/changes", "records": "results", "primary_key": "id", "updated_at": "updated_at",
        "deleted": "deleted", "table": "feed",
        "paginate": {"type": "cursor", "cursor_path": "last_seq", "cursor_param": "since",
                     "size_param": "limit", "size": SIZE},
        "incremental": {"type": "cursor"},
    }  # fmt: skip


def config(url: str, base_url: str, streams: dict[str, Any], base: Path) -> Config:
    raw = {"store": url, "sources": {"sb": {"base_url": base_url, "streams": streams}}}
    return config_from_dict(raw, base_dir=base)


def stored(backend: Backend, url: str, table: TableSpec = ITEMS) -> dict[Any, Any]:
    return {
        ident[-1]: data for ident, data, _, deleted in backend.raw_rows(url, table) if not deleted
    }


def test_full_then_incremental(backend: Backend, sandbox: SandboxProcess, tmp_path: Path) -> None:
    style = STYLES_BY_NAME["page_number"]  # watermark incremental
    url = backend.url()
    cfg = config(url, sandbox.base_url, {"items": style.stream(SIZE)}, tmp_path)
    first = syncline.sync(cfg)
    assert first.ok
    assert first.changed() == {"inserted": RECORDS, "updated": 0, "deleted": 0}
    assert stored(backend, url) == expected_records(style, sandbox.records())

    sandbox.mutate(update=7, insert=4)
    second = syncline.sync(cfg)
    assert second.changed() == {"inserted": 4, "updated": 7, "deleted": 0}
    assert second.requests < first.requests  # only what changed travelled
    assert stored(backend, url) == expected_records(style, sandbox.records())


def test_deletions_by_sweep_and_by_tombstone(
    backend: Backend, sandbox: SandboxProcess, tmp_path: Path
) -> None:
    url = backend.url()
    streams = {"items": full_poll(), "feed": tombstone_feed()}
    cfg = config(url, sandbox.base_url, streams, tmp_path)
    syncline.sync(cfg, concurrency=1)
    changed = sandbox.mutate(update=3, insert=2, delete=4)
    run = syncline.sync(cfg, concurrency=1)
    per_stream = {r.stream: (r.inserted, r.updated, r.deleted) for r in run.streams}
    assert per_stream == {"items": (2, 3, 4), "feed": (2, 3, 4)}
    live = {r["id"] for r in sandbox.records()}
    assert set(stored(backend, url)) == live
    assert set(stored(backend, url, FEED)) == live
    deleted = sorted(e["key"] for e in syncline.changes(cfg, run_id=run.run_id)
                     if e["kind"] == "delete" and e["stream"] == "items")  # fmt: skip
    assert deleted == changed["deleted"]


def _cli(home: Path, failpoint: str = "") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "SYNCLINE_FAILPOINT"}
    if failpoint:
        env["SYNCLINE_FAILPOINT"] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "syncline", "sync", "-c", str(home / "syncline.yaml")],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip


def test_kill_9_mid_sync_then_rerun_equals_an_uninterrupted_run(
    backend: Backend, sandbox: SandboxProcess, tmp_path: Path
) -> None:
    """SIGKILL between a page's rows and its commit, rerun: the same rows and feed."""
    exports = {}
    for name, failpoint in (("killed", "store.rows_written:3"), ("clean", "")):
        url = backend.url()
        home = tmp_path / name
        home.mkdir()
        source = {"base_url": sandbox.base_url, "streams": {"items": full_poll()}}
        (home / "syncline.yaml").write_text(json.dumps({"store": url, "sources": {"sb": source}}))
        if failpoint:
            killed = _cli(home, failpoint)
            assert killed.returncode == -signal.SIGKILL, killed.stderr
            assert 0 < len(stored(backend, url)) < RECORDS
        done = _cli(home)
        assert done.returncode == 0, done.stderr
        exports[name] = backend.export(url, [ITEMS])
    assert exports["killed"] == exports["clean"]
    assert len(exports["clean"]["feed"]) == RECORDS
    assert len(exports["clean"]["rows"]["items"]) == RECORDS


def test_every_store_ends_with_the_same_export(
    request: pytest.FixtureRequest, sandbox: SandboxProcess, tmp_path: Path
) -> None:
    """The same syncs into every store: rows, feed and checkpoints, normalised, identical."""
    exports = {}
    for name in BACKENDS:
        sandbox.admin_reset(records=RECORDS, seed=7)
        backend = make_backend(name, request, tmp_path / name)
        (tmp_path / name).mkdir()
        url = backend.url()
        streams = {"items": full_poll(), "feed": tombstone_feed()}
        cfg = config(url, sandbox.base_url, streams, tmp_path)
        for mutation in ({"update": 5, "insert": 3, "delete": 4}, {"update": 2, "delete": 1}, {}):
            assert syncline.sync(cfg, concurrency=1).ok
            sandbox.mutate(**mutation)
        exports[name] = backend.export(url, [ITEMS, FEED])
    reference = exports.pop("sqlite")
    assert len(reference["rows"]["items"]) == RECORDS + 3 + 0  # soft deletes stay, marked
    for name, export in exports.items():
        assert export == reference, name


def test_snapshot_mode_holds_exactly_the_last_complete_pass(
    backend: Backend, sandbox: SandboxProcess, tmp_path: Path
) -> None:
    """``mode: snapshot`` (without ``detect_deletes``): what a complete pass did not see goes."""
    url = backend.url()
    stream = {**full_poll(), "mode": "snapshot", "incremental": {"type": "none"}}
    cfg = config(url, sandbox.base_url, {"items": stream}, tmp_path)
    assert syncline.sync(cfg).ok
    sandbox.mutate(update=2, insert=1, delete=3)
    run = syncline.sync(cfg)
    assert run.changed() == {"inserted": 1, "updated": 2, "deleted": 3}
    assert stored(backend, url) == {r["id"]: r for r in sandbox.records()}
