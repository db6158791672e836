"""The sandbox's OAuth2 token endpoint and token-guarded data, over real sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from syncline.sandbox import SandboxProcess

CLIENT = ("sync-client", "s3cret:with/odd chars+plus%")
STATIC = "static-token"


@pytest.fixture(scope="module")
def oauth_server() -> Iterator[SandboxProcess]:
    with SandboxProcess(records=30, token=STATIC, oauth_client=CLIENT, oauth_ttl=60) as server:
        yield server


@pytest.fixture
def sandbox(oauth_server: SandboxProcess) -> SandboxProcess:
    """The module's OAuth sandbox with no tokens issued and zero counters."""
    oauth_server.admin_reset()
    return oauth_server


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, timeout=5.0, trust_env=False) as http:
        yield http


def _token(client: httpx.Client, **form: str) -> httpx.Response:
    return client.post("/oauth/token", data=form)


def _client_credentials(client: httpx.Client) -> str:
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _data(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/page/items", headers={"Authorization": f"Bearer {token}"})


def test_client_credentials_with_form_fields_or_basic(
    sandbox: SandboxProcess, client: httpx.Client
) -> None:
    by_form = _token(
        client, grant_type="client_credentials", client_id=CLIENT[0], client_secret=CLIENT[1]
    )
    assert by_form.status_code == 200
    assert by_form.headers["cache-control"] == "no-store"
    body: dict[str, Any] = by_form.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 60)
    by_basic = _client_credentials(client)
    assert by_basic != body["access_token"]
    for token in (body["access_token"], by_basic, STATIC):
        response = _data(client, token)
        assert response.status_code == 200
        assert response.json()["total"] == 30
    assert sandbox.oauth_stats() == {
        "token_requests": 2,
        "grants": {"client_credentials": 2, "refresh_token": 0},
        "active_access_tokens": 2,
        "active_refresh_tokens": 0,
    }


def test_basic_credentials_may_be_form_encoded(client: httpx.Client) -> None:
    encoded = (quote_plus(CLIENT[0]), quote_plus(CLIENT[1]))  # what RFC 6749 2.3.1 asks for
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=encoded)
    assert response.status_code == 200


def test_client_authentication_errors(client: httpx.Client) -> None:
    grant = {"grant_type": "client_credentials"}
    wrong = [
        client.post("/oauth/token", data=grant, auth=(CLIENT[0], "nope")),
        client.post("/oauth/token", data=grant, auth=("someone", CLIENT[1])),
        _token(client, **grant, client_id=CLIENT[0], client_secret="nope"),
        _token(client, **grant),
    ]
    for response in wrong:
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_client"}
        assert response.headers["www-authenticate"].startswith("Basic")


def test_request_errors(client: httpx.Client) -> None:
    def post(form: dict[str, str]) -> httpx.Response:
        return client.post("/oauth/token", data=form, auth=CLIENT)

    assert post({"grant_type": "password"}).json() == {"error": "unsupported_grant_type"}
    assert post({"grant_type": "password"}).status_code == 400
    assert post({}).json()["error"] == "invalid_request"
    assert post({"grant_type": "refresh_token"}).json()["error"] == "invalid_request"
    as_json = client.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=CLIENT)
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    both = post({"grant_type": "client_credentials", "client_secret": CLIENT[1]})
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")


