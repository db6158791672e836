"""``auth: {type: oauth2}``: what loads, and mistakes caught at load time with the key named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncline.config import config_from_dict
from syncline.config.strategies import OAuth2Auth
from syncline.errors import ConfigError

SECRET = "cs-0a9b8c7d6e5f"
REFRESH = "rt-1f2e3d4c5b6a"
ENV = {"CLIENT_SECRET": SECRET, "REFRESH_TOKEN": REFRESH}


def raw_config(**auth: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "type": "oauth2",
        "grant": "refresh_token",
        "token_url": "https://login.example.com/oauth/token",
        "client_id": "abc",
        "client_secret": "${env:CLIENT_SECRET}",
        "refresh_token": "${env:REFRESH_TOKEN}",
    }
    settings.update(auth)
    return {
        "sources": {
            "exact": {
                "base_url": "https://api.example.com",
                "auth": {k: v for k, v in settings.items() if v is not None},
                "streams": {"items": {"path": "/items", "primary_key": "id"}},
            }
        }
    }


def load_auth(**auth: Any) -> OAuth2Auth:
    config = config_from_dict(raw_config(**auth), base_dir=Path("/etc/syncline"), environ=ENV)
    loaded = config.sources["exact"].auth
    assert isinstance(loaded, OAuth2Auth)
    return loaded


def load_error(**auth: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_auth(**auth)
    return str(info.value)


def test_a_full_refresh_token_config_loads() -> None:
    auth = load_auth(
        scope="read write",
        client_auth="basic",
        token_file="tokens/exact.json",
        min_refresh_interval="570s",
        extra_params={"audience": "x", "division": 12, "offline": True},
    )

    assert auth.grant == "refresh_token"
    assert auth.token_url == "https://login.example.com/oauth/token"
    assert auth.client_id == "abc"
    assert auth.client_secret is not None
    assert auth.client_secret.get_secret_value() == SECRET
    assert auth.refresh_token is not None
    assert auth.refresh_token.get_secret_value() == REFRESH
    assert auth.scope == "read write"
    assert auth.client_auth == "basic"
    assert auth.token_file == Path("tokens/exact.json")  # resolved by the caller, not here
    assert auth.min_refresh_interval == timedelta(seconds=570)
    assert auth.extra_params == {"audience": "x", "division": 12, "offline": True}


def test_defaults() -> None:
    auth = load_auth()
    assert auth.client_auth == "body"
    assert auth.min_refresh_interval == timedelta(0)
    assert auth.scope is None
    assert auth.token_file is None
    assert auth.extra_params == {}


@pytest.mark.parametrize(("value", "seconds"), [(570, 570), ("9m30s", 570), ("1h", 3600)])
def test_min_refresh_interval_is_a_duration(value: object, seconds: int) -> None:
    assert load_auth(min_refresh_interval=value).min_refresh_interval == timedelta(seconds=seconds)


def test_secrets_are_not_shown_by_the_config() -> None:
    auth = load_auth()
    for text in (str(auth), repr(auth)):
        assert SECRET not in text
        assert REFRESH not in text


def test_a_token_file_alone_is_enough_for_the_refresh_grant() -> None:
    auth = load_auth(refresh_token=None, token_file="tokens.json")
    assert auth.refresh_token is None


def test_a_public_client_needs_no_secret() -> None:
    assert load_auth(client_secret=None).client_secret is None


def test_client_credentials_loads() -> None:
    auth = load_auth(grant="client_credentials", refresh_token=None, scope="api")
    assert auth.grant == "client_credentials"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"refresh_token": None},
            "grant 'refresh_token' needs 'refresh_token' or 'token_file'",
        ),
        (
            {"grant": "client_credentials", "refresh_token": None, "client_secret": None},
            "grant 'client_credentials' needs 'client_secret'",
        ),
        (
            {"grant": "client_credentials"},
            "['refresh_token'] only apply to grant 'refresh_token'",
        ),
        (
            {"grant": "client_credentials", "refresh_token": None, "token_file": "t.json"},
            "['token_file'] only apply to grant 'refresh_token'",
        ),
        ({"client_auth": "basic", "client_secret": None}, "client_auth 'basic' needs"),
    ],
)
def test_incoherent_settings_are_rejected(auth: dict[str, Any], expected: str) -> None:
    message = load_error(**auth)
    assert "sources.exact.auth" in message
    assert expected in message


@pytest.mark.parametrize(
    "url", ["login.example.com/oauth/token", "ftp://login.example.com/token", "https://", ""]
)
def test_token_url_must_be_an_http_url(url: str) -> None:
    message = load_error(token_url=url)
    assert "sources.exact.auth.token_url" in message
    assert "expected an http:// or https:// URL" in message


def test_http_token_url_is_allowed_for_local_servers() -> None:
    assert load_auth(token_url="http://127.0.0.1:8080/token").token_url.startswith("http://")


def test_unknown_keys_are_rejected() -> None:
    message = load_error(client_secrett="x")
    assert "sources.exact.auth.client_secrett: unknown key (check the spelling)" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("grant", "password"),
        ("client_auth", "jwt"),
        ("min_refresh_interval", "soon"),
        ("min_refresh_interval", -5),
        ("client_id", ""),
    ],
)
def test_bad_values_name_their_key(key: str, value: object) -> None:
    assert f"sources.exact.auth.{key}" in load_error(**{key: value})


def test_required_keys_are_named() -> None:
    raw = raw_config()
    del raw["sources"]["exact"]["auth"]["token_url"]
    with pytest.raises(ConfigError, match=r"auth\.token_url: required key is missing"):
        config_from_dict(raw, environ=ENV)


@pytest.mark.parametrize("name", ["grant_type", "refresh_token", "client_secret", "scope"])
def test_extra_params_cannot_override_what_syncline_sets(name: str) -> None:
    message = load_error(extra_params={name: "x"})
    assert "sources.exact.auth.extra_params" in message
    assert name in message


@pytest.mark.parametrize("key", ["client_secret", "refresh_token"])
def test_an_empty_secret_is_an_error_not_a_missing_one(key: str) -> None:
    message = load_error(**{key: "${env:UNSET_VAR:-}"})
    assert f"sources.exact.auth.{key}" in message
    assert "is empty" in message


def test_oauth2_is_listed_among_the_auth_types() -> None:
    message = load_error(type="oauth3")
    assert "'oauth2'" in message
