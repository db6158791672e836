"""The one place that talks HTTP: auth, status classification, retries.

Only this module imports httpx. Tests and embedders can pass any httpx
transport. Safe defaults: TLS verified, redirects not followed (a redirect to
another origin must not carry our credentials), every error redacted.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx
import stamina

from syncline.config import SourceConfig
from syncline.config.strategies import ApiKeyAuth, BasicAuth, BearerAuth
from syncline.errors import (
    AuthError,
    ClientError,
    NetworkError,
    RateLimited,
    RequestSummary,
    ServerError,
    TransientError,
)
from syncline.redact import Redactor
from syncline.request import RequestSpec
from syncline.retry_after import parse_retry_after

__all__ = ["HttpClient", "RequestCounter", "Response", "origin_of", "secrets_of"]

SNIPPET = 300


@dataclass(slots=True)
class RequestCounter:
    """Requests one job sent, retries included (a job shares its source's client)."""

    sent: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    link_headers: tuple[str, ...]
    content: bytes
    url: str


def origin_of(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def secrets_of(source: SourceConfig) -> list[str]:
    """Every credential value of a source, so the redactor can mask it anywhere."""
    auth = source.auth
    match auth:
        case BearerAuth():
            return [auth.token.get_secret_value()]
        case ApiKeyAuth():
            return [auth.value.get_secret_value()]
        case BasicAuth():
            password = auth.password.get_secret_value()
            pair = f"{auth.username}:{password}".encode()
            return [password, base64.b64encode(pair).decode()]
    return []


class HttpClient:
    """Sends :class:`RequestSpec` values for one source, with auth and bounded retries."""

    def __init__(
        self,
        source: SourceConfig,
        *,
        redactor: Redactor,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 10,
    ) -> None:
        self.source = source
        self.redactor = redactor
        self.requests_sent = 0
        self._origin = origin_of(source.base_url)
        self._auth_headers, self._auth_params = _credentials(source)
        self._client = httpx.AsyncClient(
            headers={"User-Agent": "syncline", **source.headers},
            timeout=source.timeout,
            verify=source.verify_tls,
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.aclose()

    def summary(
        self, spec: RequestSpec, status: int | None = None, body: str = ""
    ) -> RequestSummary:
        url = spec.url
        if spec.params:
            url = str(httpx.URL(url, params=_stringify(spec.params)))
        snippet = self.redactor.text(body[:SNIPPET]) if body else ""
        return RequestSummary(spec.method, self.redactor.url(url), status, snippet)

    async def fetch(self, spec: RequestSpec, counter: RequestCounter | None = None) -> Response:
        """Send with retries on transient failures; raise a classified, redacted error."""
        policy = self.source.retry

        def should_retry(exc: Exception) -> bool | float:
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                # Never wait less than the server asked; a wait beyond the policy is
                # not slept through: the job stops with its checkpoint intact.
                if exc.retry_after > policy.max_retry_after:
                    return False
                return max(exc.retry_after, 0.05)
            return isinstance(exc, TransientError)

        async for attempt in stamina.retry_context(
            on=should_retry,
            attempts=policy.attempts,
            timeout=policy.timeout,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        ):
            with attempt:
                if counter is not None:
                    counter.sent += 1
                return await self._send_once(spec)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def _send_once(self, spec: RequestSpec) -> Response:
        same_origin = origin_of(spec.url) == self._origin
        # Credentials only ever go to the configured origin (a next link elsewhere gets none).
        headers = {**spec.headers, **self._auth_headers} if same_origin else dict(spec.headers)
        params = _stringify(spec.params)
        if same_origin and self._auth_params and not spec.follows_link:
            params = {**params, **self._auth_params}
        self.requests_sent += 1
        try:
            response = await self._client.request(
                spec.method, spec.url, params=params or None, json=spec.json, headers=headers
            )
        except (httpx.TransportError, httpx.DecodingError) as exc:
            name = type(exc).__name__
            raise NetworkError(
                f"{name}: {exc}" if str(exc) else name, request=self.summary(spec)
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return Response(
                status,
                response.headers,
                tuple(response.headers.get_list("link")),
                response.content,
                str(response.url),
            )
        raise self._classify(spec, response)

    def _classify(self, spec: RequestSpec, response: httpx.Response) -> Exception:
        status = response.status_code
        summary = self.summary(spec, status, response.text)
        retry_after = parse_retry_after(
            response.headers.get("retry-after"),
            now=datetime.now(UTC),
            date=response.headers.get("date"),
        )
        remaining = response.headers.get("x-ratelimit-remaining")
        if status == 429 or (status == 403 and (retry_after is not None or remaining == "0")):
            return RateLimited("rate limited", retry_after=retry_after, request=summary)
        if status in (401, 403):
            return AuthError("credentials refused", request=summary)
        if status >= 500:
            return ServerError("server error", request=summary)
        if 300 <= status < 400:
            return ClientError(
                "redirect not followed (set the final URL as base_url)", request=summary
            )
        return ClientError("request rejected", request=summary)


def _credentials(source: SourceConfig) -> tuple[dict[str, str], dict[str, str]]:
    auth = source.auth
    match auth:
        case BearerAuth():
            return {"Authorization": f"Bearer {auth.token.get_secret_value()}"}, {}
        case ApiKeyAuth(location="header"):
            return {auth.name: auth.value.get_secret_value()}, {}
        case ApiKeyAuth():
            return {}, {auth.name: auth.value.get_secret_value()}
        case BasicAuth():
            pair = f"{auth.username}:{auth.password.get_secret_value()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}, {}
    return {}, {}


def _stringify(params: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(value)
    return out
