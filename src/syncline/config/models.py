"""The configuration as frozen value objects: what a user declares, validated once at the edge."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from syncline.config.strategies import (
    AuthConfig,
    CursorIncremental,
    CursorPaginate,
    IncrementalConfig,
    NoIncremental,
    NoPaginate,
    PaginateConfig,
    RelayPaginate,
    WatermarkIncremental,
)
from syncline.durations import parse_duration
from syncline.jpath import check_expression

__all__ = [
    "ColumnConfig",
    "Config",
    "GraphQLConfig",
    "LimitWindow",
    "RetryConfig",
    "RunConfig",
    "ScheduleConfig",
    "SourceConfig",
    "StreamConfig",
    "Tombstones",
    "WriteConfig",
]

Scalar = str | int | float | bool
Seconds = Annotated[float, BeforeValidator(lambda value: parse_duration(value).total_seconds())]
"""A duration in seconds, written as ``30``, ``"30s"``, ``"5m"`` or ``"1h"``."""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def placeholders(template: str) -> set[str]:
    """Names used as ``{name}`` in a path template."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


class GraphQLConfig(_Frozen):
    query: str | None = None
    query_file: Path | None = None
    operation: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_query(self) -> GraphQLConfig:
        if (self.query is None) == (self.query_file is None):
            raise ValueError("give exactly one of 'query' or 'query_file'")
        return self


class LimitWindow(_Frozen):
    """A call quota the API enforces: at most ``calls`` in any ``per`` (sliding).

    Counting a window as sliding is safe against servers that count fixed
    windows too: no fixed window can then see more than ``calls``.
    """

    calls: int = Field(gt=0)
    per: Seconds = Field(gt=0)
    reserve: int = Field(default=0, ge=0)
    """Calls only ``priority: high`` work may spend (the seed's "keep 500 for later")."""
    scope: Literal["source", "partition"] = "partition"
    operation: Literal["read", "write"] | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _reserve_below_calls(self) -> LimitWindow:
        if self.reserve >= self.calls:
            raise ValueError(f"reserve ({self.reserve}) must be below calls ({self.calls})")
        return self

    @property
    def key(self) -> str:
        """A stable name for the ledger: changing the numbers starts a new count."""
        return self.name or f"{self.calls}/{self.per:g}s"


class ScheduleConfig(_Frozen):
    """When ``syncline run`` syncs a stream: a cron expression in a time zone, or an interval.

    Written ``schedule: "*/15 * * * *"`` (cron, UTC), ``schedule: {cron: "0 6 * * 1-5",
    timezone: Europe/Rome}`` or ``schedule: {every: 15m}``. Cron is read in its zone
    because "every weekday at 6" means the office's 6, across daylight-saving changes.
    """

    cron: str | None = None
    every: Seconds | None = Field(default=None, gt=0)
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _cron_shorthand(cls, value: object) -> object:
        return {"cron": value} if isinstance(value, str) else value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            text = " ".join(value.split())
            if not croniter.is_valid(text):
                raise ValueError(
                    f"{value!r} is not a cron expression (five fields: minute hour "
                    "day-of-month month day-of-week, e.g. '*/15 * * * *')"
                )
            return text
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleConfig:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of 'cron' or 'every'")
        if self.every is not None and self.timezone != "UTC":
            raise ValueError("'timezone' applies to 'cron' only; an interval has no zone")
        return self

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r}" + ("" if self.timezone == "UTC" else f" {self.timezone}")
        assert self.every is not None
        return f"every {self.every:g}s"


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like Europe/Rome)"
        ) from None
    return value


