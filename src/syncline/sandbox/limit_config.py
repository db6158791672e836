"""What ``POST /_admin/limits`` accepts: the rate-limit configuration and its validation.

Why validation is strict and up front: a benchmark that silently ran with a
typo'd window (``"kind": "slidng"``, ``"per": "1s"``) would measure the wrong
thing and nobody would notice.  Every mistake is therefore a 400 that names the
field, raised here, before the running configuration is touched.  Nothing in
this module keeps state or reads a clock; :mod:`.limiter` does the counting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from syncline.sandbox.common import BadRequestError

WindowKind = Literal["sliding", "fixed"]
HeaderStyle = Literal["x-ratelimit", "exact", "ietf"]

WINDOW_KINDS: Final[tuple[WindowKind, ...]] = ("sliding", "fixed")
HEADER_STYLES: Final[tuple[HeaderStyle, ...]] = ("x-ratelimit", "exact", "ietf")
STATUSES: Final = (429, 403)
MIN_PER: Final = 0.001
"""Shortest window, in seconds; also what keeps ``per`` printable as an IETF decimal."""
MAX_NAME: Final = 64


def format_seconds(value: float) -> str:
    """``1.0`` as ``1``, ``0.5`` as ``0.5`` (at most 3 decimals, an RFC 8941 decimal)."""
    if value.is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0")


@dataclass(frozen=True)
class Window:
    """One quota: at most ``calls`` allowed requests per ``per`` seconds."""

    calls: int
    per: float
    kind: WindowKind
    name: str

    def to_json(self) -> dict[str, Any]:
        per = int(self.per) if self.per.is_integer() else self.per  # echo 60, not 60.0
        return {"calls": self.calls, "per": per, "kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class LimitsConfig:
    """A validated limits configuration; see :func:`parse_limits_config`."""

    windows: tuple[Window, ...]
    tenant_param: str | None = None
    tenant_path_segment: int | None = None
    headers: HeaderStyle | None = None
    retry_after: bool = True
    status: int = 429

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_param": self.tenant_param,
            "tenant_path_segment": self.tenant_path_segment,
            "windows": [window.to_json() for window in self.windows],
            "headers": self.headers,
            "retry_after": self.retry_after,
            "status": self.status,
        }


_FIELDS: Final = frozenset(
    {"tenant_param", "tenant_path_segment", "windows", "headers", "retry_after", "status"}
)
_WINDOW_FIELDS: Final = frozenset({"calls", "per", "kind", "name"})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown(body: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    extra = sorted(set(body) - known)
    if extra:
        raise BadRequestError(f"{where}: unknown field(s) {extra}; known: {sorted(known)}")


def _header_safe(value: str) -> bool:
    """Printable ASCII only: names end up in headers (quoted) and error bodies."""
    return all(" " <= char <= "~" for char in value)


def _window(raw: object, index: int) -> Window:
    where = f"windows[{index}]"
    if not isinstance(raw, dict):
        raise BadRequestError(f"{where} must be an object like {{'calls': 10, 'per': 1}}")
    _unknown(raw, _WINDOW_FIELDS, where)
    calls: object = raw.get("calls")
    if not isinstance(calls, int) or isinstance(calls, bool) or calls < 1:
        raise BadRequestError(f"{where}.calls must be an integer >= 1, got {calls!r}")
    per: object = raw.get("per")
    if (
        not isinstance(per, int | float)
        or isinstance(per, bool)
        or not math.isfinite(per)
        or per < MIN_PER
    ):
        raise BadRequestError(f"{where}.per must be a number of seconds >= {MIN_PER}, got {per!r}")
    kind = raw.get("kind", "sliding")
    if kind not in WINDOW_KINDS:
        raise BadRequestError(f"{where}.kind must be one of {list(WINDOW_KINDS)}, got {kind!r}")
    name = raw.get("name")
    if name is None:
        name = f"{calls}/{format_seconds(float(per))}s"
    elif not isinstance(name, str) or not name or len(name) > MAX_NAME or not _header_safe(name):
        raise BadRequestError(
            f"{where}.name must be 1-{MAX_NAME} printable ASCII characters, got {name!r}"
        )
    return Window(calls=calls, per=float(per), kind=kind, name=name)


def _windows(raw: object) -> tuple[Window, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadRequestError("windows must be a non-empty list of {calls, per, kind, name}")
    windows = tuple(_window(item, index) for index, item in enumerate(raw))
    names = [window.name for window in windows]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BadRequestError(f"window names must be unique; repeated: {duplicates}")
    return windows


def _tenant(body: Mapping[str, Any]) -> tuple[str | None, int | None]:
    param = body.get("tenant_param")
    segment = body.get("tenant_path_segment")
    if param is not None and (not isinstance(param, str) or not param):
        raise BadRequestError(f"tenant_param must be a non-empty string or null, got {param!r}")
    if segment is not None and (not _is_int(segment) or segment < 0):
        raise BadRequestError(
            f"tenant_path_segment must be an integer >= 0 or null, got {segment!r}"
        )
    if param is not None and segment is not None:
        raise BadRequestError("only one of tenant_param and tenant_path_segment may be set")
    return param, segment


def parse_limits_config(body: Mapping[str, Any]) -> LimitsConfig:
    """Validate a limits configuration; raises :class:`BadRequestError` (a 400).

    ``headers`` may be ``"none"``, which is stored (and echoed back) as ``None``.
    A window without a ``name`` is named ``"<calls>/<per>s"``, e.g. ``"10/1s"``.
    """
    _unknown(body, _FIELDS, "limits")
    if "windows" not in body:
        raise BadRequestError("limits need 'windows', e.g. [{'calls': 10, 'per': 1}]")
    tenant_param, segment = _tenant(body)
    headers = body.get("headers")
    if headers == "none":
        headers = None
    if headers is not None and headers not in HEADER_STYLES:
        choices = [*HEADER_STYLES, "none", None]
        raise BadRequestError(f"headers must be one of {choices}, got {headers!r}")
    retry_after = body.get("retry_after", True)
    if not isinstance(retry_after, bool):
        raise BadRequestError(f"retry_after must be a boolean, got {retry_after!r}")
    status = body.get("status", 429)
    if not _is_int(status) or status not in STATUSES:
        raise BadRequestError(f"status must be one of {list(STATUSES)}, got {status!r}")
    return LimitsConfig(
        windows=_windows(body["windows"]),
        tenant_param=tenant_param,
        tenant_path_segment=segment,
        headers=headers,
        retry_after=retry_after,
        status=status,
    )
