"""GraphQL Relay pagination: ``pageInfo { hasNextPage endCursor }`` → the ``after`` variable.

Stops when ``hasNextPage`` is false. ``hasNextPage: true`` with a null
``endCursor`` is a broken server, reported as a bad payload rather than
looped on. The page size is the ``first`` variable (``size_param``).

Minimal requests for N records, page size S: ``max(1, ceil(N / S))``.
"""

from __future__ import annotations

from typing import Any

from syncline.config.strategies import RelayPaginate
from syncline.errors import BadPayload
from syncline.jpath import compile_path
from syncline.paginate.base import Page, Position, truthy
from syncline.request import RequestSpec

__all__ = ["RelayPaginator"]


class RelayPaginator:
    def __init__(self, config: RelayPaginate) -> None:
        self.config = config
        self._page_info = compile_path(config.page_info)

    def start(self, resume_cursor: Any = None) -> Position:
        return {"cursor": resume_cursor}

    def apply(self, position: Position, request: RequestSpec) -> RequestSpec:
        if position.get("cursor") not in (None, ""):
            request = request.with_value(self.config.after_param, position["cursor"])
        if self.config.size_param and self.config.size:
            request = request.with_value(self.config.size_param, self.config.size)
        return request

    def advance(self, position: Position, page: Page) -> Position | None:
        has_next, end_cursor = self._read(page)
        if not has_next:
            return None
        if end_cursor in (None, ""):
            raise BadPayload(
                f"{self.config.page_info}.{self.config.has_next_page} is true "
                f"but {self.config.end_cursor} is empty"
            )
        return {"cursor": end_cursor}

    def final_cursor(self, position: Position, page: Page) -> Any:
        _, end_cursor = self._read(page)
        return position.get("cursor") if end_cursor in (None, "") else end_cursor

    def _read(self, page: Page) -> tuple[bool, Any]:
        info = self._page_info(page.body)
        if not isinstance(info, dict):
            raise BadPayload(f"no page info object at {self.config.page_info!r}")
        return truthy(info.get(self.config.has_next_page)), info.get(self.config.end_cursor)
