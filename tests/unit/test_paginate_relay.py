"""RelayPaginator: pageInfo drives the ``after`` variable; a broken pageInfo is a bad payload."""

from __future__ import annotations

from typing import Any

import pytest

from syncline.config.strategies import RelayPaginate
from syncline.errors import BadPayload, PermanentError
from syncline.paginate import Page
from syncline.paginate.relay import RelayPaginator
from syncline.request import RequestSpec

PAGE_INFO = "data.items.pageInfo"


def page(page_info: Any, count: int = 5) -> Page:
    body = {"data": {"items": {"nodes": list(range(count)), "pageInfo": page_info}}}
    return Page(
        body=body, headers={}, link_headers=(), url="http://api.test/graphql", record_count=count
    )


def paginator(**options: Any) -> RelayPaginator:
    return RelayPaginator(RelayPaginate(type="relay", page_info=PAGE_INFO, **options))


def graphql(variables: dict[str, Any]) -> RequestSpec:
    return RequestSpec(
        method="POST",
        url="http://api.test/graphql",
        json={"query": "q", "operationName": "op", "variables": variables},
        graphql=True,
    )


def test_apply_sets_after_and_first_as_variables() -> None:
    request = paginator(size=50).apply({"cursor": "abc"}, graphql({"number": 42}))
    assert request.json == {
        "query": "q",
        "operationName": "op",
        "variables": {"number": 42, "after": "abc", "first": 50},
    }
    assert request.params == {}


@pytest.mark.parametrize("cursor", [None, ""])
def test_first_request_has_no_after_and_keeps_configured_first(cursor: Any) -> None:
    request = paginator().apply({"cursor": cursor}, graphql({"first": 100}))
    assert request.json is not None
    assert request.json["variables"] == {"first": 100}


def test_renamed_after_variable() -> None:
    pager = RelayPaginator(
        RelayPaginate.model_validate(
            {"type": "relay", "page_info": PAGE_INFO, "after_variable": "cursor"}
        )
    )
    request = pager.apply({"cursor": "x"}, graphql({}))
    assert request.json is not None
    assert request.json["variables"] == {"cursor": "x"}


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"hasNextPage": True, "endCursor": "c2"}, {"cursor": "c2"}),
        ({"hasNextPage": "true", "endCursor": "c2"}, {"cursor": "c2"}),
        ({"hasNextPage": False, "endCursor": "c2"}, None),
        ({"hasNextPage": False, "endCursor": None}, None),
        ({"endCursor": "c2"}, None),
    ],
)
def test_advance(info: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert paginator().advance({"cursor": "c1"}, page(info)) == expected


def test_start_resumes_from_cursor() -> None:
    assert paginator().start("c9") == {"cursor": "c9"}
    assert paginator().start() == {"cursor": None}


@pytest.mark.parametrize("end_cursor", [None, ""])
def test_has_next_page_without_end_cursor_is_a_bad_payload(end_cursor: Any) -> None:
    with pytest.raises(BadPayload, match="endCursor"):
        paginator().advance({"cursor": "c1"}, page({"hasNextPage": True, "endCursor": end_cursor}))


def test_has_next_page_without_end_cursor_key_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload):
        paginator().advance({"cursor": None}, page({"hasNextPage": True}))


@pytest.mark.parametrize("body", [{}, {"data": None}, {"data": {"items": {"nodes": []}}}, []])
def test_missing_page_info_is_a_bad_payload_naming_the_path(body: Any) -> None:
    bad = Page(body=body, headers={}, link_headers=(), url="u", record_count=0)
    with pytest.raises(BadPayload, match=r"data\.items\.pageInfo"):
        paginator().advance({"cursor": None}, bad)


def test_page_info_that_is_not_an_object_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload):
        paginator().advance({"cursor": None}, page(["hasNextPage"]))


def test_bad_payload_is_permanent_so_it_is_not_retried() -> None:
    assert issubclass(BadPayload, PermanentError)


def test_renamed_page_info_fields() -> None:
    pager = paginator(has_next_page="more", end_cursor="last")
    assert pager.advance({"cursor": None}, page({"more": True, "last": "z"})) == {"cursor": "z"}


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"hasNextPage": True, "endCursor": "c2"}, "c2"),
        ({"hasNextPage": False, "endCursor": "c2"}, "c2"),
        ({"hasNextPage": False, "endCursor": None}, "c1"),
        ({"hasNextPage": False, "endCursor": ""}, "c1"),
    ],
)
def test_final_cursor_keeps_the_newest_known_cursor(info: dict[str, Any], expected: str) -> None:
    assert paginator().final_cursor({"cursor": "c1"}, page(info)) == expected
