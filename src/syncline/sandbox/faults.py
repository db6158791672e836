"""Which fault a data request gets, and when: configuration, dice and counters.

Why a separate, I/O-free module: a reliability test is only useful if it can be
replayed, so every decision is made here from a ``random.Random(seed)`` and a
request counter, in request-arrival order, and nothing else.  The ASGI layer
(:mod:`.fault_middleware`) and the body rewrites (:mod:`.fault_bodies`) only
*apply* what :meth:`FaultController.plan` decided.

The dice are rolled on every data request whenever ``rate`` is set, even when
a schedule entry or ``unauthorized_after`` wins, so adding a schedule entry
never shifts the random faults of the other requests.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from syncline.sandbox.common import DATA_PATHS, BadRequestError

Record = dict[str, Any]

STATUS_KINDS: Final = (
    "429",
    "429_retry_after",
    "429_retry_after_date",
    "403_retry_after",
    "403_remaining_zero",
    "500",
    "502",
    "503",
    "504",
)
WIRE_KINDS: Final = ("truncated", "reset", "html", "malformed_json")
"""Kinds that break the HTTP message or its framing; they apply to every data path."""

PATH_KINDS: Final[Mapping[str, frozenset[str]]] = {
    "repeat_cursor": frozenset({"/cursor/items", "/next/items"}),
    "cyclic_link": frozenset({"/next/items", "/link/items"}),
    "cross_origin_link": frozenset({"/next/items", "/link/items"}),
    "graphql_errors": frozenset({"/graphql"}),
    "graphql_throttled": frozenset({"/graphql"}),
}
"""Kinds that only make sense on some endpoints; elsewhere they are not injected."""

KINDS: Final = frozenset({*STATUS_KINDS, *WIRE_KINDS, *PATH_KINDS})

UNAUTHORIZED: Final = "unauthorized"
"""Counter name for the 401s forced by ``unauthorized_after``."""
MISSING_KEY: Final = "missing_key"
"""Counter name for records whose ``id`` was removed (one per record)."""
DUPLICATE: Final = "duplicate_across_pages"
"""Counter name for pages that got the previous page's last record prepended."""


def applies(kind: str, path: str) -> bool:
    """Whether ``kind`` means anything on ``path`` (data paths only)."""
    paths = PATH_KINDS.get(kind)
    return paths is None or path in paths


@dataclass(frozen=True)
class ScheduledFault:
    at: int
    """1-based number of the (matching) data request that gets the fault first."""
    kind: str
    count: int = 1
    path: str | None = None
    """Only requests to exactly this path match, and only they are counted."""

    def covers(self, number: int) -> bool:
        return self.at <= number < self.at + self.count


@dataclass(frozen=True)
class FaultConfig:
    """A validated ``POST /_admin/faults`` body; see :func:`parse_fault_config`."""

    seed: int = 0
    rate: float = 0.0
    kinds: tuple[str, ...] = ()
    schedule: tuple[ScheduledFault, ...] = ()
    latency_ms: int = 0
    retry_after: float | str = 1
    unauthorized_after: int | None = None
    missing_key_rate: float = 0.0
    duplicate_across_pages: bool = False

    @property
    def rewrites_records(self) -> bool:
        """Whether every JSON response must be decoded to alter its records."""
        return self.missing_key_rate > 0 or self.duplicate_across_pages

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["kinds"] = list(self.kinds)
        payload["schedule"] = [asdict(entry) for entry in self.schedule]
        return payload


_FIELDS: Final = frozenset(FaultConfig.__dataclass_fields__)
_SCHEDULE_FIELDS: Final = frozenset(ScheduledFault.__dataclass_fields__)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(body: Mapping[str, Any], name: str, default: int, minimum: int) -> int:
    value = body.get(name, default)
    if not _is_int(value) or value < minimum:
        raise BadRequestError(f"{name} must be an integer >= {minimum}, got {value!r}")
    result: int = value
    return result


def _probability(body: Mapping[str, Any], name: str) -> float:
    value = body.get(name, 0.0)
    if not (_is_int(value) or isinstance(value, float)) or not 0 <= value <= 1:
        raise BadRequestError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _kind(value: object, where: str) -> str:
    if not isinstance(value, str) or value not in KINDS:
        raise BadRequestError(f"{where}: unknown fault kind {value!r}; known: {sorted(KINDS)}")
    return value


