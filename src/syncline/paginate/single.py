"""No pagination: one request returns the whole collection. Minimal requests: 1."""

from __future__ import annotations

from typing import Any

from syncline.config.strategies import NoPaginate
from syncline.paginate.base import Page, Position
from syncline.request import RequestSpec

__all__ = ["SinglePage"]


class SinglePage:
    def __init__(self, config: NoPaginate | None = None) -> None:
        self.config = config

    def start(self, resume_cursor: Any = None) -> Position:
        return {}

    def apply(self, position: Position, request: RequestSpec) -> RequestSpec:
        """One request; a size is still sent when given (APIs whose default page is small)."""
        if self.config and self.config.size_param and self.config.size:
            return request.with_value(self.config.size_param, self.config.size)
        return request

    def advance(self, position: Position, page: Page) -> Position | None:
        return None

    def final_cursor(self, position: Position, page: Page) -> Any:
        return None