def test_refresh_token_rotation(sandbox: SandboxProcess, client: httpx.Client) -> None:
    initial = sandbox.oauth_refresh_token()

    def refresh(token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": token}
        return client.post("/oauth/token", data=form, auth=CLIENT)

    first = refresh(initial)
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["refresh_token"] != initial
    assert _data(client, body["access_token"]).status_code == 200
    # The used refresh token is dead at once; the rotated one works exactly once.
    replay = refresh(initial)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    second = refresh(body["refresh_token"])
    assert second.status_code == 200
    assert refresh(body["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh("rt_made_up").json()["error"] == "invalid_grant"
    # Form-field client authentication works for refreshes too.
    third = _token(
        client,
        grant_type="refresh_token",
        refresh_token=second.json()["refresh_token"],
        client_id=CLIENT[0],
        client_secret=CLIENT[1],
    )
    assert third.status_code == 200
    assert sandbox.oauth_stats() == {
        "token_requests": 6,
        "grants": {"client_credentials": 0, "refresh_token": 3},
        "active_access_tokens": 3,
        "active_refresh_tokens": 1,
    }


def test_expired_tokens_get_invalid_token(sandbox: SandboxProcess, client: httpx.Client) -> None:
    token = _client_credentials(client)
    assert _data(client, token).status_code == 200
    sandbox.oauth_expire()
    response = _data(client, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {"error": "invalid_token"}
    assert sandbox.oauth_stats()["active_access_tokens"] == 0
    assert _data(client, STATIC).status_code == 200  # the static token is not an OAuth token
    assert _data(client, _client_credentials(client)).status_code == 200


def test_missing_or_unknown_tokens(sandbox: SandboxProcess, client: httpx.Client) -> None:
    missing = client.get("/page/items")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json() == {"error": "unauthorized"}
    unknown = _data(client, "at_never_issued")
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    graphql = client.post("/graphql", json={"query": "{ items { totalCount } }"})
    assert graphql.status_code == 401
    assert sandbox.stats() == {"requests": {}, "total": 0}  # refused requests are not counted


def test_access_tokens_expire_after_the_ttl() -> None:
    with (
        SandboxProcess(records=5, oauth_client=CLIENT, oauth_ttl=0.5) as server,
        httpx.Client(base_url=server.base_url, timeout=5.0, trust_env=False) as http,
    ):
        response = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
        assert response.json()["expires_in"] == 0.5
        token = response.json()["access_token"]
        assert _data(http, token).status_code == 200
        time.sleep(0.6)
        expired = _data(http, token)
        assert expired.status_code == 401
        assert expired.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert server.oauth_stats()["active_access_tokens"] == 0


def test_faults_spare_the_token_endpoint_and_oauth_tokens(
    sandbox: SandboxProcess, client: httpx.Client
) -> None:
    sandbox.set_faults(unauthorized_after=0, schedule=[{"at": 3, "kind": "503", "count": 10}])
    token = _client_credentials(client)  # never faulted, never counted as a data request
    assert _data(client, STATIC).status_code == 401  # unauthorized_after models the static token
    assert _data(client, token).status_code == 200  # OAuth tokens are exempt from it
    assert _data(client, token).status_code == 503  # other faults still apply
    assert _client_credentials(client)
    assert sandbox.faults()["injected"] == {"unauthorized": 1, "503": 1}
    assert sandbox.faults()["data_requests"] == 3


def test_reset_forgets_tokens(sandbox: SandboxProcess, client: httpx.Client) -> None:
    token = _client_credentials(client)
    refresh = sandbox.oauth_refresh_token()
    sandbox.admin_reset()
    assert _data(client, token).status_code == 401
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    assert client.post("/oauth/token", data=form, auth=CLIENT).status_code == 400
    assert sandbox.oauth_stats()["token_requests"] == 1


def test_oauth_is_off_unless_configured() -> None:
    with (
        SandboxProcess(records=5) as server,
        httpx.Client(base_url=server.base_url, timeout=5.0, trust_env=False) as http,
    ):
        assert (
            http.post("/oauth/token", data={"grant_type": "client_credentials"}).status_code == 404
        )
        for method, path in [
            ("GET", "/_admin/oauth"),
            ("POST", "/_admin/oauth/refresh-token"),
            ("POST", "/_admin/oauth/expire"),
        ]:
            response = http.request(method, path)
            assert response.status_code == 404
            assert response.json() == {"error": "oauth is not enabled"}
        with pytest.raises(httpx.HTTPStatusError):
            server.oauth_stats()
        assert http.get("/page/items").status_code == 200  # no token needed, as before
