"""The configuration as frozen value objects: what a user declares, validated once at the edge."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
from syncline.jpath import check_expression

__all__ = ["Config", "GraphQLConfig", "RetryConfig", "SourceConfig", "StreamConfig"]

Scalar = str | int | float | bool
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
        return self


class RetryConfig(_Frozen):
    """How hard to insist on transient failures (429, 5xx, network), bounded in count and time."""

    attempts: int = Field(default=5, ge=1)
    wait_initial: float = Field(default=0.5, ge=0)
    wait_max: float = Field(default=30.0, ge=0)
    wait_jitter: float = Field(default=1.0, ge=0)
    timeout: float = Field(default=300.0, gt=0)
    max_retry_after: float = Field(default=300.0, ge=0)


class SourceConfig(_Frozen):
    base_url: str
    auth: AuthConfig | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    partitions: dict[str, list[Scalar]] = Field(default_factory=dict)
    timeout: float = Field(default=30.0, gt=0)
    verify_tls: bool | str = True
    retry: RetryConfig = Field(default_factory=RetryConfig)
    streams: dict[str, StreamConfig]

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
            missing = placeholders(stream.path) - keys
            if missing:
                raise ValueError(
                    f"stream {name!r}: path {stream.path!r} uses {sorted(missing)} "
                    f"but the partitions only define {sorted(keys) or 'nothing'}"
                )
        return self


class Config(_Frozen):
    store: str = "sqlite:///syncline.db"
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
