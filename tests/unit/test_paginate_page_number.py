"""PageNumberPaginator: each stop signal of the module docstring, one page at a time."""

from __future__ import annotations

from typing import Any

import pytest

from syncline.config.strategies import PageNumberPaginate
from syncline.paginate import Page
from syncline.paginate.page_number import PageNumberPaginator
from syncline.request import RequestSpec


def page(body: Any, count: int) -> Page:
    return Page(body=body, headers={}, link_headers=(), url="http://api.test/x", record_count=count)


def paginator(**options: Any) -> PageNumberPaginator:
    options.setdefault("size_param", "per_page")
    options.setdefault("size", 100)
    return PageNumberPaginator(PageNumberPaginate(type="page_number", **options))


def next_page(position: dict[str, Any] | None) -> int | None:
    return None if position is None else int(position["page"])


@pytest.mark.parametrize(("first", "expected"), [(1, {"page": 1}), (0, {"page": 0})])
def test_start_at_first_page_and_ignore_resume_cursor(first: int, expected: dict[str, int]) -> None:
    assert paginator(first_page=first).start() == expected
    assert paginator(first_page=first).start("some-cursor") == expected


def test_apply_sets_page_and_size_query_params_keeping_others() -> None:
    base = RequestSpec(method="GET", url="http://api.test/x", params={"fieldset": "detailed"})
    request = paginator(page_param="p").apply({"page": 3}, base)
    assert request.params == {"fieldset": "detailed", "p": 3, "per_page": 100}
    assert base.params == {"fieldset": "detailed"}  # the base request is not mutated


def test_apply_without_size_sends_only_the_page() -> None:
    request = paginator(size=None).apply({"page": 2}, RequestSpec(method="GET", url="u"))
    assert request.params == {"page": 2}


def test_apply_to_graphql_request_sets_variables_not_query() -> None:
    base = RequestSpec(
        method="POST", url="u", json={"query": "q", "variables": {"x": 1}}, graphql=True
    )
    request = paginator().apply({"page": 2}, base)
    assert request.params == {}
    assert request.json == {"query": "q", "variables": {"x": 1, "page": 2, "per_page": 100}}


# (options, position, body, record_count, expected next page or None)
STOP_CASES: list[tuple[str, dict[str, Any], dict[str, Any], Any, int, int | None]] = [
    ("last_page: more", {"last_page": "meta.last"}, {"page": 1}, {"meta": {"last": 3}}, 100, 2),
    (
        "last_page: reached",
        {"last_page": "meta.last"},
        {"page": 3},
        {"meta": {"last": 3}},
        100,
        None,
    ),
    (
        "last_page: past it",
        {"last_page": "meta.last"},
        {"page": 4},
        {"meta": {"last": 3}},
        100,
        None,
    ),
    ("last_page: string", {"last_page": "last"}, {"page": 2}, {"last": "3"}, 100, 3),
    ("last_page: float", {"last_page": "last"}, {"page": 3}, {"last": 3.0}, 100, None),
    (
        "last_page: 0-based",
        {"last_page": "last", "first_page": 0},
        {"page": 2},
        {"last": 2},
        100,
        None,
    ),
    ("total_pages 1-based: more", {"total_pages": "tp"}, {"page": 2}, {"tp": 3}, 100, 3),
    ("total_pages 1-based: last", {"total_pages": "tp"}, {"page": 3}, {"tp": 3}, 100, None),
    (
        "total_pages 0-based: more",
        {"total_pages": "tp", "first_page": 0},
        {"page": 1},
        {"tp": 3},
        100,
        2,
    ),
    (
        "total_pages 0-based: last",
        {"total_pages": "tp", "first_page": 0},
        {"page": 2},
        {"tp": 3},
        100,
        None,
    ),
    ("total_pages 1 page", {"total_pages": "tp"}, {"page": 1}, {"tp": 1}, 100, None),
    ("total records: more", {"total": "total"}, {"page": 2}, {"total": 250}, 100, 3),
    ("total records: last", {"total": "total"}, {"page": 3}, {"total": 250}, 50, None),
    ("total records: exact", {"total": "total"}, {"page": 2}, {"total": 200}, 100, None),
    (
        "total records 0-based",
        {"total": "total", "first_page": 0},
        {"page": 1},
        {"total": 200},
        100,
        None,
    ),
    ("has_more true", {"has_more": "more"}, {"page": 1}, {"more": True}, 100, 2),
    ("has_more false", {"has_more": "more"}, {"page": 1}, {"more": False}, 100, None),
    ("has_more 'false'", {"has_more": "more"}, {"page": 1}, {"more": "false"}, 100, None),
    ("has_more 0", {"has_more": "more"}, {"page": 1}, {"more": 0}, 100, None),
    ("has_more true beats short", {"has_more": "more"}, {"page": 1}, {"more": "true"}, 10, 2),
    ("has_more absent: short", {"has_more": "more"}, {"page": 1}, {}, 10, None),
    ("has_more absent: full", {"has_more": "more"}, {"page": 1}, {}, 100, 2),
    ("empty page", {}, {"page": 5}, {}, 0, None),
    ("empty page beats last_page", {"last_page": "last"}, {"page": 1}, {"last": 9}, 0, None),
    ("empty page beats has_more", {"has_more": "more"}, {"page": 1}, {"more": True}, 0, None),
    ("short page", {}, {"page": 1}, {}, 99, None),
    ("full page", {}, {"page": 1}, {}, 100, 2),
    ("short page allowed", {"stop_on_short_page": False}, {"page": 1}, {}, 99, 2),
    ("no size: never short", {"size": None}, {"page": 1}, {}, 3, 2),
    ("last_page wins over short", {"last_page": "last"}, {"page": 1}, {"last": 2}, 7, 2),
]


