"""Typed columns, the same in every store: values of each type, kept fresh by newest-wins,
declarations that change over time, indexes where asked, hostile names."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import syncline
from syncline import config_from_dict
from syncline.sandbox import SandboxProcess
from syncline.stores import Column, State, StateKey, Store, TableSpec, columns
from tests.stores.backends import Backend, normal

KEY = StateKey("src", "products", "{}")
COLUMNS = (
    Column("name", "name"),
    Column("price", "price", "numeric", index=True),
    Column("stock", "stock", "integer"),
    Column("weight", "attributes.weight", "real"),
    Column("active", "active", "boolean"),
    Column("updated", "updated_at", "timestamp"),
    Column("day", "day", "date"),
    Column("tags", "tags", "json"),
)
PRODUCTS = TableSpec("products", (), ("id",), columns=COLUMNS)


def write(store: Store, table: TableSpec, *records: dict[str, Any]) -> None:
    rows = [(r["id"], json.dumps(r), r.get("v")) for r in records]
    store.commit_page(table, rows, State(KEY, run_id="r"))


@pytest.fixture
def opened(backend: Backend) -> Iterator[tuple[Backend, str, Store]]:
    url = backend.url()
    store = backend.open(url)
    store.ensure_table(PRODUCTS)
    yield backend, url, store
    store.close()


def test_every_type_reads_the_same_in_every_store(
    opened: tuple[Backend, str, Store], caplog: pytest.LogCaptureFixture
) -> None:
    backend, url, store = opened
    lamp = {
        "id": 1, "name": "Lamp ünï 🚀", "price": "12.50", "stock": "7",
        "attributes": {"weight": 1.25}, "active": "true",
        "updated_at": "2024-03-01T10:00:00+01:00", "day": "2024-03-01", "tags": ["a", "b"],
    }  # fmt: skip
    exact = {
        "id": 2, "name": 42, "price": "12345678901234567890.123456789", "stock": 9.0,
        "active": 0, "updated_at": 1709283600, "day": "2024-03-01T23:30:00-02:00",
        "tags": {"nested": [1, None]},
    }  # fmt: skip
    columns.warn_again()
    with caplog.at_level(logging.WARNING, logger="syncline"):
        write(store, PRODUCTS, lamp, exact, {"id": 3, "stock": "many", "price": "n/a"})
    assert backend.raw_columns(url, PRODUCTS) == {
        (1,): {"name": "Lamp ünï 🚀", "price": "12.5", "stock": 7, "weight": 1.25,
               "active": True, "updated": "2024-03-01T09:00:00.000000Z", "day": "2024-03-01",
               "tags": ["a", "b"]},
        (2,): {"name": "42", "price": "12345678901234567890.123456789", "stock": 9,
               "weight": None, "active": False, "updated": "2024-03-01T09:00:00.000000Z",
               "day": "2024-03-02", "tags": {"nested": [1, None]}},
        (3,): {"name": None, "price": None, "stock": None, "weight": None, "active": None,
               "updated": None, "day": None, "tags": None},
    }  # fmt: skip
    warned = [r.getMessage() for r in caplog.records if "stored NULL" in r.getMessage()]
    assert any("column stock" in m and "many is not a integer" in m for m in warned)
    assert any("column price" in m for m in warned)
    assert backend.raw_rows(url, PRODUCTS)[0][1] in (lamp, exact)  # _data stays whole


def test_columns_follow_the_newest_version_and_survive_a_soft_delete(
    opened: tuple[Backend, str, Store],
) -> None:
    backend, url, store = opened
    write(store, PRODUCTS, {"id": 1, "name": "old", "price": "1.00", "v": 2})
    write(store, PRODUCTS, {"id": 1, "name": "new", "price": "2.00", "v": 3})
    write(store, PRODUCTS, {"id": 1, "name": "stale", "price": "0.50", "v": 1})  # older copy
    assert backend.raw_columns(url, PRODUCTS)[(1,)]["name"] == "new"
    store.commit_page(PRODUCTS, [], State(KEY), deletes=[(1, json.dumps({"id": 1}), 4)])
    assert backend.raw_columns(url, PRODUCTS)[(1,)] == {
        **dict.fromkeys(c.name for c in COLUMNS), "name": "new", "price": "2"
    }  # fmt: skip


def test_a_changed_declaration_refills_existing_rows(opened: tuple[Backend, str, Store]) -> None:
    backend, url, store = opened
    write(store, PRODUCTS, *({"id": i, "name": f"n{i}", "stock": str(i), "sku": f"S{i}"}
                             for i in range(1, 2502)))  # fmt: skip
    changed = TableSpec(
        "products", (), ("id",),
        columns=(
            Column("name", "name"),
            Column("stock", "stock", "text"),  # type changed: dropped and refilled
            Column("sku", "sku", index=True),  # new: filled from the stored _data
        ),
    )  # fmt: skip
    again = backend.open(url)
    try:
        again.ensure_table(changed)
        found = backend.raw_columns(url, changed)
        assert len(found) == 2501
        assert found[(2500,)] == {"name": "n2500", "stock": "2500", "sku": "S2500"}
        assert backend.raw_indexes(url, changed) == {"sku"}  # price's index went with it
        write(again, changed, {"id": 7, "name": "seven", "stock": 70, "sku": "S7b"})
        assert backend.raw_columns(url, changed)[(7,)] == {
            "name": "seven", "stock": "70", "sku": "S7b"
        }  # fmt: skip
        again.ensure_table(changed)  # the same declaration again: nothing to do
        assert backend.raw_columns(url, changed)[(7,)]["sku"] == "S7b"
    finally:
        again.close()


def test_indexes_exactly_where_asked(opened: tuple[Backend, str, Store]) -> None:
    backend, url, store = opened
    assert backend.raw_indexes(url, PRODUCTS) == {"price"}
    flipped = TableSpec(
        "products", (), ("id",),
        columns=tuple(Column(c.name, c.path, c.type, index=c.name == "name") for c in COLUMNS),
    )  # fmt: skip
    store.ensure_table(flipped)
    assert backend.raw_indexes(url, flipped) == {"name"}


HOSTILE = ['"; DROP TABLE products;--', 'a"b', "50%s off %(x)s", "c" * 99 + "a", "c" * 99 + "b"]


def test_hostile_column_names_stay_apart_and_inert(backend: Backend) -> None:
    url = backend.url()
    store = backend.open(url)
    table = TableSpec(
        "hostile", (), ("id",),
        columns=tuple(Column(name, f"v[{i}]", "integer", index=True)
                      for i, name in enumerate(HOSTILE)),
    )  # fmt: skip
    try:
        store.ensure_table(table)
        store.commit_page(table, [(1, json.dumps({"v": [0, 1, 2, 3, 4]}), None)], State(KEY))
        assert backend.raw_columns(url, table) == {(1,): dict(zip(HOSTILE, range(5), strict=True))}
        assert backend.raw_indexes(url, table) == set(HOSTILE)
    finally:
        store.close()


def test_a_column_may_not_shadow_a_key_or_meta_column(backend: Backend) -> None:
    store = backend.open()
    try:
        for name in ("id", "_data", "_deleted_at"):
            bad = TableSpec("bad", (), ("id",), columns=(Column(name, "x"),))
            with pytest.raises(syncline.StoreError, match="collide"):
                store.ensure_table(bad)
    finally:
        store.close()


def test_a_synced_stream_is_queryable_by_its_columns(
    backend: Backend, sandbox: SandboxProcess, tmp_path: Any
) -> None:
    url = backend.url()
    stream = {
        "path": "/page/items", "records": "data", "primary_key": "id", "updated_at": "updated_at",
        "paginate": {"type": "page_number", "size_param": "per_page", "size": 200,
                     "last_page": "last_page"},
        "columns": {"name": "name", "price": {"path": "price", "type": "numeric", "index": True},
                    "stock": {"path": "stock", "type": "integer"}, "color": "attributes.color",
                    "updated": {"path": "updated_at", "type": "timestamp"}},
    }  # fmt: skip
    raw = {"store": url, "sources": {"sb": {"base_url": sandbox.base_url,
                                            "streams": {"items": stream}}}}  # fmt: skip
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert syncline.sync(cfg).ok
    sandbox.mutate(update=5)
    assert syncline.sync(cfg).ok
    table = TableSpec(
        "items", (), ("id",),
        columns=(Column("name", "name"), Column("price", "price", "numeric"),
                 Column("stock", "stock", "integer"), Column("color", "attributes.color"),
                 Column("updated", "updated_at", "timestamp")),
    )  # fmt: skip
    expected = {
        (r["id"],): {
            "name": r["name"], "price": normal("numeric", r["price"]),
            "stock": r["stock"], "color": r["attributes"]["color"],
            "updated": syncline_timestamp(r["updated_at"]),
        }
        for r in sandbox.records()
    }  # fmt: skip
    assert backend.raw_columns(url, table) == expected
    assert backend.raw_indexes(url, table) == {"price"}


def syncline_timestamp(text: str) -> str:
    from syncline.timestamps import normalize

    value = normalize(text)
    assert isinstance(value, str)
    return value
