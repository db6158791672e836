"""Pure-ASGI fault injection in front of the data endpoints.

Why at the ASGI level: the faults a sync client must survive are mostly not
"a handler returned an error" but broken HTTP exchanges: a body shorter than
its ``Content-Length``, a connection dropped mid-body, HTML where JSON was
promised.  Only a layer that writes ASGI messages itself can produce those on
a real socket.  It sits inside the data gate (so only authorized, counted data
requests get faults; ``/_admin/*`` and ``/oauth/token`` never do) and costs one
attribute check per request while no faults are configured.

What to inject is decided by :class:`~syncline.sandbox.faults.FaultController`;
canned replacements come from :mod:`.fault_responses` and rewrites of the real
response from :mod:`.fault_bodies`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncline.sandbox.common import AUTH_SCOPE_KEY, DATA_PATHS, SandboxState
from syncline.sandbox.fault_bodies import records_of, rewrite
from syncline.sandbox.fault_responses import canned_response
from syncline.sandbox.faults import FaultConfig, FaultController, applies


class FaultConnectionResetError(ConnectionResetError):
    """Raised after a response started, so the server drops the connection."""


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
    """Run ``app`` and return its ``http.response.start`` message and full body."""
    start: Message = {"type": "http.response.start", "status": 500, "headers": []}
    chunks: list[bytes] = []

    async def keep(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, keep)
    return start, b"".join(chunks)


class FaultInjector:
    """Applies the configured faults to data requests; see the module docstring."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        controller = self._state.faults
        config = controller.config
        if config is None or scope["type"] != "http" or scope["path"] not in DATA_PATHS:
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        # Decide on arrival, before any latency, so the fault sequence follows request order.
        kind = controller.plan(path, oauth_token=scope.get(AUTH_SCOPE_KEY) == "oauth")
        if kind is not None and not applies(kind, path):
            kind = None
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        if kind is not None and (canned := canned_response(kind, config)) is not None:
            controller.count(kind)
            await canned(scope, receive, send)
            return
        if kind is None and not config.rewrites_records:
            await self._app(scope, receive, send)
            return
        start, body = await _capture(self._app, scope, receive)
        headers = MutableHeaders(raw=list(start.get("headers", [])))
        if kind in {"truncated", "reset"}:
            controller.count(kind)
            await self._break_off(kind, headers, body, send)
            return
        status: int = start["status"]
        if kind == "malformed_json":
            controller.count(kind)
            status, body = 200, body[: len(body) // 2]
            headers["content-type"] = "application/json"
        elif status == 200 and headers.get("content-type", "").startswith("application/json"):
            body = self._rewrite(controller, config, kind, scope, headers, body)
        headers["content-length"] = str(len(body))
        await send({"type": "http.response.start", "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _break_off(kind: str, headers: MutableHeaders, body: bytes, send: Send) -> None:
        """Send a 200 with half the body, then leave the message unfinished.

        ``truncated`` announces a ``Content-Length`` longer than what it sends
        and returns: uvicorn then closes the connection, so the client sees a
        premature end of body.  ``reset`` streams chunked and raises
        mid-response, which makes uvicorn drop the connection the same way a
        crashing backend would.
        """
        cut = len(body) // 2
        if kind == "truncated":
            headers["content-length"] = str(max(len(body), cut + 1))
        else:
            del headers["content-length"]
        await send({"type": "http.response.start", "status": 200, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body[:cut], "more_body": True})
        if kind == "reset":
            raise FaultConnectionResetError("sandbox fault: connection reset mid-response")

    @staticmethod
    def _rewrite(
        controller: FaultController,
        config: FaultConfig,
        kind: str | None,
        scope: Scope,
        headers: MutableHeaders,
        body: bytes,
    ) -> bytes:
        """Apply body-level faults to a 200 JSON response; re-encode only if needed."""
        path: str = scope["path"]
        payload: Any = orjson.loads(body)
        if kind is not None and rewrite(kind, path, Request(scope), headers, payload):
            controller.count(kind)
        if config.rewrites_records and (records := records_of(path, payload)) is not None:
            if config.duplicate_across_pages:
                controller.duplicate_previous(path, records)
            if config.missing_key_rate:
                controller.drop_ids(records, config.missing_key_rate)
        return orjson.dumps(payload)
