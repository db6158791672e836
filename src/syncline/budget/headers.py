"""What the server says about its limits, read from response headers.

Every vendor spells it differently; all of them say the same three things:
how many calls a window allows, how many are left, and when it resets. We
read the common spellings (``X-RateLimit-*``, Exact Online's
``X-RateLimit-Minutely-*``, the IETF ``RateLimit`` / ``RateLimit-Policy``
fields and their older ``RateLimit-Limit/Remaining/Reset`` form). Malformed
values are ignored: a header we cannot read must never break a sync.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["HeaderSpelling", "ServerWindow", "read_server_windows", "reset_seconds"]

_EPOCH_SECONDS = 1e9
_EPOCH_MILLISECONDS = 1e12
_ITEM = re.compile(r'\s*("?)([^";,]*)\1\s*((?:;\s*[a-zA-Z]+\s*=\s*[^;,]*)*)')
_PARAM = re.compile(r";\s*([a-zA-Z]+)\s*=\s*([^;,]*)")


@dataclass(frozen=True, slots=True)
class ServerWindow:
    """One window as the server reported it: ``remaining`` calls until ``reset`` seconds pass."""

    name: str
    limit: int | None
    remaining: int
    reset: float | None
    """Seconds from the response until the window resets (``None``: not said)."""
    period: float | None = None
    """The window's length when the server names it (IETF ``w``, Exact's minute)."""


@dataclass(frozen=True, slots=True)
class HeaderSpelling:
    """Which headers carry one window's limit, remaining calls and reset (a vendor's dialect).

    A source's ``rate_limit_headers`` adds its own to the common ones below.
    """

    name: str
    remaining: str
    limit: str | None = None
    reset: str | None = None
    period: float | None = None


COMMON_SPELLINGS = (
    HeaderSpelling(
        "minutely",
        "x-ratelimit-minutely-remaining",
        "x-ratelimit-minutely-limit",
        "x-ratelimit-minutely-reset",
        60.0,
    ),
    HeaderSpelling("server", "x-ratelimit-remaining", "x-ratelimit-limit", "x-ratelimit-reset"),
    HeaderSpelling("ietf", "ratelimit-remaining", "ratelimit-limit", "ratelimit-reset"),
)


def read_server_windows(
    headers: Mapping[str, str], now: float, spellings: Sequence[HeaderSpelling] = ()
) -> list[ServerWindow]:
    """Every window the headers describe; ``now`` (epoch seconds) turns epoch resets into waits.

    ``spellings``: a source's own header names, read before the common ones.
    """
    found: list[ServerWindow] = []
    for spelling in (*spellings, *COMMON_SPELLINGS):
        window = _spelled(headers, spelling, now)
        if window is not None:
            found.append(window)
    found += _ietf_structured(headers)
    return found


def _spelled(
    headers: Mapping[str, str], spelling: HeaderSpelling, now: float
) -> ServerWindow | None:
    remaining = _int(headers.get(spelling.remaining))
    if remaining is None:
        return None
    return ServerWindow(
        name=spelling.name,
        limit=None if spelling.limit is None else _int(headers.get(spelling.limit)),
        remaining=remaining,
        reset=None if spelling.reset is None else reset_seconds(headers.get(spelling.reset), now),
        period=spelling.period,
    )


def _ietf_structured(headers: Mapping[str, str]) -> list[ServerWindow]:
    """``RateLimit: "w";r=5;t=30`` with ``RateLimit-Policy: "w";q=60;w=60`` (draft 08+)."""
    current = headers.get("ratelimit")
    if not current or "=" not in current:
        return []
    policies = dict(_items(headers.get("ratelimit-policy", "")))
    windows = []
    for name, params in _items(current):
        remaining = _int(params.get("r"))
        if remaining is None:
            continue
        policy = policies.get(name, {})
        windows.append(
            ServerWindow(
                name=f"ietf:{name}" if name else "ietf",
                limit=_int(policy.get("q")),
                remaining=remaining,
                reset=_float(params.get("t")),
                period=_float(policy.get("w")),
            )
        )
    return windows


def _items(value: str) -> list[tuple[str, dict[str, str]]]:
    items = []
    for part in value.split(","):
        match = _ITEM.match(part)
        if match is None:
            continue
        params = {k.lower(): v.strip().strip('"') for k, v in _PARAM.findall(match.group(3))}
        items.append((match.group(2).strip(), params))
    return items


def reset_seconds(value: str | None, now: float) -> float | None:
    """Reset as seconds from now: a delta, epoch seconds or epoch milliseconds (Exact)."""
    number = _float(value)
    if number is None:
        return None
    if number > _EPOCH_MILLISECONDS:
        return max(0.0, number / 1000 - now)
    if number > _EPOCH_SECONDS:
        return max(0.0, number - now)
    return number


def _int(value: str | None) -> int | None:
    number = _float(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number