class RunConfig(_Frozen):
    """How ``syncline run`` and ``syncline worker`` share their time between jobs."""

    concurrency: int = Field(default=8, gt=0)
    """Jobs one process works on at once (most of their time is spent waiting)."""
    slice: Seconds | None = Field(default=300.0, ge=0)
    """A job gives its place up after this long (at a page boundary, checkpoint committed)
    and goes to the back of the line: one huge tenant cannot starve the others (``0`` or
    ``null``: a job runs until its pass ends)."""
    heartbeat: Seconds = Field(default=10.0, gt=0)
    """How often a worker says it is alive (``syncline workers``)."""
    stalled_after: Seconds = Field(default=30.0, gt=0)
    """A worker silent this long is dead: its jobs go back to the queue."""
    queue: str = Field(default="syncline", min_length=1, max_length=100)
    """The task queue's name, to keep several deployments in one database apart."""

    @model_validator(mode="after")
    def _heartbeat_below_stall(self) -> RunConfig:
        if self.stalled_after <= self.heartbeat * 2:
            raise ValueError(
                f"stalled_after ({self.stalled_after:g}s) must exceed two heartbeats "
                f"({self.heartbeat:g}s each), or live workers would be declared dead"
            )
        return self


class RateLimitHeaders(_Frozen):
    """A vendor's own names for its rate-limit headers (the common spellings are always read)."""

    name: str = Field(min_length=1)
    """The window's name in the ledger and in ``syncline quota``."""
    remaining: str = Field(min_length=1)
    limit: str | None = None
    reset: str | None = None
    """Seconds until the reset, or its time as epoch seconds or milliseconds (told apart)."""
    period: Seconds | None = None


class Tombstones(_Frozen):
    """How a feed says a record was deleted: a flag on the record, or a separate list.

    ``deleted: "deleted == `true`"`` is shorthand for ``deleted: {when: …}``.
    """

    when: str | None = None
    """A JMESPath predicate on a record: true means the record is a tombstone."""
    records: str | None = None
    """A JMESPath on the page body to a list of deleted records, or of bare keys."""

    _paths = field_validator("when", "records")(check_expression)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"when": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _says_something(self) -> Tombstones:
        if self.when is None and self.records is None:
            raise ValueError("give 'when' (a predicate on a record) or 'records' (a list's path)")
        return self


COLUMN_TYPE_NAMES = Literal[
    "text", "integer", "numeric", "real", "boolean", "timestamp", "date", "json"
]
META_COLUMNS = ("_data", "_updated_at", "_synced_at", "_hash", "_deleted_at")
"""Columns every stream table has: a typed column or key cannot take these names."""


class ColumnConfig(_Frozen):
    """A typed column next to ``_data``: ``price: {path: price, type: numeric, index: true}``.

    ``city: address.city`` is shorthand for ``{path: address.city}`` (type text).
    """

    path: str
    type: COLUMN_TYPE_NAMES = "text"
    index: bool = False

    _path = field_validator("path")(check_expression)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"path": value} if isinstance(value, str) else value


class WriteConfig(_Frozen):
    """How ``syncline push`` writes one changed record back to the API.

    ``path`` takes ``{placeholders}`` from the partition and from the record's
    ``key`` fields: ``/api/v1/{division}/crm/Accounts(guid'{ID}')``.
    """

    method: Literal["PUT", "PATCH", "POST"] = "PATCH"
    path: str = Field(min_length=1)
    body: Literal["changed", "full"] = "changed"
    """``changed``: only the fields the push sets; ``full``: the stored record with them set."""
    key: str | list[str] | None = None
    """The record fields the path names (default: the stream's primary key)."""
    etag: str | None = None
    """JMESPath to the record's ETag in the stored record, sent as ``If-Match``: a record
    changed on the server since the mirror read it is then refused (status ``conflict``)."""
    headers: dict[str, str] = Field(default_factory=dict)
    priority: Literal["high", "normal", "low"] | None = None
    """Who gets call permits first (default: the stream's); only ``high`` spends a reserve."""
    weight: int = Field(default=1, gt=0)
    """Calls one write costs against the limits."""
    record: str | None = None
    """JMESPath to the record in a write's answer (e.g. ``d`` for OData v2), if it has one."""
    read_path: str | None = None
    """Where one record is read (default: ``path``): to verify a write whose answer was lost,
    and to refresh the mirror after a write whose answer has no record."""
    read_params: dict[str, str] = Field(default_factory=dict)
    """Query parameters of that read, with the same ``{placeholders}`` as ``path``."""
    read_record: str | None = None
    """JMESPath to the record in the read's answer (default: ``record``)."""
    read_back: bool = True
    """After a write answered without the record, read it (one more call) so the mirror holds
    exactly what the server now has and the next sync sees no change of ours; ``false``:
    apply the change to the mirror locally and let the next sync bring the server's version."""
    max_errors: int = Field(default=10, ge=1)
    """Failed or conflicting items after which a push run stops (the rest stay pending)."""
    attempts: int = Field(default=3, ge=1)
    """Sends of one item (each after the previous one was verified as not applied)."""
    conflict_statuses: frozenset[int] = frozenset({409, 412})

    _paths = field_validator("etag", "record", "read_record")(check_expression)

    @property
    def key_fields(self) -> tuple[str, ...] | None:
        if self.key is None:
            return None
        return (self.key,) if isinstance(self.key, str) else tuple(self.key)


