"""Paginators: one small pure class per strategy, all behind :class:`Paginator`."""

from __future__ import annotations

from syncline.config.strategies import (
    CursorPaginate,
    LinkHeaderPaginate,
    NextLinkPaginate,
    NoPaginate,
    OffsetPaginate,
    PageNumberPaginate,
    PaginateConfig,
    RelayPaginate,
)
from syncline.paginate.base import DriftAware, Page, Paginator, Position
from syncline.paginate.cursor import CursorPaginator
from syncline.paginate.links import LinkHeaderPaginator, NextLinkPaginator
from syncline.paginate.offset import OffsetPaginator
from syncline.paginate.page_number import PageNumberPaginator
from syncline.paginate.relay import RelayPaginator
from syncline.paginate.single import SinglePage

__all__ = ["DriftAware", "Page", "Paginator", "Position", "make_paginator"]


def make_paginator(config: PaginateConfig) -> Paginator:
    """The paginator object for a stream's ``paginate:`` block."""
    match config:
        case PageNumberPaginate():
            return PageNumberPaginator(config)
        case OffsetPaginate():
            return OffsetPaginator(config)
        case CursorPaginate():
            return CursorPaginator(config)
        case RelayPaginate():
            return RelayPaginator(config)
        case NextLinkPaginate():
            return NextLinkPaginator(config)
        case LinkHeaderPaginate():
            return LinkHeaderPaginator(config)
        case NoPaginate():
            return SinglePage(config)
