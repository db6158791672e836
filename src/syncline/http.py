"""The one place that talks HTTP: auth, status classification, retries, safe targets.

Only this module imports httpx. Tests and embedders can pass any httpx
transport. Safe defaults: TLS verified, redirects not followed (a redirect to
another origin must not carry our credentials), bodies capped in size, every
error redacted.

Parsing happens inside the retry loop (``fetch(parse=...)``): an HTML error
page served with status 200, or a GraphQL ``THROTTLED`` answer, is then
retried like the transient failure it is, within the same policy.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import stamina

from syncline.backoff import Backoff
from syncline.budget.headers import reset_seconds
from syncline.config import SourceConfig
from syncline.config.strategies import ApiKeyAuth, BasicAuth, BearerAuth, OAuth2Auth
from syncline.errors import (
    AuthError,
    BadPayload,
    CertificateError,
    ClientError,
    ConfigError,
    NetworkError,
    RateLimited,
    RequestSummary,
    ServerError,
    SourceError,
    UnsafeNextLink,
)
from syncline.oauth2 import OAuth2Tokens, auth_header
from syncline.redact import Redactor, is_secret_name
from syncline.request import RequestSpec
from syncline.retry_after import parse_retry_after

__all__ = ["CallBudget", "HttpClient", "RequestCounter", "Response", "origin_of", "secrets_of"]

SNIPPET = 300
ANSWER_KEPT = 64 * 1024
"""How much of a rejected request's body is kept for `expired_when` and similar checks."""
MAX_REDIRECTS = 5
_T = TypeVar("_T")
log = logging.getLogger("syncline")


@dataclass(slots=True)
class RequestCounter:
    """Requests one job sent, retries included (a job shares its source's client)."""

    sent: int = 0
    rate_limited: int = 0
    """Answers that said "slow down" (429, a rate-limit 403, GraphQL THROTTLED)."""


class CallBudget(Protocol):
    """What the HTTP layer asks of a job's budget (see :mod:`syncline.budget.permits`)."""

    async def acquire(self) -> None: ...

    async def observe(self, headers: Mapping[str, str]) -> None: ...


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
    """Every credential value of a source, so the redactor can mask it anywhere.

    Besides ``auth``: header and parameter values whose names look secret
    (``X-Api-Key``, ``Authorization``, ``access_token``) on the source or a stream.
    """
    found: list[str] = []
    auth = source.auth
    match auth:
        case BearerAuth():
            found.append(auth.token.get_secret_value())
        case ApiKeyAuth():
            found.append(auth.value.get_secret_value())
        case BasicAuth():
            password = auth.password.get_secret_value()
            pair = f"{auth.username}:{password}".encode()
            found += [password, base64.b64encode(pair).decode()]
        case OAuth2Auth():
            found += [s.get_secret_value() for s in (auth.client_secret, auth.refresh_token) if s]
    userinfo_password = urlsplit(source.base_url).password
    if userinfo_password:
        found.append(userinfo_password)
    maps: list[Mapping[str, object]] = [source.headers]
    for stream in source.streams.values():
        maps += [stream.headers, stream.params]
    for mapping in maps:
        for name, value in mapping.items():
            if isinstance(value, str) and is_secret_name(name):
                found.append(value)
                if " " in value:  # "Bearer abc": the credential is the last word
                    found.append(value.rsplit(" ", 1)[1])
    return found