class StreamConfig(_Frozen):
    path: str = ""
    method: Literal["GET", "POST"] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    graphql: GraphQLConfig | None = None
    records: str | None = None
    primary_key: str | list[str]
    updated_at: str | None = None
    paginate: PaginateConfig = Field(default_factory=lambda: NoPaginate(type="none"))
    incremental: IncrementalConfig = Field(default_factory=NoIncremental)
    partitions: dict[str, list[Scalar]] | None = None
    table: str | None = None
    on_invalid_record: Literal["quarantine", "fail"] = "quarantine"
    """A record without a usable primary key goes to ``_syncline_rejects`` or fails the job."""
    priority: Literal["high", "normal", "low"] = "normal"
    """Who gets call permits first; only ``high`` may spend a limit's reserve."""
    weight: int = Field(default=1, gt=0)
    """Calls one request of this stream costs against the limits."""
    deleted: Tombstones | None = None
    """Tombstones in the feed: a predicate on a record, or where the page lists deletions."""
    on_delete: Literal["soft", "hard"] = "soft"
    """A deleted record's row stays with ``_deleted_at`` set (soft), or goes (hard)."""
    columns: dict[str, ColumnConfig] = Field(default_factory=dict)
    """Typed columns next to ``_data``, filled from the record on every write."""
    write: WriteConfig | None = None
    """How ``syncline push`` writes a changed record back (absent: the stream is read-only)."""
    schedule: ScheduleConfig | None = None
    """When ``syncline run`` syncs this stream (absent: the source's schedule)."""
    mode: Literal["merge", "snapshot"] = "merge"
    """``snapshot``: the destination holds exactly the last complete full pass (a full-refresh
    stream only; implies ``detect_deletes``; a file store swaps in a new file per pass)."""

    _check_records = field_validator("records", "updated_at")(check_expression)

    @field_validator("primary_key")
    @classmethod
    def _key_paths(cls, value: str | list[str]) -> str | list[str]:
        keys = [value] if isinstance(value, str) else value
        if not keys:
            raise ValueError("give at least one primary key field")
        for key in keys:
            check_expression(key)
        return value

    @property
    def primary_keys(self) -> tuple[str, ...]:
        return (self.primary_key,) if isinstance(self.primary_key, str) else tuple(self.primary_key)

    @property
    def http_method(self) -> str:
        return self.method or ("POST" if self.graphql is not None else "GET")

    @model_validator(mode="after")
    def _coherent(self) -> StreamConfig:
        if isinstance(self.incremental, WatermarkIncremental):
            if self.updated_at is None:
                raise ValueError("incremental type 'watermark' needs 'updated_at' on the stream")
            if self.incremental.format == "raw" and self.incremental.lookback.total_seconds():
                raise ValueError("'lookback' cannot be applied with format 'raw'; use iso8601")
        if isinstance(self.incremental, CursorIncremental) and not isinstance(
            self.paginate, CursorPaginate | RelayPaginate
        ):
            raise ValueError("incremental type 'cursor' needs a 'cursor' or 'relay' paginator")
        if isinstance(self.paginate, RelayPaginate) and self.graphql is None:
            raise ValueError("paginator 'relay' needs a 'graphql' query")
        if self.mode == "snapshot" and not isinstance(self.incremental, NoIncremental):
            raise ValueError(
                "mode 'snapshot' needs a full-refresh stream (incremental type 'none'): "
                "only a complete pass can replace what is stored"
            )
        return self

    @field_validator("columns")
    @classmethod
    def _column_names(cls, value: dict[str, ColumnConfig]) -> dict[str, ColumnConfig]:
        folded: dict[str, str] = {}
        for name in value:
            if not name or "\x00" in name:
                raise ValueError(f"column name {name!r} must be non-empty text without NUL")
            if name.lower() in META_COLUMNS:
                raise ValueError(f"column name {name!r} is one of syncline's own {META_COLUMNS}")
            other = folded.setdefault(name.lower(), name)
            if other != name:
                raise ValueError(
                    f"columns {other!r} and {name!r} differ only by case; SQLite and DuckDB "
                    "see one column"
                )
        return value


