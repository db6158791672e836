"""Paginators that follow a URL the server gives: in the body (``next_link``) or a header.

The next URL may be relative; it is resolved against the URL just requested.
Whether it may be followed at all (same origin, no credentials to a stranger)
is the engine's decision, made once for every link-following paginator.

Minimal requests for N records, page size S: ``max(1, ceil(N / S))``: the last
page carries no next link.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urljoin

from syncline.config.strategies import LinkHeaderPaginate, NextLinkPaginate
from syncline.errors import BadPayload
from syncline.jpath import compile_path
from syncline.link_header import find_link
from syncline.paginate.base import Page, Position
from syncline.request import RequestSpec

__all__ = ["LinkHeaderPaginator", "NextLinkPaginator"]


class _LinkFollower(ABC):
    size_param: str | None
    size: int | None

    def start(self, resume_cursor: Any = None) -> Position:
        return {"url": resume_cursor}

    def apply(self, position: Position, request: RequestSpec) -> RequestSpec:
        if position.get("url"):
            return request.with_link(str(position["url"]))
        if self.size_param and self.size:
            request = request.with_value(self.size_param, self.size)
        return request

    def advance(self, position: Position, page: Page) -> Position | None:
        url = self.next_url(page)
        return {"url": url} if url else None

    def final_cursor(self, position: Position, page: Page) -> Any:
        return self.next_url(page) or position.get("url")

    @abstractmethod
    def next_url(self, page: Page) -> str | None:
        """The absolute URL of the next page, if this page names one."""


class NextLinkPaginator(_LinkFollower):
    def __init__(self, config: NextLinkPaginate) -> None:
        self.size_param, self.size = config.size_param, config.size
        self._path = config.next_url_path
        self._next = compile_path(config.next_url_path)

    def next_url(self, page: Page) -> str | None:
        value = self._next(page.body)
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            return urljoin(page.url, value.strip())
        except ValueError:
            raise BadPayload(f"next link at {self._path!r} is not a URL: {value[:100]!r}") from None


class LinkHeaderPaginator(_LinkFollower):
    def __init__(self, config: LinkHeaderPaginate) -> None:
        self.size_param, self.size = config.size_param, config.size
        self.rel = config.rel

    def next_url(self, page: Page) -> str | None:
        return find_link(page.link_headers, self.rel, page.url)

    def drifted(self, position: Position, page: Page) -> bool:
        """``Link`` headers are usually page numbers in disguise (GitHub's ``?page=3``).

        No total to compare, but being :class:`DriftAware` makes the engine watch
        for records that move while we page, which is what shifts such listings.
        """
        return False
