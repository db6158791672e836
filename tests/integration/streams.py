"""One stream definition per paginator style of the sandbox, and its minimal request count."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GRAPHQL_FIELDS = ("id", "name", "price", "stock", "updated_at", "version")
GRAPHQL_QUERY = (
    "query items($first: Int, $after: String, $updatedSince: String) {"
    " items(first: $first, after: $after, updatedSince: $updatedSince) {"
    f" nodes {{ {' '.join(GRAPHQL_FIELDS)} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)


@dataclass(frozen=True)
class Style:
    name: str
    stream: Callable[[int], dict[str, Any]]
    min_requests: Callable[[int, int], int]
    """(records, page size) → the fewest requests that can tell the whole collection."""
    fields: tuple[str, ...] | None = None
    """The record fields the stream selects (None: the whole record)."""
    extra_fields: tuple[str, ...] = ()


def ceil_pages(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


STYLES = [
    Style(
        "page_number",
        lambda size: {
            "path": "/page/items",
            "records": "data",
            "primary_key": "id",
            "updated_at": "updated_at",
            "paginate": {
                "type": "page_number",
                "size_param": "per_page",
                "size": size,
                "last_page": "last_page",
            },
            "incremental": {"type": "watermark", "param": "updated_since"},
        },
        ceil_pages,
    ),
    Style(
        "page_number_short_page",
        lambda size: {
            "path": "/page/items",
            "records": "data",
            "primary_key": "id",
            "paginate": {"type": "page_number", "size_param": "per_page", "size": size},
        },
        lambda n, size: n // size + 1,
    ),
    Style(
        "page_number_zero_based",
        lambda size: {
            "path": "/page0/items",
            "records": "content",
            "primary_key": "id",
            "paginate": {
                "type": "page_number",
                "first_page": 0,
                "size_param": "size",
                "size": size,
                "total_pages": "total_pages",
            },
        },
        ceil_pages,
    ),
    Style(
        "offset",
        lambda size: {
            "path": "/offset/items",
            "records": "items",
            "primary_key": "id",
            "updated_at": "updated_at",
            "paginate": {"type": "offset", "limit_param": "limit", "size": size, "total": "total"},
            "incremental": {"type": "watermark", "param": "updated_since"},
        },
        ceil_pages,
    ),
    Style(
        "cursor",
        lambda size: {
            "path": "/cursor/items",
            "records": "items",
            "primary_key": "id",
            "updated_at": "updated_at",
            "paginate": {
                "type": "cursor",
                "cursor_path": "next_cursor",
                "size_param": "limit",
                "size": size,
            },
            "incremental": {"type": "watermark", "param": "updated_since"},
        },
        ceil_pages,
    ),
    Style(
        "cursor_feed",
        lambda size: {
            "path": "/changes",
            "records": "results",
            "primary_key": "id",
            "updated_at": "updated_at",
            "paginate": {
                "type": "cursor",
                "cursor_path": "last_seq",
                "cursor_param": "since",
                "size_param": "limit",
                "size": size,
            },
            "incremental": {"type": "cursor"},
        },
        lambda n, size: math.ceil(n / size) + 1,
        extra_fields=("seq",),
    ),
    Style(
        "relay",
        lambda size: {
            "path": "/graphql",
            "graphql": {"query": GRAPHQL_QUERY},
            "records": "data.items.nodes",
            "primary_key": "id",
            "updated_at": "updated_at",
            "paginate": {"type": "relay", "page_info": "data.items.pageInfo", "size": size},
            "incremental": {"type": "watermark", "param": "updatedSince"},
        },
        ceil_pages,
        fields=GRAPHQL_FIELDS,
    ),
    Style(
        "next_link",
        lambda size: {
            "path": "/next/items",
            "records": "_embedded.items",
            "primary_key": "id",
            "updated_at": "updated_at",
            "paginate": {
                "type": "next_link",
                "next_url_path": "_links.next.href",
                "size_param": "limit",
                "size": size,
            },
            "incremental": {"type": "watermark", "param": "updated_since"},
        },
        ceil_pages,
    ),
    Style(
        "link_header",
        lambda size: {
            "path": "/link/items",
            "primary_key": "id",
            "updated_at": "updated_at",
            "paginate": {"type": "link_header", "size_param": "per_page", "size": size},
            "incremental": {"type": "watermark", "param": "updated_since"},
        },
        ceil_pages,
    ),
]

STYLES_BY_NAME = {style.name: style for style in STYLES}


def expected_records(
    style: Style, sandbox_records: list[dict[str, Any]]
) -> dict[Any, dict[str, Any]]:
    """What the store must hold for this style: the sandbox's records (or the selected fields)."""
    if style.fields is None:
        return {r["id"]: r for r in sandbox_records}
    return {r["id"]: {f: r[f] for f in style.fields} for r in sandbox_records}


def comparable(style: Style, rows: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Stored rows without the fields a style's endpoint adds (e.g. the feed's ``seq``)."""
    return {
        key: {k: v for k, v in row.items() if k not in style.extra_fields}
        for key, row in rows.items()
    }
