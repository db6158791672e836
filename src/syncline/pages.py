"""Walking one pass of a stream page by page, with the guards every paginator needs.

The paginator says how to get the next page; this module makes sure it
cannot go wrong in the ways real servers make it go wrong: a repeated cursor
or URL (cycles included), endless empty pages, a ``max_pages`` backstop, and a
next link that would carry our credentials to another origin.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from syncline.errors import ClientError, PaginationLoop, SourceError
from syncline.http import CallBudget, HttpClient, RequestCounter, Response
from syncline.paginate import Page, Paginator, Position
from syncline.plan import Job
from syncline.records import RecordShaper, decode_body
from syncline.request import RequestSpec

__all__ = ["FetchedPage", "walk_pages"]

MAX_EMPTY_PAGES = 3
"""Empty pages in a row that a paginator may ask to continue after before we call it a loop."""


@dataclass(frozen=True, slots=True)
class FetchedPage:
    position: Position
    page: Page
    records: list[Any]
    next_position: Position | None


async def walk_pages(
    job: Job,
    client: HttpClient,
    paginator: Paginator,
    shaper: RecordShaper,
    position: Position,
    *,
    filter_param: str | None = None,
    filter_value: Any = None,
    counter: RequestCounter | None = None,
    budget: CallBudget | None = None,
    opening: Callable[[RequestSpec], RequestSpec] | None = None,
) -> AsyncGenerator[FetchedPage, None]:
    """Yield each page of the pass from ``position``; the caller commits before asking for more.

    ``opening`` rewrites the request of the pass's first page (a sync token or link).
    """
    base = job.base_request()
    first = paginator.start()
    max_pages = getattr(job.stream.paginate, "max_pages", None)
    seen: set[str] = set()
    pages = empty_streak = 0
    current: Position | None = position
    while current is not None:
        if max_pages is not None and pages >= max_pages:
            raise PaginationLoop(f"max_pages ({max_pages}) reached before the last page")
        request = _with_filter(paginator.apply(current, base), filter_param, filter_value)
        request = opening(request) if opening is not None and current == first else request
        address = _address(client, request)
        if address in seen:
            raise PaginationLoop(f"the server led back to a page already fetched ({address})")
        seen.add(address)
        if request.follows_link:
            client.check_target(request.url)

        def parse(response: Response) -> tuple[Page, list[Any]]:
            body = decode_body(response.content, response.headers.get("content-type"))
            records = shaper.select(body)
            page = Page(body, response.headers, response.link_headers, response.url, len(records))
            return page, records

        try:
            response, parsed = await client.fetch(request, counter, parse, budget)
        except ClientError as exc:
            status = exc.request.status if exc.request is not None else None
            if not (pages and status in job.source.end_on_status):
                raise
            # The API's way of saying "past the last page": an empty last page ends the pass.
            empty = Page({}, {}, (), request.url, 0)
            yield FetchedPage(current, empty, [], None)
            return
        assert parsed is not None
        page, records = parsed
        try:
            next_position = _scrubbed(client, paginator.advance(current, page))
            if next_position is not None:
                following = _with_filter(paginator.apply(next_position, base), filter_param,
                                         filter_value)  # fmt: skip
                if following.follows_link:
                    # Refuse before this page commits: a bad link must not become the
                    # checkpoint, or every later run would resume into the same refusal.
                    client.check_target(following.url)
                    if _address(client, following) in seen:
                        raise PaginationLoop(
                            "the next link leads back to a page already fetched in this pass "
                            f"({client.redactor.url(following.url)})"
                        )
        except SourceError as exc:
            if exc.request is None:
                exc.request = client.summary(request, response.status)
            raise
        yield FetchedPage(current, page, records, next_position)
        pages += 1
        empty_streak = 0 if records else empty_streak + 1
        if next_position is not None and empty_streak >= MAX_EMPTY_PAGES:
            raise PaginationLoop(
                f"{empty_streak} empty pages in a row while the server says there is more",
                request=client.summary(request, response.status),
            )
        current = next_position


def _scrubbed(client: HttpClient, position: Position | None) -> Position | None:
    """A link position without our API key in it: positions are stored."""
    if position is None or not isinstance(position.get("url"), str):
        return position
    return {**position, "url": client.scrub_url(position["url"])}


def _with_filter(request: RequestSpec, param: str | None, value: Any) -> RequestSpec:
    if param and value is not None and not request.follows_link:
        return request.with_value(param, value)
    return request


def _address(client: HttpClient, request: RequestSpec) -> str:
    """Where a request goes, query sorted and our key removed: equal pages, equal addresses."""
    url = client.scrub_url(request.url)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(name, str(value)) for name, value in request.params.items() if value is not None]
    body = json.dumps(request.json, sort_keys=True, default=str) if request.json else ""
    return urlunsplit(parts._replace(query=urlencode(sorted(query)), fragment="")) + body
