"""What only the PostgreSQL store has to get right: connecting, permissions, identifiers
longer than 63 bytes, values PostgreSQL cannot hold, and concurrent writers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.errors import ConfigError, StoreError
from syncline.stores import State, StateKey, TableSpec, open_store
from syncline.stores.postgres import PostgresStore
from syncline.stores.postgres_connect import parse_url
from syncline.stores.postgres_names import MAX_IDENTIFIER_BYTES, pg_name, quote_identifier
from tests.conftest import PostgresSchemas
from tests.pg_server import PostgresServer

TABLE = TableSpec("items", ("company_id",), ("id",))
KEY = StateKey("src", "items", '{"company_id":1}')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- connecting -----------------------------------------------------------------------------


def test_an_unreachable_server_names_host_and_port_not_the_password() -> None:
    port = free_port()
    with pytest.raises(StoreError) as failed:
        open_store(f"postgresql://me:s3cr%40t-pw@127.0.0.1:{port}/db?schema=x")
    message = str(failed.value)
    assert f"127.0.0.1:{port}/db" in message
    assert "connecting to PostgreSQL" in message
    assert "s3cr" not in message
    assert "\n" not in message


def test_the_cli_reports_an_unreachable_server_without_the_password(tmp_path: Path) -> None:
    port = free_port()
    store = f"postgres://me:hunter2-pw@127.0.0.1:{port}/db"
    source = {
        "base_url": "http://127.0.0.1:9",
        "streams": {"s": {"path": "/", "primary_key": "id"}},
    }
    (tmp_path / "syncline.yaml").write_text(json.dumps({"store": store, "sources": {"a": source}}))
    done = subprocess.run(
        [sys.executable, "-m", "syncline", "sync", "-c", str(tmp_path / "syncline.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"127.0.0.1:{port}" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_urls_postgres_scheme_default_schema_and_no_password_in_repr() -> None:
    target = parse_url("postgres://u:pw-secret@db.example:6543/shop?sslmode=disable")
    assert target.schema == "syncline"
    assert target.where == "db.example:6543/shop"
    assert "schema" not in target.conninfo
    assert "sslmode" in target.conninfo
    assert "pw-secret" not in repr(target)
    assert parse_url("postgresql://u@h/db?schema=Tenant%201").schema == "Tenant 1"
    with pytest.raises(ConfigError, match="schema"):
        parse_url("postgresql://u@h/db?schema=")


def test_postgres_scheme_opens_the_store(postgres_url: str) -> None:
    store = open_store(postgres_url.replace("postgresql://", "postgres://", 1))
    assert isinstance(store, PostgresStore)
    store.close()


def test_a_missing_extra_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "syncline.stores.postgres", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'syncline\[postgres\]'"):
        open_store("postgresql://u@127.0.0.1/db")


def test_missing_server_binaries_fail_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture fails (never skips) when PostgreSQL is not installed."""
    import tests.pg_server as pg

    monkeypatch.setattr(pg.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    monkeypatch.delenv("SYNCLINE_PG_BIN", raising=False)
    with pytest.raises(RuntimeError, match="apt-get install -y postgresql"):
        pg.find_bindir()


# --- schema, permissions, versions ----------------------------------------------------------


@pytest.fixture(scope="module")
def limited_role(postgres_server: PostgresServer) -> str:
    """A login role with no right to create schemas (PostgreSQL's default for a new role)."""
    postgres_server.execute(
        "DO $$ BEGIN CREATE ROLE syncline_limited LOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    return "syncline_limited"


def test_a_schema_that_cannot_be_created_is_a_clear_error(
    postgres_schemas: PostgresSchemas, limited_role: str
) -> None:
    url = postgres_schemas.url(user=limited_role)
    with pytest.raises(StoreError) as failed:
        open_store(url)
    message = str(failed.value)
    assert "cannot create the store's schema" in message
    assert "permission denied" in message
    assert "AUTHORIZATION" in message


def test_a_schema_the_role_may_not_create_in_is_a_clear_error(
    postgres_schemas: PostgresSchemas, postgres_server: PostgresServer, limited_role: str
) -> None:
    url = postgres_schemas.url(user=limited_role)
    schema = url.rpartition("schema=")[2]
    postgres_server.execute(
        f'CREATE SCHEMA "{schema}"; GRANT USAGE ON SCHEMA "{schema}" TO {limited_role}'
    )
    with pytest.raises(StoreError, match="cannot create the store's tables in schema"):
        open_store(url)


def test_a_schema_created_for_the_role_is_used(
    postgres_schemas: PostgresSchemas, postgres_server: PostgresServer, limited_role: str
) -> None:
    """What the error advises works: an administrator creates the schema for the role."""
    url = postgres_schemas.url(user=limited_role)
    schema = url.rpartition("schema=")[2]
    postgres_server.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION {limited_role}')
    store = open_store(url)
    store.ensure_table(TABLE)
    store.commit_page(TABLE, [(1, 1, "{}", None)], State(KEY))
    assert store.count_rows("items", {"company_id": 1}) == 1
    store.close()


def test_a_newer_schema_is_refused(postgres_url: str, postgres_server: PostgresServer) -> None:
    open_store(postgres_url).close()
    schema = postgres_url.rpartition("schema=")[2]
    postgres_server.execute(
        f"UPDATE \"{schema}\"._syncline_meta SET value = '99' WHERE key = 'schema_version'"
    )
    with pytest.raises(StoreError, match="newer syncline"):
        open_store(postgres_url)


def test_the_test_database_collation_is_not_byte_order(postgres_url: str) -> None:
    """The premise of the ordering contract test: here a collation-based comparison would
    put "a" before "B", so the store must compare modification text as bytes itself."""
    base = postgres_url.partition("?")[0]
    with psycopg.connect(base) as conn:
        row = conn.execute("SELECT 'a' < 'B', 'a' < 'B' COLLATE \"C\"").fetchone()
    assert row == (True, False)


# --- identifiers ----------------------------------------------------------------------------


def test_long_identifiers_are_shortened_deterministically() -> None:
    exact = "x" * MAX_IDENTIFIER_BYTES
    assert pg_name(exact) == exact
    longer_a, longer_b = exact + "a", exact + "b"
    assert pg_name(longer_a) == pg_name(longer_a)
    assert pg_name(longer_a) != pg_name(longer_b)
    assert len(pg_name(longer_a).encode()) == MAX_IDENTIFIER_BYTES
    accents = "é" * 40  # 80 bytes: the cut must fall between characters
    assert pg_name(accents).startswith("é" * 27 + "_")
    assert pg_name("Items") != pg_name("items")
    assert quote_identifier('a"b%s') == '"a""b%%s"'
    with pytest.raises(StoreError, match="NUL"):
        pg_name("a\x00b")
    with pytest.raises(StoreError, match="UTF-8"):
        pg_name("a\ud800b")


@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
def test_every_name_maps_to_a_fitting_identifier(name: str) -> None:
    mapped = pg_name(name)
    assert len(mapped.encode()) <= MAX_IDENTIFIER_BYTES
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        assert mapped == name
    else:
        assert pg_name(name + "!") != mapped


# --- values PostgreSQL cannot hold ----------------------------------------------------------


def test_records_postgresql_cannot_hold_are_quarantined_not_fatal(postgres_url: str) -> None:
    store = open_store(postgres_url)
    store.ensure_table(TABLE)
    page = [
        (1, 1, json.dumps({"v": "fine"}), None),
        (1, 2, json.dumps({"v": "nul \x00 inside"}), None),
        (1, 3, json.dumps({"v": "lone \ud800 surrogate"}), None),
        (1, 4, json.dumps({"v": "pair \U0001f680 ok"}), None),
        (1, "k\x00", "{}", None),
        (1, 5, json.dumps({"v": "a \\u0000 as text"}), None),
    ]
    changes = store.commit_page(TABLE, page, State(KEY, run_id="r"))
    assert changes.inserted == 3
    assert store.count_rejects(KEY, "r") == 3
    assert set(store.fetch_rows(TABLE, [(1, 1), (1, 4), (1, 5)])) == {(1, 1), (1, 4), (1, 5)}
    store.close()


def test_a_record_that_is_not_one_json_value_writes_nothing(postgres_url: str) -> None:
    """The page travels as one JSON document; text that would change its shape (here: add
    a row for another key) is refused before anything is sent."""
    store = open_store(postgres_url)
    store.ensure_table(TABLE)
    sneaky = '{"v": 1}, null, "h"], [1, 666, {"evil": true}'
    for data in (sneaky, "not json", ""):
        with pytest.raises(StoreError, match="JSON"):
            store.commit_page(TABLE, [(1, 1, "{}", None), (1, 2, data, None)], State(KEY))
    assert store.count_rows("items", {"company_id": 1}) == 0
    assert store.load_state(KEY) is None
    store.close()


# --- concurrent writers ---------------------------------------------------------------------


def test_concurrent_commits_of_one_partition_classify_each_record_once(
    postgres_url: str,
) -> None:
    """Without the page lock, two writers could both see a key missing and both record an
    insert; the feed must say each record was inserted exactly once."""
    stores = [open_store(postgres_url) for _ in range(4)]
    for store in stores:
        store.ensure_table(TABLE)
    page = [(1, key, json.dumps({"k": key}), "2024-01-01T00:00:00.000000Z") for key in range(50)]
    start = threading.Barrier(len(stores))

    def commit(store: object) -> None:
        start.wait(timeout=30)
        store.commit_page(TABLE, page, State(KEY))  # type: ignore[attr-defined]

    threads = [threading.Thread(target=commit, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    inserts = [c.key for c in stores[0].changes() if c.kind == "insert"]
    assert sorted(inserts) == list(range(50))
    for store in stores:
        store.close()


def test_a_reader_tailing_the_feed_by_id_misses_nothing(postgres_url: str) -> None:
    """Feed ids grow in commit order, so ``after_id`` of the last entry seen is a safe
    resume point even while several writers commit at once."""
    writers = [open_store(postgres_url) for _ in range(3)]
    reader = open_store(postgres_url)
    for store in writers:
        store.ensure_table(TABLE)
    done = threading.Event()
    seen: list[int] = []

    def write(number: int) -> None:
        key = StateKey("src", "items", f'{{"company_id":{number}}}')
        for page in range(25):
            rows = [(number, page * 4 + i, "{}", None) for i in range(4)]
            writers[number].commit_page(TABLE, rows, State(key))

    def tail() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for change in reader.changes(after_id=last):
                if change.id != last:
                    seen.append(change.id)
                last = change.id
            if finished:
                return

    tailer = threading.Thread(target=tail)
    tailer.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    tailer.join(timeout=60)
    every = sorted({c.id for c in reader.changes()})
    assert seen == every
    assert len(every) == 75
    for store in [*writers, reader]:
        store.close()
