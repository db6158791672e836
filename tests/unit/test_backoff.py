"""Backoff: full jitter, Retry-After never shortened, deferral beyond max_wait, deadlines."""

from __future__ import annotations

import random
from typing import Any

import pytest

from syncline.backoff import Backoff
from syncline.config.models import RetryConfig
from syncline.errors import (
    AuthError,
    BadPayload,
    ClientError,
    NetworkError,
    RateLimited,
    RequestSummary,
    ServerError,
)


def policy(**options: Any) -> RetryConfig:
    return RetryConfig.model_validate(options)


def status(code: int) -> RequestSummary:
    return RequestSummary("GET", "https://x.test/items", code)


def test_waits_are_full_jitter_under_an_exponential_cap() -> None:
    rng = random.Random(1)
    waits: dict[int, list[float]] = {1: [], 2: [], 3: []}
    for _ in range(400):
        backoff = Backoff(policy(attempts=10, wait_initial=1, wait_max=3, min_wait=0), rng)
        for attempt in (1, 2, 3):
            wait = backoff.next_wait(ServerError("x", request=status(503)))
            assert wait is not None
            waits[attempt].append(wait)
    assert max(waits[1]) <= 1.0
    assert max(waits[2]) <= 2.0
    assert max(waits[3]) <= 3.0  # capped by wait_max, not 4
    # Full jitter: spread over the whole window, not bunched near the cap.
    assert min(waits[3]) < 0.3
    assert 1.2 < sum(waits[3]) / len(waits[3]) < 1.8


def test_retry_after_is_never_shortened_and_gets_a_little_jitter() -> None:
    backoff = Backoff(policy(wait_max=1), random.Random(3))
    wait = backoff.next_wait(RateLimited("x", retry_after=20, request=status(429)))
    assert wait is not None
    assert 20 <= wait <= 21


def test_retry_after_zero_waits_the_small_minimum() -> None:
    backoff = Backoff(policy(min_wait=0.05), random.Random(3))
    wait = backoff.next_wait(RateLimited("x", retry_after=0, request=status(429)))
    assert wait is not None
    assert 0.05 <= wait < 0.2


def test_a_wait_beyond_max_wait_gives_up_and_defers_for_the_servers_time() -> None:
    backoff = Backoff(policy(max_wait="2m"))
    exc = RateLimited("x", retry_after=3600, request=status(429))
    assert backoff.next_wait(exc) is None
    assert backoff.defer_for(exc) == 3600


def test_exhausted_429s_without_retry_after_defer_for_wait_max() -> None:
    backoff = Backoff(policy(attempts=2, wait_initial=0.01, wait_max=7))
    exc = RateLimited("x", request=status(429))
    assert backoff.next_wait(exc) is not None
    assert backoff.next_wait(exc) is None
    assert backoff.defer_for(exc) == 7
    assert backoff.defer_for(ServerError("x", request=status(503))) is None


def test_the_total_time_budget_stops_retries() -> None:
    backoff = Backoff(policy(attempts=100, max_time=10))
    assert backoff.next_wait(RateLimited("x", retry_after=6, request=status(429))) is not None
    assert backoff.next_wait(RateLimited("x", retry_after=6, request=status(429))) is None


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (ServerError("x", request=status(500)), True),
        (ServerError("x", request=status(502)), True),
        (ServerError("x", request=status(501)), False),  # not implemented: will not change
        (NetworkError("reset"), True),
        (RateLimited("x", request=status(429)), True),
        (RateLimited("x", retry_after=1, request=status(403)), True),
        (AuthError("x", request=status(401)), False),
        (ClientError("x", request=status(404)), False),
        (ClientError("x", request=status(422)), False),
        (BadPayload("no records at 'data'"), False),
        (BadPayload("HTML page", retryable=True), True),
        (RateLimited("GraphQL query throttled", retry_after=1), True),
    ],
)
def test_what_is_retried_by_default(exc: Exception, retried: bool) -> None:
    backoff = Backoff(policy(wait_initial=0.01))
    assert (backoff.next_wait(exc) is not None) is retried


def test_statuses_and_network_errors_are_configurable() -> None:
    backoff = Backoff(policy(statuses=[409, 503], network_errors=False))
    assert backoff.next_wait(ClientError("x", request=status(409))) is not None
    assert backoff.next_wait(ServerError("x", request=status(500))) is None
    assert backoff.next_wait(NetworkError("x")) is None
    without_429 = Backoff(policy(statuses=[503]))
    assert without_429.next_wait(RateLimited("x", request=status(429))) is None


def test_an_undecodable_body_is_retried_once_only() -> None:
    backoff = Backoff(policy(attempts=10, wait_initial=0.01))
    html = BadPayload("HTML page", retryable=True)
    assert backoff.next_wait(html) is not None
    assert backoff.next_wait(html) is None


def test_retry_statuses_must_be_error_codes() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        policy(statuses=[200])


def test_durations_are_accepted_in_the_retry_block() -> None:
    config = policy(base_delay="250ms", max_delay="1m", max_time="10m", max_wait="2h")
    assert (config.wait_initial, config.wait_max) == (0.25, 60.0)
    assert (config.timeout, config.max_wait) == (600.0, 7200.0)
