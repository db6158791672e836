"""``/_admin/*``: how tests and benchmarks drive and inspect the sandbox.

Why an HTTP admin surface instead of in-process hooks: the sandbox runs in a
separate process (real sockets, real event loop), so the only way for a test to
mutate data or read request counts is to ask the server.  These endpoints never
require the bearer token, are not counted in the stats and never get faults.
The fault and OAuth endpoints are thin: the logic lives in :mod:`.faults` and
:mod:`.oauth`; the rate-limit endpoints live in :mod:`.limit_admin`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncline.sandbox.common import BadRequestError, json_body, json_response, sandbox_state
from syncline.sandbox.dataset import Dataset
from syncline.sandbox.faults import parse_fault_config
from syncline.sandbox.limit_admin import limit_routes


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequestError(f"{name} must be an integer")
    return value


async def reset(request: Request) -> Response:
    """Recreate the dataset (defaults: the server's launch settings), zero stats.

    Also clears any fault and rate-limit configuration (including ones given
    at launch) and, with OAuth enabled, forgets every issued token and zeroes
    the OAuth counters, so each test starts from a clean server.
    """
    state = sandbox_state(request)
    body = await json_body(request)
    records = _int_field(body, "records", state.default_records)
    seed = _int_field(body, "seed", state.default_seed)
    if records < 0:
        raise BadRequestError("records must be >= 0")
    state.dataset = Dataset(records, seed)
    state.stats.clear()
    state.overlaps.reset()
    state.faults.configure(None)
    state.limits.configure(None)
    if state.oauth is not None:
        state.oauth.reset()
    return json_response({"records": records, "seed": seed})


async def mutate(request: Request) -> Response:
    state = sandbox_state(request)
    body = await json_body(request)
    try:
        result = state.dataset.mutate(
            update=_int_field(body, "update", 0),
            insert=_int_field(body, "insert", 0),
            delete=_int_field(body, "delete", 0),
        )
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    return json_response(result)


async def records(request: Request) -> Response:
    return json_response({"records": sandbox_state(request).dataset.all_records()})


async def stats(request: Request) -> Response:
    """Request counts per data path.

    ``faults`` (injected per kind) and ``limits`` (``{tenant: {"allowed": n,
    "rejected": n}}``) appear only while configured.  Rate-limited requests
    passed the data gate, so they count in ``requests`` too.  While limits are
    configured, ``overlaps`` (``{tenant: {"overlaps": n, "max_in_flight": n}}``)
    lets a test prove that no two workers ever worked on one tenant at once;
    it stays empty unless the limits name a tenant (see :mod:`.overlap_middleware`).
    """
    state = sandbox_state(request)
    counts = dict(sorted(state.stats.items()))
    body: dict[str, Any] = {"requests": counts, "total": sum(counts.values())}
    if state.faults.config is not None:
        body["faults"] = dict(sorted(state.faults.injected.items()))
    if state.limits.config is not None:
        body["limits"] = state.limits.counters()
        body["overlaps"] = state.overlaps.counters()
    return json_response(body)


async def reset_stats(request: Request) -> Response:
    state = sandbox_state(request)
    state.stats.clear()
    state.overlaps.reset()
    return json_response({"requests": {}, "total": 0})


async def faults(request: Request) -> Response:
    """``GET`` config and counters; ``POST`` replaces the config; ``DELETE`` or ``{}`` clears."""
    controller = sandbox_state(request).faults
    if request.method == "DELETE":
        controller.configure(None)
    elif request.method == "POST":
        body = await json_body(request)
        controller.configure(parse_fault_config(body) if body else None)
    return json_response(controller.snapshot())


def _oauth_not_enabled() -> Response:
    return json_response({"error": "oauth is not enabled"}, status=404)


async def oauth_stats(request: Request) -> Response:
    server = sandbox_state(request).oauth
    return _oauth_not_enabled() if server is None else json_response(server.stats())


async def oauth_refresh_token(request: Request) -> Response:
    """A fresh refresh token, as if a user had just authorized the client."""
    server = sandbox_state(request).oauth
    if server is None:
        return _oauth_not_enabled()
    return json_response({"refresh_token": server.issue_refresh()})


async def oauth_expire(request: Request) -> Response:
    """Invalidate every issued access token; the next use of one gets a 401."""
    server = sandbox_state(request).oauth
    if server is None:
        return _oauth_not_enabled()
    return json_response({"expired": server.expire_all()})


def admin_routes() -> list[Route]:
    return [
        Route("/_admin/reset", reset, methods=["POST"]),
        Route("/_admin/mutate", mutate, methods=["POST"]),
        Route("/_admin/records", records, methods=["GET"]),
        Route("/_admin/stats", stats, methods=["GET"]),
        Route("/_admin/stats/reset", reset_stats, methods=["POST"]),
        Route("/_admin/faults", faults, methods=["GET", "POST", "DELETE"]),
        *limit_routes(),
        Route("/_admin/oauth", oauth_stats, methods=["GET"]),
        Route("/_admin/oauth/refresh-token", oauth_refresh_token, methods=["POST"]),
        Route("/_admin/oauth/expire", oauth_expire, methods=["POST"]),
    ]
