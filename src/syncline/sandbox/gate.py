"""The data gate: bearer-token check and per-path request counting.

Why pure ASGI rather than ``BaseHTTPMiddleware``: it sits on every hot data
request.  Only requests that pass the check are counted as served (and only
they reach fault injection).  ``/_admin/*`` and ``/oauth/token`` never pass
through the check.

Without OAuth the gate behaves exactly as it always has: the static token, if
any, compared in constant time.  With OAuth it also accepts any issued,
unexpired access token, answers RFC 6750 ``invalid_token`` to a bearer token it
does not know (or that expired), and marks OAuth-authenticated requests in the
ASGI scope so fault injection can tell them from static-token requests.
"""

from __future__ import annotations

import hmac

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from syncline.sandbox.common import AUTH_SCOPE_KEY, DATA_PATHS, SandboxState, json_response


def _authorization(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            result: bytes = value
            return result
    return None


def _unauthorized() -> Response:
    return json_response(
        {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"}
    )


def _invalid_token() -> Response:
    return json_response(
        {"error": "invalid_token"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


class DataGate:
    """Pure-ASGI middleware guarding :data:`DATA_PATHS`; see the module docstring."""

    def __init__(self, app: ASGIApp, state: SandboxState, token: str | None) -> None:
        self._app = app
        self._state = state
        self._expected = None if token is None else f"Bearer {token}".encode()

    def _authorized(self, scope: Scope) -> bool:
        if self._expected is None:
            return True
        value = _authorization(scope)
        return value is not None and hmac.compare_digest(value, self._expected)

    def _oauth_verdict(self, scope: Scope) -> Response | None:
        """``None`` if authorized (marking OAuth tokens in the scope), else the 401."""
        oauth = self._state.oauth
        assert oauth is not None
        value = _authorization(scope)
        if value is None:
            return _unauthorized()
        if self._expected is not None and hmac.compare_digest(value, self._expected):
            return None
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return _unauthorized()
        if oauth.access_valid(token.strip()):
            scope[AUTH_SCOPE_KEY] = "oauth"
            return None
        return _invalid_token()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in DATA_PATHS:
            if self._state.oauth is not None:
                reply = self._oauth_verdict(scope)
            else:
                reply = None if self._authorized(scope) else _unauthorized()
            if reply is not None:
                await reply(scope, receive, send)
                return
            self._state.stats[scope["path"]] += 1
        await self._app(scope, receive, send)
