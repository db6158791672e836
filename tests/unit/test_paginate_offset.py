"""OffsetPaginator: advances by records received, carries the total, every stop signal."""

from __future__ import annotations

from typing import Any

import pytest

from syncline.config.strategies import OffsetPaginate
from syncline.paginate import Page
from syncline.paginate.offset import OffsetPaginator
from syncline.request import RequestSpec


def page(body: Any, count: int) -> Page:
    return Page(body=body, headers={}, link_headers=(), url="http://api.test/x", record_count=count)


def paginator(**options: Any) -> OffsetPaginator:
    options.setdefault("size", 100)
    return OffsetPaginator(OffsetPaginate(type="offset", **options))


def test_start_is_offset_zero_even_when_resuming_a_cursor() -> None:
    assert paginator().start() == {"offset": 0}
    assert paginator().start("cursor") == {"offset": 0}


def test_apply_sets_offset_and_limit() -> None:
    base = RequestSpec(method="GET", url="u", params={"q": "x"})
    assert paginator().apply({"offset": 200}, base).params == {
        "q": "x",
        "offset": 200,
        "limit": 100,
    }


def test_apply_with_renamed_params_and_limit_param_alias() -> None:
    pager = OffsetPaginator(
        OffsetPaginate.model_validate(
            {"type": "offset", "offset_param": "skip", "limit_param": "take", "size": 50}
        )
    )
    assert pager.apply({"offset": 0}, RequestSpec(method="GET", url="u")).params == {
        "skip": 0,
        "take": 50,
    }


def test_apply_without_size_sends_only_offset() -> None:
    request = paginator(size=None).apply({"offset": 10}, RequestSpec(method="GET", url="u"))
    assert request.params == {"offset": 10}


OFFSET_CASES: list[tuple[str, dict[str, Any], dict[str, Any], Any, int, dict[str, Any] | None]] = [
    ("full page, no signal", {}, {"offset": 0}, {}, 100, {"offset": 100}),
    ("short page", {}, {"offset": 0}, {}, 99, None),
    ("short page allowed", {"stop_on_short_page": False}, {"offset": 0}, {}, 99, {"offset": 99}),
    ("empty page", {"stop_on_short_page": False}, {"offset": 300}, {}, 0, None),
    ("empty page beats has_more", {"has_more": "more"}, {"offset": 0}, {"more": True}, 0, None),
    ("empty page beats total", {"total": "total"}, {"offset": 0}, {"total": 900}, 0, None),
    (
        "server capped: advance by count",
        {"has_more": "more"},
        {"offset": 60},
        {"more": True},
        30,
        {"offset": 90},
    ),
    (
        "total: more",
        {"total": "meta.total"},
        {"offset": 0},
        {"meta": {"total": 250}},
        100,
        {"offset": 100, "total": 250},
    ),
    (
        "total: reached",
        {"total": "meta.total"},
        {"offset": 200},
        {"meta": {"total": 250}},
        50,
        None,
    ),
    ("total: exact", {"total": "total"}, {"offset": 100}, {"total": 200}, 100, None),
    (
        "total: capped page",
        {"total": "total"},
        {"offset": 0},
        {"total": 250},
        30,
        {"offset": 30, "total": 250},
    ),
    (
        "total: string",
        {"total": "total"},
        {"offset": 0},
        {"total": "250"},
        100,
        {"offset": 100, "total": 250},
    ),
    (
        "total carried",
        {"total": "total"},
        {"offset": 100, "total": 250},
        {"total": None},
        100,
        {"offset": 200, "total": 250},
    ),
    ("total carried: reached", {"total": "total"}, {"offset": 200, "total": 250}, {}, 50, None),
    ("has_more false", {"has_more": "more"}, {"offset": 0}, {"more": False}, 100, None),
    ("has_more 'no'", {"has_more": "more"}, {"offset": 0}, {"more": "no"}, 100, None),
    ("has_more '1'", {"has_more": "more"}, {"offset": 0}, {"more": "1"}, 7, {"offset": 7}),
]


@pytest.mark.parametrize(
    ("options", "position", "body", "count", "expected"),
    [case[1:] for case in OFFSET_CASES],
    ids=[case[0] for case in OFFSET_CASES],
)
def test_advance(
    options: dict[str, Any],
    position: dict[str, Any],
    body: Any,
    count: int,
    expected: dict[str, Any] | None,
) -> None:
    assert (
        without_drift_marks(paginator(**options).advance(position, page(body, count))) == expected
    )


def test_final_cursor_is_none() -> None:
    assert paginator().final_cursor({"offset": 10}, page({}, 1)) is None


def without_drift_marks(position: dict[str, object] | None) -> dict[str, object] | None:
    """The position minus the drift bookkeeping tested on its own below."""
    if position is None:
        return None
    return {k: v for k, v in position.items() if k not in ("first_total", "drift")}


def test_a_total_that_changes_mid_pass_is_drift_until_the_pass_ends() -> None:
    pager = paginator(total="total")
    second = pager.advance({"offset": 0}, page({"total": 250}, 100))
    assert second is not None
    assert second["first_total"] == 250
    assert not pager.drifted(second, page({"total": 250}, 100))
    third = pager.advance(second, page({"total": 245}, 100))  # 5 deleted ahead of us
    assert third is not None
    assert third["drift"] is True
    assert pager.drifted(third, page({"total": 245}, 45))  # the mark sticks to the last page


def test_a_steady_total_is_not_drift() -> None:
    pager = paginator(total="total")
    second = pager.advance({"offset": 0}, page({"total": 150}, 100))
    assert second is not None
    assert not pager.drifted(second, page({"total": 150}, 50))
    assert pager.drifted(second, page({"total": 151}, 50))