class RetryConfig(_Frozen):
    """How hard to insist on transient failures (429, 5xx, network), bounded in count and time.

    Waits are exponential with full jitter: ``uniform(0, min(wait_max,
    wait_initial * 2**n))``. A ``Retry-After`` is honoured as given (never
    shortened); one longer than ``max_wait`` defers the job instead of sleeping.
    """

    attempts: int = Field(default=5, ge=1)
    wait_initial: Seconds = Field(
        default=0.5, ge=0, validation_alias=AliasChoices("wait_initial", "base_delay")
    )
    wait_max: Seconds = Field(
        default=30.0, ge=0, validation_alias=AliasChoices("wait_max", "max_delay")
    )
    wait_jitter: Seconds = Field(default=1.0, ge=0)
    min_wait: Seconds = Field(default=0.05, ge=0)
    timeout: Seconds = Field(
        default=300.0, gt=0, validation_alias=AliasChoices("timeout", "max_time")
    )
    max_wait: Seconds = Field(
        default=300.0, ge=0, validation_alias=AliasChoices("max_wait", "max_retry_after")
    )
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    network_errors: bool = True
    payload_retries: int = Field(default=1, ge=0)
    """Retries of a body that did not decode (an HTML error page, cut JSON)."""

    @field_validator("statuses")
    @classmethod
    def _http_statuses(cls, value: frozenset[int]) -> frozenset[int]:
        wrong = sorted(code for code in value if not 400 <= code <= 599)
        if wrong:
            raise ValueError(f"retry statuses must be 4xx or 5xx codes, got {wrong}")
        return value