def _unknown(body: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    extra = sorted(set(body) - known)
    if extra:
        raise BadRequestError(f"{where}: unknown field(s) {extra}; known: {sorted(known)}")


def _schedule_entry(raw: object, index: int) -> ScheduledFault:
    where = f"schedule[{index}]"
    if not isinstance(raw, dict):
        raise BadRequestError(f"{where} must be an object")
    _unknown(raw, _SCHEDULE_FIELDS, where)
    if "at" not in raw or "kind" not in raw:
        raise BadRequestError(f"{where} needs 'at' and 'kind'")
    path = raw.get("path")
    if path is not None and path not in DATA_PATHS:
        raise BadRequestError(f"{where}: path must be one of {sorted(DATA_PATHS)}, got {path!r}")
    return ScheduledFault(
        at=_int(raw, "at", 1, minimum=1),
        kind=_kind(raw["kind"], where),
        count=_int(raw, "count", 1, minimum=1),
        path=path,
    )


def _retry_after(body: Mapping[str, Any]) -> float | str:
    value = body.get("retry_after", 1)
    if isinstance(value, str) and value.strip():
        return value
    if (_is_int(value) or isinstance(value, float)) and value >= 0:
        number: float = value
        return number
    raise BadRequestError(f"retry_after must be a number >= 0 or a string, got {value!r}")


def parse_fault_config(body: Mapping[str, Any]) -> FaultConfig:
    """Validate a fault configuration; raises :class:`BadRequestError` (a 400)."""
    _unknown(body, _FIELDS, "faults")
    raw_kinds = body.get("kinds", [])
    if not isinstance(raw_kinds, list):
        raise BadRequestError("kinds must be a list of fault kinds")
    kinds = tuple(_kind(kind, "kinds") for kind in raw_kinds)
    raw_schedule = body.get("schedule", [])
    if not isinstance(raw_schedule, list):
        raise BadRequestError("schedule must be a list of objects")
    unauthorized_after = body.get("unauthorized_after")
    if unauthorized_after is not None and (
        not _is_int(unauthorized_after) or unauthorized_after < 0
    ):
        raise BadRequestError(
            f"unauthorized_after must be an integer >= 0, got {unauthorized_after!r}"
        )
    duplicate = body.get("duplicate_across_pages", False)
    if not isinstance(duplicate, bool):
        raise BadRequestError("duplicate_across_pages must be a boolean")
    seed = body.get("seed", 0)
    if not _is_int(seed):
        raise BadRequestError(f"seed must be an integer, got {seed!r}")
    config = FaultConfig(
        seed=seed,
        rate=_probability(body, "rate"),
        kinds=kinds,
        schedule=tuple(_schedule_entry(raw, i) for i, raw in enumerate(raw_schedule)),
        latency_ms=_int(body, "latency_ms", 0, minimum=0),
        retry_after=_retry_after(body),
        unauthorized_after=unauthorized_after,
        missing_key_rate=_probability(body, "missing_key_rate"),
        duplicate_across_pages=duplicate,
    )
    if config.rate > 0 and not config.kinds:
        raise BadRequestError("rate needs a non-empty kinds list to draw from")
    uses_date = "429_retry_after_date" in {*kinds, *(entry.kind for entry in config.schedule)}
    if uses_date and retry_after_seconds(config) is None:
        raise BadRequestError("429_retry_after_date needs a numeric retry_after")
    return config


def retry_after_seconds(config: FaultConfig) -> float | None:
    """``retry_after`` as seconds, or ``None`` for a string that is not a finite number >= 0."""
    try:
        seconds = float(config.retry_after)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class FaultController:
    """The active configuration plus everything drawn and counted since it was set."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.configure(config)

    def configure(self, config: FaultConfig | None) -> None:
        """Replace the configuration (``None`` clears it) and restart counters and dice."""
        self.config = config
        self.injected: Counter[str] = Counter()
        self.data_requests = 0
        self._per_path: Counter[str] = Counter()
        self._last_records: dict[str, Record] = {}
        seed = 0 if config is None else config.seed
        self._dice = random.Random(seed)
        # Record-level dice are separate so page sizes never shift request faults.
        self._record_dice = random.Random(f"{seed}:records")

    def plan(self, path: str, *, oauth_token: bool) -> str | None:
        """Count one data request to ``path`` and return its fault kind, if any.

        ``oauth_token`` requests (authenticated by an issued OAuth access token)
        are exempt from ``unauthorized_after``, which models a static token.
        The returned kind may still not apply to ``path``; callers check.
        """
        config = self.config
        if config is None:
            return None
        self.data_requests += 1
        self._per_path[path] += 1
        drawn = None
        if config.rate > 0 and self._dice.random() < config.rate:
            drawn = self._dice.choice(config.kinds)
        limit = config.unauthorized_after
        if limit is not None and not oauth_token and self.data_requests > limit:
            return UNAUTHORIZED
        for entry in config.schedule:
            if entry.path is None:
                number = self.data_requests
            elif entry.path == path:
                number = self._per_path[path]
            else:
                continue
            if entry.covers(number):
                return entry.kind
        return drawn

    def count(self, kind: str, times: int = 1) -> None:
        if times:
            self.injected[kind] += times

    def drop_ids(self, records: list[Any], rate: float) -> None:
        """Remove ``id`` from each dict record with probability ``rate``."""
        dropped = 0
        for record in records:
            if isinstance(record, dict) and "id" in record and self._record_dice.random() < rate:
                del record["id"]
                dropped += 1
        self.count(MISSING_KEY, dropped)

    def duplicate_previous(self, path: str, records: list[Any]) -> None:
        """Prepend the last record of the previous non-empty page served on ``path``.

        The copy is the record as it was served then (same projection, same
        fields), so it is a true duplicate of something the client already has.
        Empty pages are left alone: they often mean "the end" to a client.
        """
        if not records:
            return
        previous = self._last_records.get(path)
        last = records[-1]
        if isinstance(last, dict):
            self._last_records[path] = dict(last)
        if previous is not None:
            records.insert(0, dict(previous))
            self.count(DUPLICATE)

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /_admin/faults`` body."""
        return {
            "config": None if self.config is None else self.config.to_json(),
            "injected": dict(sorted(self.injected.items())),
            "data_requests": self.data_requests,
        }
