"""How a push builds its requests and reads answers (no server needed)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncline import config_from_dict
from syncline.errors import BadPayload, ConfigError
from syncline.http import Response
from syncline.push.target import WriteTarget, has_values, patched, same_value


def target(**write: Any) -> WriteTarget:
    raw = {
        "sources": {
            "s": {
                "base_url": "https://api.example.com/v1",
                "partitions": {"division": [7]},
                "streams": {
                    "accounts": {
                        "path": "/{division}/accounts",
                        "primary_key": "ID",
                        "write": {"path": "/{division}/accounts/{ID}", **write},
                    }
                },
            }
        }
    }
    config = config_from_dict(raw)
    source = config.sources["s"]
    return WriteTarget(source, source.streams["accounts"])


def answer(body: bytes, content_type: str = "application/json") -> Response:
    return Response(200, httpx.Headers({"content-type": content_type}), (), body, "https://x")


RECORD = {
    "ID": "a/b c",
    "Name": "Acme",
    "Address": {"City": "Delft"},
    "__metadata": {"etag": "W/1"},
}


def test_changed_body_sends_only_the_set_fields_to_a_quoted_url() -> None:
    spec = target(method="PUT").write_request({"division": 7}, RECORD, {"Name": "Bakery"})
    assert spec.method == "PUT"
    assert spec.url == "https://api.example.com/v1/7/accounts/a%2Fb%20c"
    assert spec.json == {"Name": "Bakery"}
    assert "If-Match" not in spec.headers


def test_full_body_is_the_stored_record_with_the_change_and_nested_fields() -> None:
    spec = target(body="full").write_request({"division": 7}, RECORD, {"Address.City": "Gouda"})
    assert spec.method == "PATCH"
    assert spec.json == {**RECORD, "Address": {"City": "Gouda"}}
    assert RECORD["Address"] == {"City": "Delft"}  # the mirror's copy is left alone


def test_etag_from_the_stored_record_is_sent_as_if_match() -> None:
    spec = target(etag="__metadata.etag").write_request({"division": 7}, RECORD, {"Name": "B"})
    assert spec.headers["If-Match"] == "W/1"


def test_read_request_fills_params_without_quoting_and_path_with_quoting() -> None:
    spec = target(
        read_path="/{division}/sync", read_params={"$filter": "ID eq '{ID}'"}
    ).read_request({"division": 7}, RECORD)
    assert spec.url == "https://api.example.com/v1/7/sync"
    assert spec.params == {"$filter": "ID eq 'a/b c'"}


def test_a_missing_path_value_is_a_clear_error() -> None:
    with pytest.raises(BadPayload, match=r"no value for \{ID\}"):
        target().write_request({"division": 7}, {"Name": "x"}, {"Name": "y"})


def test_records_in_answers() -> None:
    write = target(record="d", read_record="d.results[0]")
    assert write.written_record(answer(b'{"d": {"ID": 1}}')) == {"ID": 1}
    assert write.read_record(answer(b'{"d": {"results": [{"ID": 2}]}}')) == {"ID": 2}
    assert write.read_record(answer(b'{"d": {"results": []}}')) is None
    assert write.written_record(answer(b"")) is None
    assert write.written_record(answer(b"<html>", "text/html")) is None
    assert write.is_same_record({"ID": "a/b c"}, RECORD)
    assert not write.is_same_record({"Name": "Acme"}, RECORD)


def test_json_equality_of_values() -> None:
    assert same_value(1, 1.0)
    assert not same_value(True, 1)
    assert not same_value("1", 1)
    assert same_value({"a": [1, 2]}, {"a": [1.0, 2]})
    assert not same_value({"a": 1}, {"a": 1, "b": 2})
    assert has_values(RECORD, {"Address.City": "Delft", "Name": "Acme"})
    assert not has_values(RECORD, {"Address.Street": None, "Name": "Other"})
    assert patched({}, {"a.b": 1, "c": 2}) == {"a": {"b": 1}, "c": 2}


def test_config_refuses_placeholders_that_are_neither_partition_nor_key() -> None:
    with pytest.raises(ConfigError, match=r"write.path .* uses \[.Code.\]"):
        target(path="/{division}/accounts/{Code}")
