"""make_paginator picks the class for each ``paginate.type``; SinglePage makes one request."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from syncline.config.strategies import PaginateConfig
from syncline.paginate import Page, make_paginator
from syncline.paginate.cursor import CursorPaginator
from syncline.paginate.links import LinkHeaderPaginator, NextLinkPaginator
from syncline.paginate.offset import OffsetPaginator
from syncline.paginate.page_number import PageNumberPaginator
from syncline.paginate.relay import RelayPaginator
from syncline.paginate.single import SinglePage
from syncline.request import RequestSpec

ADAPTER: TypeAdapter[Any] = TypeAdapter(PaginateConfig)


@pytest.mark.parametrize(
    ("raw", "cls"),
    [
        ({"type": "page_number"}, PageNumberPaginator),
        ({"type": "page"}, PageNumberPaginator),
        ({"type": "offset"}, OffsetPaginator),
        ({"type": "cursor", "cursor_path": "next"}, CursorPaginator),
        ({"type": "relay", "page_info": "data.x.pageInfo"}, RelayPaginator),
        ({"type": "next_link", "next_url_path": "links.next"}, NextLinkPaginator),
        ({"type": "next_url", "path": "links.next"}, NextLinkPaginator),
        ({"type": "link_header"}, LinkHeaderPaginator),
        ({"type": "none"}, SinglePage),
        ({"type": "single"}, SinglePage),
    ],
)
def test_make_paginator_picks_the_class_for_each_type(raw: dict[str, Any], cls: type) -> None:
    assert isinstance(make_paginator(ADAPTER.validate_python(raw)), cls)


def test_single_page_sends_the_request_unchanged_and_stops() -> None:
    pager = SinglePage()
    base = RequestSpec(method="GET", url="http://api.test/all", params={"a": 1})
    position = pager.start("ignored")
    assert position == {}
    assert pager.apply(position, base) is base
    page = Page(body=[1, 2, 3], headers={}, link_headers=(), url=base.url, record_count=3)
    assert pager.advance(position, page) is None
    assert pager.final_cursor(position, page) is None
