"""What every paginator shares: the page it reads and the protocol it implements.

A paginator is pure: it turns (position, page) into the next position, or
``None`` when the pass is complete. Positions are small JSON-able dicts so the
engine can checkpoint them with the page's rows. The engine, not the
paginator, guards against loops (repeated positions, ``max_pages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from syncline.request import RequestSpec

__all__ = ["DriftAware", "Page", "Paginator", "Position", "as_int", "truthy"]

Position = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded response, as far as a paginator needs to see it."""

    body: Any
    headers: Mapping[str, str]
    link_headers: tuple[str, ...]
    url: str
    record_count: int


class Paginator(Protocol):
    def start(self, resume_cursor: Any = None) -> Position:
        """The position of the first request of a pass (optionally continuing a cursor)."""
        ...

    def apply(self, position: Position, request: RequestSpec) -> RequestSpec:
        """The request that fetches the page at ``position``."""
        ...

    def advance(self, position: Position, page: Page) -> Position | None:
        """Where the next page is, or ``None`` when ``page`` was the last one."""
        ...

    def final_cursor(self, position: Position, page: Page) -> Any:
        """What a cursor-incremental stream keeps to continue from next run."""
        ...


@runtime_checkable
class DriftAware(Protocol):
    """A paginator over positions (offsets, page numbers) that can shift under it.

    When records are inserted or deleted ahead of the position while paging,
    an offset listing skips or repeats records. Repeats are absorbed by the
    primary-key upsert; skips are not, so the engine reads the pass again
    when the listing's reported total changed during it.
    """

    def drifted(self, position: Position, page: Page) -> bool:
        """True when the listing's total changed between the pass's pages."""
        ...


def note_total(position: Position, nxt: Position, total: int | None) -> Position:
    """Carry the pass's first reported total, and a flag once a page reports another."""
    first = position.get("first_total")
    if first is None:
        first = total
    if first is not None:
        nxt["first_total"] = first
    if position.get("drift") or (total is not None and first is not None and total != first):
        nxt["drift"] = True
    return nxt


def total_changed(position: Position, total: int | None) -> bool:
    first = position.get("first_total")
    return bool(position.get("drift")) or (
        total is not None and first is not None and total != first
    )


def truthy(value: Any) -> bool:
    """Read a has-more flag the way APIs write it (``true``, ``1``, ``"true"``)."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def as_int(value: Any) -> int | None:
    """A count or page number from a body; ``None`` when absent or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal():
        try:
            return int(value)
        except ValueError:
            return None
    return None
