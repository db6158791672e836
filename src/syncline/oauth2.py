"""OAuth2 access tokens for one source: fetched, reused, refreshed once on a 401, rotated safely.

Why this needs more than "POST to the token URL": vendors such as Exact Online
*rotate* refresh tokens (every refresh returns a new one and invalidates the
old) and *limit* refreshes (Exact: one per 570 s). Lose the new refresh token,
say to a crash between receiving and saving it, and the user is locked out
until they re-authenticate by hand; refresh too eagerly and the vendor refuses.
So this module:

* persists a rotated refresh token to ``token_file`` (atomically, mode 0600)
  *before* the new access token is handed to anyone, and never hands one out
  while that save is outstanding;
* makes all coroutines of a source share one token request (an asyncio lock);
* refreshes after a 401 at most once per rejected token, and never sooner than
  ``min_refresh_interval`` after the previous refresh;
* registers every token with the :class:`Redactor` the moment it arrives and
  keeps secrets out of every error (``RequestSummary`` never holds headers or
  the form body).

The HTTP layer owns the retry: on a 401 it calls :meth:`OAuth2Tokens.after_unauthorized`,
retries the request once with the token it gets, and raises ``AuthError`` if
that retry is refused too. The ``httpx.AsyncClient`` is passed in by the caller
so that TLS settings are the source's and tests can use a mock transport.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote_plus

import httpx

from syncline.config.strategies import OAuth2Auth
from syncline.errors import (
    AuthError,
    BadPayload,
    NetworkError,
    RateLimited,
    RequestSummary,
    ServerError,
    SourceError,
)
from syncline.failpoints import failpoint
from syncline.redact import MASK, Redactor
from syncline.retry_after import parse_retry_after

__all__ = ["EXPIRY_MARGIN", "OAuth2Tokens", "auth_header"]

logger = logging.getLogger(__name__)

EXPIRY_MARGIN = 30.0
"""Seconds before ``expires_at`` from which a token counts as expired (requests take time)."""

SNIPPET = 300
# Values of token-like fields in a body we could not parse (or that echoes one): masked
# before the snippet is cut, as the redactor cannot know tokens it has not seen yet.
_TOKEN_FIELD = re.compile(
    r"""((?:token|secret|password|assertion)["']?\s*[:=]\s*["']?)([^"'&,;\s}<]+)""",
    re.IGNORECASE,
)


def auth_header(token: str) -> dict[str, str]:
    """The header that carries an access token on an API request."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True, slots=True)
class _Tokens:
    """What we hold at one moment; ``None`` fields are unknown."""

    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    obtained_at: float | None = None


