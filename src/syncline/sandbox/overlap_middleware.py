"""Pure-ASGI recording of overlapping data requests per tenant.

A request is in flight from the moment it gets here until the app below has
returned, i.e. its response is fully sent (or it failed: ``finally`` also
covers exceptions and client disconnects).  The counting itself lives in
:class:`~syncline.sandbox.overlap.OverlapTracker`.

Why here in the stack: inside the data gate, so only authorized, counted
requests take part (a 401 is not work on a partition); outside the rate
limiter, so a rejected request still counts as in flight while it is answered
(a worker that gets a 429 was still working on that tenant); and outside fault
injection, so injected latency keeps a request in flight (handlers never
await, so that latency is what lets requests overlap at all).  It acts only
while limits are configured with a tenant, because that is what names the
tenant; otherwise it only looks at the configuration.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from syncline.sandbox.common import DATA_PATHS, SandboxState
from syncline.sandbox.limit_middleware import tenant_of


class OverlapRecorder:
    """Tracks data requests in flight per tenant; see the module docstring."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        config = self._state.limits.config
        if (
            config is None
            or (config.tenant_param is None and config.tenant_path_segment is None)
            or scope["type"] != "http"
            or scope["path"] not in DATA_PATHS
        ):
            await self._app(scope, receive, send)
            return
        # Kept for the exit: the limits may be reconfigured while this request runs.
        tenant = tenant_of(scope, config)
        tracker = self._state.overlaps
        tracker.enter(tenant)
        try:
            await self._app(scope, receive, send)
        finally:
            tracker.leave(tenant)
