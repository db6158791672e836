"""``/_admin/*``: how tests and benchmarks drive and inspect the sandbox.

Why an HTTP admin surface instead of in-process hooks: the sandbox runs in a
separate process (real sockets, real event loop), so the only way for a test to
mutate data or read request counts is to ask the server.  These endpoints never
require the bearer token and are not counted in the stats.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncline.sandbox.common import BadRequestError, json_response, sandbox_state
from syncline.sandbox.dataset import Dataset


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body; an empty body counts as ``{}``."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object")
    return body


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequestError(f"{name} must be an integer")
    return value


async def reset(request: Request) -> Response:
    """Recreate the dataset (defaults: the server's launch settings), zero stats."""
    state = sandbox_state(request)
    body = await _json_body(request)
    records = _int_field(body, "records", state.default_records)
    seed = _int_field(body, "seed", state.default_seed)
    if records < 0:
        raise BadRequestError("records must be >= 0")
    state.dataset = Dataset(records, seed)
    state.stats.clear()
    return json_response({"records": records, "seed": seed})


async def mutate(request: Request) -> Response:
    state = sandbox_state(request)
    body = await _json_body(request)
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
    counts = dict(sorted(sandbox_state(request).stats.items()))
    return json_response({"requests": counts, "total": sum(counts.values())})


async def reset_stats(request: Request) -> Response:
    sandbox_state(request).stats.clear()
    return json_response({"requests": {}, "total": 0})


def admin_routes() -> list[Route]:
    return [
        Route("/_admin/reset", reset, methods=["POST"]),
        Route("/_admin/mutate", mutate, methods=["POST"]),
        Route("/_admin/records", records, methods=["GET"]),
        Route("/_admin/stats", stats, methods=["GET"]),
        Route("/_admin/stats/reset", reset_stats, methods=["POST"]),
    ]