@pytest.mark.parametrize(
    ("options", "position", "body", "count", "expected"),
    [case[1:] for case in STOP_CASES],
    ids=[case[0] for case in STOP_CASES],
)
def test_advance_stop_signals(
    options: dict[str, Any],
    position: dict[str, Any],
    body: Any,
    count: int,
    expected: int | None,
) -> None:
    assert next_page(paginator(**options).advance(position, page(body, count))) == expected


@pytest.mark.parametrize(
    ("options", "first_body"),
    [
        ({"last_page": "last_page"}, {"last_page": 3}),
        ({"total_pages": "total_pages"}, {"total_pages": 3}),
        ({"total": "total"}, {"total": 300}),
    ],
)
def test_last_page_learnt_on_page_one_is_carried_when_later_pages_omit_it(
    options: dict[str, Any], first_body: dict[str, Any]
) -> None:
    pager = paginator(**options)
    later = dict.fromkeys(first_body)  # e.g. {"total": None}
    position = pager.advance(pager.start(), page(first_body, 100))
    assert {k: position[k] for k in ("page", "last")} == {"page": 2, "last": 3}
    position = pager.advance(position, page(later, 100))
    assert {k: position[k] for k in ("page", "last")} == {"page": 3, "last": 3}
    # Page 3 is full: without the carried last page the short-page rule would go on.
    assert pager.advance(position, page(later, 100)) is None
    assert pager.advance(position, page({}, 100)) is None


def test_carried_last_page_in_zero_based_numbering() -> None:
    pager = paginator(first_page=0, total_pages="pages")
    position = pager.advance(pager.start(), page({"pages": 2}, 100))
    assert {k: position[k] for k in ("page", "last")} == {"page": 1, "last": 1}
    assert pager.advance(position, page({"pages": None}, 100)) is None


@pytest.mark.parametrize("garbage", [None, "many", "3.5", True, [3], {"n": 3}])
def test_unreadable_last_page_falls_back_to_the_short_page_rule(garbage: Any) -> None:
    pager = paginator(last_page="last")
    assert next_page(pager.advance({"page": 1}, page({"last": garbage}, 100))) == 2
    assert pager.advance({"page": 1}, page({"last": garbage}, 40)) is None


def test_final_cursor_is_none() -> None:
    assert paginator().final_cursor({"page": 3}, page({}, 10)) is None


@pytest.mark.parametrize("garbage", ["²", "3²", "①"])
def test_unicode_digit_garbage_in_a_count_falls_back_instead_of_crashing(garbage: str) -> None:
    pager = paginator(last_page="last")
    assert next_page(pager.advance({"page": 1}, page({"last": garbage}, 100))) == 2


def test_a_total_that_changes_mid_pass_is_drift() -> None:
    pager = paginator(total="total", size=100)
    second = pager.advance({"page": 1}, page({"total": 250}, 100))
    assert second is not None
    assert not pager.drifted(second, page({"total": 250}, 100))
    assert pager.drifted(second, page({"total": 260}, 100))
