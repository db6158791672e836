"""Whole-pass simulations: every paginator against a synthetic API of N records, page size S.

Each fake server below answers the way a real API of that family does. The walk
checks that all N records arrive exactly once and that the number of requests is
the minimum stated in the paginator module's docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncline.config.strategies import (
    CursorPaginate,
    LinkHeaderPaginate,
    NextLinkPaginate,
    NoPaginate,
    OffsetPaginate,
    PageNumberPaginate,
    PaginateConfig,
    RelayPaginate,
)
from syncline.paginate import Page, Paginator, Position, make_paginator
from syncline.request import RequestSpec

BASE_URL = "http://api.test/v1/items"
Server = Callable[[RequestSpec, int, int], tuple[Page, list[int]]]


def ceil_rule(n: int, s: int) -> int:
    """``max(1, ceil(N / S))``: the API tells the end on the last page."""
    return max(1, math.ceil(n / s))


def floor_rule(n: int, s: int) -> int:
    """``floor(N / S) + 1``: only a short or empty page tells the end."""
    return n // s + 1


def feed_rule(n: int, s: int) -> int:
    """``ceil(N / S) + 1``: only an empty page tells the end (a CouchDB-style feed)."""
    return math.ceil(n / s) + 1


def make_page(
    body: Any, records: list[int], url: str = BASE_URL, links: tuple[str, ...] = ()
) -> Page:
    return Page(body=body, headers={}, link_headers=links, url=url, record_count=len(records))


def slice_of(n: int, start: int, size: int) -> list[int]:
    return list(range(min(start, n), min(start + size, n)))


# --- page numbers --------------------------------------------------------------------------


def page_number_server(first: int, signal: str) -> Server:
    def serve(request: RequestSpec, n: int, s: int) -> tuple[Page, list[int]]:
        number = int(request.params["page"])
        size = int(request.params["per_page"])
        assert size == s
        records = slice_of(n, (number - first) * size, size)
        pages = math.ceil(n / size)
        is_first = number == first
        body: dict[str, Any] = {"data": records}
        if signal == "last_page":
            body["last_page"] = max(pages, 1) - 1 + first
        elif signal == "last_page_on_first_only":
            body["last_page"] = max(pages, 1) - 1 + first if is_first else None
        elif signal == "total_pages":
            body["total_pages"] = pages
        elif signal == "total":
            body["total"] = n
        elif signal == "total_on_first_only":
            body["total"] = n if is_first else None
        elif signal == "has_more":
            body["has_more"] = (number - first + 1) * size < n
        return make_page(body, records), records

    return serve


def page_number_config(first: int, signal: str, s: int) -> PageNumberPaginate:
    paths = {
        "last_page": {"last_page": "last_page"},
        "last_page_on_first_only": {"last_page": "last_page"},
        "total_pages": {"total_pages": "total_pages"},
        "total": {"total": "total"},
        "total_on_first_only": {"total": "total"},
        "has_more": {"has_more": "has_more"},
        "short_page": {},
    }[signal]
    return PageNumberPaginate.model_validate(
        {"type": "page_number", "size_param": "per_page", "size": s, "first_page": first, **paths}
    )


# --- offsets -------------------------------------------------------------------------------


def offset_server(signal: str, cap: int | None = None) -> Server:
    def serve(request: RequestSpec, n: int, s: int) -> tuple[Page, list[int]]:
        offset = int(request.params["offset"])
        limit = int(request.params["limit"])
        assert limit == s
        size = min(limit, cap) if cap else limit
        records = slice_of(n, offset, size)
        body: dict[str, Any] = {"items": records}
        if signal == "total":
            body["total"] = n
        elif signal == "total_on_first_only":
            body["total"] = n if offset == 0 else None
        elif signal == "has_more":
            body["has_more"] = offset + len(records) < n
        return make_page(body, records), records

    return serve


def offset_config(signal: str, s: int) -> OffsetPaginate:
    paths = {
        "total": {"total": "total"},
        "total_on_first_only": {"total": "total"},
        "has_more": {"has_more": "has_more"},
        "short_page": {},
    }[signal]
    return OffsetPaginate.model_validate({"type": "offset", "size": s, **paths})


# --- cursors -------------------------------------------------------------------------------


def cursor_server(signal: str) -> Server:
    def serve(request: RequestSpec, n: int, s: int) -> tuple[Page, list[int]]:
        assert int(request.params["limit"]) == s
        since = int(request.params.get("since", 0))
        records = slice_of(n, since, s)
        end = since + len(records)
        body: dict[str, Any] = {"results": records}
        if signal == "null_on_last":
            body["next"] = str(end) if end < n else None
        elif signal == "empty_on_last":
            body["next"] = str(end) if end < n else ""
        elif signal == "has_more":
            body["next"] = str(end)
            body["more"] = end < n
        elif signal == "couchdb_feed":
            body["next"] = end  # an empty page repeats the cursor it was asked with
        return make_page(body, records), records

    return serve


def cursor_config(signal: str, s: int) -> CursorPaginate:
    extra = {"has_more": "more"} if signal == "has_more" else {}
    return CursorPaginate.model_validate(
        {
            "type": "cursor",
            "cursor_path": "next",
            "cursor_param": "since",
            "size_param": "limit",
            "size": s,
            **extra,
        }
    )


# --- relay ---------------------------------------------------------------------------------


def relay_server(request: RequestSpec, n: int, s: int) -> tuple[Page, list[int]]:
    assert request.graphql
    assert request.json is not None
    assert not request.params
    variables = request.json["variables"]
    assert variables["first"] == s
    start = int(variables["after"]) if variables.get("after") else 0
    records = slice_of(n, start, s)
    end = start + len(records)
    page_info = {"hasNextPage": end < n, "endCursor": str(end) if records else None}
    body = {"data": {"items": {"nodes": records, "pageInfo": page_info}}}
    return make_page(body, records), records


def graphql_request() -> RequestSpec:
    return RequestSpec(
        method="POST",
        url="http://api.test/graphql",
        json={"query": "query { items }", "variables": {"first": 5}},
        graphql=True,
    )


# --- links ---------------------------------------------------------------------------------


def requested_page(request: RequestSpec) -> tuple[int, int, str]:
    """Page number, size and full URL of a REST request, whether built or followed."""
    if request.follows_link:
        assert not request.params
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        return int(query["page"]), int(query["per_page"]), request.url
    size = int(request.params["per_page"])
    return 1, size, f"{request.url}?page=1&per_page={size}"


def next_link_server(request: RequestSpec, n: int, s: int) -> tuple[Page, list[int]]:
    number, size, url = requested_page(request)
    assert size == s
    records = slice_of(n, (number - 1) * size, size)
    more = number * size < n
    body = {
        "data": records,
        "links": {"next": f"?page={number + 1}&per_page={size}" if more else None},
    }
    return make_page(body, records, url=url), records


def link_header_server(request: RequestSpec, n: int, s: int) -> tuple[Page, list[int]]:
    number, size, url = requested_page(request)
    assert size == s
    records = slice_of(n, (number - 1) * size, size)
    links = [f'</v1/items?page=1&per_page={size}>; rel="first"']
    if number > 1:
        links.append(f"</v1/items?page={number - 1}&per_page={size}>; rel=prev")
    if number * size < n:
        links.append(f'</v1/items?page={number + 1}&per_page={size}>; rel="next"')
    return make_page({"data": records}, records, url=url, links=(", ".join(links),)), records


def single_server(request: RequestSpec, n: int, s: int) -> tuple[Page, list[int]]:
    records = list(range(n))
    return make_page(records, records), records


# --- the walk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    config: Callable[[int], PaginateConfig]
    server: Server
    rule: Callable[[int, int], int]
    request: Callable[[], RequestSpec] = lambda: RequestSpec(method="GET", url=BASE_URL)


SCENARIOS = [
    *(
        Scenario(
            f"page_number[first={first},{signal}]",
            partial(page_number_config, first, signal),
            page_number_server(first, signal),
            floor_rule if signal == "short_page" else ceil_rule,
        )
        for first in (0, 1)
        for signal in (
            "last_page",
            "last_page_on_first_only",
            "total_pages",
            "total",
            "total_on_first_only",
            "has_more",
            "short_page",
        )
    ),
    *(
        Scenario(
            f"offset[{signal}]",
            partial(offset_config, signal),
            offset_server(signal),
            floor_rule if signal == "short_page" else ceil_rule,
        )
        for signal in ("total", "total_on_first_only", "has_more", "short_page")
    ),
    *(
        Scenario(
            f"cursor[{signal}]",
            partial(cursor_config, signal),
            cursor_server(signal),
            feed_rule if signal == "couchdb_feed" else ceil_rule,
        )
        for signal in ("null_on_last", "empty_on_last", "has_more", "couchdb_feed")
    ),
    Scenario(
        "relay",
        lambda s: RelayPaginate(type="relay", page_info="data.items.pageInfo", size=s),
        relay_server,
        ceil_rule,
        graphql_request,
    ),
    Scenario(
        "next_link",
        lambda s: NextLinkPaginate(
            type="next_link", next_url_path="links.next", size_param="per_page", size=s
        ),
        next_link_server,
        ceil_rule,
    ),
    Scenario(
        "link_header",
        lambda s: LinkHeaderPaginate(type="link_header", size_param="per_page", size=s),
        link_header_server,
        ceil_rule,
    ),
    Scenario("single", lambda s: NoPaginate(type="none"), single_server, lambda n, s: 1),
]


@dataclass
class Walk:
    requests: int
    records: list[int]
    requested: list[RequestSpec]


def walk(
    paginator: Paginator, server: Server, base: RequestSpec, n: int, s: int, resume: Any = None
) -> Walk:
    """Drive one pass to its end, as the engine does, minus the network."""
    limit = n + 10
    position: Position | None = paginator.start(resume)
    result = Walk(0, [], [])
    while position is not None:
        request = paginator.apply(position, base)
        page, records = server(request, n, s)
        result.requests += 1
        result.records.extend(records)
        result.requested.append(request)
        assert result.requests <= limit, "the paginator never stopped"
        position = paginator.advance(position, page)
    return result


SIZES = (1, 7, 100, 1000)
CASES = sorted({(n, s) for s in SIZES for n in (0, 1, s - 1, s, s + 1, 2345) if n >= 0})


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda sc: sc.name)
@pytest.mark.parametrize(("n", "s"), CASES)
def test_walk_fetches_every_record_once_in_the_minimal_number_of_requests(
    scenario: Scenario, n: int, s: int
) -> None:
    result = walk(make_paginator(scenario.config(s)), scenario.server, scenario.request(), n, s)
    assert result.records == list(range(n))
    assert result.requests == scenario.rule(n, s)


@settings(max_examples=150, deadline=None)
@given(
    scenario=st.sampled_from(SCENARIOS),
    n=st.integers(min_value=0, max_value=400),
    s=st.integers(min_value=1, max_value=60),
)
def test_walk_property_any_collection_size(scenario: Scenario, n: int, s: int) -> None:
    result = walk(make_paginator(scenario.config(s)), scenario.server, scenario.request(), n, s)
    assert result.records == list(range(n))
    assert result.requests == scenario.rule(n, s)


@pytest.mark.parametrize("first", [0, 1])
@pytest.mark.parametrize("signal", ["last_page", "total_pages", "total", "total_on_first_only"])
@pytest.mark.parametrize(("n", "s"), [(1, 7), (6, 7), (7, 7), (8, 7), (50, 7), (2345, 100)])
def test_page_number_never_requests_a_page_past_the_last(
    first: int, signal: str, n: int, s: int
) -> None:
    result = walk(
        make_paginator(page_number_config(first, signal, s)),
        page_number_server(first, signal),
        RequestSpec(method="GET", url=BASE_URL),
        n,
        s,
    )
    last = max(math.ceil(n / s), 1) - 1 + first
    assert max(int(r.params["page"]) for r in result.requested) == last


@pytest.mark.parametrize("signal", ["total", "total_on_first_only", "has_more"])
@pytest.mark.parametrize(
    ("n", "asked", "cap"),
    [(0, 100, 30), (29, 100, 30), (30, 100, 30), (31, 100, 30), (2345, 1000, 100)],
)
def test_offset_with_a_server_capped_page_size_loses_nothing(
    signal: str, n: int, asked: int, cap: int
) -> None:
    result = walk(
        make_paginator(offset_config(signal, asked)),
        offset_server(signal, cap=cap),
        RequestSpec(method="GET", url=BASE_URL),
        n,
        asked,
    )
    assert result.records == list(range(n))
    assert result.requests == ceil_rule(n, cap)
    offsets = [int(r.params["offset"]) for r in result.requested]
    assert offsets == [cap * i for i in range(len(offsets))]


def default_size_server(n: int, server_size: int) -> Server:
    """Page numbers and a ``total`` on every page; the server picks the page size."""

    def serve(request: RequestSpec, _n: int, _s: int) -> tuple[Page, list[int]]:
        assert "per_page" not in request.params
        number = int(request.params["page"])
        records = slice_of(n, (number - 1) * server_size, server_size)
        return make_page({"data": records, "total": n}, records), records

    return serve


# Regression: the short last page's count used to be taken as the page size, so the
# paginator asked for one page past the last.
@pytest.mark.parametrize(
    ("n", "server_size"), [(0, 100), (1, 100), (100, 100), (101, 100), (250, 100), (2345, 1000)]
)
def test_page_number_total_without_configured_size_stops_on_the_last_page(
    n: int, server_size: int
) -> None:
    config = PageNumberPaginate(type="page_number", total="total")
    result = walk(
        make_paginator(config),
        default_size_server(n, server_size),
        RequestSpec(method="GET", url=BASE_URL),
        n,
        server_size,
    )
    assert result.records == list(range(n))
    assert result.requests == ceil_rule(n, server_size)


RESUMABLE = [sc for sc in SCENARIOS if sc.name.startswith(("cursor[", "relay"))]


@pytest.mark.parametrize("scenario", RESUMABLE, ids=lambda sc: sc.name)
@pytest.mark.parametrize("done", [1, 6, 7, 13, 20])
def test_cursor_walk_resumes_after_the_committed_cursor(scenario: Scenario, done: int) -> None:
    n, s = 20, 7
    result = walk(
        make_paginator(scenario.config(s)), scenario.server, scenario.request(), n, s, str(done)
    )
    assert result.records == list(range(done, n))
    expected = scenario.rule(n - done, s)
    assert result.requests == expected
