"""Reading the server's rate-limit headers, in every common spelling."""

from __future__ import annotations

import pytest

from syncline.budget.headers import HeaderSpelling, ServerWindow, read_server_windows

NOW = 1_800_000_000.0


def test_classic_x_ratelimit_with_a_delta_reset() -> None:
    headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59", "X-RateLimit-Reset": "30"}
    lower = {k.lower(): v for k, v in headers.items()}
    assert read_server_windows(lower, NOW) == [ServerWindow("server", 60, 59, 30.0)]


def test_exact_online_daily_and_minutely_windows_with_epoch_millisecond_resets() -> None:
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4321",
        "x-ratelimit-reset": str(int((NOW + 3600) * 1000)),
        "x-ratelimit-minutely-limit": "60",
        "x-ratelimit-minutely-remaining": "0",
        "x-ratelimit-minutely-reset": str(int((NOW + 12) * 1000)),
    }
    windows = {w.name: w for w in read_server_windows(headers, NOW)}
    assert windows["minutely"] == ServerWindow("minutely", 60, 0, pytest.approx(12.0), 60.0)
    assert windows["server"].remaining == 4321
    assert windows["server"].reset == pytest.approx(3600.0)


def test_github_epoch_second_reset() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW + 90))}
    (window,) = read_server_windows(headers, NOW)
    assert window.reset == pytest.approx(90.0)
    assert window.limit is None


def test_ietf_structured_fields_with_policy() -> None:
    headers = {
        "ratelimit-policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
        "ratelimit": '"burst";r=3;t=20',
    }
    (window,) = read_server_windows(headers, NOW)
    assert window == ServerWindow("ietf:burst", 100, 3, 20.0, 60.0)


def test_ietf_older_separate_fields() -> None:
    headers = {"ratelimit-limit": "10", "ratelimit-remaining": "2", "ratelimit-reset": "5"}
    assert read_server_windows(headers, NOW) == [ServerWindow("ietf", 10, 2, 5.0)]


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-remaining": "soon"},
        {"x-ratelimit-remaining": "-1"},
        {"x-ratelimit-remaining": "1.5"},
        {"ratelimit": '"w";r=abc;t=1'},
        {"ratelimit": "garbage"},
        {},
    ],
)
def test_malformed_fields_are_ignored(headers: dict[str, str]) -> None:
    assert read_server_windows(headers, NOW) == []


def test_a_malformed_reset_keeps_the_remaining_count() -> None:
    headers = {"x-ratelimit-remaining": "3", "x-ratelimit-reset": "tomorrow"}
    assert read_server_windows(headers, NOW) == [ServerWindow("server", None, 3, None)]


def test_a_vendors_own_header_names_are_read_first() -> None:
    spelling = HeaderSpelling(
        "hourly", "x-calls-left", limit="x-calls-cap", reset="x-calls-renew", period=3600.0
    )
    headers = {"x-calls-left": "7", "x-calls-cap": "100", "x-calls-renew": str(int(NOW + 90))}
    assert read_server_windows(headers, NOW, [spelling]) == [
        ServerWindow("hourly", 100, 7, 90.0, 3600.0)
    ]
    assert read_server_windows(headers, NOW) == []  # unknown names are not guessed at
