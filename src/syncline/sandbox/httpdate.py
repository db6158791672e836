"""The ``Date`` response header, set by the app instead of by uvicorn.

Why: the ``429_retry_after_date`` fault must send a ``Date`` that agrees with
its ``Retry-After`` date to the second, but uvicorn prepends its own ``Date``
(refreshed only once a second) to every response, so the fault's header would
be duplicated.  :func:`~syncline.sandbox.server.serve` therefore turns
uvicorn's header off and wraps the app in :class:`DateHeader`, which adds the
current date to every response that does not carry one already; clients see
the same single ``Date`` header as before.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def http_date(timestamp: float) -> str:
    """An RFC 9110 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True)


class DateHeader:
    """Pure-ASGI wrapper adding ``Date`` to HTTP responses that lack one."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._second = -1
        self._value = b""

    def _now(self) -> bytes:
        second = int(time.time())
        if second != self._second:  # one strftime per second, not per response
            self._second, self._value = second, http_date(second).encode("ascii")
        return self._value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if all(name.lower() != b"date" for name, _ in headers):
                    message["headers"] = [(b"date", self._now()), *headers]
            await send(message)

        await self._app(scope, receive, send_with_date)
