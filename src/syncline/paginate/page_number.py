"""Page-number pagination: ``?page=1&per_page=100``, then 2, 3, …

Stops on the first of: the ``last_page`` / ``total_pages`` / ``total`` (records)
path, a false ``has_more``, an empty page, or (``stop_on_short_page``) a page
shorter than ``size``. Once a last page is known it is carried in the position,
so an API that sends ``total`` only on page 1 still stops on time.

Minimal requests for N records with page size S: ``max(1, ceil(N / S))`` when
the API reports a last page, total pages or total; ``floor(N / S) + 1`` when
only a short or empty page can tell the end.
"""

from __future__ import annotations

import math
from typing import Any

from syncline.config.strategies import PageNumberPaginate
from syncline.jpath import compile_path
from syncline.paginate.base import Page, Position, as_int, note_total, total_changed, truthy
from syncline.request import RequestSpec

__all__ = ["PageNumberPaginator"]


class PageNumberPaginator:
    def __init__(self, config: PageNumberPaginate) -> None:
        self.config = config
        self._last_page = compile_path(config.last_page) if config.last_page else None
        self._total_pages = compile_path(config.total_pages) if config.total_pages else None
        self._total = compile_path(config.total) if config.total else None
        self._has_more = compile_path(config.has_more) if config.has_more else None

    def start(self, resume_cursor: Any = None) -> Position:
        return {"page": self.config.first_page}

    def apply(self, position: Position, request: RequestSpec) -> RequestSpec:
        request = request.with_value(self.config.page_param, position["page"])
        if self.config.size_param and self.config.size:
            request = request.with_value(self.config.size_param, self.config.size)
        return request

    def advance(self, position: Position, page: Page) -> Position | None:
        number: int = position["page"]
        if page.record_count == 0:
            return None
        last = self._known_last_page(position, page)
        if last is not None:
            if number >= last:
                return None
            nxt: Position = {"page": number + 1, "last": last}
            if not self.config.size:
                nxt["page_size"] = self._page_size(position, page)
            return note_total(position, nxt, self._reported_total(page))
        if self._has_more is not None:
            flag = self._has_more(page.body)
            if flag is not None:
                return {"page": number + 1} if truthy(flag) else None
        size = self.config.size
        if self.config.stop_on_short_page and size and page.record_count < size:
            return None
        return {"page": number + 1}

    def final_cursor(self, position: Position, page: Page) -> Any:
        return None

    def drifted(self, position: Position, page: Page) -> bool:
        return total_changed(position, self._reported_total(page))

    def _reported_total(self, page: Page) -> int | None:
        """The record count the body reports (or, failing that, its page count)."""
        for path in (self._total, self._total_pages, self._last_page):
            if path is not None:
                value = as_int(path(page.body))
                if value is not None:
                    return value
        return None

    def _known_last_page(self, position: Position, page: Page) -> int | None:
        """The number of the last page, in the API's own numbering, if the body tells it."""
        first = self.config.first_page
        if self._last_page is not None:
            value = as_int(self._last_page(page.body))
            if value is not None:
                return value
        if self._total_pages is not None:
            value = as_int(self._total_pages(page.body))
            if value is not None:
                return max(first, value - 1 + first)
        if self._total is not None:
            total = as_int(self._total(page.body))
            size = self.config.size or self._page_size(position, page)
            if total is not None and size:
                return max(first, math.ceil(total / size) - 1 + first)
        known = position.get("last")
        return int(known) if known is not None else None

    @staticmethod
    def _page_size(position: Position, page: Page) -> int:
        """Without a configured size, the server's page size is the largest page seen so far."""
        return max(int(position.get("page_size") or 0), page.record_count)
