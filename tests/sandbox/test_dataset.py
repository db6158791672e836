"""Unit tests of the sandbox dataset, record generator and cursors (no sockets)."""

from __future__ import annotations

import re
import tracemalloc
from array import array
from typing import Any

import orjson
import pytest

from syncline.sandbox.cursor import InvalidCursorError, decode_cursor, encode_cursor, start_after
from syncline.sandbox.dataset import Dataset, parse_instant
from syncline.sandbox.records import EPOCH, build_record, format_ts

FIELDS = [
    "id", "sku", "name", "description", "price", "currency", "stock", "category",
    "tags", "attributes", "created_at", "updated_at", "version",
]  # fmt: skip


def listing(dataset: Dataset) -> list[dict[str, Any]]:
    return dataset.records_between(0, len(dataset))


def test_same_seed_same_data_and_other_seed_differs() -> None:
    assert listing(Dataset(200, seed=7)) == listing(Dataset(200, seed=7))
    assert listing(Dataset(200, seed=7)) != listing(Dataset(200, seed=8))


def test_record_shape() -> None:
    records = listing(Dataset(500))
    sizes = [len(orjson.dumps(record)) for record in records]
    assert 350 <= sum(sizes) / len(sizes) <= 550
    for record in records:
        assert list(record) == FIELDS
        assert re.fullmatch(r"\d+\.\d\d", str(record["price"]))
        tags = record["tags"]
        assert isinstance(tags, list)
        assert 2 <= len(tags) <= 3
        assert len(set(tags)) == len(tags)
        assert set(record["attributes"]) == {"color", "size", "weight"}
        assert 100 <= len(str(record["description"])) <= 200
        assert record["version"] == 1
        assert record["created_at"] == record["updated_at"]


def test_base_updated_at_is_epoch_plus_id() -> None:
    dataset = Dataset(90_000)
    first, last = dataset.records_between(0, 1)[0], dataset.records_between(86_399, 86_400)[0]
    assert first["updated_at"] == "2024-01-01T00:00:01Z"
    assert last["id"] == 86_400
    assert last["updated_at"] == "2024-01-02T00:00:00Z"
    assert format_ts(EPOCH + 59) == "2024-01-01T00:00:59Z"


def test_every_version_changes_name_price_and_stock() -> None:
    for rid in (1, 2, 999):
        previous = build_record(123, rid, 1, EPOCH, EPOCH)
        for version in range(2, 60):
            current = build_record(123, rid, version, EPOCH, EPOCH + version)
            for field in ("name", "price", "stock"):
                assert current[field] != previous[field], (rid, version, field)
            assert current["sku"] == previous["sku"]
            previous = current


@pytest.mark.parametrize(
    ("value", "expected_first_id"),
    [
        ("2024-01-01T00:00:10Z", 10),
        ("2024-01-01T00:00:10+00:00", 10),
        ("2024-01-01T02:00:10+02:00", 10),
        ("2023-12-31T19:00:10-05:00", 10),
        ("2024-01-01T00:00:09.5Z", 10),
        ("2024-01-01T00:00:10.000001Z", 11),
        ("2024-01-01T00:00:10", 10),
        ("2020-01-01T00:00:00Z", 1),
    ],
)
def test_updated_since_is_inclusive_and_timezone_aware(value: str, expected_first_id: int) -> None:
    dataset = Dataset(100)
    start = dataset.start_for(value)
    assert dataset.records_between(start, start + 1)[0]["id"] == expected_first_id
    assert len(dataset) - start == 100 - expected_first_id + 1


def test_updated_since_edges() -> None:
    dataset = Dataset(100)
    assert dataset.start_for(None) == 0
    assert dataset.start_for("") == 0
    assert dataset.start_for("2030-01-01T00:00:00Z") == len(dataset)
    with pytest.raises(ValueError, match="Invalid isoformat"):
        dataset.start_for("yesterday")
    assert parse_instant("1970-01-01T00:00:00Z") == 0


def test_mutate_semantics() -> None:
    dataset = Dataset(1000)
    before = {record["id"]: record for record in listing(dataset)}
    result = dataset.mutate(update=37, insert=5, delete=4)
    assert len(result["updated"]) == 37
    assert result["inserted"] == [1001, 1002, 1003, 1004, 1005]
    assert len(result["deleted"]) == 4
    assert not set(result["updated"]) & set(result["deleted"])
    assert result["updated"] == sorted(result["updated"])

    after = listing(dataset)
    assert len(dataset) == 1000 + 5 - 4
    keys = [(record["updated_at"], record["id"]) for record in after]
    assert keys == sorted(keys)
    assert len({record["updated_at"] for record in after}) == len(after)
    tail = [record["id"] for record in after[-42:]]
    assert tail == result["updated"] + result["inserted"]
    assert all(after[-42 - 1]["updated_at"] < record["updated_at"] for record in after[-42:])
    by_id = {record["id"]: record for record in after}
    for rid in result["updated"]:
        assert by_id[rid]["version"] == 2
        assert by_id[rid]["created_at"] == before[rid]["created_at"]
        for field in ("name", "price", "stock"):
            assert by_id[rid][field] != before[rid][field]
    for rid in result["deleted"]:
        assert rid not in by_id
        assert dataset.record(rid) is None
    assert [record["id"] for record in dataset.all_records()] == sorted(by_id)


