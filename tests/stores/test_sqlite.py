"""The SQLite store on real files: newest wins, page and checkpoint are atomic, names are safe."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from syncline.errors import StoreError
from syncline.stores import SQLiteStore, State, StateKey, TableSpec

TABLE = TableSpec("items", ("company_id",), ("id",))
KEY = StateKey("src", "items", '{"company_id":1}')


def row(key: int, data: dict[str, object], updated: str | None) -> tuple[object, ...]:
    return (1, key, json.dumps(data), updated)


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "s.db")
    s.ensure_table(TABLE)
    yield s
    s.close()


def read(store: SQLiteStore) -> dict[int, tuple[str, str | None]]:
    with sqlite3.connect(store.path) as conn:
        return {
            k: (json.loads(d)["v"], u)
            for k, d, u in conn.execute("SELECT id, _data, _updated_at FROM items")
        }


def test_newest_wins_and_ties_go_to_the_later_arrival(store: SQLiteStore) -> None:
    store.commit_page(TABLE, [row(1, {"v": "new"}, "2024-01-02T00:00:00.000000Z")], State(KEY))
    store.commit_page(TABLE, [row(1, {"v": "old"}, "2024-01-01T00:00:00.000000Z")], State(KEY))
    assert read(store)[1][0] == "new"

    store.commit_page(TABLE, [row(1, {"v": "tie"}, "2024-01-02T00:00:00.000000Z")], State(KEY))
    assert read(store)[1][0] == "tie"


def test_same_key_twice_in_one_page_keeps_the_newest(store: SQLiteStore) -> None:
    page = [
        row(7, {"v": "b"}, "2024-01-02T00:00:00.000000Z"),
        row(7, {"v": "a"}, "2024-01-01T00:00:00.000000Z"),
        row(7, {"v": "c"}, "2024-01-02T00:00:00.000000Z"),
    ]
    store.commit_page(TABLE, page, State(KEY))
    assert read(store) == {7: ("c", "2024-01-02T00:00:00.000000Z")}


def test_a_deletion_wins_over_older_copies_seen_later(store: SQLiteStore) -> None:
    store.commit_page(TABLE, [row(1, {"v": "a"}, "2024-01-01T00:00:00.000000Z")], State(KEY))
    tombstone = row(1, {"v": "gone"}, "2024-01-03T00:00:00.000000Z")
    gone = store.commit_page(TABLE, [], State(KEY), deletes=[tombstone])
    assert gone.deleted == 1
    late = store.commit_page(TABLE, [row(1, {"v": "b"}, "2024-01-02T00:00:00.000000Z")], State(KEY))
    assert (late.inserted, late.updated) == (0, 0)  # an older copy does not bring it back
    with sqlite3.connect(store.path) as conn:
        deleted_at, data = conn.execute("SELECT _deleted_at, _data FROM items").fetchone()
    assert deleted_at is not None
    assert json.loads(data)["v"] == "a"  # soft: the last known record stays

    back = store.commit_page(TABLE, [row(1, {"v": "c"}, "2024-01-04T00:00:00.000000Z")], State(KEY))
    assert back.inserted == 1  # re-created after its deletion: a new insert
    assert read(store)[1] == ("c", "2024-01-04T00:00:00.000000Z")


def test_page_and_checkpoint_roll_back_together(store: SQLiteStore) -> None:
    store.commit_page(TABLE, [row(1, {"v": "a"}, None)], State(KEY, position={"page": 2}))
    broken = [row(2, {"v": "b"}, None), (1, 3, "{}", None, "extra")]  # the 2nd insert fails

    with pytest.raises(StoreError, match="writing items"):
        store.commit_page(TABLE, broken, State(KEY, position={"page": 3}))

    assert set(read(store)) == {1}
    loaded = store.load_state(KEY)
    assert loaded is not None
    assert loaded.position == {"page": 2}


def test_state_round_trip(store: SQLiteStore) -> None:
    state = State(
        KEY,
        watermark={"value": "2024-01-01T00:00:00.000000Z", "raw": "2024-01-01T00:00:00Z"},
        cursor="abc",
        position=None,
        records=5,
    )
    store.save_state(state)
    loaded = store.load_state(KEY)
    assert loaded is not None
    assert (loaded.watermark, loaded.cursor, loaded.position, loaded.records) == (
        state.watermark,
        "abc",
        None,
        5,
    )
    assert [s.key for s in store.all_states()] == [KEY]
    assert store.delete_state("src", "items") == 1
    assert store.load_state(KEY) is None


@pytest.mark.parametrize(
    "name", ['"; DROP TABLE items;--', 'a"b', "select", "x" * 200, "ünï cödé 🚀"]
)
def test_hostile_identifiers_are_quoted(tmp_path: Path, name: str) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    table = TableSpec(name, (), (name + "_key",))
    store.ensure_table(table)
    store.commit_page(table, [(1, '{"v": 1}', None)], State(KEY))
    assert store.count_rows(name, {}) == 1
    store.close()
    with sqlite3.connect(tmp_path / "h.db") as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert name in names


def test_nul_in_identifier_is_refused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "n.db")
    with pytest.raises(StoreError, match="NUL"):
        store.ensure_table(TableSpec("bad\x00name", (), ("id",)))


def test_corrupt_checkpoint_is_reported_not_ignored(store: SQLiteStore) -> None:
    store.save_state(State(KEY, position={"page": 2}))
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE _syncline_state SET position = '{half'")
    with pytest.raises(StoreError, match="corrupt; run `syncline reset`"):
        store.load_state(KEY)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE _syncline_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer syncline"):
        SQLiteStore(path)


def test_wal_mode(store: SQLiteStore) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
