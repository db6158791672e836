"""Pure-ASGI rate-limit enforcement in front of the data endpoints.

Why here in the stack: it sits inside the data gate (so only authorized,
counted requests use up a tenant's quota, and ``/_admin/*`` and
``/oauth/token`` are never limited) and outside fault injection, because a
real rate limiter answers before the backend does: a rejected request never
reaches the faults (nor their request counter), while an allowed one may still
fail.  It costs one attribute check per request while no limits are set.

Decisions are made by :class:`~syncline.sandbox.limiter.RateLimiter`; the
headers come from :mod:`.limit_headers`.
"""

from __future__ import annotations

import time

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncline.sandbox.common import DATA_PATHS, SandboxState, json_response
from syncline.sandbox.limit_config import LimitsConfig
from syncline.sandbox.limit_headers import RawHeaders, rate_limit_headers, whole_seconds
from syncline.sandbox.limiter import Verdict


def tenant_of(scope: Scope, config: LimitsConfig) -> str:
    """The request's tenant; ``""`` (one shared tenant) when it names none."""
    if config.tenant_param is not None:
        return QueryParams(scope["query_string"]).get(config.tenant_param, "")
    if config.tenant_path_segment is not None:
        # "/c/acme/products" -> ["c", "acme", "products"]; segment 1 is "acme".
        segments = scope["path"].split("/")[1:]
        index = config.tenant_path_segment
        return segments[index] if index < len(segments) else ""
    return ""


async def _reject(
    config: LimitsConfig,
    verdict: Verdict,
    headers: RawHeaders,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    assert verdict.blocking is not None
    response = json_response(
        {"error": "rate limit exceeded", "window": verdict.blocking.name}, status=config.status
    )
    if config.retry_after:
        # A blocked window frees up strictly later than now, so never "0".
        retry = max(1, whole_seconds(verdict.retry_in))
        response.raw_headers.append((b"retry-after", str(retry).encode("latin-1")))
    response.raw_headers.extend(headers)
    await response(scope, receive, send)


class RateLimitGate:
    """Enforces the configured limits on data requests; see the module docstring."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self._state.limits
        config = limiter.config
        if config is None or scope["type"] != "http" or scope["path"] not in DATA_PATHS:
            await self._app(scope, receive, send)
            return
        verdict = limiter.check(tenant_of(scope, config))
        headers: RawHeaders = []
        if config.headers is not None:
            headers = rate_limit_headers(config.headers, verdict, time.time())
        if not verdict.allowed:
            await _reject(config, verdict, headers, scope, receive, send)
            return
        if not headers:
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self._app(scope, receive, send_with_headers)
