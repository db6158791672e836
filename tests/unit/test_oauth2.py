"""OAuth2 tokens: one request for many callers, one refresh per 401, rotation saved before use.

A fake token endpoint behind ``httpx.MockTransport`` answers like a real one
(form-encoded request, JSON answer, rotation of refresh tokens); a fake clock
drives expiry and the refresh interval.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus

import httpx
import pytest

from syncline import oauth2
from syncline.config.strategies import OAuth2Auth
from syncline.errors import (
    AuthError,
    BadPayload,
    NetworkError,
    RateLimited,
    ServerError,
    SourceError,
)
from syncline.oauth2 import OAuth2Tokens, auth_header
from syncline.redact import MASK, Redactor

TOKEN_URL = "https://login.example.com/oauth/token"
CLIENT_ID = "client-abc"
CLIENT_SECRET = "cs-S3CR3T/+=value"  # "/", "+", "=" differ raw, quoted and quote_plus'ed
INITIAL_REFRESH = "rt-INITIAL/+=0001"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """A token endpoint: issues AT-n / RT-n (rotating when asked) and records every request."""

    def __init__(self, *, expires_in: object = 600, rotate: bool = True) -> None:
        self.expires_in = expires_in
        self.rotate = rotate
        self.requests: list[httpx.Request] = []
        self.issued = 0
        self.delay = 0.0
        self.reply: Callable[[httpx.Request], httpx.Response] | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.reply is not None:
            return self.reply(request)
        self.issued += 1
        body: dict[str, Any] = {
            "access_token": f"AT-{self.issued:04d}-access",
            "token_type": "bearer",
        }
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if self.rotate and form(request).get("grant_type") == "refresh_token":
            body["refresh_token"] = f"RT-{self.issued:04d}-refresh"
        return httpx.Response(200, json=body)

    @property
    def forms(self) -> list[dict[str, str]]:
        return [form(request) for request in self.requests]


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


def auth_config(**overrides: Any) -> OAuth2Auth:
    raw: dict[str, Any] = {
        "type": "oauth2",
        "grant": "client_credentials",
        "token_url": TOKEN_URL,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    raw.update(overrides)
    return OAuth2Auth.model_validate({k: v for k, v in raw.items() if v is not None})


def refresh_config(token_file: Path | None = None, **overrides: Any) -> OAuth2Auth:
    settings: dict[str, Any] = {
        "grant": "refresh_token",
        "refresh_token": INITIAL_REFRESH,
        "token_file": str(token_file) if token_file else None,
    }
    return auth_config(**{**settings, **overrides})


def manager(
    config: OAuth2Auth, clock: Clock | None = None, redactor: Redactor | None = None
) -> OAuth2Tokens:
    return OAuth2Tokens(
        config,
        redactor=redactor or Redactor(),
        token_file=config.token_file,
        clock=clock or Clock(),
    )


@pytest.fixture
def server() -> TokenServer:
    return TokenServer()


@pytest.fixture
async def client(server: TokenServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        yield http


def write_token_file(path: Path, **overrides: Any) -> None:
    data: dict[str, Any] = {
        "refresh_token": "rt-FROM-FILE-0042",
        "access_token": None,
        "expires_at": None,
        "obtained_at": None,
        "token_url": TOKEN_URL,
        "client_id": CLIENT_ID,
    }
    data.update(overrides)
    path.write_text(json.dumps(data), encoding="utf-8")
    path.chmod(0o600)


def saved(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# --- client credentials ---------------------------------------------------------------------


async def test_client_credentials_posts_the_grant_and_returns_the_token(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    tokens = manager(auth_config(scope="read write", extra_params={"audience": "api", "v": 2}))

    assert await tokens.access_token(client) == "AT-0001-access"

    [request] = server.requests
    assert request.method == "POST"
    assert str(request.url) == TOKEN_URL
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in request.headers
    assert form(request) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "read write",
        "audience": "api",
        "v": "2",
    }


async def test_basic_client_auth_sends_form_encoded_credentials_in_the_header(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    tokens = manager(auth_config(client_auth="basic"))

    await tokens.access_token(client)

    [request] = server.requests
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)
    assert form(request) == {"grant_type": "client_credentials"}


def test_auth_header_is_a_bearer_header() -> None:
    assert auth_header("abc") == {"Authorization": "Bearer abc"}


# --- reuse and expiry -----------------------------------------------------------------------


async def test_token_is_reused_until_30s_before_it_expires(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    clock = Clock()
    start = clock.now
    tokens = manager(auth_config(), clock)

    first = await tokens.access_token(client)
    clock.now = start + 569
    assert await tokens.access_token(client) == first
    assert len(server.requests) == 1

    clock.now = start + 570  # expires_in 600, minus the 30 s margin
    assert await tokens.access_token(client) == "AT-0002-access"
    assert len(server.requests) == 2


@pytest.mark.parametrize("expires_in", ["600", 600.0])
async def test_expires_in_as_string_or_float_is_understood(
    server: TokenServer, client: httpx.AsyncClient, expires_in: object
) -> None:
    server.expires_in = expires_in  # Exact Online sends "600"
    clock = Clock()
    tokens = manager(auth_config(), clock)
    await tokens.access_token(client)
    clock.now += 571
    await tokens.access_token(client)
    assert len(server.requests) == 2


async def test_without_expires_in_the_token_is_kept_until_a_401(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    server.expires_in = None
    clock = Clock()
    tokens = manager(auth_config(), clock)
    first = await tokens.access_token(client)
    clock.now += 10 * 365 * 86400
    assert await tokens.access_token(client) == first
    assert len(server.requests) == 1


async def test_concurrent_callers_share_one_token_request(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    server.delay = 0.02  # all callers arrive while the request is in flight
    tokens = manager(auth_config())

    got = await asyncio.gather(*(tokens.access_token(client) for _ in range(25)))

    assert set(got) == {"AT-0001-access"}
    assert len(server.requests) == 1


# --- after a 401 ----------------------------------------------------------------------------


async def test_a_401_refreshes_once_and_the_same_rejected_token_does_not_refresh_again(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    tokens = manager(auth_config())
    rejected = await tokens.access_token(client)

    renewed = await tokens.after_unauthorized(client, rejected)
    assert renewed == "AT-0002-access"
    assert len(server.requests) == 2

    # A second coroutine whose request carried the same old token: no new request.
    assert await tokens.after_unauthorized(client, rejected) == renewed
    assert len(server.requests) == 2
    assert await tokens.access_token(client) == renewed


async def test_concurrent_401s_with_the_same_token_cause_one_refresh(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    tokens = manager(auth_config())
    rejected = await tokens.access_token(client)
    server.delay = 0.02

    got = await asyncio.gather(*(tokens.after_unauthorized(client, rejected) for _ in range(10)))

    assert set(got) == {"AT-0002-access"}
    assert len(server.requests) == 2


async def test_a_401_for_the_new_token_refreshes_again(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    tokens = manager(auth_config())
    first = await tokens.access_token(client)
    second = await tokens.after_unauthorized(client, first)
    assert await tokens.after_unauthorized(client, second) == "AT-0003-access"


async def test_a_401_before_min_refresh_interval_is_an_auth_error_without_a_request(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    clock = Clock()
    tokens = manager(auth_config(min_refresh_interval="570s"), clock)
    rejected = await tokens.access_token(client)
    clock.now += 100

    with pytest.raises(AuthError) as info:
        await tokens.after_unauthorized(client, rejected)

    message = str(info.value)
    assert "100s after it was obtained" in message
    assert "one token refresh per 570s" in message
    assert "min_refresh_interval" in message
    assert len(server.requests) == 1

    clock.now += 470  # 570 s after the refresh: allowed again
    assert await tokens.after_unauthorized(client, rejected) == "AT-0002-access"


async def test_near_expiry_inside_min_refresh_interval_keeps_the_valid_token(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    server.expires_in = 100  # shorter than the vendor's refresh limit
    clock = Clock()
    tokens = manager(auth_config(min_refresh_interval=570), clock)
    first = await tokens.access_token(client)

    clock.now += 80  # within the 30 s margin, but refreshing would be refused
    assert await tokens.access_token(client) == first
    assert len(server.requests) == 1

    clock.now += 21  # now really expired, still inside the limit
    with pytest.raises(AuthError, match="expired 101s after it was obtained"):
        await tokens.access_token(client)
    assert len(server.requests) == 1


# --- refresh-token grant, rotation and the token file ---------------------------------------


async def test_refresh_grant_sends_the_refresh_token_and_uses_the_rotated_one_next(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    tokens = manager(refresh_config(tmp_path / "tokens.json"))

    first = await tokens.access_token(client)
    await tokens.after_unauthorized(client, first)

    assert server.forms == [
        {
            "grant_type": "refresh_token",
            "refresh_token": INITIAL_REFRESH,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        {
            "grant_type": "refresh_token",
            "refresh_token": "RT-0001-refresh",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ]


async def test_public_client_sends_no_client_secret(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    tokens = manager(refresh_config(client_secret=None))
    await tokens.access_token(client)
    assert server.forms[0] == {
        "grant_type": "refresh_token",
        "refresh_token": INITIAL_REFRESH,
        "client_id": CLIENT_ID,
    }


async def test_rotated_refresh_token_is_saved_before_the_access_token_is_returned(
    server: TokenServer,
    client: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path, refresh_token="rt-OLD-0000")
    on_disk_at_failpoint: list[str] = []

    def failpoint(name: str) -> None:
        assert name == "oauth2.token_received"
        on_disk_at_failpoint.append(saved(path)["refresh_token"])

    monkeypatch.setattr(oauth2, "failpoint", failpoint)
    clock = Clock()
    tokens = manager(refresh_config(path), clock)

    access = await tokens.access_token(client)

    # The failpoint sits between the answer and the save: a crash there keeps the old file.
    assert on_disk_at_failpoint == ["rt-OLD-0000"]
    assert saved(path) == {
        "refresh_token": "RT-0001-refresh",
        "access_token": access,
        "expires_at": clock.now + 600,
        "obtained_at": clock.now,
        "token_url": TOKEN_URL,
        "client_id": CLIENT_ID,
    }


async def test_a_failed_save_returns_no_token_and_keeps_the_new_one_until_it_is_saved(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    blocker = tmp_path / "state"
    path = blocker / "tokens.json"
    tokens = manager(refresh_config(path))

    def block_the_directory_then_answer(request: httpx.Request) -> httpx.Response:
        # After the (absent) file was read, before the save; a file where the directory
        # should be fails even for root, unlike permissions.
        blocker.write_text("not a directory")
        server.reply = None
        return httpx.Response(
            200, json={"access_token": "AT-0001-access", "refresh_token": "RT-0001-refresh"}
        )

    server.reply = block_the_directory_then_answer

    with pytest.raises(AuthError) as info:
        await tokens.access_token(client)
    assert f"cannot save the OAuth2 tokens to {path}" in str(info.value)
    with pytest.raises(AuthError, match="cannot save"):
        await tokens.access_token(client)  # still refuses: the rotation is not on disk

    blocker.unlink()
    assert await tokens.access_token(client) == "AT-0001-access"  # saved now, no new request
    assert len(server.requests) == 1
    assert saved(path)["refresh_token"] == "RT-0001-refresh"


def test_a_kill_at_the_failpoint_leaves_the_previous_token_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path, refresh_token="rt-OLD-0000")
    script = textwrap.dedent(
        f"""
        import asyncio, httpx
        from pathlib import Path
        from syncline.config.strategies import OAuth2Auth
        from syncline.oauth2 import OAuth2Tokens
        from syncline.redact import Redactor

        def handler(request):
            return httpx.Response(
                200, json={{"access_token": "AT-NEW-1234", "refresh_token": "RT-NEW-1234"}}
            )

        async def main():
            config = OAuth2Auth(
                type="oauth2", grant="refresh_token", token_url={TOKEN_URL!r},
                client_id={CLIENT_ID!r}, token_file={str(path)!r},
            )
            tokens = OAuth2Tokens(config, redactor=Redactor(), token_file=Path({str(path)!r}))
            async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
                print(await tokens.access_token(client))

        asyncio.run(main())
        """
    )
    env = {**os.environ, "SYNCLINE_FAILPOINT": "oauth2.token_received"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "AT-NEW-1234" not in result.stdout
    assert saved(path)["refresh_token"] == "rt-OLD-0000"
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]


async def test_token_file_wins_over_the_configured_refresh_token(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path, refresh_token="rt-ROTATED-0042")
    tokens = manager(refresh_config(path))

    await tokens.access_token(client)

    assert server.forms[0]["refresh_token"] == "rt-ROTATED-0042"


async def test_a_still_valid_access_token_in_the_file_is_used_without_a_request(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    clock = Clock()
    path = tmp_path / "tokens.json"
    write_token_file(
        path,
        access_token="AT-SAVED-7777",
        expires_at=clock.now + 300,
        obtained_at=clock.now - 300,
    )
    tokens = manager(refresh_config(path, min_refresh_interval="570s"), clock)

    assert await tokens.access_token(client) == "AT-SAVED-7777"
    assert server.requests == []
    # The previous run refreshed 300 s ago: the vendor's limit still applies after a restart.
    with pytest.raises(AuthError, match="one token refresh per 570s"):
        await tokens.after_unauthorized(client, "AT-SAVED-7777")
    assert server.requests == []


@pytest.mark.parametrize(
    "other",
    [{"token_url": "https://other.example.com/token"}, {"client_id": "another-client"}],
)
async def test_a_token_file_of_another_client_is_ignored_with_a_warning(
    server: TokenServer,
    client: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    other: dict[str, str],
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path, refresh_token="rt-OTHER-CLIENT", **other)
    tokens = manager(refresh_config(path))

    with caplog.at_level(logging.WARNING, logger="syncline"):
        await tokens.access_token(client)

    assert server.forms[0]["refresh_token"] == INITIAL_REFRESH
    assert any(str(path) in r.getMessage() for r in caplog.records)
    assert saved(path)["refresh_token"] == "RT-0001-refresh"
    assert saved(path)["client_id"] == CLIENT_ID


async def test_a_token_file_of_another_client_without_a_configured_token_is_an_error(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path, client_id="another-client")
    tokens = manager(refresh_config(path, refresh_token=None))

    with pytest.raises(AuthError, match="belongs to another client"):
        await tokens.access_token(client)
    assert server.requests == []


async def test_no_token_file_yet_and_no_configured_token_is_an_error(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    tokens = manager(refresh_config(path, refresh_token=None))

    with pytest.raises(AuthError) as info:
        await tokens.access_token(client)
    assert f"{path} does not exist" in str(info.value)
    assert server.requests == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not a JSON object"),
        ("[]", "not a JSON object"),
        ('{"token_url": "x"}', "no refresh_token"),
        ('{"refresh_token": "rt-1234", "expires_at": "soon"}', "expires_at is not a number"),
        ('{"refresh_token": "rt-1234", "access_token": 5}', "access_token is not a string"),
    ],
)
async def test_a_corrupt_token_file_is_an_error_naming_it_and_is_kept(
    server: TokenServer,
    client: httpx.AsyncClient,
    tmp_path: Path,
    content: str,
    problem: str,
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content, encoding="utf-8")
    tokens = manager(refresh_config(path))

    with pytest.raises(AuthError) as info:
        await tokens.access_token(client)

    message = str(info.value)
    assert str(path) in message
    assert problem in message
    assert "re-authenticate" in message
    assert path.read_text(encoding="utf-8") == content
    assert server.requests == []


async def test_token_file_is_0600_in_a_0700_directory_it_created(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "oauth" / "tokens.json"
    tokens = manager(refresh_config(path))

    await tokens.access_token(client)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["tokens.json"]  # no temp left


async def test_saving_replaces_a_loose_file_with_a_0600_one(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path)
    path.chmod(0o644)
    tokens = manager(refresh_config(path))
    await tokens.access_token(client)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_token_file_readable_by_others_is_warned_about(
    server: TokenServer,
    client: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path)
    path.chmod(0o640)
    tokens = manager(refresh_config(path))

    with caplog.at_level(logging.WARNING, logger="syncline"):
        await tokens.access_token(client)

    [record] = [r for r in caplog.records if "readable by other users" in r.getMessage()]
    assert str(path) in record.getMessage()
    assert "chmod 600" in record.getMessage()


async def test_a_private_token_file_is_not_warned_about(
    server: TokenServer,
    client: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path)
    with caplog.at_level(logging.WARNING, logger="syncline"):
        await manager(refresh_config(path)).access_token(client)
    assert caplog.records == []


async def test_rotation_without_a_token_file_is_warned_about_once(
    server: TokenServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = manager(refresh_config())
    with caplog.at_level(logging.WARNING, logger="syncline"):
        first = await tokens.access_token(client)
        await tokens.after_unauthorized(client, first)
    [record] = caplog.records
    assert "token_file" in record.getMessage()


def test_token_file_must_be_passed_exactly_when_configured(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token_file"):
        OAuth2Tokens(refresh_config(Path("tokens.json")), redactor=Redactor())
    with pytest.raises(ValueError, match="token_file"):
        OAuth2Tokens(refresh_config(), redactor=Redactor(), token_file=tmp_path / "t.json")


# --- token endpoint errors ------------------------------------------------------------------


def answer(status: int, body: object = None, **kwargs: Any) -> Callable[[httpx.Request], Any]:
    def reply(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str | bytes):
            return httpx.Response(status, content=body, **kwargs)
        return httpx.Response(status, json=body, **kwargs)

    return reply


async def test_invalid_grant_says_the_refresh_token_was_refused_and_where_to_put_a_new_one(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path)
    server.reply = answer(400, {"error": "invalid_grant", "error_description": "Token expired"})
    tokens = manager(refresh_config(path))

    with pytest.raises(AuthError) as info:
        await tokens.access_token(client)

    error = info.value
    assert "refresh token was refused" in error.reason
    assert "expired, revoked or already used" in error.reason
    assert f"re-authenticate and put the new refresh token in {path}" in error.reason
    assert error.request is not None
    assert error.request.method == "POST"
    assert error.request.url == TOKEN_URL
    assert error.request.status == 400
    assert "Token expired" in error.request.body_snippet


async def test_invalid_grant_without_a_token_file_points_at_the_config_key(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    server.reply = answer(400, {"error": "invalid_grant"})
    with pytest.raises(AuthError) as info:
        await manager(refresh_config()).access_token(client)
    assert info.value.reason.endswith("put the new refresh token in auth.refresh_token")


@pytest.mark.parametrize(
    ("reply", "kind", "text"),
    [
        (answer(401, {"error": "invalid_client"}), AuthError, "client credentials were refused"),
        (answer(400, {"error": "invalid_client"}), AuthError, "client credentials were refused"),
        (answer(400, {"error": "invalid_scope"}), AuthError, "rejected (invalid_scope)"),
        (answer(200, {"error": "invalid_scope"}), AuthError, "rejected (invalid_scope)"),
        (answer(302, b"", headers={"location": "https://x/"}), AuthError, "redirected"),
        (answer(503, "<html>down</html>"), ServerError, "token endpoint failed"),
        (answer(200, "<html>login</html>"), BadPayload, "did not answer a JSON object"),
        (answer(200, {"token_type": "bearer"}), BadPayload, "no access_token"),
    ],
)
async def test_token_endpoint_errors_are_classified(
    server: TokenServer,
    client: httpx.AsyncClient,
    reply: Callable[[httpx.Request], httpx.Response],
    kind: type[SourceError],
    text: str,
) -> None:
    server.reply = reply
    with pytest.raises(kind) as info:
        await manager(auth_config()).access_token(client)
    assert text in info.value.reason
    assert info.value.request is not None
    assert info.value.request.status == reply(httpx.Request("POST", TOKEN_URL)).status_code


async def test_429_is_rate_limited_with_the_servers_wait(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    server.reply = answer(429, {"error": "slow_down"}, headers={"retry-after": "7"})
    with pytest.raises(RateLimited) as info:
        await manager(auth_config()).access_token(client)
    assert info.value.retry_after == 7


async def test_transport_errors_are_network_errors(server: TokenServer) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(NetworkError) as info:
            await manager(auth_config()).access_token(client)
    assert "ConnectError: connection refused" in info.value.reason
    assert info.value.request is not None
    assert info.value.request.status is None


async def test_after_an_error_the_next_call_tries_again(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    server.reply = answer(503, "busy")
    tokens = manager(auth_config())
    with pytest.raises(ServerError):
        await tokens.access_token(client)
    server.reply = None
    assert await tokens.access_token(client) == "AT-0001-access"


# --- secrets --------------------------------------------------------------------------------

NEW_ACCESS = "AT-NEVER-SHOW-9f8e/+=7d"
NEW_REFRESH = "RT-NEVER-SHOW-1a2b/+=3c"


def forms_of(secret: str) -> list[str]:
    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
    ]


def echo_everything(status: int) -> Callable[[httpx.Request], httpx.Response]:
    """A careless server: echoes the request (form and auth header) and leaks new tokens."""

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            json={
                "error": "invalid_grant",
                "echo": request.content.decode(),
                "authorization": request.headers.get("authorization", ""),
                "access_token": NEW_ACCESS,
                "refresh_token": NEW_REFRESH,
            },
        )

    return reply


@pytest.mark.parametrize(
    "reply",
    [
        echo_everything(400),
        echo_everything(401),
        echo_everything(500),
        # A 200 we cannot parse, form-encoded as some vendors answer without Accept:
        answer(200, f"access_token={quote_plus(NEW_ACCESS)}&refresh_token={NEW_REFRESH}"),
        # Truncated JSON with the new tokens in it:
        answer(200, f'{{"refresh_token": "{NEW_REFRESH}", "access_token": "{NEW_ACCESS}"'),
        answer(200, {"refresh_token": NEW_REFRESH, "access": NEW_ACCESS}),
    ],
)
@pytest.mark.parametrize("client_auth", ["body", "basic"])
async def test_no_secret_in_any_form_reaches_an_error(
    server: TokenServer,
    client: httpx.AsyncClient,
    reply: Callable[[httpx.Request], httpx.Response],
    client_auth: str,
) -> None:
    server.reply = reply
    redactor = Redactor()
    tokens = manager(refresh_config(client_auth=client_auth), redactor=redactor)

    with pytest.raises(SourceError) as info:
        await tokens.access_token(client)

    error = info.value
    shown = " ".join([str(error), repr(error), repr(error.request), repr(tokens)])
    pair = f"{quote_plus(CLIENT_ID)}:{quote_plus(CLIENT_SECRET)}"
    secrets = [CLIENT_SECRET, INITIAL_REFRESH, NEW_ACCESS, NEW_REFRESH]
    for secret in secrets:
        for spelling in forms_of(secret):
            assert spelling not in shown, spelling
    assert base64.b64encode(pair.encode()).decode() not in shown
    assert error.request is not None
    if error.request.body_snippet:
        assert MASK in error.request.body_snippet  # the body was shown masked, not dropped


async def test_a_secret_cut_by_the_snippet_limit_is_not_shown_in_part(
    server: TokenServer, client: httpx.AsyncClient
) -> None:
    server.reply = answer(400, "x" * 290 + f" unknown {INITIAL_REFRESH}")
    with pytest.raises(AuthError) as info:
        await manager(refresh_config()).access_token(client)
    assert info.value.request is not None
    snippet = info.value.request.body_snippet
    assert snippet == "x" * 290 + f" unknown {MASK}"[:10]
    assert "rt-" not in snippet


async def test_secret_of_a_network_error_message_is_redacted(server: TokenServer) -> None:
    def leak(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError(f"reset while sending {request.content.decode()}", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(leak)) as client:
        with pytest.raises(NetworkError) as info:
            await manager(refresh_config()).access_token(client)
    for secret in (CLIENT_SECRET, INITIAL_REFRESH):
        for spelling in forms_of(secret)[:3]:
            assert spelling not in str(info.value)


async def test_every_token_is_registered_with_the_redactor_when_received(
    server: TokenServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    write_token_file(path, access_token="AT-FROM-FILE-5555", expires_at=0)
    redactor = Redactor()
    tokens = manager(refresh_config(path), redactor=redactor)
    assert redactor.text(CLIENT_SECRET) == MASK  # configured secrets: at construction

    access = await tokens.access_token(client)

    for secret in ("rt-FROM-FILE-0042", "AT-FROM-FILE-5555", access, "RT-0001-refresh"):
        assert redactor.text(f"x {secret} y") == f"x {MASK} y"


def test_secrets_lists_the_configured_credentials_as_sent() -> None:
    basic = manager(refresh_config(client_auth="basic"))
    pair = f"{quote_plus(CLIENT_ID)}:{quote_plus(CLIENT_SECRET)}"
    assert basic.secrets() == [
        CLIENT_SECRET,
        INITIAL_REFRESH,
        base64.b64encode(pair.encode()).decode(),
    ]
    assert manager(refresh_config(client_secret=None)).secrets() == [INITIAL_REFRESH]


def test_repr_shows_no_secret() -> None:
    text = repr(manager(refresh_config(client_auth="basic")))
    assert text == "OAuth2Tokens(grant='refresh_token', client_id='client-abc')"


# --- Redactor.add ---------------------------------------------------------------------------


def test_redactor_add_masks_raw_and_url_encoded_forms() -> None:
    redactor = Redactor(["abcd"])
    redactor.add(NEW_ACCESS)
    for spelling in forms_of(NEW_ACCESS)[:3]:
        assert redactor.text(f"[{spelling}]") == f"[{MASK}]"
    assert redactor.text("[abcd]") == f"[{MASK}]"


def test_redactor_add_keeps_the_longest_secret_first() -> None:
    redactor = Redactor(["abcd"])
    redactor.add("abcdefgh")
    assert redactor.text("[abcdefgh] [abcd]") == f"[{MASK}] [{MASK}]"


@pytest.mark.parametrize("short", ["", "a", "abc"])
def test_redactor_add_ignores_very_short_values(short: str) -> None:
    redactor = Redactor()
    redactor.add(short)
    assert redactor.text("a cab abc") == "a cab abc"


def test_redactor_add_is_idempotent() -> None:
    redactor = Redactor()
    redactor.add(NEW_ACCESS)
    redactor.add(NEW_ACCESS)
    assert redactor.text(NEW_ACCESS + NEW_ACCESS) == MASK + MASK
