"""When to try a failed request again, and how long to wait first.

Exponential backoff with *full* jitter (a uniform wait between 0 and the
exponential cap): many clients failing together spread their retries over
the whole window instead of hitting the server again in lockstep.

A server-given ``Retry-After`` is honoured and never shortened; a little
jitter is added on top so tenants sharing one reset time do not all return at
the same instant. A wait longer than the policy's ``max_wait``, or one that
would cross the policy's total deadline, is not slept through: the caller
stops and defers the job with its checkpoint intact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from syncline.config.models import RetryConfig
from syncline.errors import BadPayload, NetworkError, RateLimited, SourceError

__all__ = ["RESET_JITTER", "Backoff"]

RESET_JITTER = 0.1
"""Fraction of a server-given wait added at most as jitter (capped by ``wait_jitter``)."""


@dataclass(slots=True)
class Backoff:
    """The retry decisions of one request: pure apart from the random source."""

    policy: RetryConfig
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0
    """Attempts that failed so far."""
    waited: float = 0.0
    """Seconds spent waiting so far (the request's own time is bounded by the timeout)."""
    payload_retries: int = 0

    def retryable(self, exc: Exception) -> bool:
        policy = self.policy
        if isinstance(exc, BadPayload):
            return exc.retryable and self.payload_retries < policy.payload_retries
        if isinstance(exc, NetworkError):
            return policy.network_errors
        status = exc.request.status if isinstance(exc, SourceError) and exc.request else None
        if isinstance(exc, RateLimited):
            # 429, a 403 that means "slow down", or a throttle in a 200 body (GraphQL).
            return status != 429 or 429 in policy.statuses
        return status is not None and status in policy.statuses

    def next_wait(self, exc: Exception) -> float | None:
        """Seconds to wait before trying again, or ``None`` to give up now."""
        self.attempts += 1
        if not self.retryable(exc) or self.attempts >= self.policy.attempts:
            return None
        if isinstance(exc, BadPayload):
            self.payload_retries += 1
        wait = self._wait(exc)
        if wait is None or self.waited + wait > self.policy.timeout:
            return None
        self.waited += wait
        return wait

    def _wait(self, exc: Exception) -> float | None:
        policy = self.policy
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            if exc.retry_after > policy.max_wait:
                return None  # defer instead of sleeping for minutes or hours
            spread = min(policy.wait_jitter, RESET_JITTER * exc.retry_after + 0.05)
            return max(exc.retry_after, policy.min_wait) + self.rng.uniform(0, spread)
        cap = min(policy.wait_max, policy.wait_initial * 2 ** (self.attempts - 1))
        return max(policy.min_wait, self.rng.uniform(0, cap))

    def defer_for(self, exc: Exception) -> float | None:
        """How long to keep a job away from the API after giving up on ``exc``.

        Only rate limits defer: the server told us (or made clear) it will say no
        until then. Other failures are reported and retried on the next run.
        """
        if not isinstance(exc, RateLimited):
            return None
        if exc.retry_after is not None:
            return exc.retry_after
        return self.policy.wait_max
