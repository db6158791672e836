"""The JSON lines store against real files and real processes: what a consumer of the files
relies on (one strict-JSON line per real change, whole files, the committed size in
manifest.json) through torn writes, kill -9, compaction and snapshot swaps.

The contract every store keeps runs in ``test_contract*.py`` (``jsonl`` is one of the
backends); this module is what only a file store has to prove.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import syncline
from syncline import Config, config_from_dict
from syncline.errors import StoreError
from syncline.sandbox import SandboxProcess
from syncline.stores import Column, State, StateKey, Sweep, TableSpec
from syncline.stores.jsonl import JsonlStore

RECORDS = 400
SIZE = 50
KEY = StateKey("src", "items", "{}")
ITEMS = TableSpec("items", (), ("id",))


# --- helpers: configs, the CLI, and reading the files as a consumer would ---------------------


def poll(**extra: Any) -> dict[str, Any]:
    """A full-refresh stream over the sandbox's page-number listing (deletions swept)."""
    return {
        "path": "/page/items", "records": "data", "primary_key": "id", "updated_at": "updated_at",
        "paginate": {"type": "page_number", "size_param": "per_page", "size": SIZE,
                     "last_page": "last_page"},
        "incremental": {"type": "none", "detect_deletes": True},
        **extra,
    }  # fmt: skip


def write_config(home: Path, base_url: str, streams: dict[str, Any], **source: Any) -> Config:
    raw = {"store": "jsonl:///out", "sources": {"sb": {"base_url": base_url, "streams": streams,
                                                       **source}}}  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    (home / "syncline.yaml").write_text(json.dumps(raw))  # JSON is YAML
    return config_from_dict(raw, base_dir=home)


