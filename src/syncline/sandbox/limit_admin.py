"""``/_admin/limits``: configure and inspect the sandbox's per-tenant rate limits.

Kept out of :mod:`.admin` so that module stays a list of small handlers; the
logic lives in :mod:`.limit_config` (validation) and :mod:`.limiter` (state).
Like every admin endpoint these are never limited, counted or faulted.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncline.sandbox.common import json_body, json_response, sandbox_state
from syncline.sandbox.limit_config import parse_limits_config


async def limits(request: Request) -> Response:
    """``GET`` config, counters and usage; ``POST`` replaces the config; ``DELETE``/``{}`` clears.

    Replacing the config (even with an identical one) forgets all usage and
    zeroes the per-tenant counters, so each test starts from full quotas.
    """
    limiter = sandbox_state(request).limits
    if request.method == "DELETE":
        limiter.configure(None)
    elif request.method == "POST":
        body = await json_body(request)
        limiter.configure(parse_limits_config(body) if body else None)
    return json_response(limiter.snapshot())


async def reset_windows(request: Request) -> Response:
    """Forget all usage ("the next day"); the config and the counters stay."""
    limiter = sandbox_state(request).limits
    limiter.reset_windows()
    return json_response(limiter.snapshot())


def limit_routes() -> list[Route]:
    return [
        Route("/_admin/limits", limits, methods=["GET", "POST", "DELETE"]),
        Route("/_admin/limits/reset-windows", reset_windows, methods=["POST"]),
    ]
