"""Offset pagination: ``?offset=0&limit=100``, then 100, 200, …

The next offset advances by the records actually received, not by the size
asked for, so an API that caps the page size silently loses nothing. Stops on
a ``total`` path (carried forward once seen), a false ``has_more``, an empty
page, or a page shorter than ``size``.

Minimal requests for N records, page size S: ``max(1, ceil(N / S))`` with a
``total``; ``floor(N / S) + 1`` when only a short or empty page tells the end.
"""

from __future__ import annotations

from typing import Any

from syncline.config.strategies import OffsetPaginate
from syncline.jpath import compile_path
from syncline.paginate.base import Page, Position, as_int, note_total, total_changed, truthy
from syncline.request import RequestSpec

__all__ = ["OffsetPaginator"]


class OffsetPaginator:
    def __init__(self, config: OffsetPaginate) -> None:
        self.config = config
        self._total = compile_path(config.total) if config.total else None
        self._has_more = compile_path(config.has_more) if config.has_more else None

    def start(self, resume_cursor: Any = None) -> Position:
        return {"offset": 0}

    def apply(self, position: Position, request: RequestSpec) -> RequestSpec:
        request = request.with_value(self.config.offset_param, position["offset"])
        if self.config.size_param and self.config.size:
            request = request.with_value(self.config.size_param, self.config.size)
        return request

    def advance(self, position: Position, page: Page) -> Position | None:
        count = page.record_count
        if count == 0:
            return None
        # At most the size asked for: a page padded with a repeat of the previous page's
        # last record must not push us past a record we have not seen.
        offset = int(position["offset"]) + (
            min(count, self.config.size) if self.config.size else count
        )
        reported = self._reported_total(page)
        total = reported
        if total is None and position.get("total") is not None:
            total = int(position["total"])
        if total is not None:
            nxt = {"offset": offset, "total": total}
            return note_total(position, nxt, reported) if offset < total else None
        if self._has_more is not None:
            flag = self._has_more(page.body)
            if flag is not None:
                return {"offset": offset} if truthy(flag) else None
        size = self.config.size
        if self.config.stop_on_short_page and size and count < size:
            return None
        return {"offset": offset}

    def drifted(self, position: Position, page: Page) -> bool:
        return total_changed(position, self._reported_total(page))

    def _reported_total(self, page: Page) -> int | None:
        return as_int(self._total(page.body)) if self._total is not None else None

    def final_cursor(self, position: Position, page: Page) -> Any:
        return None
