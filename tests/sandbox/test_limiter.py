"""The rate limiter's window arithmetic and headers, exactly, on a fake clock.

The socket-level tests in ``test_limits.py`` show the behaviour a client sees;
these pin down the boundaries (which are a matter of microseconds there).
"""

from __future__ import annotations

from typing import Any

import pytest

from syncline.sandbox.common import BadRequestError
from syncline.sandbox.limit_config import parse_limits_config
from syncline.sandbox.limit_headers import rate_limit_headers
from syncline.sandbox.limiter import RateLimiter


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _limiter(clock: FakeClock, **body: Any) -> RateLimiter:
    return RateLimiter(parse_limits_config(body), clock=clock)


def _allowed(limiter: RateLimiter, n: int, tenant: str = "") -> list[bool]:
    return [limiter.check(tenant).allowed for _ in range(n)]


def test_sliding_window_counts_any_interval_of_per_seconds() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, windows=[{"calls": 3, "per": 10}])
    assert _allowed(limiter, 2) == [True, True]
    clock.now += 6
    assert _allowed(limiter, 2) == [True, False]
    verdict = limiter.check("")
    assert verdict.blocking is not None
    assert verdict.retry_in == pytest.approx(4)  # the first request leaves at +10
    clock.now += 4  # the first two leave together
    assert _allowed(limiter, 3) == [True, True, False]
    assert limiter.check("").retry_in == pytest.approx(6)  # the +6 one leaves at +16
    assert limiter.counters() == {"": {"allowed": 5, "rejected": 4}}


def test_fixed_windows_are_aligned_to_when_limits_were_configured() -> None:
    clock = FakeClock(1000.0)
    limiter = _limiter(clock, windows=[{"calls": 2, "per": 10, "kind": "fixed"}])
    clock.now = 1009.0
    assert _allowed(limiter, 3) == [True, True, False]
    assert limiter.check("").retry_in == pytest.approx(1)
    clock.now = 1010.0  # boundary: a new window, although the requests were 1 s ago
    verdict = limiter.check("")
    assert verdict.allowed
    assert verdict.states[0].remaining == 1
    assert verdict.states[0].reset_in == pytest.approx(10)


def test_every_window_must_have_room_and_rejections_cost_nothing() -> None:
    clock = FakeClock()
    limiter = _limiter(
        clock,
        windows=[{"calls": 2, "per": 1}, {"calls": 3, "per": 100, "kind": "fixed", "name": "long"}],
    )
    assert _allowed(limiter, 5) == [True, True, False, False, False]
    clock.now += 1
    assert _allowed(limiter, 2) == [True, False]  # "long" is full: 3 allowed in all
    verdict = limiter.check("")
    assert verdict.blocking is not None
    assert verdict.blocking.name == "long"  # of two full windows, the slower to free
    assert limiter.usage()[""]["long"]["used"] == 3


def test_tenants_are_independent() -> None:
    limiter = _limiter(FakeClock(), windows=[{"calls": 1, "per": 5}])
    assert _allowed(limiter, 2, "a") == [True, False]
    assert _allowed(limiter, 2, "b") == [True, False]
    assert limiter.counters() == {
        "a": {"allowed": 1, "rejected": 1},
        "b": {"allowed": 1, "rejected": 1},
    }


def test_reset_windows_keeps_config_and_counters() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, windows=[{"calls": 1, "per": 86400, "kind": "fixed"}])
    assert _allowed(limiter, 2) == [True, False]
    clock.now += 5
    limiter.reset_windows()
    verdict = limiter.check("")
    assert verdict.allowed
    assert verdict.states[0].reset_in == pytest.approx(86400)  # a full new "day"
    assert limiter.counters() == {"": {"allowed": 2, "rejected": 1}}


