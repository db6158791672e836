"""Walking one pass of a stream page by page, with the guards every paginator needs.

The paginator says how to get the next page; this module makes sure it
cannot go wrong in the ways real servers make it go wrong: a repeated cursor
or URL (cycles included), endless empty pages, a ``max_pages`` backstop, and a
next link that would carry our credentials to another origin.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    request_ahead: bool = True,
) -> AsyncGenerator[FetchedPage, None]:
    """Yield each page of the pass from ``position``; the caller commits before asking for more.

    While the caller commits a page, the next one is already on its way
    (``request_ahead``: one request ahead, never more): the API's time and ours
    overlap instead of adding up. Only a page that passed every guard is
    requested ahead, and it is handed over only when the caller asks for it, so
    the checkpoint still moves over committed pages only. Close the generator
    (``contextlib.aclosing``) to cancel a request ahead that is no longer wanted.

    ``opening`` rewrites the request of the pass's first page (a sync token or link).
    """
    walk = _Walk(job, client, paginator, shaper, filter_param, filter_value, opening)
    current: Position | None = position
    request = walk.checked(position)
    try:
        while current is not None:
            try:
                response, page, records = await walk.fetch(request, counter, budget)
            except ClientError as exc:
                status = exc.request.status if exc.request is not None else None
                if not (walk.pages and status in job.source.end_on_status):
                    raise
                # The API's way of saying "past the last page": an empty last page ends the pass.
                yield FetchedPage(current, Page({}, {}, (), request.url, 0), [], None)
                return
            next_position = walk.advance(current, request, response, page)
            refusal: SourceError | None = None
            if next_position is not None:
                try:
                    request = walk.checked(next_position)
                    if request_ahead:
                        walk.send_ahead(request, counter, budget)
                except SourceError as exc:
                    refusal = exc  # raised when the caller asks for that page, not before
            yield FetchedPage(current, page, records, next_position)
            if refusal is not None:
                raise refusal
            current = next_position
    finally:
        await walk.cancel_ahead()


_Fetched = tuple[Response, tuple[Page, list[Any]] | None]


class _Walk:
    """One pass's guards and its request ahead."""

    def __init__(
        self,
        job: Job,
        client: HttpClient,
        paginator: Paginator,
        shaper: RecordShaper,
        filter_param: str | None,
        filter_value: Any,
        opening: Callable[[RequestSpec], RequestSpec] | None,
    ) -> None:
        self.client, self.paginator, self.shaper = client, paginator, shaper
        self.filter_param, self.filter_value, self.opening = filter_param, filter_value, opening
        self.base = job.base_request()
        self.first = paginator.start()
        self.max_pages: int | None = getattr(job.stream.paginate, "max_pages", None)
        self.seen: set[str] = set()
        self.pages = self.empty_streak = 0
        self.ahead: asyncio.Task[_Fetched] | None = None

    def request_for(self, at: Position) -> RequestSpec:
        request = _with_filter(self.paginator.apply(at, self.base), self.filter_param,
                               self.filter_value)  # fmt: skip
        if self.opening is not None and at == self.first:
            request = self.opening(request)
        return request

    def checked(self, at: Position) -> RequestSpec:
        """The request for ``at``, once every guard agrees it may be sent."""
        if self.max_pages is not None and self.pages >= self.max_pages:
            raise PaginationLoop(f"max_pages ({self.max_pages}) reached before the last page")
        request = self.request_for(at)
        address = _address(self.client, request)
        if address in self.seen:
            raise PaginationLoop(f"the server led back to a page already fetched ({address})")
        if request.follows_link:
            self.client.check_target(request.url)
        self.seen.add(address)
        return request

    def parse(self, response: Response) -> tuple[Page, list[Any]]:
        body = decode_body(response.content, response.headers.get("content-type"))
        records = self.shaper.select(body)
        page = Page(body, response.headers, response.link_headers, response.url, len(records))
        return page, records

    async def fetch(
        self, request: RequestSpec, counter: RequestCounter | None, budget: CallBudget | None
    ) -> tuple[Response, Page, list[Any]]:
        if self.ahead is not None:
            fetching, self.ahead = self.ahead, None
            response, parsed = await fetching
        else:
            response, parsed = await self.client.fetch(request, counter, self.parse, budget)
        assert parsed is not None
        return response, *parsed

    def send_ahead(
        self, request: RequestSpec, counter: RequestCounter | None, budget: CallBudget | None
    ) -> None:
        self.ahead = asyncio.create_task(self.client.fetch(request, counter, self.parse, budget))

    async def cancel_ahead(self) -> None:
        if self.ahead is None:
            return
        self.ahead.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.ahead  # retrieve its outcome: no "exception never retrieved"
        self.ahead = None

    def advance(
        self, current: Position, request: RequestSpec, response: Response, page: Page
    ) -> Position | None:
        """The next page's position, after the guards that must refuse before this page commits."""
        try:
            next_position = _scrubbed(self.client, self.paginator.advance(current, page))
            if next_position is not None:
                _refuse_bad_link(self.client, self.request_for(next_position), self.seen)
        except SourceError as exc:
            if exc.request is None:
                exc.request = self.client.summary(request, response.status)
            raise
        self.pages += 1
        self.empty_streak = 0 if page.record_count else self.empty_streak + 1
        if next_position is not None and self.empty_streak >= MAX_EMPTY_PAGES:
            raise PaginationLoop(
                f"{self.empty_streak} empty pages in a row while the server says there is more",
                request=self.client.summary(request, response.status),
            )
        return next_position


def _refuse_bad_link(client: HttpClient, following: RequestSpec, seen: set[str]) -> None:
    """Refuse a next link before its page commits: a bad link must not become the
    checkpoint, or every later run would resume into the same refusal."""
    if not following.follows_link:
        return
    client.check_target(following.url)
    if _address(client, following) in seen:
        raise PaginationLoop(
            "the next link leads back to a page already fetched in this pass "
            f"({client.redactor.url(following.url)})"
        )


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
