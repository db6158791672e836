"""Cursor pagination: the body names the next cursor, which goes back as a parameter.

Stops when the cursor is null or empty, a ``has_more`` path is false, or a
page has no records. A CouchDB-style feed answers an empty page with the same
cursor: that is the end, not a loop.

Minimal requests for N records, page size S: ``max(1, ceil(N / S))`` when the
last page carries no cursor; ``ceil(N / S) + 1`` for a feed that only ends
with an empty page (nothing else can tell the end).
"""

from __future__ import annotations

from typing import Any

from syncline.config.strategies import CursorPaginate
from syncline.jpath import compile_path
from syncline.paginate.base import Page, Position, truthy
from syncline.request import RequestSpec

__all__ = ["CursorPaginator"]


class CursorPaginator:
    def __init__(self, config: CursorPaginate) -> None:
        self.config = config
        self._cursor = compile_path(config.cursor_path)
        self._has_more = compile_path(config.has_more) if config.has_more else None

    def start(self, resume_cursor: Any = None) -> Position:
        return {"cursor": resume_cursor}

    def apply(self, position: Position, request: RequestSpec) -> RequestSpec:
        if position.get("cursor") not in (None, ""):
            request = request.with_value(self.config.cursor_param, position["cursor"])
        if self.config.size_param and self.config.size:
            request = request.with_value(self.config.size_param, self.config.size)
        return request

    def advance(self, position: Position, page: Page) -> Position | None:
        if page.record_count == 0:
            return None
        cursor = self._cursor(page.body)
        if cursor in (None, ""):
            return None
        if self._has_more is not None:
            flag = self._has_more(page.body)
            if flag is not None and not truthy(flag):
                return None
        return {"cursor": cursor}

    def final_cursor(self, position: Position, page: Page) -> Any:
        """The newest cursor the server gave; else the one that fetched this last page."""
        cursor = self._cursor(page.body)
        return position.get("cursor") if cursor in (None, "") else cursor