def test_header_values() -> None:
    clock = FakeClock()
    limiter = _limiter(
        clock,
        windows=[
            {"calls": 5, "per": 60, "name": "minutely"},
            {"calls": 100, "per": 86400, "kind": "fixed", "name": "daily"},
        ],
    )
    limiter.check("")
    clock.now += 20.5
    verdict = limiter.check("")
    assert dict(rate_limit_headers("x-ratelimit", verdict, 0)) == {
        b"x-ratelimit-limit": b"5",
        b"x-ratelimit-remaining": b"3",
        b"x-ratelimit-reset": b"40",  # ceil(39.5): the first request leaves at +60
    }
    assert dict(rate_limit_headers("exact", verdict, 1_700_000_000.0)) == {
        b"x-ratelimit-limit": b"100",
        b"x-ratelimit-remaining": b"98",
        b"x-ratelimit-reset": b"1700086379500",
        b"x-ratelimit-minutely-limit": b"5",
        b"x-ratelimit-minutely-remaining": b"3",
        b"x-ratelimit-minutely-reset": b"1700000039500",
    }
    assert dict(rate_limit_headers("ietf", verdict, 0)) == {
        b"ratelimit-policy": b'"minutely";q=5;w=60, "daily";q=100;w=86400',
        b"ratelimit": b'"minutely";r=3;t=40',
    }


def test_strictest_window_ties_go_to_the_shorter_period() -> None:
    limiter = _limiter(FakeClock(), windows=[{"calls": 2, "per": 10}, {"calls": 2, "per": 0.25}])
    headers = dict(rate_limit_headers("ietf", limiter.check(""), 0))
    assert headers[b"ratelimit"] == b'"2/0.25s";r=1;t=1'
    assert headers[b"ratelimit-policy"] == b'"2/10s";q=2;w=10, "2/0.25s";q=2;w=0.25'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "limits need 'windows'"),
        ({"windows": []}, "windows must be a non-empty list"),
        ({"windows": [{"calls": 1}]}, "windows[0].per must be a number"),
        ({"windows": [{"calls": 1, "per": 0}]}, "windows[0].per must be a number"),
        ({"windows": [{"calls": 1, "per": True}]}, "windows[0].per must be a number"),
        ({"windows": [{"calls": 1.5, "per": 1}]}, "windows[0].calls must be an integer"),
        ({"windows": [{"calls": 1, "per": 1, "kind": "leaky"}]}, "windows[0].kind"),
        ({"windows": [{"calls": 1, "per": 1, "name": 'a"\n'}]}, "windows[0].name"),
        ({"windows": [{"calls": 1, "per": 1, "every": 2}]}, "unknown field(s) ['every']"),
        ({"windows": [{"calls": 1, "per": 1}, {"calls": 1, "per": 1}]}, "unique"),
        ({"windows": [{"calls": 1, "per": 1}], "headers": "github"}, "headers must be one of"),
        ({"windows": [{"calls": 1, "per": 1}], "status": 503}, "status must be one of"),
        ({"windows": [{"calls": 1, "per": 1}], "retry_after": 1}, "retry_after must be a bool"),
        ({"windows": [{"calls": 1, "per": 1}], "tenant_param": ""}, "tenant_param must be"),
        (
            {"windows": [{"calls": 1, "per": 1}], "tenant_path_segment": -1},
            "tenant_path_segment must be",
        ),
        (
            {"windows": [{"calls": 1, "per": 1}], "tenant_param": "t", "tenant_path_segment": 1},
            "only one of tenant_param and tenant_path_segment",
        ),
        ({"windows": [{"calls": 1, "per": 1}], "tenants": "t"}, "unknown field(s) ['tenants']"),
    ],
)
def test_config_validation(body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_limits_config(body)
    assert message in caught.value.message


def test_config_defaults_and_echo() -> None:
    config = parse_limits_config({"windows": [{"calls": 10, "per": 1.0}], "headers": "none"})
    assert config.to_json() == {
        "tenant_param": None,
        "tenant_path_segment": None,
        "windows": [{"calls": 10, "per": 1, "kind": "sliding", "name": "10/1s"}],
        "headers": None,
        "retry_after": True,
        "status": 429,
    }
