"""Durations as users write them in YAML: ``90``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1d"``."""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta

__all__ = ["parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_WORDS = {"second": "s", "minute": "m", "hour": "h", "day": "d", "week": "w"}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(value: object) -> timedelta:
    """Read a duration; a bare number means seconds, words mean one unit (``minute``)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '5m', got {value!r}")
    if isinstance(value, str):
        # "300" from ${VAR:-300} interpolation is a number of seconds too.
        with contextlib.suppress(ValueError):
            value = float(value.strip())
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return _seconds(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like '5m', got {value!r}")
    text = value.strip().lower()
    unit_word = _WORDS.get(text.removesuffix("s"))
    if unit_word is not None:
        text = "1" + unit_word
    elif text in _UNITS:
        text = "1" + text
    pos, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos and text[pos : match.start()].strip():
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"expected a duration like '90s', '5m', '1h30m' or '1d', got {value!r}")
    return _seconds(seconds, value)


def _seconds(seconds: float, original: object) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # inf, nan, 1e20 days
        raise ValueError(f"duration out of range: {original!r}") from None
