"""Rate-limit response headers in the three dialects clients meet in the wild.

Why several dialects: a client's call budgeting is only as good as its reading
of these headers, and real APIs disagree on the very meaning of "reset".

``x-ratelimit`` (GitHub-like names, but a *delta*, as Twitter v1 and many
others do; a client must tell the two apart)::

    X-RateLimit-Limit: 10
    X-RateLimit-Remaining: 7
    X-RateLimit-Reset: 1          # whole seconds until the window resets (ceil)

``exact`` (Exact Online): the daily window (named ``daily``, else the longest)
and the minutely one (named ``minutely``, else the shortest), resets as epoch
*milliseconds* of the window end::

    X-RateLimit-Limit: 5000
    X-RateLimit-Remaining: 4999
    X-RateLimit-Reset: 1767225600000
    X-RateLimit-Minutely-Limit: 60
    X-RateLimit-Minutely-Remaining: 59
    X-RateLimit-Minutely-Reset: 1767182460000

``ietf`` (draft-ietf-httpapi-ratelimit-headers, structured fields): every
policy, then the state of the strictest one::

    RateLimit-Policy: "10/1s";q=10;w=1, "daily";q=100;w=86400
    RateLimit: "10/1s";r=7;t=1

"Reset" of a sliding window is when its oldest counted request leaves it (now,
if it counts none); the strictest window is the one with the fewest remaining
calls (ties: the shorter period).  Values describe the window *after* this
request: the first allowed request of ``calls=10`` says ``Remaining: 9``.
All functions here are pure; the caller passes wall time.
"""

from __future__ import annotations

import math

from syncline.sandbox.limit_config import HeaderStyle, format_seconds
from syncline.sandbox.limiter import Verdict, WindowState

RawHeaders = list[tuple[bytes, bytes]]


def whole_seconds(seconds: float) -> int:
    """Round up to whole seconds, ignoring float noise below a microsecond."""
    return max(0, math.ceil(round(seconds, 6)))


def _sf_string(value: str) -> str:
    """An RFC 8941 string (names are printable ASCII, checked by the config)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pairs(pairs: list[tuple[str, str | int]]) -> RawHeaders:
    return [(name.encode("latin-1"), str(value).encode("latin-1")) for name, value in pairs]


def _x_ratelimit(verdict: Verdict) -> RawHeaders:
    strict = verdict.strictest
    return _pairs(
        [
            ("x-ratelimit-limit", strict.window.calls),
            ("x-ratelimit-remaining", strict.remaining),
            ("x-ratelimit-reset", whole_seconds(strict.reset_in)),
        ]
    )


def _named_or(states: tuple[WindowState, ...], name: str, *, longest: bool) -> WindowState:
    for state in states:
        if state.window.name == name:
            return state
    sign = -1 if longest else 1
    return min(states, key=lambda state: sign * state.window.per)


def _exact(verdict: Verdict, wall: float) -> RawHeaders:
    daily = _named_or(verdict.states, "daily", longest=True)
    minutely = _named_or(verdict.states, "minutely", longest=False)
    pairs: list[tuple[str, str | int]] = []
    for prefix, state in (("x-ratelimit", daily), ("x-ratelimit-minutely", minutely)):
        pairs += [
            (f"{prefix}-limit", state.window.calls),
            (f"{prefix}-remaining", state.remaining),
            (f"{prefix}-reset", round((wall + state.reset_in) * 1000)),
        ]
    return _pairs(pairs)


def _ietf(verdict: Verdict) -> RawHeaders:
    policy = ", ".join(
        f"{_sf_string(state.window.name)};q={state.window.calls};w={format_seconds(state.window.per)}"
        for state in verdict.states
    )
    strict = verdict.strictest
    current = (
        f"{_sf_string(strict.window.name)};r={strict.remaining};t={whole_seconds(strict.reset_in)}"
    )
    return _pairs([("ratelimit-policy", policy), ("ratelimit", current)])


def rate_limit_headers(style: HeaderStyle, verdict: Verdict, wall: float) -> RawHeaders:
    """The headers of ``style`` for ``verdict``; ``wall`` is ``time.time()`` (for ``exact``)."""
    if style == "x-ratelimit":
        return _x_ratelimit(verdict)
    if style == "exact":
        return _exact(verdict, wall)
    return _ietf(verdict)