class HttpClient:
    """Sends :class:`RequestSpec` values for one source, with auth and bounded retries."""

    def __init__(
        self,
        source: SourceConfig,
        *,
        redactor: Redactor,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 10,
        base_dir: Path | None = None,
    ) -> None:
        self.source = source
        self.redactor = redactor
        self.requests_sent = 0
        self._origin = origin_of(source.base_url)
        self._https = self._origin[0] == "https"
        self._allowed = frozenset(source.allowed_hosts)
        self._auth_headers, self._auth_params = _credentials(source)
        verify = _tls_setting(source, base_dir)
        # The source's headers may carry keys: they go only where credentials go.
        self._source_headers = dict(source.headers)
        self._client = httpx.AsyncClient(
            headers={"User-Agent": "syncline"},
            timeout=source.timeout,
            verify=verify,
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections),
            trust_env=False,
        )
        self._oauth: OAuth2Tokens | None = None
        self._token_client: httpx.AsyncClient | None = None
        if isinstance(source.auth, OAuth2Auth):
            token_file = source.auth.token_file
            if token_file is not None and base_dir is not None:
                token_file = base_dir / token_file
            self._oauth = OAuth2Tokens(source.auth, redactor=redactor, token_file=token_file)
            # Its own client: the source's headers (API keys, say) never go to the token URL.
            self._token_client = httpx.AsyncClient(
                headers={"User-Agent": "syncline"},
                timeout=source.timeout,
                verify=verify,
                follow_redirects=False,
                transport=transport,
                trust_env=False,
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
        if self._token_client is not None:
            await self._token_client.aclose()

    def summary(
        self, spec: RequestSpec, status: int | None = None, body: str = ""
    ) -> RequestSummary:
        url = spec.url
        if spec.params:
            url = str(httpx.URL(url, params=_stringify(spec.params)))
        snippet = self.redactor.text(body[:SNIPPET]) if body else ""
        return RequestSummary(spec.method, self.redactor.url(url), status, snippet)

    def check_target(self, url: str) -> None:
        """Refuse a URL we did not configure unless it is safe to send a request there.

        Never: userinfo in the URL, a scheme other than http(s), a downgrade from
        https to http. Otherwise the API's own origin, or a host in ``allowed_hosts``.
        """
        parts = urlsplit(url)
        scheme, host, port = origin_of(url)
        shown = f"{scheme}://{host}" + (f":{port}" if port else "") + "/…"
        problem = None
        if parts.username is not None or parts.password is not None:
            problem = "it carries user credentials"
        elif scheme not in ("http", "https"):
            problem = f"scheme {scheme!r} is not http(s)"
        elif self._https and scheme == "http":
            problem = "it downgrades https to http"
        elif (scheme, host, port) != self._origin and host not in self._allowed:
            problem = (
                f"it leaves {self.source.base_url} (add the host to allowed_hosts to trust it)"
            )
        if problem is not None:
            raise UnsafeNextLink(
                f"refused to follow a link to {shown}: {problem}; no request was sent"
            )

    def scrub_url(self, url: str) -> str:
        """``url`` without our own API-key parameter, as a server may echo it in next links.

        Positions and cursors are stored; a key inside them would be a secret at rest.
        """
        if not self._auth_params or "?" not in url:
            return url
        parts = urlsplit(url)
        kept = [
            (name, value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
            if name not in self._auth_params
        ]
        return urlunsplit(parts._replace(query=urlencode(kept)))

    def _sends_credentials(self, url: str) -> bool:
        scheme, host, port = origin_of(url)
        if (scheme, host, port) == self._origin:
            return True
        return host in self._allowed and scheme == "https"

    async def fetch(
        self,
        spec: RequestSpec,
        counter: RequestCounter | None = None,
        parse: Callable[[Response], _T] | None = None,
        budget: CallBudget | None = None,
        retry_if: Callable[[Exception], bool] | None = None,
    ) -> tuple[Response, _T | None]:
        """Send with retries on transient failures; raise a classified, redacted error.

        ``parse`` runs inside each attempt, so a body that fails to decode is
        retried under the same policy, and its errors carry this request's summary.
        ``retry_if`` narrows what is retried (a write retries only what surely
        did not reach the server).
        """
        backoff = Backoff(self.source.retry)

        def wait_or_stop(exc: BaseException) -> bool | float:
            if not isinstance(exc, Exception):  # KeyboardInterrupt, cancellation: never retried
                return False
            if retry_if is not None and not retry_if(exc):
                return False
            wait = backoff.next_wait(exc)
            if wait is None:
                return False
            log.debug("retrying %s in %.2fs after: %s", self.redactor.url(spec.url), wait, exc)
            return wait

        async for attempt in stamina.retry_context(
            on=wait_or_stop, attempts=None, timeout=None, wait_initial=0, wait_max=0
        ):
            with attempt:
                if budget is not None:
                    await budget.acquire()  # every attempt is a call the API bills
                if counter is not None:
                    counter.sent += 1
                try:
                    response = await self._send_once(spec, budget)
                except RateLimited:
                    if counter is not None:
                        counter.rate_limited += 1
                    raise
                if parse is None:
                    return response, None
                try:
                    return response, parse(response)
                except SourceError as exc:
                    if exc.request is None:
                        text = response.content[:SNIPPET].decode("utf-8", "replace")
                        exc.request = self.summary(spec, response.status, text)
                    raise
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def _send_once(self, spec: RequestSpec, budget: CallBudget | None = None) -> Response:
        url, method, body = spec.url, spec.method, spec.json
        for _hop in range(MAX_REDIRECTS + 1):
            response = await self._exchange(spec, url, method, body)
            if response.status == 401 and self._oauth is not None and self._sends_credentials(url):
                # One refresh, one retry; a second 401 is an AuthError (no loop that burns
                # the vendor's error quota).
                response = await self._exchange(spec, url, method, body, after_401=True)
            if budget is not None:
                await budget.observe(response.headers)
            if not (300 <= response.status < 400 and self.source.follow_redirects):
                break
            location = response.headers.get("location")
            if not location:
                break
            url = urljoin(url, location)
            self.check_target(url)
            if response.status == 303:
                method, body = "GET", None
            spec = RequestSpec(method=method, url=url, headers=spec.headers, follows_link=True)
        else:
            raise ClientError(f"more than {MAX_REDIRECTS} redirects", request=self.summary(spec))
        if 200 <= response.status < 300:
            return response
        raise self._classify(spec, response)

    async def _exchange(
        self, spec: RequestSpec, url: str, method: str, body: object, *, after_401: bool = False
    ) -> Response:
        credentials = self._sends_credentials(url)
        if credentials:
            headers = {**self._source_headers, **spec.headers, **self._auth_headers}
        else:
            headers = {k: v for k, v in spec.headers.items() if not is_secret_name(k)}
        if credentials and self._oauth is not None:
            headers.update(await self._oauth_header(after_401))
        params = _stringify(spec.params) if url == spec.url else {}
        if credentials and self._auth_params:
            # Links are stored without our key (scrub_url) and get it back here. httpx
            # replaces a URL's query with ``params``, so a link's own query joins them.
            url = self.scrub_url(url)
            params = {**dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)), **params}
            params.update(self._auth_params)
            url = urlunsplit(urlsplit(url)._replace(query=""))
        self.requests_sent += 1
        started = time.perf_counter()
        request = self._client.build_request(
            method, url, params=params or None, json=body, headers=headers
        )
        try:
            reply = await self._client.send(request, stream=True)
            try:
                content = await self._read_capped(reply, spec)
            finally:
                await reply.aclose()
        except httpx.ConnectError as exc:
            if _certificate_refused(exc):
                raise CertificateError(
                    f"TLS certificate verification failed: {self.redactor.text(str(exc))} "
                    "(trust a private CA with 'ca_bundle: path/to/ca.pem')",
                    request=self.summary(spec),
                ) from None
            raise NetworkError(
                f"ConnectError: {self.redactor.text(str(exc))}",
                request=self.summary(spec),
                sent=False,
            ) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            name = type(exc).__name__
            raise NetworkError(
                f"{name}: {self.redactor.text(str(exc))}" if str(exc) else name,
                request=self.summary(spec),
                sent=not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout),
            ) from None
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %s (%d bytes, %.0f ms)",
                method,
                self.redactor.url(str(reply.url)),
                reply.status_code,
                len(content),
                (time.perf_counter() - started) * 1000,
            )
        return Response(
            reply.status_code,
            reply.headers,
            tuple(reply.headers.get_list("link")),
            content,
            str(reply.url),
        )

    async def _oauth_header(self, after_401: bool) -> dict[str, str]:
        assert self._oauth is not None
        assert self._token_client is not None
        token = await self._oauth.access_token(self._token_client)
        if after_401:
            token = await self._oauth.after_unauthorized(self._token_client, token)
        return auth_header(token)

    async def _read_capped(self, reply: httpx.Response, spec: RequestSpec) -> bytes:
        """The decoded body, refused past ``max_response_size`` (gzip bombs included)."""
        limit = int(self.source.max_response_size)
        chunks: list[bytes] = []
        size = 0
        async for chunk in reply.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise BadPayload(
                    f"response body larger than max_response_size ({limit} bytes); "
                    "raise the limit or ask for smaller pages",
                    request=self.summary(spec, reply.status_code),
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _classify(self, spec: RequestSpec, response: Response) -> Exception:
        status = response.status
        text = response.content[: SNIPPET * 4].decode("utf-8", "replace")
        summary = self.summary(spec, status, text)
        retry_after = parse_retry_after(
            response.headers.get("retry-after"),
            now=datetime.now(UTC),
            date=response.headers.get("date"),
        )
        remaining = response.headers.get("x-ratelimit-remaining")
        if retry_after is None and remaining is not None and remaining.strip() == "0":
            retry_after = reset_seconds(response.headers.get("x-ratelimit-reset"), time.time())
        if status == 429 or (status == 403 and (retry_after is not None or remaining == "0")):
            return RateLimited("rate limited", retry_after=retry_after, request=summary)
        if status in (401, 403):
            return AuthError("credentials refused", request=summary)
        if status >= 500:
            return ServerError("server error", request=summary)
        if 300 <= status < 400:
            return ClientError(
                "redirect not followed (set the final URL as base_url, or follow_redirects: true)",
                request=summary,
            )
        answer = response.content[:ANSWER_KEPT]
        return ClientError("request rejected", request=summary, answer=answer)


def _certificate_refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _tls_setting(source: SourceConfig, base_dir: Path | None) -> ssl.SSLContext | bool:
    """TLS is verified unless the config says ``verify: false`` in so many words."""
    if not source.verify_tls:
        return False
    if source.ca_bundle is None:
        return True
    bundle = source.ca_bundle if base_dir is None else base_dir / source.ca_bundle
    try:
        return ssl.create_default_context(cafile=str(bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA bundle {bundle}: {exc}", key="ca_bundle") from None


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