def test_mutate_is_deterministic_and_updates_again() -> None:
    first, second = Dataset(300, seed=3), Dataset(300, seed=3)
    for dataset in (first, second):
        dataset.mutate(update=20, insert=3, delete=2)
        dataset.mutate(update=150, delete=10)
    assert listing(first) == listing(second)
    assert max(int(record["version"]) for record in listing(first)) >= 2


def test_mutate_rejects_impossible_requests() -> None:
    dataset = Dataset(10)
    with pytest.raises(ValueError, match="cannot touch"):
        dataset.mutate(update=6, delete=5)
    with pytest.raises(ValueError, match=">= 0"):
        dataset.mutate(insert=-1)
    assert dataset.mutate(update=5, delete=5)["deleted"]
    assert len(dataset) == 5


def test_clock_is_virtual_and_strictly_increasing() -> None:
    dataset = Dataset(5)
    dataset.mutate(update=1)
    dataset.mutate(insert=2)
    assert [record["updated_at"] for record in listing(dataset)][-3:] == [
        "2024-01-01T00:00:06Z",
        "2024-01-01T00:00:07Z",
        "2024-01-01T00:00:08Z",
    ]


def test_changes_feed_seq_order_tombstones_and_end() -> None:
    dataset = Dataset(50)
    results, last_seq = dataset.changes(0, 1000)
    assert [entry["seq"] for entry in results] == list(range(1, 51))
    assert [entry["id"] for entry in results] == list(range(1, 51))
    assert last_seq == 50
    assert dataset.changes(50, 10) == ([], 50)

    result = dataset.mutate(update=3, insert=2, delete=2)
    results, last_seq = dataset.changes(50, 1000)
    assert [entry["seq"] for entry in results] == list(range(51, 58))
    assert last_seq == 57
    tombstones = [entry for entry in results if entry.get("deleted")]
    assert [entry["id"] for entry in tombstones] == result["deleted"]
    assert all(set(entry) == {"id", "seq", "deleted", "updated_at"} for entry in tombstones)
    live = [entry["id"] for entry in results if not entry.get("deleted")]
    assert live == result["updated"] + result["inserted"]

    # A full re-read lists every id once, at its latest seq, deletions included.
    everything, _ = dataset.changes(0, 1000)
    ids = [entry["id"] for entry in everything]
    assert len(ids) == len(set(ids)) == 52
    assert dataset.changes(3, 2)[1] in (4, 5, 6, 7)
    assert dataset.changes(999, 10) == ([], 999)


def test_keyset_position_survives_mutation() -> None:
    dataset = Dataset(100)
    key = dataset.key_at(39)  # record id 40
    dataset.mutate(update=30, insert=3, delete=10)
    rest = dataset.records_between(dataset.position_after(*key), len(dataset))
    rest_keys = [(record["updated_at"], record["id"]) for record in rest]
    everything = [(record["updated_at"], record["id"]) for record in listing(dataset)]
    assert rest_keys == [item for item in everything if item > (format_ts(key[0]), key[1])]


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(EPOCH + 5, 5)) == (EPOCH + 5, 5)
    for garbage in ("zzz", "!!!", "djE6eDp5", encode_cursor(1, 2)[:-2] + "@@", "bm9wZQ"):
        with pytest.raises(InvalidCursorError):
            decode_cursor(garbage)
    dataset = Dataset(10)
    assert start_after(dataset, None, 3) == 3
    assert start_after(dataset, encode_cursor(EPOCH + 5, 5), 0) == 5


def test_memory_stays_compact_for_a_million_records() -> None:
    tracemalloc.start()
    try:
        dataset = Dataset(1_000_000)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(dataset._ids, array)
    assert isinstance(dataset._ts, array)
    assert dataset._ids.typecode == dataset._ts.typecode == "q"
    assert len(dataset._ids) == len(dataset._ts) == 1_000_000
    assert dataset._touched == {}
    assert current < 40_000_000
    assert peak < 60_000_000
    page = dataset.records_between(500_000, 501_000)
    assert [record["id"] for record in page] == list(range(500_001, 501_001))
