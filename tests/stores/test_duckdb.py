"""What only the DuckDB store has to get right: the one-process rule, several store objects in
one process, DuckDB's column types, dropping typed columns despite indexes, values DuckDB's
JSON refuses, private files, exact microseconds, and crash recovery from its WAL."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from syncline.errors import ConfigError, StoreError
from syncline.stores import Column, State, StateKey, Sweep, TableSpec, WindowSpec, open_store
from syncline.stores.duckdb_store import DuckDBStore
from syncline.stores.duckdb_values import UNSTORABLE

KEY = StateKey("src", "items", "{}")
ITEMS = TableSpec("items", (), ("id",))


def url_of(path: Path) -> str:
    return f"duckdb:///{path}"


def query(path: Path, sql: str, args: list[Any] | None = None) -> list[Any]:
    """Read the file with duckdb itself (the same database instance as an open store's)."""
    conn = duckdb.connect(str(path))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def page(*records: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r["id"], json.dumps(r), r.get("v")) for r in records]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


# --- opening ----------------------------------------------------------------------------------

HOLD = """
import sys
from syncline.stores import open_store
store = open_store(sys.argv[1])
print("open", flush=True)
sys.stdin.read()
store.close()
"""


def test_a_second_process_is_refused_naming_the_file_and_the_holder(path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, url_of(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError) as refused:
            open_store(url_of(path))
        message = str(refused.value)
        assert str(path) in message
        assert "open in another process" in message
        assert f"PID {holder.pid}" in message  # DuckDB's holder info, passed on
        assert "\n" not in message
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    open_store(url_of(path)).close()  # the holder is gone: the file opens again


def test_urls_relative_absolute_and_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("duckdb:///rel/sub.duckdb")
    assert isinstance(store, DuckDBStore)
    store.close()
    assert (tmp_path / "rel" / "sub.duckdb").exists()
    open_store(f"duckdb:///{tmp_path}/abs.duckdb").close()  # duckdb:////abs…
    assert (tmp_path / "abs.duckdb").exists()
    with pytest.raises(ConfigError, match=r"duckdb:///path\.duckdb"):
        open_store("duckdb://host/x.duckdb")
    with pytest.raises(ConfigError, match="needs a file"):
        open_store("duckdb:///")


def test_a_missing_extra_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)
    monkeypatch.delitem(sys.modules, "syncline.stores.duckdb_store", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'syncline\[duckdb\]'"):
        open_store("duckdb:///x.duckdb")


def test_a_newer_schema_is_refused(path: Path) -> None:
    open_store(url_of(path)).close()
    query(path, "UPDATE _syncline_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer syncline"):
        open_store(url_of(path))


def test_new_files_are_private_wal_included(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "store.duckdb"
    umask = os.umask(0o022)
    os.umask(umask)
    store = open_store(url_of(path))
    try:
        store.ensure_table(ITEMS)
        store.commit_page(ITEMS, page({"id": 1}), State(KEY))  # DuckDB writes its WAL now
        wal = Path(f"{path}.wal")
        assert wal.exists()
        for written in (path, wal):
            assert stat.S_IMODE(written.stat().st_mode) == 0o600, written
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        store.close()
    assert os.umask(umask) == umask  # the process's own umask is back


# --- several store objects in one process -----------------------------------------------------


WINDOW = WindowSpec("w", calls=10_000, per=3600.0)


def test_store_objects_on_one_file_write_pages_side_by_side(path: Path) -> None:
    """DuckDB aborts one of two transactions writing the same rows; the store serialises its
    objects per file, so 4 threads x 25 pages (ledger, lease, state: shared rows) all land,
    and feed ids follow commit order."""
    table = TableSpec("items", ("p",), ("id",))
    stores = [open_store(url_of(path)) for _ in range(4)]
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        store = stores[number]
        key = StateKey("src", "items", json.dumps({"p": number}))
        try:
            store.ensure_table(table)
            lease = store.acquire_lease(key, f"w{number}", ttl=60)
            for batch in range(25):
                rows = [(number, batch * 10 + i, json.dumps({"i": i}), None) for i in range(10)]
                state = State(key, position={"page": batch}, run_id=f"r{number}")
                store.commit_page(table, rows, state, lease=lease)
                assert store.take_permit([("shared", [WINDOW])], 1, False) == 0.0
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        assert [stores[0].count_rows("items", {"p": n}) for n in range(4)] == [250] * 4
        changes = list(stores[0].changes())
        assert len(changes) == 1000
        assert [c.id for c in changes] == sorted(c.id for c in changes)
        assert stores[0].window_used("shared", WINDOW) == 100
    finally:
        for store in stores:
            store.close()


# --- keys, records and times ------------------------------------------------------------------


def test_keys_keep_their_json_type_and_records_their_bytes(path: Path) -> None:
    table = TableSpec("things", ("tenant",), ("id",))
    store = open_store(url_of(path))
    odd = '{"b":1,  "a" : [1.50, 1e2]}'
    try:
        store.ensure_table(table)
        changes = store.commit_page(
            table, [("t", 1, '{"n": 1}', None), ("t", "1", odd, None)], State(KEY)
        )
        assert changes.inserted == 2  # 1 and "1" are two records
        assert store.fetch_rows(table, [("t", 1), ("t", "1"), ("t", 2)]) == {
            ("t", 1): '{"n": 1}',
            ("t", "1"): odd,  # byte for byte
        }
        assert store.count_rows("things", {"tenant": "t"}) == 2
    finally:
        store.close()
    found = query(
        path, """SELECT id, _data->>'$.b' FROM things WHERE tenant = '"t"' ORDER BY id::VARCHAR"""
    )
    assert found == [('"1"', "1"), ("1", None)]  # keys as JSON text, records queryable


def test_a_record_duckdb_json_refuses_is_quarantined_not_the_page(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(url_of(path))
    try:
        store.ensure_table(ITEMS)
        lone = '{"id": 2, "name": "\\ud800"}'  # what json.dumps writes for a lone surrogate
        with caplog.at_level(logging.WARNING, logger="syncline"):
            store.commit_page(ITEMS, [(1, '{"id": 1}', None), (2, lone, None)], State(KEY))
        assert store.fetch_rows(ITEMS, [(1,), (2,)]) == {(1,): '{"id": 1}'}
        assert store.count_rejects(KEY) == 1
        assert any("quarantined" in r.getMessage() for r in caplog.records)
        with pytest.raises(StoreError, match="writing items"):  # not JSON at all: nothing
            store.commit_page(ITEMS, [(3, '{"id": 3}', None), (4, "{half", None)], State(KEY))
        assert store.fetch_rows(ITEMS, [(3,)]) == {}
    finally:
        store.close()
    assert query(path, "SELECT reason, record FROM _syncline_rejects") == [(UNSTORABLE, lone)]


def test_synced_times_compare_exactly_to_the_microsecond(path: Path) -> None:
    """The sweep deletes rows synced before the pass started: a row synced at the very
    microsecond the pass started was seen by it."""
    table = TableSpec("items", ("p",), ("id",))
    store = open_store(url_of(path))
    try:
        store.ensure_table(table)
        store.commit_page(table, [(1, 1, "{}", None)], State(KEY))
        ((synced,),) = query(
            path,
            "SELECT strftime(_synced_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') FROM items",
        )
        assert len(synced) == 27
        kept = store.commit_page(table, [], State(KEY), sweep=Sweep((1,), synced))
        assert kept.deleted == 0
        moment = datetime.strptime(synced, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(microseconds=1)
        later = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        swept = store.commit_page(table, [], State(KEY), sweep=Sweep((1,), later))
        assert swept.deleted == 1
    finally:
        store.close()


# --- typed columns ----------------------------------------------------------------------------

PRICED = TableSpec(
    "products", (), ("id",),
    columns=(Column("price", "price", "numeric"), Column("when", "at", "timestamp"),
             Column("day", "day", "date"), Column("on", "on", "boolean"),
             Column("n", "n", "integer"), Column("x", "x", "real"), Column("doc", "doc", "json"),
             Column("name", "name")),
)  # fmt: skip


def test_typed_columns_have_duckdb_types_users_can_compute_with(path: Path) -> None:
    store = open_store(url_of(path))
    try:
        store.ensure_table(PRICED)
        records = [{"id": 1, "price": "0.1"}, {"id": 2, "price": "0.2"}]
        store.commit_page(PRICED, page(*records), State(KEY))
    finally:
        store.close()
    types = dict(query(path, "SELECT column_name, data_type FROM duckdb_columns() "
                             "WHERE table_name = 'products'"))  # fmt: skip
    assert {name: types[name] for name in ("price", "when", "day", "on", "n", "x", "doc")} == {
        "price": "DECIMAL(38,10)", "when": "TIMESTAMP WITH TIME ZONE", "day": "DATE",
        "on": "BOOLEAN", "n": "BIGINT", "x": "DOUBLE", "doc": "JSON",
    }  # fmt: skip
    assert query(path, "SELECT sum(price) FROM products") == [(Decimal("0.3"),)]  # exact


def test_numbers_that_do_not_fit_the_decimal_become_null_with_one_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = TableSpec("fits", (), ("id",), columns=(Column("amount", "a", "numeric"),))
    fitting = {
        1: "9" * 28 + "." + "9" * 10,  # the largest
        2: "-0.0000000001",
        3: "1.500000000000000",  # trailing zeros beyond the scale are no digits
        4: 123456789012345678,
    }
    unfit = {5: "1" + "0" * 28, 6: "0.00000000001"}  # 29 digits; 11 after the point
    store = open_store(url_of(path))
    try:
        store.ensure_table(table)
        with caplog.at_level(logging.WARNING, logger="syncline"):
            store.commit_page(
                table, page(*({"id": k, "a": v} for k, v in {**fitting, **unfit}.items())),
                State(KEY),
            )  # fmt: skip
    finally:
        store.close()
    stored = dict(query(path, "SELECT id::BIGINT, amount FROM fits"))
    assert stored == {**{k: Decimal(str(v)) for k, v in fitting.items()}, 5: None, 6: None}
    warned = [r.getMessage() for r in caplog.records if "does not fit" in r.getMessage()]
    assert len(warned) == 1
    assert "table fits, column amount" in warned[0]
    assert "DECIMAL(38,10)" in warned[0]


def indexed(path: Path) -> set[str]:
    from syncline.stores.columns import index_name

    found = {row[0] for row in query(path, "SELECT index_name FROM duckdb_indexes()")}
    names = ("a", "b", "c", "d")
    return {name for name in names if index_name("t", name) in found}


def test_a_column_before_an_indexed_one_is_dropped_in_one_transaction(path: Path) -> None:
    """DuckDB refuses DROP COLUMN while an index covers a later column: the table is rebuilt,
    keeping the other columns' values, soft-deleted rows and the indexes asked for."""
    first = TableSpec(
        "t", (), ("id",),
        columns=(Column("a", "a"), Column("b", "b", "integer"), Column("c", "c", index=True)),
    )  # fmt: skip
    store = open_store(url_of(path))
    try:
        store.ensure_table(first)
        records = [{"id": i, "a": f"a{i}", "b": i, "c": f"c{i}", "d": i * 2} for i in range(1, 6)]
        store.commit_page(first, page(*records), State(KEY))
        store.commit_page(first, [], State(KEY), deletes=page({"id": 5}))
        then = TableSpec(
            "t", (), ("id",),
            columns=(Column("b", "b", "text", index=True), Column("c", "c", index=True),
                     Column("d", "d", "integer")),
        )  # fmt: skip
        store.ensure_table(then)  # a dropped, b re-typed, d added
        assert indexed(path) == {"b", "c"}
        rows = query(path, "SELECT id::BIGINT, b, c, d, _deleted_at IS NOT NULL FROM t ORDER BY 1")
        assert rows == [(i, str(i), f"c{i}", i * 2, i == 5) for i in range(1, 6)]
        assert "a" not in {r[0] for r in query(path, "SELECT column_name FROM duckdb_columns() "
                                                     "WHERE table_name = 't'")}  # fmt: skip
        store.commit_page(then, page({"id": 1, "b": 10, "c": "new", "d": 3}), State(KEY))
        assert query(path, "SELECT b, c, d FROM t WHERE id = '1'") == [("10", "new", 3)]
    finally:
        store.close()


def test_a_failed_declaration_change_leaves_the_old_one(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncline.stores import duckdb_columns

    first = TableSpec("t", (), ("id",), columns=(Column("a", "a"), Column("c", "c", index=True)))
    store = open_store(url_of(path))
    try:
        store.ensure_table(first)
        store.commit_page(first, page({"id": 1, "a": "x", "c": "y", "d": 4}), State(KEY))

        def broken(*args: Any) -> None:
            raise duckdb.IOException("disk full")

        monkeypatch.setattr(duckdb_columns, "_refill", broken)
        then = TableSpec("t", (), ("id",), columns=(Column("c", "c"), Column("d", "d")))
        with pytest.raises(StoreError, match="disk full"):
            store.ensure_table(then)
        assert query(path, "SELECT a, c FROM t") == [("x", "y")]
        assert indexed(path) == {"c"}
        monkeypatch.undo()
        store.ensure_table(then)  # and the next try applies it
        assert query(path, "SELECT c, d FROM t") == [("y", "4")]
        assert indexed(path) == set()
    finally:
        store.close()


def test_a_table_name_differing_only_by_case_is_refused(path: Path) -> None:
    store = open_store(url_of(path))
    try:
        store.ensure_table(ITEMS)
        with pytest.raises(StoreError, match=r"'Items'.*existing table 'items'"):
            store.ensure_table(TableSpec("Items", (), ("id",)))
        with pytest.raises(StoreError, match=r"typed column 'ID'.*key column 'id'"):
            store.ensure_table(TableSpec("other", (), ("id",), columns=(Column("ID", "x"),)))
    finally:
        store.close()


# --- crashes ----------------------------------------------------------------------------------

CRASH = """
import json, sys
from syncline.stores import State, StateKey, TableSpec, open_store
store = open_store(sys.argv[1])
table, key = TableSpec("items", (), ("id",)), StateKey("src", "items", "{}")
store.ensure_table(table)
for n in range(3):  # the 3rd commit is killed just before it commits
    store.commit_page(table, [(n, json.dumps({"n": n}), None)], State(key, position={"page": n}))
"""


def test_kill_9_before_commit_then_reopen_replays_the_wal(path: Path) -> None:
    env = {**os.environ, "SYNCLINE_FAILPOINT": "store.before_commit:3"}
    killed = subprocess.run(
        [sys.executable, "-c", CRASH, url_of(path)], env=env, capture_output=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert Path(f"{path}.wal").exists()  # nothing checkpointed: all is in the WAL
    store = open_store(url_of(path))
    try:
        assert store.fetch_rows(ITEMS, [(0,), (1,), (2,)]) == {(0,): '{"n": 0}', (1,): '{"n": 1}'}
        state = store.load_state(KEY)
        assert state is not None
        assert state.position == {"page": 1}
        assert [c.key for c in store.changes()] == [0, 1]
    finally:
        store.close()