class SourceConfig(_Frozen):
    base_url: str
    auth: AuthConfig | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    partitions: dict[str, list[Scalar]] = Field(default_factory=dict)
    timeout: Seconds = Field(default=30.0, gt=0)
    verify_tls: bool = Field(default=True, validation_alias=AliasChoices("verify_tls", "verify"))
    ca_bundle: Path | None = None
    """A PEM file of CA certificates to trust instead of the system's (relative to the config)."""
    timezone: str | None = None
    """The zone of timestamps the API writes without an offset (else UTC, with a warning)."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Other hosts that next links and redirects may lead to (over https, with credentials)."""
    follow_redirects: bool = False
    end_on_status: list[int] = Field(default_factory=list)
    """Statuses that mean "past the last page" on a page after the first (e.g. 404)."""
    max_response_size: ByteSize = Field(default=ByteSize(256 * 1024 * 1024), gt=0)
    limits: list[LimitWindow] = Field(default_factory=list)
    rate_limit_headers: list[RateLimitHeaders] = Field(default_factory=list)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    schedule: ScheduleConfig | None = None
    """When ``syncline run`` syncs the source's streams (a stream may set its own)."""
    streams: dict[str, StreamConfig]

    @field_validator("verify_tls", mode="before")
    @classmethod
    def _verify_is_a_switch(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() not in {"true", "false"}:
            raise ValueError(
                "use 'ca_bundle: path/to/ca.pem' for a custom CA; verify is true/false"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return value if value is None else _check_zone(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not host or any(char in host for char in "/@ :"):
                raise ValueError(f"allowed_hosts takes bare host names, got {host!r}")
        return [host.lower() for host in value]

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("streams")
    @classmethod
    def _stream_names(cls, value: dict[str, StreamConfig]) -> dict[str, StreamConfig]:
        if not value:
            raise ValueError("declare at least one stream")
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"stream name {name!r} must be letters, digits, '_' or '-'")
        return value

    @model_validator(mode="after")
    def _placeholders_are_partitions(self) -> SourceConfig:
        for name, stream in self.streams.items():
            keys = set(self.partitions if stream.partitions is None else stream.partitions)
            taken = {column.lower() for column in (*keys, *stream.primary_keys)}
            for column in stream.columns:
                if column.lower() in taken:
                    raise ValueError(
                        f"stream {name!r}: column {column!r} is already a partition or "
                        "primary-key column of its table"
                    )
            missing = placeholders(stream.path) - keys
            if missing:
                raise ValueError(
                    f"stream {name!r}: path {stream.path!r} uses {sorted(missing)} "
                    f"but the partitions only define {sorted(keys) or 'nothing'}"
                )
            if stream.write is not None:
                _check_write_path(name, stream, keys)
        return self


def _check_write_path(name: str, stream: StreamConfig, partitions: set[str]) -> None:
    write = stream.write
    assert write is not None
    fields = set(write.key_fields or stream.primary_keys)
    templates = [(write.path, "write.path"), (write.read_path, "write.read_path")]
    templates += [(v, f"write.read_params.{k}") for k, v in write.read_params.items()]
    for template, setting in templates:
        missing = placeholders(template or "") - partitions - fields
        if missing:
            raise ValueError(
                f"stream {name!r}: {setting} {template!r} uses {sorted(missing)}, which are "
                f"neither partitions ({sorted(partitions) or 'none'}) nor the write key "
                f"fields ({sorted(fields)}); list them in write.key"
            )


class Config(_Frozen):
    store: str = "sqlite:///syncline.db"
    lease_ttl: Seconds = Field(default=60.0, gt=0)
    """How long a crashed process keeps others off its (stream, partition)."""
    changes_retention: Seconds | None = Field(default=30 * 86400.0, gt=0)
    """How long the change feed keeps an entry (``null``: for ever)."""
    run: RunConfig = Field(default_factory=RunConfig)
    """``syncline run`` and ``syncline worker``: concurrency, time slices, heartbeats."""
    sources: dict[str, SourceConfig]
    base_dir: Path = Field(default=Path("."), exclude=True)
    file: Path | None = Field(default=None, exclude=True)

    @field_validator("sources")
    @classmethod
    def _at_least_one(cls, value: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        if not value:
            raise ValueError("declare at least one source")
        return value

    @model_validator(mode="after")
    def _tables_unique(self) -> Config:
        seen: dict[str, str] = {}
        for source_name, source in self.sources.items():
            for stream_name, stream in source.streams.items():
                table = (stream.table or stream_name).lower()
                here = f"{source_name}.{stream_name}"
                if table.startswith("_syncline"):
                    raise ValueError(f"{here}: table names starting with '_syncline' are reserved")
                if table in seen:
                    raise ValueError(
                        f"{here} and {seen[table]} both write table {table!r}; "
                        "set 'table:' on one of them"
                    )
                seen[table] = here
        return self
