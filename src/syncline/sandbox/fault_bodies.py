"""Faults that are a *plausible* response: the real page with its navigation broken.

Why rewrite the real response instead of building a fake one: the records,
totals and headers stay exactly what the endpoint would have served, so a test
sees only the one thing that is wrong (a cursor that does not advance, a next
link that cycles or leaves the origin, a GraphQL error next to good data, a
record without its key, a record served twice).  Everything here works on the
decoded JSON and the response headers; the ASGI plumbing lives in
:mod:`.fault_middleware`.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request

CLOUD_METADATA_ORIGIN: Final = "http://169.254.169.254"
"""Where ``cross_origin_link`` sends HAL clients: the classic SSRF target."""
EVIL_ORIGIN: Final = "https://evil.example"
"""Where ``cross_origin_link`` sends ``Link``-header clients."""

_LINK_PART = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


def records_of(path: str, payload: Any) -> list[Any] | None:
    """The record list inside an endpoint's response body, if it has one."""
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, dict):
        return None
    if path == "/graphql":
        data = payload.get("data")
        if isinstance(data, dict):  # aliases allowed: the first connection found
            for value in data.values():
                if isinstance(value, dict) and isinstance(value.get("nodes"), list):
                    nodes: list[Any] = value["nodes"]
                    return nodes
        return None
    if path == "/next/items":
        embedded = payload.get("_embedded")
        payload = embedded if isinstance(embedded, dict) else {}
    for key in ("data", "content", "items", "results"):
        value = payload.get(key)
        if isinstance(value, list):
            return value
    return None


def _links(headers: MutableHeaders) -> list[tuple[str, str]]:
    return _LINK_PART.findall(headers.get("link", ""))


def _set_links(headers: MutableHeaders, links: list[tuple[str, str]]) -> None:
    headers["link"] = ", ".join(f'<{target}>; rel="{rel}"' for target, rel in links)


def _replace_next(headers: MutableHeaders, target: str) -> None:
    others = [(url, rel) for url, rel in _links(headers) if rel != "next"]
    _set_links(headers, [(target, "next"), *others])


def _hal_links(payload: Any) -> dict[str, Any] | None:
    links = payload.get("_links") if isinstance(payload, dict) else None
    return links if isinstance(links, dict) else None


def _repeat_cursor(path: str, request: Request, payload: Any) -> bool:
    if path == "/cursor/items":
        cursor = request.query_params.get("cursor")
        if not cursor or not isinstance(payload, dict):
            return False  # the first page has no cursor to repeat
        payload["next_cursor"] = cursor
        payload["has_more"] = True
        return True
    links = _hal_links(payload)
    if links is None:
        return False
    links["next"] = {"href": str(request.url)}
    return True


def _cyclic_link(path: str, request: Request, headers: MutableHeaders, payload: Any) -> bool:
    if path == "/link/items":
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        _replace_next(headers, f"/link/items?{urlencode([('page', '1'), *params])}")
        return True
    links = _hal_links(payload)
    if links is None:
        return False
    links["next"] = {"href": str(request.url.remove_query_params("after"))}
    return True


def _cross_origin_link(path: str, headers: MutableHeaders, payload: Any) -> bool:
    if path == "/link/items":
        nexts = [url for url, rel in _links(headers) if rel == "next"]
        if not nexts:
            return False
        _replace_next(headers, _rehome(nexts[0], EVIL_ORIGIN))
        return True
    links = _hal_links(payload)
    if links is None or not isinstance(links.get("next"), dict):
        return False
    links["next"] = {"href": _rehome(str(links["next"].get("href", "")), CLOUD_METADATA_ORIGIN)}
    return True


def _rehome(url: str, origin: str) -> str:
    """``url``'s path and query on another origin."""
    parts = urlsplit(url)
    return f"{origin}{parts.path}?{parts.query}" if parts.query else f"{origin}{parts.path}"


def _graphql_errors(payload: Any) -> bool:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or not data:
        return False
    errors = payload.setdefault("errors", [])
    errors.append({"message": "partial failure", "path": [next(iter(data))]})
    return True


def rewrite(kind: str, path: str, request: Request, headers: MutableHeaders, payload: Any) -> bool:
    """Apply a body-level fault in place; ``False`` if it does not apply here."""
    if kind == "repeat_cursor":
        return _repeat_cursor(path, request, payload)
    if kind == "cyclic_link":
        return _cyclic_link(path, request, headers, payload)
    if kind == "cross_origin_link":
        return _cross_origin_link(path, headers, payload)
    if kind == "graphql_errors":
        return _graphql_errors(payload)
    return False
