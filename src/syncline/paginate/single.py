"""No pagination: one request returns the whole collection. Minimal requests: 1."""

from __future__ import annotations

from typing import Any

from syncline.paginate.base import Page, Position
from syncline.request import RequestSpec

__all__ = ["SinglePage"]


class SinglePage:
    def start(self, resume_cursor: Any = None) -> Position:
        return {}

    def apply(self, position: Position, request: RequestSpec) -> RequestSpec:
        return request

    def advance(self, position: Position, page: Page) -> Position | None:
        return None

    def final_cursor(self, position: Position, page: Page) -> Any:
        return None
