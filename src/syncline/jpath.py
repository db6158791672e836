"""Compiled JMESPath lookups, with a fast path for the plain ``a.b.c`` paths most configs use.

Extracting the primary key and modification field runs once per record, so
the common case skips JMESPath's interpreter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

__all__ = ["Getter", "check_expression", "compile_path"]

Getter = Callable[[Any], Any]
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@lru_cache(maxsize=512)
def compile_path(expression: str) -> Getter:
    """Return a function that evaluates ``expression`` against a decoded JSON value."""
    if _PLAIN.match(expression):
        names = expression.split(".")
        if len(names) == 1:
            (name,) = names

            def get_one(value: Any) -> Any:
                return value.get(name) if isinstance(value, dict) else None

            return get_one

        def get_nested(value: Any) -> Any:
            for name in names:
                if not isinstance(value, dict):
                    return None
                value = value.get(name)
            return value

        return get_nested
    return jmespath.compile(expression).search


def check_expression(value: str | None) -> str | None:
    """Validate a config path; raises ``ValueError`` (a config error) when it does not compile."""
    if value is not None:
        try:
            jmespath.compile(value)
        except JMESPathError as exc:
            raise ValueError(f"not a valid JMESPath expression: {value!r} ({exc})") from None
    return value
