"""Canned fault responses: the ones served *instead of* the endpoint.

Why canned: an error status, a login page or a throttled GraphQL answer does
not depend on the request, and serving it without running the endpoint keeps
the dataset untouched, exactly like a gateway or rate limiter in front of a
real API.  Each shape follows a real API's habit (GitHub's 403 with
``X-RateLimit-Remaining: 0``, Shopify's GraphQL ``THROTTLED``, a proxy's HTML
sign-in page served with status 200).
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

from starlette.responses import HTMLResponse, Response

from syncline.sandbox.common import json_response
from syncline.sandbox.faults import UNAUTHORIZED, FaultConfig, retry_after_seconds
from syncline.sandbox.httpdate import http_date

LOGIN_PAGE: Final = """<!DOCTYPE html>
<html><head><title>Sign in</title></head>
<body><h1>Sign in</h1>
<form method="post" action="/login">
<input name="username"><input name="password" type="password">
<button type="submit">Sign in</button>
</form></body></html>
"""

THROTTLED: Final[dict[str, Any]] = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
    "extensions": {
        "cost": {
            "throttleStatus": {
                "maximumAvailable": 1000,
                "currentlyAvailable": 0,
                "restoreRate": 50,
            }
        }
    },
}

_ERRORS: Final = {
    429: "rate limit exceeded",
    403: "API rate limit exceeded",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


def _delta_seconds(config: FaultConfig) -> str:
    """``retry_after`` as sent: strings verbatim, ``2.0`` as ``2``, ``0.2`` as ``0.2``."""
    value = config.retry_after
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _status_fault(kind: str, config: FaultConfig) -> Response:
    status = int(kind[:3])
    headers: dict[str, str] = {}
    if kind in {"429_retry_after", "403_retry_after"}:
        headers["Retry-After"] = _delta_seconds(config)
    elif kind == "429_retry_after_date":
        # Whole seconds on both, so ``Retry-After - Date == ceil(retry_after)`` exactly.
        now = int(time.time())
        headers["Date"] = http_date(now)
        headers["Retry-After"] = http_date(now + math.ceil(retry_after_seconds(config) or 0.0))
    elif kind == "403_remaining_zero":
        reset_at = math.ceil(time.time() + (retry_after_seconds(config) or 0.0))
        headers["X-RateLimit-Limit"] = "5000"
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset"] = str(reset_at)
    return json_response({"error": _ERRORS[status]}, status=status, headers=headers)


def canned_response(kind: str, config: FaultConfig) -> Response | None:
    """The response replacing the endpoint for ``kind``, or ``None`` if it is not canned."""
    if kind == UNAUTHORIZED:
        return json_response(
            {"error": "token expired"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if kind == "html":
        return HTMLResponse(LOGIN_PAGE)
    if kind == "graphql_throttled":
        return json_response(THROTTLED)
    if kind[:3].isdigit():
        return _status_fault(kind, config)
    return None
