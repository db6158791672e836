"""Redactor: known secrets and secret-looking query parameters never reach logs or errors."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.redact import MASK, Redactor

TOKEN = "tok_live_4f9a/b+c=="


def test_text_masks_the_raw_secret_everywhere() -> None:
    redactor = Redactor([TOKEN])
    assert redactor.text(f"bad token {TOKEN}; again {TOKEN}") == f"bad token {MASK}; again {MASK}"


@pytest.mark.parametrize("encoded", [quote(TOKEN, safe=""), quote_plus(TOKEN)])
def test_text_masks_url_encoded_forms(encoded: str) -> None:
    assert encoded != TOKEN
    assert Redactor([TOKEN]).text(f"GET /x?key={encoded}&page=2") == f"GET /x?key={MASK}&page=2"


def test_text_masks_the_longest_secret_first() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.text("[abcdefgh] [abcd]") == f"[{MASK}] [{MASK}]"


@pytest.mark.parametrize("short", ["", "a", "abc"])
def test_very_short_secrets_are_not_masked_everywhere(short: str) -> None:
    assert Redactor([short]).text("a cab abc") == "a cab abc"


def test_text_without_secrets_is_unchanged() -> None:
    assert Redactor([]).text("nothing to see") == "nothing to see"
    assert Redactor([TOKEN]).text("nothing to see") == "nothing to see"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@api.test/x?page=2", "https://api.test/x?page=2"),
        ("https://user@api.test:8443/x", "https://api.test:8443/x"),
        ("https://api.test/x?api_key=k1&page=2", f"https://api.test/x?api_key={MASK}&page=2"),
        ("https://api.test/x?apikey=k1", f"https://api.test/x?apikey={MASK}"),
        ("https://api.test/x?api-key=k1", f"https://api.test/x?api-key={MASK}"),
        ("https://api.test/x?access_token=k1", f"https://api.test/x?access_token={MASK}"),
        (
            "https://api.test/x?X-Amz-Signature=k1&X-Amz-Date=20240101",
            f"https://api.test/x?X-Amz-Signature={MASK}&X-Amz-Date=20240101",
        ),
        (
            "https://api.test/x?client_secret=k1&password=k2",
            f"https://api.test/x?client_secret={MASK}&password={MASK}",
        ),
        (
            "https://api.test/c/1/products?page=3&per_page=100&fieldset=detailed&updated_since=2024-01-01T00%3A00%3A00Z&cursor=abc",
            "https://api.test/c/1/products?page=3&per_page=100&fieldset=detailed&updated_since=2024-01-01T00%3A00%3A00Z&cursor=abc",
        ),
        ("https://api.test/x?flag&api_key=", f"https://api.test/x?flag=&api_key={MASK}"),
        ("https://api.test/x", "https://api.test/x"),
    ],
)
def test_url_drops_userinfo_and_masks_secret_params(url: str, expected: str) -> None:
    assert Redactor([]).url(url) == expected


def test_url_masks_a_known_secret_in_any_position() -> None:
    secret = "s3cr3t-value"
    redactor = Redactor([secret])
    assert redactor.url(f"https://api.test/{secret}/x?q={secret}&page=1") == (
        f"https://api.test/{MASK}/x?q={MASK}&page=1"
    )


def test_url_masks_a_known_secret_that_needs_encoding() -> None:
    redactor = Redactor([TOKEN])
    assert TOKEN not in redactor.url(f"https://api.test/x?q={quote(TOKEN, safe='')}")
    assert quote(TOKEN, safe="") not in redactor.url(
        f"https://api.test/x?q={quote(TOKEN, safe='')}"
    )


def test_url_drops_the_password_even_when_it_is_not_a_known_secret() -> None:
    redacted = Redactor([]).url("https://alice:hunter2hunter2@api.test/x")
    assert "hunter2" not in redacted
    assert "alice" not in redacted


SECRET_CHARS = st.characters(codec="utf-8", exclude_characters="*", exclude_categories=["Cs"])


@given(
    st.text(SECRET_CHARS, min_size=4, max_size=30),
    st.text(SECRET_CHARS, max_size=20),
    st.text(SECRET_CHARS, max_size=20),
)
def test_no_form_of_a_secret_survives_text(secret: str, before: str, after: str) -> None:
    redactor = Redactor([secret])
    for form in (secret, quote(secret, safe=""), quote_plus(secret)):
        out = redactor.text(before + form + after)
        assert secret not in out
        assert quote(secret, safe="") not in out
        assert MASK in out


def test_url_keeps_an_ipv6_host_valid() -> None:
    assert Redactor([]).url("http://user:pw@[::1]:8080/x?page=2") == "http://[::1]:8080/x?page=2"


@pytest.mark.parametrize("name", ["assignee", "design", "author"])
def test_url_keeps_ordinary_params_that_merely_contain_a_secret_word(name: str) -> None:
    assert Redactor([]).url(f"https://api.test/x?{name}=bob") == f"https://api.test/x?{name}=bob"
