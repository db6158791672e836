"""A minimal OAuth2 authorization server: ``POST /oauth/token`` (RFC 6749).

Why: real APIs hand out short-lived access tokens and rotate refresh tokens,
and the client's refresh logic (refresh on 401, persist the *new* refresh
token, never reuse the old one) is only trustworthy if it is exercised against
a server that really expires and rotates them.  This one supports the two
grants a sync job uses, ``client_credentials`` and ``refresh_token``, with one
confidential client authenticated by form fields or HTTP Basic.  Every used
refresh token is invalid at once (rotation), so a client that reuses one gets
``invalid_grant`` exactly like with providers that detect token replay.

Tokens live in memory only; ``/_admin/oauth/*`` issues refresh tokens and
forces expiry so tests do not have to wait for ``access_ttl``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from starlette.requests import Request
from starlette.responses import Response

from syncline.sandbox.common import json_response, sandbox_state

GRANTS = ("client_credentials", "refresh_token")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class OAuthSettings:
    """The one registered client, and how long access tokens live (seconds)."""

    client_id: str
    client_secret: str
    access_ttl: float = 3600.0

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("OAuth client id and secret must not be empty")
        if self.access_ttl <= 0:
            raise ValueError("OAuth access_ttl must be > 0")


class OAuthServer:
    """Issued tokens and counters; all in memory, all on the event-loop thread."""

    def __init__(self, settings: OAuthSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self._access: dict[str, float] = {}  # token -> expiry on ``clock``
        self._refresh: set[str] = set()
        self.token_requests = 0
        self.grants: Counter[str] = Counter()

    def reset(self) -> None:
        """Forget every issued token and zero the counters."""
        self._access.clear()
        self._refresh.clear()
        self.token_requests = 0
        self.grants.clear()

    def client_ok(self, client_id: str, client_secret: str) -> bool:
        id_ok = hmac.compare_digest(client_id.encode(), self.settings.client_id.encode())
        secret_ok = hmac.compare_digest(
            client_secret.encode(), self.settings.client_secret.encode()
        )
        return id_ok and secret_ok

    def issue_access(self) -> str:
        token = "at_" + secrets.token_urlsafe(24)
        self._access[token] = self._clock() + self.settings.access_ttl
        return token

    def issue_refresh(self) -> str:
        token = "rt_" + secrets.token_urlsafe(32)
        self._refresh.add(token)
        return token

    def consume_refresh(self, token: str) -> bool:
        """Invalidate ``token``; ``True`` if it was valid (rotation: one use only)."""
        if token in self._refresh:
            self._refresh.discard(token)
            return True
        return False

    def access_valid(self, token: str) -> bool:
        expiry = self._access.get(token)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._access[token]
            return False
        return True

    def expire_all(self) -> int:
        """Invalidate every issued access token; returns how many were active."""
        active = self._active_access()
        self._access.clear()
        return active

    def _active_access(self) -> int:
        now = self._clock()
        return sum(1 for expiry in self._access.values() if expiry > now)

    def stats(self) -> dict[str, Any]:
        return {
            "token_requests": self.token_requests,
            "grants": {grant: self.grants[grant] for grant in GRANTS},
            "active_access_tokens": self._active_access(),
            "active_refresh_tokens": len(self._refresh),
        }


def _error(code: str, status: int = 400, description: str | None = None) -> Response:
    body = (
        {"error": code}
        if description is None
        else {"error": code, "error_description": description}
    )
    headers = dict(_NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="syncline-sandbox"'
    return json_response(body, status=status, headers=headers)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """Client id and secret from ``Authorization: Basic``, as sent (see :func:`_client`)."""
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


class _BadRequest(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def _form(raw: bytes, content_type: str) -> dict[str, str]:
    if content_type.partition(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise _BadRequest(
            _error("invalid_request", description="use application/x-www-form-urlencoded")
        )
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise _BadRequest(_error("invalid_request", description="body is not UTF-8")) from None
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise _BadRequest(
            _error("invalid_request", description=f"repeated parameter(s) {repeated}")
        )
    return {name: values[0] for name, values in parsed.items()}


def _client_authenticated(server: OAuthServer, request: Request, form: dict[str, str]) -> bool:
    """Check the client's credentials, from HTTP Basic or from the form (never both).

    RFC 6749 2.3.1 wants Basic credentials form-encoded first, but many client
    libraries send them raw; like most servers we accept either spelling.
    """
    basic = _basic_credentials(request.headers.get("authorization"))
    if basic is not None and "client_secret" in form:
        raise _BadRequest(
            _error("invalid_request", description="use one client authentication method")
        )
    if basic is not None:
        client_id, secret = basic
        return server.client_ok(client_id, secret) or server.client_ok(
            unquote_plus(client_id), unquote_plus(secret)
        )
    if "client_id" in form and "client_secret" in form:
        return server.client_ok(form["client_id"], form["client_secret"])
    return False


def _expires_in(ttl: float) -> float | int:
    return int(ttl) if float(ttl).is_integer() else ttl


async def token_endpoint(request: Request) -> Response:
    """``POST /oauth/token``: client authentication first, then the grant."""
    server = sandbox_state(request).oauth
    assert server is not None, "the route is only mounted with OAuth enabled"
    server.token_requests += 1
    try:
        form = _form(await request.body(), request.headers.get("content-type", ""))
        authenticated = _client_authenticated(server, request, form)
    except _BadRequest as exc:
        return exc.response
    if not authenticated:
        return _error("invalid_client", status=401)
    grant = form.get("grant_type")
    if not grant:
        return _error("invalid_request", description="grant_type is required")
    if grant not in GRANTS:
        return _error("unsupported_grant_type")
    body: dict[str, Any] = {"token_type": "Bearer"}
    if grant == "refresh_token":
        used = form.get("refresh_token")
        if not used:
            return _error("invalid_request", description="refresh_token is required")
        if not server.consume_refresh(used):
            return _error("invalid_grant", description="refresh token is invalid, used or revoked")
        body["refresh_token"] = server.issue_refresh()
    server.grants[grant] += 1
    body["access_token"] = server.issue_access()
    body["expires_in"] = _expires_in(server.settings.access_ttl)
    return json_response(body, headers=dict(_NO_STORE))
