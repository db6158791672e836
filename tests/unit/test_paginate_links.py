"""NextLinkPaginator and LinkHeaderPaginator: follow the server's URL, resolved against ours."""

from __future__ import annotations

from typing import Any

import pytest

from syncline.config.strategies import LinkHeaderPaginate, NextLinkPaginate
from syncline.errors import BadPayload
from syncline.paginate import Page
from syncline.paginate.links import LinkHeaderPaginator, NextLinkPaginator
from syncline.request import RequestSpec

URL = "http://api.test/v1/items?page=1&per_page=50"


def body_page(next_value: Any, url: str = URL) -> Page:
    body = {"data": [1], "_links": {"next": {"href": next_value}}}
    return Page(body=body, headers={}, link_headers=(), url=url, record_count=1)


def header_page(*links: str, url: str = URL) -> Page:
    return Page(body={"data": [1]}, headers={}, link_headers=links, url=url, record_count=1)


def next_link(**options: Any) -> NextLinkPaginator:
    return NextLinkPaginator(
        NextLinkPaginate(type="next_link", next_url_path="_links.next.href", **options)
    )


def link_header(**options: Any) -> LinkHeaderPaginator:
    return LinkHeaderPaginator(LinkHeaderPaginate(type="link_header", **options))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://api.test/v1/items?page=2", "http://api.test/v1/items?page=2"),
        ("/v1/items?page=2", "http://api.test/v1/items?page=2"),
        ("?page=2&per_page=50", "http://api.test/v1/items?page=2&per_page=50"),
        ("items?page=2", "http://api.test/v1/items?page=2"),
        ("../v2/items?page=2", "http://api.test/v2/items?page=2"),
        ("  /v1/items?page=2  ", "http://api.test/v1/items?page=2"),
        ("//api.test/v1/items?page=2", "http://api.test/v1/items?page=2"),
    ],
)
def test_next_link_resolves_relative_links_against_the_page_url(value: str, expected: str) -> None:
    assert next_link().advance({"url": None}, body_page(value)) == {"url": expected}


@pytest.mark.parametrize("value", [None, "", "   ", 2, {"href": "x"}, ["x"], False])
def test_next_link_stops_without_a_usable_url(value: Any) -> None:
    assert next_link().advance({"url": URL}, body_page(value)) is None


def test_next_link_stops_when_the_path_is_missing() -> None:
    page = Page(body={"data": [1]}, headers={}, link_headers=(), url=URL, record_count=1)
    assert next_link().advance({"url": None}, page) is None


def test_next_link_jmespath_with_quoted_key() -> None:
    pager = NextLinkPaginator(
        NextLinkPaginate(type="next_url", next_url_path='_links."inx:next".href')
    )
    page = Page(
        body={"_links": {"inx:next": {"href": "/v1/items?page=2"}}},
        headers={},
        link_headers=(),
        url=URL,
        record_count=1,
    )
    assert pager.advance({"url": None}, page) == {"url": "http://api.test/v1/items?page=2"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (('<http://api.test/v1/items?page=2>; rel="next"',), "http://api.test/v1/items?page=2"),
        (("</v1/items?page=2>; rel=next",), "http://api.test/v1/items?page=2"),
        (('<?page=1>; rel="prev", <?page=3>; rel="next"',), "http://api.test/v1/items?page=3"),
        (
            ('<?page=1>; rel="first"', '<?page=3>; rel="next last"'),
            "http://api.test/v1/items?page=3",
        ),
        (("<?page=3>; REL=NEXT",), "http://api.test/v1/items?page=3"),
    ],
)
def test_link_header_follows_rel_next(headers: tuple[str, ...], expected: str) -> None:
    assert link_header().advance({"url": None}, header_page(*headers)) == {"url": expected}


@pytest.mark.parametrize(
    "headers",
    [(), ('<?page=1>; rel="prev", <?page=9>; rel="last"',), ("",), ("garbage",)],
)
def test_link_header_stops_without_next(headers: tuple[str, ...]) -> None:
    assert link_header().advance({"url": URL}, header_page(*headers)) is None


def test_link_header_custom_rel() -> None:
    page = header_page('<?page=2>; rel="next", <?c=abc>; rel="Continuation"')
    assert link_header(rel="continuation").advance({"url": None}, page) == {
        "url": "http://api.test/v1/items?c=abc"
    }


@pytest.mark.parametrize(
    "pager",
    [next_link(size_param="per_page", size=50), link_header(size_param="per_page", size=50)],
)
def test_first_request_adds_size_and_a_followed_link_replaces_the_query(
    pager: NextLinkPaginator | LinkHeaderPaginator,
) -> None:
    base = RequestSpec(method="GET", url="http://api.test/v1/items", params={"sort": "id"})
    first = pager.apply(pager.start(), base)
    assert first.url == "http://api.test/v1/items"
    assert first.params == {"sort": "id", "per_page": 50}
    assert not first.follows_link
    following = pager.apply({"url": "http://api.test/v1/items?page=2"}, base)
    assert following.url == "http://api.test/v1/items?page=2"
    assert following.params == {}
    assert following.follows_link


@pytest.mark.parametrize("pager", [next_link(), link_header()])
def test_resume_cursor_is_a_url_to_follow(pager: NextLinkPaginator | LinkHeaderPaginator) -> None:
    position = pager.start("http://api.test/v1/items?page=7")
    request = pager.apply(position, RequestSpec(method="GET", url="http://api.test/v1/items"))
    assert request.url == "http://api.test/v1/items?page=7"
    assert request.follows_link


def test_final_cursor_prefers_the_next_url_then_the_current_one() -> None:
    pager = next_link()
    assert pager.final_cursor({"url": URL}, body_page("?page=2")) == (
        "http://api.test/v1/items?page=2"
    )
    assert pager.final_cursor({"url": URL}, body_page(None)) == URL
    headers = link_header()
    assert headers.final_cursor({"url": URL}, header_page()) == URL


@pytest.mark.parametrize(
    "pager_page",
    [
        (next_link(), body_page("http://[oops/items?page=2")),
        (link_header(), header_page("<http://[oops/items?page=2>; rel=next")),
    ],
)
def test_malformed_next_url_never_raises_a_raw_value_error(
    pager_page: tuple[NextLinkPaginator | LinkHeaderPaginator, Page],
) -> None:
    pager, page = pager_page
    try:
        result = pager.advance({"url": None}, page)
    except BadPayload:
        return  # a clear, permanent error is acceptable; a raw ValueError is not
    assert result is None
