"""RecordShaper and decode_body: from a response body to store rows."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from syncline.config import StreamConfig
from syncline.errors import BadPayload
from syncline.records import RecordShaper, decode_body


def shaper(**stream: Any) -> RecordShaper:
    stream.setdefault("primary_key", "id")
    return RecordShaper(StreamConfig.model_validate(stream))


def strict(**stream: Any) -> RecordShaper:
    """A shaper that fails the page on an invalid record instead of quarantining it."""
    return shaper(on_invalid_record="fail", **stream)


def pair(shaper: RecordShaper, records: list[Any], partition: tuple[Any, ...]) -> tuple[Any, Any]:
    shaped = shaper.rows(records, partition)
    assert shaped.rejects == []
    return shaped.rows, shaped.newest


GRAPHQL = {"query": "query { items { nodes { id } } }"}


# --- select --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "body", "expected"),
    [
        ({"records": "data"}, {"data": [{"id": 1}, {"id": 2}]}, [{"id": 1}, {"id": 2}]),
        ({"records": "data"}, {"data": []}, []),
        ({"records": "data.items"}, {"data": {"items": [{"id": 1}]}}, [{"id": 1}]),
        (
            {"records": "data.demarche.dossiers.nodes", "graphql": GRAPHQL},
            {"data": {"demarche": {"dossiers": {"nodes": [{"id": 3}]}}}},
            [{"id": 3}],
        ),
        (
            {"records": '_embedded."inx:items"'},
            {"_embedded": {"inx:items": [{"id": 4}]}},
            [{"id": 4}],
        ),
        ({}, [{"id": 1}], [{"id": 1}]),
        ({}, [], []),
        (
            {"graphql": GRAPHQL, "records": "data.x"},
            {"data": {"x": [{"id": 1}]}, "errors": []},
            [{"id": 1}],
        ),
        (
            {"records": "data"},
            {"data": [{"id": 1}], "errors": [{"message": "REST APIs may say this"}]},
            [{"id": 1}],
        ),
    ],
)
def test_select(stream: dict[str, Any], body: Any, expected: list[Any]) -> None:
    assert shaper(**stream).select(body) == expected


@pytest.mark.parametrize(
    ("stream", "body", "match"),
    [
        ({"records": "data"}, {"items": []}, "no records at 'data'"),
        ({"records": "data"}, {"data": None}, "no records at 'data'"),
        ({"records": "data.items"}, {"data": "maintenance"}, "no records at 'data.items'"),
        (
            {"records": "data"},
            {"data": {"id": 1}},
            "expected a list of records at 'data', got dict",
        ),
        ({"records": "data"}, [], "no records"),
        ({}, {"data": []}, "expected a list of records as the body, got dict"),
        ({}, None, r"no records \(body\)"),
    ],
)
def test_select_rejects_a_body_without_a_record_list(
    stream: dict[str, Any], body: Any, match: str
) -> None:
    with pytest.raises(BadPayload, match=match):
        shaper(**stream).select(body)


@pytest.mark.parametrize(
    ("errors", "match"),
    [
        ([{"message": "Demarche not found"}], "Demarche not found"),
        ([{"message": "a"}, {"message": "b"}], "a; b"),
        (["plain string error"], "plain string error"),
        ([{"extensions": {"code": "X"}}], "extensions"),
    ],
)
def test_graphql_errors_are_a_bad_payload(errors: list[Any], match: str) -> None:
    body = {"data": {"x": None}, "errors": errors}
    with pytest.raises(BadPayload, match=f"GraphQL errors: .*{match}"):
        shaper(records="data.x", graphql=GRAPHQL).select(body)


def test_graphql_errors_win_even_with_partial_data() -> None:
    body = {"data": {"x": [{"id": 1}]}, "errors": [{"message": "partial"}]}
    with pytest.raises(BadPayload, match="partial"):
        shaper(records="data.x", graphql=GRAPHQL).select(body)


def test_graphql_error_message_is_truncated() -> None:
    body = {"errors": [{"message": "x" * 5000}]}
    with pytest.raises(BadPayload) as info:
        shaper(records="data.x", graphql=GRAPHQL).select(body)
    assert len(str(info.value)) < 400


# --- rows ----------------------------------------------------------------------------------


def test_rows_are_partition_key_json_and_normalized_updated_at() -> None:
    records = [
        {"id": 1, "updated_at": "2024-03-01T13:00:00+01:00", "name": "é"},
        {"id": 2, "updated_at": None},
    ]
    rows, newest = pair(shaper(updated_at="updated_at"), records, (7, "eu"))
    assert [row[:3] for row in rows] == [(7, "eu", 1), (7, "eu", 2)]
    assert [orjson.loads(row[3]) for row in rows] == records
    assert [row[4] for row in rows] == ["2024-03-01T12:00:00.000000Z", None]
    assert newest == ("2024-03-01T12:00:00.000000Z", "2024-03-01T13:00:00+01:00")


def test_rows_without_partition_or_updated_at() -> None:
    rows, newest = pair(shaper(), [{"id": "a"}], ())
    assert rows == [("a", '{"id":"a"}', None)]
    assert newest is None


def test_composite_and_nested_keys() -> None:
    records = [{"org": {"id": 9}, "sku": "X-1", "v": 1}]
    rows, _ = pair(shaper(primary_key=["org.id", "sku"]), records, (1,))
    assert rows[0][:3] == (1, 9, "X-1")


def test_object_keys_are_stored_as_canonical_json() -> None:
    rows, _ = pair(shaper(primary_key="key"), [{"key": {"b": 1, "a": [2]}}], ())
    assert rows[0][0] == '{"a":[2],"b":1}'


@pytest.mark.parametrize("key", [0, False, "0", -1])
def test_falsy_but_present_keys_are_valid(key: Any) -> None:
    rows, _ = pair(shaper(), [{"id": key}], ())
    assert rows[0][0] == key


@pytest.mark.parametrize("record", [{}, {"id": None}, {"id": ""}, {"name": "no id"}])
def test_missing_or_empty_primary_key_is_a_bad_payload(record: dict[str, Any]) -> None:
    with pytest.raises(BadPayload, match="record 1 has no primary key 'id'"):
        strict().rows([{"id": 1}, record], ())


def test_missing_part_of_a_composite_key_is_named() -> None:
    with pytest.raises(BadPayload, match="'sku'"):
        strict(primary_key=["id", "sku"]).rows([{"id": 1}], ())


@pytest.mark.parametrize("record", [[1, 2], "id", 3, None])
def test_non_object_record_is_a_bad_payload(record: Any) -> None:
    with pytest.raises(BadPayload, match="record 0 is a"):
        strict().rows([record], ())


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            ["2024-01-01T00:00:00Z", "2024-01-01T02:00:00+01:00", "2023-12-31T23:00:00Z"],
            ("2024-01-01T01:00:00.000000Z", "2024-01-01T02:00:00+01:00"),
        ),
        ([3, 17, 5], (17, 17)),
        ([None, None], None),
        (
            [None, "2024-05-05T00:00:00Z", None],
            ("2024-05-05T00:00:00.000000Z", "2024-05-05T00:00:00Z"),
        ),
        (
            ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000000Z"],
            ("2024-01-01T00:00:00.000000Z", "2024-01-01T00:00:00Z"),
        ),
    ],
)
def test_newest_is_the_greatest_instant_with_its_raw_form(
    values: list[Any], expected: tuple[Any, Any] | None
) -> None:
    records = [{"id": i, "ts": value} for i, value in enumerate(values)]
    _, newest = pair(shaper(updated_at="ts"), records, ())
    assert newest == expected


def test_newest_ignores_a_value_of_another_kind() -> None:
    records = [{"id": 1, "ts": "2024-01-01T00:00:00Z"}, {"id": 2, "ts": 99}]
    _, newest = pair(shaper(updated_at="ts"), records, ())
    assert newest == ("2024-01-01T00:00:00.000000Z", "2024-01-01T00:00:00Z")


def test_empty_page_has_no_rows_and_no_newest() -> None:
    assert pair(shaper(updated_at="ts"), [], (1,)) == ([], None)


# --- decode_body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b'{"data": [1]}', {"data": [1]}), (b"[]", []), (b'  {"a": "\xc3\xa9"}\n', {"a": "é"})],
)
def test_decode_body(content: bytes, expected: Any) -> None:
    assert decode_body(content, "application/json") == expected


@pytest.mark.parametrize(
    ("content", "content_type", "match"),
    [
        (
            b"<!DOCTYPE html><html><body>Login</body></html>",
            "text/html",
            r"HTML page \(Content-Type text/html\)",
        ),
        (b"\n  <html>", None, "HTML page"),
        (b'{"data": [1, 2', "application/json", "malformed JSON"),
        (b'{"data": [1, 2]', None, "malformed JSON"),
        (b"", "application/json", "malformed JSON"),
        (b"OK", "text/plain", "malformed JSON"),
    ],
)
def test_decode_body_rejects_html_and_truncated_json(
    content: bytes, content_type: str | None, match: str
) -> None:
    with pytest.raises(BadPayload, match=match):
        decode_body(content, content_type)


# --- quarantine (the default for invalid records) ------------------------------------------


def test_invalid_records_are_quarantined_with_their_reason_and_the_rest_stored() -> None:
    records = [{"id": 1}, {"name": "no key"}, "not an object", {"id": ""}, {"id": 2}]
    shaped = shaper().rows(records, ())
    assert [row[0] for row in shaped.rows] == [1, 2]
    reasons = [reject.reason for reject in shaped.rejects]
    assert reasons == [
        "record 1 has no primary key 'id'",
        "record 2 is a str, not an object",
        "record 3 has no primary key 'id'",
    ]
    assert orjson.loads(shaped.rejects[0].record) == {"name": "no key"}


def test_a_lone_surrogate_is_kept_escaped_and_never_fails_the_page() -> None:
    body = decode_body(b'{"items": [{"id": 1, "name": "\\ud800"}, {"id": 2}]}', None)
    shaped = shaper(records="items").rows(body["items"], ())
    assert [row[0] for row in shaped.rows] == [1, 2]
    assert '"\\ud800"' in shaped.rows[0][1]
    assert shaped.rejects == []


def test_a_key_that_is_not_utf8_is_quarantined_alone() -> None:
    body = decode_body(b'{"items": [{"id": "\\udc80"}, {"id": 2}]}', None)
    shaped = shaper(records="items").rows(body["items"], ())
    assert [row[0] for row in shaped.rows] == [2]
    reasons = [r.reason for r in shaped.rejects]
    assert reasons == ["record 0 has a primary key 'id' that is not UTF-8"]


def test_graphql_throttled_is_a_rate_limit_with_the_restore_wait() -> None:
    from syncline.errors import RateLimited

    body = {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": 101,
                "throttleStatus": {"currentlyAvailable": 1, "restoreRate": 50},
            }
        },
    }
    with pytest.raises(RateLimited) as info:
        shaper(graphql=GRAPHQL, records="data.x").select(body)
    assert info.value.retry_after == pytest.approx(2.0)


def test_zoneless_timestamps_follow_the_source_timezone() -> None:
    from syncline.config import SourceConfig

    stream = {"primary_key": "id", "updated_at": "ts"}
    source = SourceConfig.model_validate(
        {"base_url": "https://x.test", "timezone": "Europe/Rome", "streams": {"s": stream}}
    )
    rome = RecordShaper(source.streams["s"], source)
    shaped = rome.rows([{"id": 1, "ts": "2024-07-01T12:00:00"}], ())
    assert shaped.rows[0][-1] == "2024-07-01T10:00:00.000000Z"  # CEST is UTC+2


def test_zoneless_timestamps_without_a_timezone_warn_once_and_read_as_utc(
    caplog: pytest.LogCaptureFixture,
) -> None:
    utc = shaper(updated_at="ts")
    shaped = utc.rows([{"id": 1, "ts": "2024-07-01T12:00:00"}, {"id": 2, "ts": "2024-07-01"}], ())
    utc.rows([{"id": 3, "ts": "2024-07-02T12:00:00"}], ())
    assert shaped.rows[0][-1] == "2024-07-01T12:00:00.000000Z"
    warnings = [r for r in caplog.records if "without a time zone" in r.getMessage()]
    assert len(warnings) == 1


# --- numbers and strings a fast parser would mangle (D8, D9) -------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 123456789012345678901234567890}', 123456789012345678901234567890),
        (b'{"a": 18446744073709551616}', 18446744073709551616),
        (b'{"a": 0.12345678901234567890123}', "0.12345678901234567890123"),
        (b'{"a": 1e400}', "1e400"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": 0.1}', 0.1),
        (b'{"a": 12.5, "id": "1234567890123456789"}', 12.5),
    ],
)
def test_numbers_are_never_silently_rounded(body: bytes, expected: Any) -> None:
    assert decode_body(body, None)["a"] == expected


def test_huge_integers_survive_into_the_stored_json_and_as_keys() -> None:
    body = decode_body(b'{"items": [{"id": 99999999999999999999, "n": 1e400}]}', None)
    shaped = shaper(records="items").rows(body["items"], ())
    (row,) = shaped.rows
    assert row[0] == "99999999999999999999"
    assert json.loads(row[1]) == {"id": 99999999999999999999, "n": "1e400"}


# --- tombstones ----------------------------------------------------------------------------


def test_a_predicate_turns_records_into_tombstones() -> None:
    shaped = shaper(deleted="deleted").rows([{"id": 1}, {"id": 2, "deleted": True}], ())
    assert [row[0] for row in shaped.rows] == [1]
    assert [row[0] for row in shaped.deletes] == [2]


def test_a_list_of_bare_keys_on_the_page_deletes_those_keys() -> None:
    body = {"items": [{"id": "a"}], "removed": ["b", "c"]}
    shaped = shaper(deleted={"records": "removed"}, updated_at="at").rows(body["items"], (7,), body)
    assert [row[:2] for row in shaped.deletes] == [(7, "b"), (7, "c")]
    assert json.loads(shaped.deletes[0][2]) == {"id": "b"}


def test_listed_deletion_records_keep_their_modification_time() -> None:
    body = {"deleted": [{"id": 3, "at": "2024-05-01T10:00:00+02:00"}]}
    shaped = shaper(deleted={"records": "deleted"}, updated_at="at").rows([], (), body)
    assert shaped.deletes[0][-1] == "2024-05-01T08:00:00.000000Z"


def test_a_listed_deletion_without_a_key_is_quarantined_not_applied() -> None:
    body = {"deleted": [{"name": "no key"}, None]}
    shaped = shaper(deleted={"records": "deleted"}).rows([], (), body)
    assert shaped.deletes == []
    assert len(shaped.rejects) == 2
    assert "deletion" in shaped.rejects[0].reason


def test_a_deletions_path_that_is_not_a_list_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload, match="list of deletions at 'deleted'"):
        shaper(deleted={"records": "deleted"}).rows([], (), {"deleted": {"id": 1}})


def test_tombstones_config_needs_a_predicate_or_a_list() -> None:
    with pytest.raises(ValueError, match="'when'"):
        StreamConfig.model_validate({"primary_key": "id", "deleted": {}})
    assert StreamConfig.model_validate({"primary_key": "id", "deleted": "x"}).deleted is not None
