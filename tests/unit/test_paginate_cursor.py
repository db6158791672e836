"""CursorPaginator: the body's cursor goes back as a parameter until a stop signal."""

from __future__ import annotations

from typing import Any

import pytest

from syncline.config.strategies import CursorPaginate
from syncline.paginate import Page
from syncline.paginate.cursor import CursorPaginator
from syncline.request import RequestSpec


def page(body: Any, count: int) -> Page:
    return Page(body=body, headers={}, link_headers=(), url="http://api.test/x", record_count=count)


def paginator(**options: Any) -> CursorPaginator:
    options.setdefault("cursor_path", "meta.next")
    return CursorPaginator(CursorPaginate(type="cursor", **options))


@pytest.mark.parametrize("resume", [None, "abc", 17])
def test_start_continues_from_a_resume_cursor(resume: Any) -> None:
    assert paginator().start(resume) == {"cursor": resume}


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ({"cursor": None}, {"q": 1}),
        ({"cursor": ""}, {"q": 1}),
        ({"cursor": "abc"}, {"q": 1, "cursor": "abc"}),
        ({"cursor": 0}, {"q": 1, "cursor": 0}),  # CouchDB: since=0 is a real cursor
    ],
)
def test_apply_sends_the_cursor_only_when_there_is_one(
    position: dict[str, Any], expected: dict[str, Any]
) -> None:
    base = RequestSpec(method="GET", url="u", params={"q": 1})
    assert paginator().apply(position, base).params == expected


def test_apply_sends_size_and_renamed_cursor_param() -> None:
    pager = paginator(cursor_param="since", size_param="limit", size=500)
    request = pager.apply({"cursor": "42"}, RequestSpec(method="GET", url="u"))
    assert request.params == {"since": "42", "limit": 500}


CURSOR_CASES: list[tuple[str, dict[str, Any], Any, int, dict[str, Any] | None]] = [
    ("next cursor", {}, {"meta": {"next": "c2"}}, 10, {"cursor": "c2"}),
    ("integer cursor", {}, {"meta": {"next": 0}}, 10, {"cursor": 0}),
    ("null cursor", {}, {"meta": {"next": None}}, 10, None),
    ("empty cursor", {}, {"meta": {"next": ""}}, 10, None),
    ("missing cursor", {}, {"meta": {}}, 10, None),
    ("empty page", {}, {"meta": {"next": "c2"}}, 0, None),
    ("has_more false", {"has_more": "more"}, {"meta": {"next": "c2"}, "more": False}, 10, None),
    ("has_more 'false'", {"has_more": "more"}, {"meta": {"next": "c2"}, "more": "false"}, 10, None),
    (
        "has_more true",
        {"has_more": "more"},
        {"meta": {"next": "c2"}, "more": True},
        10,
        {"cursor": "c2"},
    ),
    ("has_more absent", {"has_more": "more"}, {"meta": {"next": "c2"}}, 10, {"cursor": "c2"}),
]


@pytest.mark.parametrize(
    ("options", "body", "count", "expected"),
    [case[1:] for case in CURSOR_CASES],
    ids=[case[0] for case in CURSOR_CASES],
)
def test_advance(
    options: dict[str, Any], body: Any, count: int, expected: dict[str, Any] | None
) -> None:
    assert paginator(**options).advance({"cursor": "c1"}, page(body, count)) == expected


def test_couchdb_feed_same_cursor_with_empty_page_is_the_end_not_a_loop() -> None:
    pager = paginator(cursor_path="last_seq", cursor_param="since")
    position = pager.advance({"cursor": None}, page({"results": [1, 2], "last_seq": 2}, 2))
    assert position == {"cursor": 2}
    end = page({"results": [], "last_seq": 2}, 0)
    assert pager.advance(position, end) is None
    assert pager.final_cursor(position, end) == 2


@pytest.mark.parametrize(
    ("position", "body", "expected"),
    [
        ({"cursor": "c1"}, {"meta": {"next": "c2"}}, "c2"),
        ({"cursor": "c1"}, {"meta": {"next": None}}, "c1"),
        ({"cursor": "c1"}, {"meta": {"next": ""}}, "c1"),
        ({"cursor": "c1"}, {}, "c1"),
        ({"cursor": None}, {"meta": {"next": None}}, None),
    ],
)
def test_final_cursor_keeps_the_previous_cursor_when_the_last_page_has_none(
    position: dict[str, Any], body: Any, expected: Any
) -> None:
    assert paginator().final_cursor(position, page(body, 3)) == expected