def run(home: Path, *args: str, failpoint: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNCLINE_FAILPOINT"}
    if failpoint:
        env["SYNCLINE_FAILPOINT"] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "syncline", *args, "-c", str(home / "syncline.yaml")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def manifest(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return document


def lines(out: Path, file: str = "items.jsonl") -> list[dict[str, Any]]:
    """The committed lines of ``file``, each parsed by a strict JSON parser (orjson)."""
    data = (out / file).read_bytes()[: manifest(out)["files"][file]["bytes"]]
    assert not data or data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def replay(out: Path, file: str = "items.jsonl") -> dict[Any, dict[str, Any]]:
    """The newest line of each key."""
    newest: dict[Any, dict[str, Any]] = {}
    for line in lines(out, file):
        newest[line["id"]] = line
    return newest


def live(out: Path, file: str = "items.jsonl") -> dict[Any, Any]:
    return {k: line["_data"] for k, line in replay(out, file).items() if not line["_deleted_at"]}


def records(sandbox: SandboxProcess) -> dict[Any, Any]:
    return {record["id"]: record for record in sandbox.records()}


def working_files(out: Path) -> list[str]:
    return sorted(name for name in os.listdir(out) if name.startswith(".") and name != ".")


@pytest.fixture
def small(sandbox: SandboxProcess) -> SandboxProcess:
    sandbox.admin_reset(records=RECORDS, seed=3)
    return sandbox


# --- lines for real changes only ----------------------------------------------------------


def test_one_line_per_real_change_none_for_an_unchanged_read(
    small: SandboxProcess, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, small.base_url, {"items": poll()})
    assert syncline.sync(cfg).ok
    out = tmp_path / "out"
    first = (out / "items.jsonl").read_bytes()
    found = lines(out)
    assert len(found) == RECORDS
    assert {line["id"]: line["_data"] for line in found} == records(small)
    assert all(list(line)[-1] == "_data" and line["_deleted_at"] is None for line in found)
    assert manifest(out)["files"]["items.jsonl"]["bytes"] == len(first)

    assert syncline.sync(cfg).changed() == {"inserted": 0, "updated": 0, "deleted": 0}
    assert (out / "items.jsonl").read_bytes() == first  # a full re-read appended nothing

    changed = small.mutate(update=3, delete=2)
    third = syncline.sync(cfg)
    assert third.changed() == {"inserted": 0, "updated": 3, "deleted": 2}
    tail = lines(out)[RECORDS:]
    assert sorted(line["id"] for line in tail if line["_deleted_at"]) == sorted(changed["deleted"])
    assert len(tail) == 5
    assert live(out) == records(small)
    feed = [e for e in lines(out, "_changes.jsonl") if e["run_id"] == third.run_id]
    assert sorted((e["kind"], k) for e in feed for k in e["keys"]) == sorted(
        [("update", k) for k in changed["updated"]] + [("delete", k) for k in changed["deleted"]]
    )

    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in ("items.jsonl", "_changes.jsonl", "_syncline.db", "manifest.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


def test_a_torn_last_line_is_truncated_with_a_warning_and_the_sync_goes_on(
    small: SandboxProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_config(tmp_path, small.base_url, {"items": poll()})
    assert syncline.sync(cfg).ok
    out = tmp_path / "out"
    torn = b'{"id":7,"_updated_at":"2024-01-01T00:00:00Z","_data":{"na'
    with (out / "items.jsonl").open("ab") as file:
        file.write(torn)
    with (out / "_changes.jsonl").open("ab") as file:
        file.write(b'{"id":99,"ki')
    small.mutate(update=2, insert=1)
    with caplog.at_level(logging.WARNING, logger="syncline"):
        assert syncline.sync(cfg).changed() == {"inserted": 1, "updated": 2, "deleted": 0}
    warned = [r.getMessage() for r in caplog.records if "items.jsonl" in r.getMessage()]
    assert any(f"removed {len(torn)} byte(s)" in message for message in warned), warned
    found = lines(out)  # every line parses: the torn one is gone, nothing doubled
    assert len(found) == RECORDS + 3
    assert live(out) == records(small)
    assert len(lines(out, "_changes.jsonl")) == RECORDS // SIZE + 2  # a page's entry per kind


# --- kill -9 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failpoint",
    [
        "store.rows_written:3",  # lines appended and synced, nothing committed
        "store.before_commit:3",  # everything written, the sidecar's COMMIT not run
        "store.after_commit:5",  # open, ensure_table, 3 pages committed; manifest.json behind
    ],
)
def test_kill_9_mid_sync_then_rerun_equals_an_uninterrupted_run(
    small: SandboxProcess, tmp_path: Path, failpoint: str
) -> None:
    results = {}
    for name, point in (("killed", failpoint), ("clean", "")):
        home = tmp_path / name
        write_config(home, small.base_url, {"items": poll()})
        out = home / "out"
        if point:
            killed = run(home, "sync", failpoint=point)
            assert killed.returncode == -signal.SIGKILL, killed.stderr
            published = manifest(out)["files"]["items.jsonl"]["bytes"]
            assert (out / "items.jsonl").stat().st_size > published  # bytes past the commit
            assert 0 < len(lines(out)) < RECORDS  # what a consumer reads meanwhile is whole
        done = run(home, "sync")
        assert done.returncode == 0, done.stderr
        feed = sorted((e["kind"], key) for e in lines(out, "_changes.jsonl") for key in e["keys"])
        results[name] = (lines(out), feed)
    (killed_lines, killed_feed), (clean_lines, clean_feed) = results["killed"], results["clean"]
    assert len(killed_lines) == len(clean_lines) == RECORDS  # no line doubled, none lost
    assert {line["id"]: line["_data"] for line in killed_lines} == records(small)
    assert killed_feed == clean_feed
    assert len(killed_feed) == RECORDS
    assert working_files(tmp_path / "killed" / "out") == []


# --- compaction ---------------------------------------------------------------------------


def _history(home: Path, sandbox: SandboxProcess) -> Config:
    """Two tables with history: ``items`` (soft deletes) and ``gone`` (hard deletes), after
    an initial load, 5 updates and 3 deletions, then 4 more updates."""
    streams = {"items": poll(), "gone": poll(table="gone", on_delete="hard")}
    cfg = write_config(home, sandbox.base_url, streams)
    assert syncline.sync(cfg).ok
    sandbox.mutate(update=5, delete=3)
    assert syncline.sync(cfg).ok
    sandbox.mutate(update=4)
    assert syncline.sync(cfg).ok
    return cfg


def test_compact_keeps_the_newest_line_of_each_key(small: SandboxProcess, tmp_path: Path) -> None:
    cfg = _history(tmp_path, small)
    out = tmp_path / "out"
    history = RECORDS + 5 + 3 + 4
    before = {file: replay(out, file) for file in ("items.jsonl", "gone.jsonl")}
    assert len(lines(out)) == len(lines(out, "gone.jsonl")) == history

    entries = len(lines(out, "_changes.jsonl"))
    done = run(tmp_path, "compact")
    assert done.returncode == 0, done.stderr
    assert f"items.jsonl: {history} -> {RECORDS} lines" in done.stdout
    assert f"gone.jsonl: {history} -> {RECORDS - 3} lines" in done.stdout
    assert f"_changes.jsonl: {entries} -> {entries} lines" in done.stdout  # nothing pruned
    assert len(lines(out)) == RECORDS  # soft-deleted keys kept, as their deletion line
    assert replay(out) == before["items.jsonl"]
    gone = lines(out, "gone.jsonl")
    assert len(gone) == RECORDS - 3
    assert all(line["_deleted_at"] is None for line in gone)  # hard-deleted keys dropped
    assert live(out, "gone.jsonl") == live(out) == records(small)
    assert working_files(out) == []

    small.mutate(update=1)  # the index follows the moved lines: appends and reads still right
    assert syncline.sync(cfg).changed()["updated"] == 2  # one record, in both tables
    assert len(lines(out)) == RECORDS + 1
    assert live(out) == records(small)
    store = JsonlStore(out)
    try:
        some = sorted(records(small))[:20]
        found = store.fetch_rows(ITEMS, [(k,) for k in some])
        assert {k[0]: json.loads(v) for k, v in found.items()} == {
            k: records(small)[k] for k in some
        }
    finally:
        store.close()


@pytest.mark.parametrize(
    ("failpoint", "ends_with"),
    [
        ("store.file_swapped:1", "old"),  # new file written, the commit not reached
        ("store.after_commit:3", "new"),  # open, ensure_table, the compaction committed
    ],
)
def test_kill_9_mid_compact_leaves_the_old_or_the_new_file_whole(
    small: SandboxProcess, tmp_path: Path, failpoint: str, ends_with: str
) -> None:
    cfg = _history(tmp_path / "home", small)
    home, out = tmp_path / "home", tmp_path / "home" / "out"
    old = (out / "items.jsonl").read_bytes()
    reference = tmp_path / "reference"
    shutil.copytree(home, reference)
    assert run(reference, "compact").returncode == 0
    new = (reference / "out" / "items.jsonl").read_bytes()
    assert len(new) < len(old)

    killed = run(home, "compact", "--stream", "items", failpoint=failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "items.jsonl").read_bytes() == old  # never replaced before its commit
    status = run(home, "status")  # any next use of the store finishes or drops the rewrite
    assert status.returncode == 0, status.stderr
    assert (out / "items.jsonl").read_bytes() == (old if ends_with == "old" else new)
    assert manifest(out)["files"]["items.jsonl"]["bytes"] == len(old if ends_with == "old" else new)
    assert working_files(out) == []
    small.mutate(update=2)
    assert syncline.sync(cfg).ok
    assert live(out) == records(small)


def test_compact_on_an_sql_store_has_nothing_to_do(sandbox: SandboxProcess, tmp_path: Path) -> None:
    source = {"base_url": sandbox.base_url, "streams": {"items": poll()}}
    raw = {"store": "sqlite:///store.db", "sources": {"sb": source}}
    (tmp_path / "syncline.yaml").write_text(json.dumps(raw))
    done = run(tmp_path, "compact")
    assert done.returncode == 0, done.stderr
    assert "nothing to compact" in done.stdout


# --- snapshot mode ----------------------------------------------------------------------------


def test_snapshot_mode_holds_exactly_the_last_complete_pass(
    small: SandboxProcess, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, small.base_url, {"items": poll(mode="snapshot")})
    out = tmp_path / "out"
    assert syncline.sync(cfg).ok
    first = lines(out)
    assert len(first) == RECORDS
    assert {line["id"]: line["_data"] for line in first} == records(small)
    small.mutate(update=5, insert=3, delete=4)
    run_ = syncline.sync(cfg)
    assert run_.changed() == {"inserted": 3, "updated": 5, "deleted": 4}
    second = lines(out)
    assert len(second) == RECORDS - 1  # exactly the pass: no history, no deletion lines
    assert {line["id"]: line["_data"] for line in second} == records(small)
    assert all(line["_deleted_at"] is None for line in second)
    assert [line["id"] for line in second] == sorted(line["id"] for line in second)
    kinds = sorted(e["kind"] for e in syncline.changes(cfg, run_id=run_.run_id))
    assert kinds == ["delete"] * 4 + ["insert"] * 3 + ["update"] * 5
    assert manifest(out)["files"]["items.jsonl"]["generation"] == 3  # created, swapped twice
    assert working_files(out) == []


def test_a_reader_never_sees_a_partial_snapshot(small: SandboxProcess, tmp_path: Path) -> None:
    """A consumer reading the file while another process runs a pass (slow pages, 20 of them)
    finds the previous snapshot, whole, then the new one, whole; never a mix."""
    paginate = {"type": "page_number", "size_param": "per_page", "size": 20,
                "last_page": "last_page"}  # fmt: skip
    cfg = write_config(
        tmp_path, small.base_url, {"items": poll(mode="snapshot", paginate=paginate)}
    )
    path = tmp_path / "out" / "items.jsonl"
    assert syncline.sync(cfg).ok
    old = set(records(small))
    small.mutate(update=10, insert=10, delete=10)
    new = set(records(small))
    small.set_faults(latency_ms=30)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncline", "sync", "-c", str(tmp_path / "syncline.yaml")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        seen: list[str] = []
        deadline = time.monotonic() + 60
        for _ in range(100_000):
            data = path.read_bytes()
            assert data.endswith(b"\n")
            ids = [orjson.loads(line)["id"] for line in data.splitlines()]
            assert len(ids) == len(set(ids))
            assert set(ids) in (old, new)
            seen.append("old" if set(ids) == old else "new")
            if process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        assert process.wait(timeout=60) == 0
    finally:
        small.clear_faults()
    assert seen.count("old") >= 5  # we did read during the pass
    assert {orjson.loads(line)["id"] for line in path.read_bytes().splitlines()} == new


@pytest.mark.parametrize("failpoint", ["store.before_commit:3", "store.file_swapped:1"])
def test_kill_9_mid_snapshot_pass_keeps_the_last_snapshot_then_completes(
    small: SandboxProcess, tmp_path: Path, failpoint: str
) -> None:
    write_config(tmp_path, small.base_url, {"items": poll(mode="snapshot")})
    out = tmp_path / "out"
    assert run(tmp_path, "sync").returncode == 0
    previous = (out / "items.jsonl").read_bytes()
    small.mutate(update=5, insert=3, delete=4)
    killed = run(tmp_path, "sync", failpoint=failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "items.jsonl").read_bytes() == previous
    done = run(tmp_path, "sync")
    assert done.returncode == 0, done.stderr
    assert {line["id"]: line["_data"] for line in lines(out)} == records(small)
    assert len(lines(out)) == len(records(small))
    assert working_files(out) == []


def test_a_partition_swaps_in_and_the_others_stay_as_they_were(
    small: SandboxProcess, tmp_path: Path
) -> None:
    stream = poll(mode="snapshot", params={"tag": "{shard}"})
    cfg = write_config(tmp_path, small.base_url, {"items": stream},
                       partitions={"shard": ["a", "b"]})  # fmt: skip
    out = tmp_path / "out"
    assert syncline.sync(cfg).ok
    raw = (out / "items.jsonl").read_bytes().splitlines()
    b_lines = {line for line in raw if orjson.loads(line)["shard"] == "b"}
    assert len(raw) == 2 * RECORDS
    small.mutate(update=3)
    assert syncline.sync(cfg, partitions=["shard=a"]).changed()["updated"] == 3
    after = (out / "items.jsonl").read_bytes().splitlines()
    assert {line for line in after if orjson.loads(line)["shard"] == "b"} == b_lines
    a_data = {orjson.loads(line)["id"]: orjson.loads(line)["_data"]
              for line in after if orjson.loads(line)["shard"] == "a"}  # fmt: skip
    assert a_data == records(small)
    assert len(after) == 2 * RECORDS


# --- what the store refuses ------------------------------------------------------------------


def _two_pages(out: Path) -> None:
    store = JsonlStore(out)
    try:
        store.ensure_table(ITEMS)
        for page in range(2):
            rows = [(k, json.dumps({"id": k, "page": page}), page) for k in range(5)]
            store.commit_page(ITEMS, rows, State(KEY, position={"page": page + 2}))
    finally:
        store.close()


def test_a_file_cut_behind_our_back_stops_with_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _two_pages(out)
    size = (out / "items.jsonl").stat().st_size
    os.truncate(out / "items.jsonl", size - 10)
    store = JsonlStore(out)
    try:
        with pytest.raises(
            StoreError, match=r"items\.jsonl holds \d+ bytes but \d+ were committed"
        ):
            store.commit_page(ITEMS, [(9, "{}", 9)], State(KEY))
        loaded = store.load_state(KEY)
        assert loaded is not None
        assert loaded.position == {"page": 3}  # nothing moved
    finally:
        store.close()
    (out / "items.jsonl").unlink()
    store = JsonlStore(out)
    try:
        with pytest.raises(StoreError, match=r"items\.jsonl is missing"):
            store.commit_page(ITEMS, [(9, "{}", 9)], State(KEY))
    finally:
        store.close()


def test_a_file_syncline_does_not_know_is_never_appended_to(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "items.jsonl").write_text('{"mine": true}\n')
    store = JsonlStore(out)
    try:
        with pytest.raises(StoreError, match="does not record it as committed"):
            store.ensure_table(ITEMS)
    finally:
        store.close()
    assert (out / "items.jsonl").read_text() == '{"mine": true}\n'


def test_a_record_no_utf8_can_hold_is_quarantined(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "out")
    try:
        store.ensure_table(ITEMS)
        rows = [(1, '{"v": "\\ud800"}', None), (2, '{"v": "\ud800"}', None), (3, '{"v": 1}', None)]
        changes = store.commit_page(ITEMS, rows, State(KEY, run_id="r"))
        assert changes.inserted == 1
        assert store.count_rejects(KEY, "r") == 2
    finally:
        store.close()
    assert [line["id"] for line in lines(tmp_path / "out")] == [3]


# --- typed columns and modes -------------------------------------------------------------------


def test_typed_columns_are_in_every_line_and_follow_the_declaration(tmp_path: Path) -> None:
    out = tmp_path / "out"
    priced = TableSpec("items", (), ("id",), columns=(
        Column("price", "price", "numeric"), Column("stock", "stock", "integer"),
        Column("when", "at", "timestamp")))  # fmt: skip
    store = JsonlStore(out)
    try:
        store.ensure_table(priced)
        record = {"id": 1, "price": "12.50", "stock": "7", "at": "2024-03-01T10:00:00+01:00"}
        store.commit_page(priced, [(1, json.dumps(record), 1)], State(KEY))
        store.commit_page(priced, [(1, json.dumps({**record, "stock": 8}), 2)], State(KEY))
        (first, second) = lines(out)
        assert (first["price"], first["stock"]) == ("12.50", 7)
        assert first["when"].startswith("2024-03-01T09:00:00")
        assert second["stock"] == 8
        renamed = TableSpec("items", (), ("id",), columns=(Column("units", "stock", "text"),))
        store.ensure_table(renamed)  # every line gets the new declaration; the history stays
        assert [(line.get("units"), "stock" in line) for line in lines(out)] == [
            ("7", False),
            ("8", False),
        ]
        store.commit_page(renamed, [(1, json.dumps({**record, "stock": 9}), 3)], State(KEY))
        assert store.fetch_rows(renamed, [(1,)]) == {(1,): json.dumps({**record, "stock": 9})}
    finally:
        store.close()


def test_a_stream_switched_to_snapshot_and_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = JsonlStore(out)
    try:
        store.ensure_table(ITEMS)
        store.commit_page(ITEMS, [(k, json.dumps({"v": k}), 1) for k in range(4)], State(KEY))
        store.commit_page(ITEMS, [(1, json.dumps({"v": "new"}), 2)], State(KEY),
                          deletes=[(3, "{}", 2)])  # fmt: skip
        assert len(lines(out)) == 6
        snapshot = TableSpec("items", (), ("id",), mode="snapshot")
        store.ensure_table(snapshot)  # one line per live record
        assert [(x["id"], x["_data"]["v"]) for x in lines(out)] == [(0, 0), (1, "new"), (2, 2)]
        store.commit_page(snapshot, [(0, json.dumps({"v": "pass"}), 3)], State(KEY),
                          deletes=[(2, "{}", 3)])  # fmt: skip
        assert [(x["id"], x["_data"]["v"]) for x in lines(out)] == [(0, 0), (1, "new"), (2, 2)]
        store.ensure_table(ITEMS)  # back to merge: the open pass's changes join the file
        found = replay(out)
        assert (found[0]["_data"], found[0]["_deleted_at"]) == ({"v": "pass"}, None)
        assert found[2]["_deleted_at"] is not None  # deleted during the pass: stamped
        assert 3 not in found  # the snapshot held live records only
        assert store.fetch_rows(ITEMS, [(0,), (1,), (2,)]) == {
            (0,): json.dumps({"v": "pass"}),
            (1,): json.dumps({"v": "new"}),
        }
        assert working_files(out) == []
    finally:
        store.close()


def test_two_writers_sharing_the_directory(tmp_path: Path) -> None:
    """Separate store objects (as separate processes have) committing to two tables and
    compacting at once: every file stays whole and matches its manifest."""
    out = tmp_path / "out"
    JsonlStore(out).close()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        table = TableSpec(name, (), ("id",))
        store = JsonlStore(out)
        try:
            store.ensure_table(table)
            for page in range(15):
                rows = [(k, json.dumps({"v": page}), page) for k in range(20)]
                store.commit_page(table, rows, State(StateKey("src", name, "{}")))
                if page % 5 == 4:
                    store.compact([table])
                assert store.fetch_rows(table, [(3,)]) == {(3,): json.dumps({"v": page})}
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for name in ("one", "two"):
        found = lines(out, f"{name}.jsonl")
        assert {line["id"]: line["_data"] for line in found} == {k: {"v": 14} for k in range(20)}
        assert len(found) == 20  # compacted after the last page


def test_a_snapshot_pass_is_readable_before_its_swap(tmp_path: Path) -> None:
    """Rows of an open pass live in its pass file: found by fetch_rows (as in any store),
    absent from the table's file until the pass completes; a boolean partition value (which
    SQLite keeps as 1) names the same pass file both ways."""
    out = tmp_path / "out"
    flags = TableSpec("flags", ("active",), ("id",), mode="snapshot")
    key = StateKey("src", "flags", '{"active":true}')
    store = JsonlStore(out)
    try:
        store.ensure_table(flags)
        store.commit_page(flags, [(True, 1, '{"v": 1}', 1)], State(key))
        assert store.fetch_rows(flags, [(True, 1)]) == {(1, 1): '{"v": 1}'}
        assert lines(out, "flags.jsonl") == []
        since = "2999-01-01T00:00:00.000000Z"
        store.commit_page(flags, [(True, 2, '{"v": 2}', 1)], State(key),
                          sweep=Sweep((True,), since))  # fmt: skip
        assert [(x["active"], x["id"]) for x in lines(out, "flags.jsonl")] == []  # all swept
        store.commit_page(flags, [(True, 3, '{"v": 3}', 1)], State(key),
                          sweep=Sweep((True,), "2000-01-01T00:00:00.000000Z"))  # fmt: skip
        assert [(x["active"], x["id"]) for x in lines(out, "flags.jsonl")] == [(True, 3)]
        assert store.fetch_rows(flags, [(True, 3)]) == {(1, 3): '{"v": 3}'}
        assert working_files(out) == []
    finally:
        store.close()
