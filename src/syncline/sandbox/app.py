"""The sandbox ASGI app: one endpoint per pagination style over one dataset.

Why one dataset behind many styles: the client's paginators can then be tested
against each other, since every style must yield exactly the same records in
the same ``(updated_at, id)`` order.  The response shapes mimic well-known real
APIs (Laravel-style pages, Spring ``Page``, offset/limit, opaque cursors,
CouchDB ``_changes``, GitHub ``Link`` headers, HAL ``_links``, Relay GraphQL).

Handlers do no I/O and no awaiting beyond reading the request, so the app runs
on a single event-loop thread and the dataset needs no locks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from syncline.sandbox.admin import admin_routes
from syncline.sandbox.common import (
    BadRequestError,
    SandboxState,
    bad_request_handler,
    int_param,
    json_response,
    listing_start,
    page_size,
    sandbox_state,
)
from syncline.sandbox.cursor import InvalidCursorError, cursor_at, start_after
from syncline.sandbox.dataset import Dataset
from syncline.sandbox.fault_middleware import FaultInjector
from syncline.sandbox.faults import FaultConfig, FaultController
from syncline.sandbox.gate import DataGate
from syncline.sandbox.graphql_api import graphql_endpoint
from syncline.sandbox.limit_config import LimitsConfig
from syncline.sandbox.limit_middleware import RateLimitGate
from syncline.sandbox.limiter import RateLimiter
from syncline.sandbox.oauth import OAuthServer, OAuthSettings, token_endpoint
from syncline.sandbox.overlap_middleware import OverlapRecorder
from syncline.sandbox.seeds import build_seed_apis


def _since(request: Request) -> str | None:
    return request.query_params.get("updated_since") or None


def _with_since(params: dict[str, str | int], since: str | None) -> str:
    if since is not None:
        params["updated_since"] = since
    return urlencode(params)


async def page_items(request: Request) -> Response:
    """1-based ``page``/``per_page`` with totals, Laravel-style."""
    dataset = sandbox_state(request).dataset
    start = listing_start(dataset, _since(request))
    size = page_size(request, "per_page")
    page = int_param(request, "page", 1, minimum=1)
    total = len(dataset) - start
    last_page = max(1, math.ceil(total / size))
    first = start + (page - 1) * size
    data = dataset.records_between(first, first + size) if page <= last_page else []
    return json_response(
        {
            "data": data,
            "current_page": page,
            "last_page": last_page,
            "per_page": size,
            "total": total,
            "has_more": page < last_page,
        }
    )


async def page0_items(request: Request) -> Response:
    """0-based ``page``/``size``, Spring Data ``Page``-style (0 pages when empty)."""
    dataset = sandbox_state(request).dataset
    start = listing_start(dataset, _since(request))
    size = page_size(request, "size")
    page = int_param(request, "page", 0)
    total = len(dataset) - start
    first = start + page * size
    return json_response(
        {
            "content": dataset.records_between(first, first + size),
            "number": page,
            "size": size,
            "total_pages": math.ceil(total / size),
            "total_elements": total,
        }
    )


async def offset_items(request: Request) -> Response:
    dataset = sandbox_state(request).dataset
    start = listing_start(dataset, _since(request))
    limit = page_size(request, "limit")
    first = start + int_param(request, "offset", 0)
    return json_response(
        {"items": dataset.records_between(first, first + limit), "total": len(dataset) - start}
    )


def _keyset_page(request: Request, cursor_param: str) -> tuple[Dataset, int, int, int]:
    """Resolve ``(dataset, first, stop, limit)`` for a cursor-driven page."""
    dataset = sandbox_state(request).dataset
    floor = listing_start(dataset, _since(request))
    limit = page_size(request, "limit")
    try:
        first = start_after(dataset, request.query_params.get(cursor_param), floor)
    except InvalidCursorError as exc:
        raise BadRequestError(str(exc)) from None
    return dataset, first, min(first + limit, len(dataset)), limit


async def cursor_items(request: Request) -> Response:
    dataset, first, stop, _limit = _keyset_page(request, "cursor")
    has_more = stop < len(dataset)
    return json_response(
        {
            "items": dataset.records_between(first, stop),
            "next_cursor": cursor_at(dataset, stop - 1) if has_more and stop > first else None,
            "has_more": has_more,
        }
    )


async def next_items(request: Request) -> Response:
    """HAL: the next page is an absolute URL in ``_links.next.href``."""
    dataset, first, stop, limit = _keyset_page(request, "after")
    links: dict[str, dict[str, str]] = {"self": {"href": str(request.url)}}
    if stop < len(dataset) and stop > first:
        params: dict[str, str | int] = {"after": cursor_at(dataset, stop - 1), "limit": limit}
        query = _with_since(params, _since(request))
        links["next"] = {"href": f"{request.base_url}next/items?{query}"}
    return json_response(
        {"_embedded": {"items": dataset.records_between(first, stop)}, "_links": links}
    )


async def link_items(request: Request) -> Response:
    """Bare JSON list; pagination lives in an RFC 8288 ``Link`` header."""
    dataset = sandbox_state(request).dataset
    since = _since(request)
    start = listing_start(dataset, since)
    size = page_size(request, "per_page")
    page = int_param(request, "page", 1, minimum=1)
    last_page = max(1, math.ceil((len(dataset) - start) / size))
    first = start + (page - 1) * size
    links = []
    if page < last_page:
        query = _with_since({"page": page + 1, "per_page": size}, since)
        links.append(f'</link/items?{query}>; rel="next"')
    query = _with_since({"page": last_page, "per_page": size}, since)
    links.append(f'</link/items?{query}>; rel="last"')
    data = dataset.records_between(first, first + size) if page <= last_page else []
    return json_response(data, headers={"Link": ", ".join(links)})


async def changes_feed(request: Request) -> Response:
    """CouchDB-style ``_changes``: an empty page echoing ``since`` means the end."""
    dataset = sandbox_state(request).dataset
    since = int_param(request, "since", 0)
    results, last_seq = dataset.changes(since, page_size(request, "limit"))
    return json_response({"results": results, "last_seq": last_seq})


async def none_items(request: Request) -> Response:
    """No pagination at all: every matching record in one response."""
    dataset = sandbox_state(request).dataset
    start = listing_start(dataset, _since(request))
    return json_response({"items": dataset.records_between(start, len(dataset))})


def create_app(
    dataset: Dataset | None = None,
    token: str | None = None,
    *,
    oauth: OAuthSettings | None = None,
    faults: FaultConfig | None = None,
    limits: LimitsConfig | None = None,
    seeds: Mapping[str, Mapping[str, Any]] | None = None,
) -> Starlette:
    """Build the sandbox app around ``dataset`` (default: ``Dataset()``).

    With ``token`` set, data endpoints require ``Authorization: Bearer <token>``;
    ``/_admin/*`` never does, so tests can always drive the server.  ``oauth``
    mounts ``POST /oauth/token`` and lets issued access tokens through the gate
    too.  ``faults`` starts the app with that fault configuration (see
    :mod:`.faults`); ``/_admin/faults`` changes it at run time.  ``limits``
    likewise starts it with per-tenant rate limits (see :mod:`.limiter`;
    ``/_admin/limits`` at run time).  ``seeds`` gives launch configs of the real-API
    emulations by name (see :mod:`.seeds`), which are always mounted under their
    own prefixes; the global gate, limits and faults only see :data:`DATA_PATHS`,
    so they never apply there (the emulations do their own auth and limits).
    """
    dataset = Dataset() if dataset is None else dataset
    state = SandboxState(
        dataset,
        dataset.base_records,
        dataset.seed,
        faults=FaultController(),
        oauth=None if oauth is None else OAuthServer(oauth),
        limits=RateLimiter(limits),
    )
    state.faults.configure(faults)
    seed_apis = build_seed_apis(seeds)
    routes: list[BaseRoute] = [
        Route("/page/items", page_items),
        Route("/page0/items", page0_items),
        Route("/offset/items", offset_items),
        Route("/cursor/items", cursor_items),
        Route("/changes", changes_feed),
        Route("/link/items", link_items),
        Route("/next/items", next_items),
        Route("/none/items", none_items),
        Route("/graphql", graphql_endpoint, methods=["POST"]),
        *admin_routes(),
    ]
    if oauth is not None:
        routes.append(Route("/oauth/token", token_endpoint, methods=["POST"]))
    routes += [Mount(api.prefix, app=api.asgi_app()) for api in seed_apis]
    app = Starlette(
        routes=routes,
        # Outermost first: only requests the gate lets through (and counts) are
        # tracked for overlaps and rate-limited, and only those the limits allow
        # get faults.
        middleware=[
            Middleware(DataGate, state=state, token=token),
            Middleware(OverlapRecorder, state=state),
            Middleware(RateLimitGate, state=state),
            Middleware(FaultInjector, state=state),
        ],
        exception_handlers={BadRequestError: bad_request_handler},
    )
    app.state.sandbox = state
    app.state.seeds = {api.name: api for api in seed_apis}
    return app