class OAuth2Tokens:
    """Access tokens of one source, shared by all its coroutines."""

    def __init__(
        self,
        config: OAuth2Auth,
        *,
        redactor: Redactor,
        token_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``token_file`` is ``config.token_file`` resolved against the config's directory.

        Give it exactly when ``config.token_file`` is set (a relative path resolved against
        the working directory would silently split the tokens over two files). Nothing is
        read or requested here: the token file is loaded on first use, so a problem with it
        surfaces as the :class:`AuthError` of the first request.
        """
        if (config.token_file is None) != (token_file is None):
            raise ValueError("pass token_file exactly when config.token_file is set, resolved")
        self._config = config
        self._redactor = redactor
        self._file = token_file
        self._clock = clock
        self._lock = asyncio.Lock()
        self._tokens: _Tokens | None = None  # None: token file not loaded yet
        self._unsaved = False  # new tokens are held but not yet on disk
        self._refresh_token_in_file = False  # where a user must put a new one (error messages)
        self._warned_no_file = False
        for secret in self.secrets():
            redactor.add(secret)

    def __repr__(self) -> str:
        return f"OAuth2Tokens(grant={self._config.grant!r}, client_id={self._config.client_id!r})"

    def secrets(self) -> list[str]:
        """The configured credentials, in every form we send them, for the initial redactor."""
        config = self._config
        values = [s.get_secret_value() for s in (config.client_secret, config.refresh_token) if s]
        basic = self._basic_credentials()
        if basic is not None:
            values.append(basic)
        return values

    async def access_token(self, client: httpx.AsyncClient) -> str:
        """A usable access token, requesting one if there is none or it is about to expire."""
        fresh = self._fresh_token() if not self._unsaved else None
        if fresh is not None:
            return fresh
        async with self._lock:
            tokens = self._loaded()
            self._save_if_unsaved()
            fresh = self._fresh_token()
            if fresh is not None:  # another coroutine got one while we waited
                return fresh
            if tokens.access_token is not None and self._throttled(tokens) is not None:
                if not self._expired(tokens, margin=0.0):
                    return tokens.access_token  # refreshing now would be refused; still valid
                self._raise_throttled(tokens, "expired")
            return await self._obtain(client)

    async def after_unauthorized(self, client: httpx.AsyncClient, rejected: str) -> str:
        """A new token after a request with ``rejected`` got a 401 (at most one refresh per token).

        If another coroutine already replaced ``rejected``, that token is returned without
        a request. Raises :class:`AuthError` when the previous refresh is younger than
        ``min_refresh_interval``: the vendor would refuse, and a token this young being
        refused means the credentials lack access, not that the token is stale.
        """
        async with self._lock:
            tokens = self._loaded()
            self._save_if_unsaved()
            if tokens.access_token is not None and tokens.access_token != rejected:
                return tokens.access_token
            if self._throttled(tokens) is not None:
                self._raise_throttled(tokens, "refused by the API (401)")
            return await self._obtain(client)

    # --- state ----------------------------------------------------------------------------

    def _fresh_token(self) -> str | None:
        tokens = self._tokens
        if tokens is None or tokens.access_token is None:
            return None
        return None if self._expired(tokens, EXPIRY_MARGIN) else tokens.access_token

    def _expired(self, tokens: _Tokens, margin: float) -> bool:
        """No ``expires_in`` from the server: valid until a 401 says otherwise."""
        return tokens.expires_at is not None and self._clock() >= tokens.expires_at - margin

    def _throttled(self, tokens: _Tokens) -> float | None:
        """Seconds since the last refresh, if another one now would break the vendor's limit."""
        interval = self._config.min_refresh_interval.total_seconds()
        if not interval or tokens.obtained_at is None:
            return None
        age = self._clock() - tokens.obtained_at
        return age if age < interval else None

    def _raise_throttled(self, tokens: _Tokens, what: str) -> NoReturn:
        age = self._throttled(tokens) or 0.0
        interval = self._config.min_refresh_interval.total_seconds()
        raise AuthError(
            f"the OAuth2 access token was {what} {age:.0f}s after it was obtained, and this API "
            f"allows one token refresh per {interval:.0f}s (auth.min_refresh_interval; Exact "
            "Online: 570s), so syncline will not refresh again now; check that the client has "
            "access to this resource (scopes, division, licence) and run again later"
        )

    def _loaded(self) -> _Tokens:
        if self._tokens is None:
            self._tokens = self._initial_tokens()
        return self._tokens

    def _initial_tokens(self) -> _Tokens:
        saved = self._read_file()
        if saved is not None:
            return saved
        configured = self._config.refresh_token
        return _Tokens(refresh_token=configured.get_secret_value() if configured else None)

    # --- token requests -------------------------------------------------------------------

    async def _obtain(self, client: httpx.AsyncClient) -> str:
        """One token request; the new tokens are redacted, then saved, then returned."""
        tokens = self._loaded()
        if self._config.grant == "refresh_token" and tokens.refresh_token is None:
            raise AuthError(self._no_refresh_token_message())
        form, headers = self._request(tokens.refresh_token)
        summary = self._summary()
        try:
            response = await client.post(self._config.token_url, data=form, headers=headers)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            name = type(exc).__name__
            detail = self._redactor.text(f"{name}: {exc}" if str(exc) else name)
            raise NetworkError(f"OAuth2 token request failed: {detail}", request=summary) from None
        body = self._parse(response)
        new, access = self._tokens_from(body, tokens, response)
        failpoint("oauth2.token_received")
        self._store(new)
        return access

    def _request(self, refresh_token: str | None) -> tuple[dict[str, str], dict[str, str]]:
        config = self._config
        form = {name: _form_value(value) for name, value in config.extra_params.items()}
        form["grant_type"] = config.grant
        if config.grant == "refresh_token" and refresh_token is not None:
            form["refresh_token"] = refresh_token
        if config.scope:
            form["scope"] = config.scope
        headers = {"Accept": "application/json"}
        basic = self._basic_credentials()
        if basic is not None:
            headers["Authorization"] = f"Basic {basic}"
        else:
            form["client_id"] = config.client_id
            if config.client_secret is not None:
                form["client_secret"] = config.client_secret.get_secret_value()
        return form, headers

    def _basic_credentials(self) -> str | None:
        """RFC 6749 §2.3.1: both parts form-urlencoded, then base64."""
        config = self._config
        if config.client_auth != "basic" or config.client_secret is None:
            return None
        secret = config.client_secret.get_secret_value()
        pair = f"{quote_plus(config.client_id)}:{quote_plus(secret)}"
        return base64.b64encode(pair.encode()).decode()

    def _parse(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON object of the response, or the error it stands for."""
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict):
            self._register_token_fields(body)
        status = response.status_code
        if 200 <= status < 300 and isinstance(body, dict) and not body.get("error"):
            return body
        raise self._error(response, body)

    def _register_token_fields(self, body: dict[str, Any]) -> None:
        """Tokens in any response, even an error, are secret from the moment we see them."""
        for name, value in body.items():
            if isinstance(value, str) and re.search("token|secret", name, re.IGNORECASE):
                self._redactor.add(value)

    def _tokens_from(
        self, body: dict[str, Any], previous: _Tokens, response: httpx.Response
    ) -> tuple[_Tokens, str]:
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise BadPayload(
                "the OAuth2 token response has no access_token "
                f"(keys: {sorted(str(key) for key in body)})",
                request=self._summary(response.status_code),
            )
        refresh = body.get("refresh_token")
        now = self._clock()
        lifetime = _seconds(body.get("expires_in"))
        new = _Tokens(
            access_token=access,
            refresh_token=refresh
            if isinstance(refresh, str) and refresh
            else previous.refresh_token,
            expires_at=now + lifetime if lifetime is not None else None,
            obtained_at=now,
        )
        return new, access

    # --- errors ---------------------------------------------------------------------------

    def _summary(self, status: int | None = None, body: str = "") -> RequestSummary:
        return RequestSummary(
            "POST", self._redactor.url(self._config.token_url), status, self._snippet(body)
        )

    def _snippet(self, body: str) -> str:
        """Redact the whole body, then cut: a secret cut in half would no longer match."""
        if not body:
            return ""
        masked = _TOKEN_FIELD.sub(lambda match: match.group(1) + MASK, body)
        return self._redactor.text(masked)[:SNIPPET]

    def _error(self, response: httpx.Response, body: object) -> SourceError:
        status = response.status_code
        summary = self._summary(status, response.text)
        code = body.get("error") if isinstance(body, dict) else None
        if status >= 500:
            return ServerError("the OAuth2 token endpoint failed", request=summary)
        if status == 429:
            wait = parse_retry_after(
                response.headers.get("retry-after"),
                now=datetime.now(UTC),
                date=response.headers.get("date"),
            )
            return RateLimited(
                "the OAuth2 token endpoint is rate limiting us", retry_after=wait, request=summary
            )
        if code == "invalid_grant" and self._config.grant == "refresh_token":
            return AuthError(
                "the OAuth2 refresh token was refused (invalid_grant: expired, revoked or already "
                f"used); re-authenticate and put the new refresh token in {self._token_home()}",
                request=summary,
            )
        if status == 401 or code in ("invalid_client", "unauthorized_client"):
            return AuthError(
                f"the OAuth2 client credentials were refused (client_id "
                f"{self._config.client_id!r}); check auth.client_id, auth.client_secret "
                f"and auth.client_auth",
                request=summary,
            )
        if 300 <= status < 400:
            return AuthError(
                "the OAuth2 token endpoint redirected (not followed: it would carry the "
                "credentials elsewhere); set auth.token_url to the final URL",
                request=summary,
            )
        if 200 <= status < 300 and not isinstance(body, dict):
            return BadPayload(
                "the OAuth2 token endpoint did not answer a JSON object", request=summary
            )
        return AuthError(
            f"the OAuth2 token request was rejected ({code or status})", request=summary
        )

    def _token_home(self) -> str:
        """Where the user has to put a new refresh token for us to find it."""
        if self._refresh_token_in_file:
            return (
                f"{self._file} (replace its refresh_token, or delete it and set one in the config)"
            )
        if self._file is not None:
            return f"auth.refresh_token (and delete {self._file} if it exists)"
        return "auth.refresh_token"

    def _no_refresh_token_message(self) -> str:
        missing = ""
        if self._file is not None:
            state = "belongs to another client" if self._file.exists() else "does not exist"
            missing = f"{self._file} {state} and "
        return (
            f"no OAuth2 refresh token: {missing}auth.refresh_token is not set; "
            "authenticate once and put the refresh token in auth.refresh_token"
        )

    # --- token file -----------------------------------------------------------------------

    def _store(self, new: _Tokens) -> None:
        """Keep the new tokens; with a token file, nothing is handed out until they are saved."""
        previous = self._tokens
        self._tokens = new
        if self._file is None:
            self._warn_rotation_unsaved(previous, new)
            return
        self._unsaved = True
        self._save_if_unsaved()

    def _warn_rotation_unsaved(self, previous: _Tokens | None, new: _Tokens) -> None:
        rotated = previous is not None and previous.refresh_token != new.refresh_token
        rotated = rotated and self._config.grant == "refresh_token"
        if rotated and not self._warned_no_file:
            self._warned_no_file = True
            logger.warning(
                "the OAuth2 token endpoint rotated the refresh token but auth.token_file is not "
                "set: the new one lives only in memory and the configured one may no longer "
                "work after this run; set auth.token_file"
            )

    def _save_if_unsaved(self) -> None:
        if not self._unsaved or self._file is None or self._tokens is None:
            return
        try:
            _write_private(self._file, self._file_content(self._tokens))
        except OSError as exc:
            raise AuthError(
                f"cannot save the OAuth2 tokens to {self._file}: {exc.strerror or exc}; the "
                "previous refresh token may no longer be valid, so no new access token is used "
                "until the file can be written (fix the directory's permissions or space)"
            ) from None
        self._unsaved = False
        self._refresh_token_in_file = True

    def _file_content(self, tokens: _Tokens) -> bytes:
        data = {
            "refresh_token": tokens.refresh_token,
            "access_token": tokens.access_token,
            "expires_at": tokens.expires_at,
            "obtained_at": tokens.obtained_at,
            "token_url": self._config.token_url,
            "client_id": self._config.client_id,
        }
        return json.dumps(data, indent=2).encode() + b"\n"

    def _read_file(self) -> _Tokens | None:
        """The saved tokens, if the file exists and belongs to this client."""
        path = self._file
        if path is None:
            return None
        try:
            raw = path.read_bytes()
            _warn_if_readable_by_others(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuthError(f"cannot read OAuth2 token file {path}: {exc.strerror}") from None
        data = self._decode_file(raw)
        if (data.get("token_url"), data.get("client_id")) != (
            self._config.token_url,
            self._config.client_id,
        ):
            logger.warning(
                "OAuth2 token file %s belongs to another token_url/client_id; ignoring it "
                "(it will be overwritten with this client's tokens)",
                path,
            )
            return None
        tokens = _Tokens(
            access_token=data.get("access_token"),
            refresh_token=data["refresh_token"],
            expires_at=data.get("expires_at"),
            obtained_at=data.get("obtained_at"),
        )
        self._refresh_token_in_file = True
        for secret in (tokens.access_token, tokens.refresh_token):
            if secret:
                self._redactor.add(secret)
        return tokens

    def _decode_file(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None
        problem = _file_problem(data)
        if problem is not None:
            raise AuthError(
                f"OAuth2 token file {self._file} is corrupt ({problem}); syncline does not "
                "discard it as it may hold the only valid refresh token: re-authenticate, then "
                "replace the file (or delete it and set auth.refresh_token)"
            )
        return data  # type: ignore[no-any-return]  # _file_problem checked it is a dict


def _file_problem(data: object) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    if not isinstance(data.get("refresh_token"), str) or not data["refresh_token"]:
        return "no refresh_token"
    if not isinstance(data.get("access_token"), str | None):
        return "access_token is not a string"
    for key in ("expires_at", "obtained_at"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{key} is not a number"
    return None


def _warn_if_readable_by_others(path: Path) -> None:
    if os.name == "nt":  # permission bits do not describe Windows ACLs
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning(
            "OAuth2 token file %s is readable by other users (mode %03o); run: chmod 600 %s",
            path,
            mode,
            path,
        )


def _write_private(path: Path, content: bytes) -> None:
    """Replace ``path`` atomically with a 0600 file: readers see the old or the new, never half."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp creates it 0600
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open a directory)."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seconds(value: object) -> float | None:
    """``expires_in`` as seconds; some vendors (Exact) send it as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _form_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
