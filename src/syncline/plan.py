"""From config to jobs: one job per (source, stream, partition), each with its base request."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from syncline.config import Config, SourceConfig, StreamConfig
from syncline.errors import ConfigError
from syncline.request import RequestSpec
from syncline.stores.base import Column, StateKey, TableSpec

__all__ = ["Job", "plan_jobs"]

_WHOLE_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Job:
    source_name: str
    stream_name: str
    source: SourceConfig
    stream: StreamConfig
    partition: Mapping[str, Any]

    @property
    def partition_key(self) -> str:
        return json.dumps(dict(self.partition), sort_keys=True, separators=(",", ":"))

    @property
    def partition_label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.partition.items())

    @property
    def state_key(self) -> StateKey:
        return StateKey(self.source_name, self.stream_name, self.partition_key)

    @property
    def label(self) -> str:
        where = f" [{self.partition_label}]" if self.partition else ""
        return f"{self.source_name}.{self.stream_name}{where}"

    @property
    def table(self) -> TableSpec:
        return TableSpec(
            name=self.stream.table or self.stream_name,
            partition_columns=tuple(self.partition),
            key_columns=self.stream.primary_keys,
            on_delete=self.stream.on_delete,
            columns=tuple(
                Column(name, column.path, column.type, column.index)
                for name, column in self.stream.columns.items()
            ),
            mode=self.stream.mode,
        )

    def base_request(self) -> RequestSpec:
        """The first request of a pass before paginator and filters add their values."""
        stream, values = self.stream, dict(self.partition)
        path = _PLACEHOLDER.sub(lambda m: quote(str(values[m.group(1)]), safe=""), stream.path)
        url = self.source.base_url + (path if path.startswith("/") or not path else "/" + path)
        params = {k: fill(v, values) for k, v in stream.params.items()}
        headers = {k: str(fill(v, values)) for k, v in stream.headers.items()}
        body: dict[str, Any] | None = None
        if stream.graphql is not None:
            body = {
                "query": stream.graphql.query,
                "variables": fill(stream.graphql.variables, values),
            }
            if stream.graphql.operation:
                body["operationName"] = stream.graphql.operation
        elif stream.body is not None:
            body = fill(stream.body, values)
        return RequestSpec(
            method=stream.http_method,
            url=url,
            params=params,
            headers=headers,
            json=body,
            graphql=stream.graphql is not None,
        )


def fill(value: Any, partition: Mapping[str, Any]) -> Any:
    """Put partition values into ``{name}`` placeholders; a lone placeholder keeps its type."""
    if isinstance(value, str):
        whole = _WHOLE_PLACEHOLDER.match(value)
        if whole and whole.group(1) in partition:
            return partition[whole.group(1)]
        return _PLACEHOLDER.sub(
            lambda m: str(partition[m.group(1)]) if m.group(1) in partition else m.group(0), value
        )
    if isinstance(value, dict):
        return {k: fill(v, partition) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, partition) for v in value]
    return value


def plan_jobs(
    config: Config,
    streams: Sequence[str] = (),
    partitions: Sequence[str] = (),
) -> list[Job]:
    """Every (source, stream, partition) selected by ``--stream`` and ``--partition key=value``."""
    wanted_partitions = _parse_partition_filters(partitions)
    jobs: list[Job] = []
    matched: set[str] = set()
    for source_name, source in config.sources.items():
        for stream_name, stream in source.streams.items():
            names = {stream_name, f"{source_name}.{stream_name}"}
            if streams and not names & set(streams):
                continue
            matched |= names & set(streams)
            for partition in _partition_values(source, stream):
                if _selected(partition, wanted_partitions):
                    job = Job(source_name, stream_name, source, stream, partition)
                    _check_columns(job)
                    jobs.append(job)
    unknown = set(streams) - matched
    if unknown:
        raise ConfigError(f"no stream named {', '.join(sorted(unknown))} in the config")
    keys = {
        key
        for source in config.sources.values()
        for stream in source.streams.values()
        for key in (source.partitions if stream.partitions is None else stream.partitions)
    }
    if wanted_partitions.keys() - keys:
        bad = ", ".join(sorted(wanted_partitions.keys() - keys))
        raise ConfigError(
            f"--partition: no partition key {bad}; the config has {sorted(keys) or 'none'}"
        )
    return jobs


def _partition_values(source: SourceConfig, stream: StreamConfig) -> Iterable[dict[str, Any]]:
    spec = source.partitions if stream.partitions is None else stream.partitions
    if not spec:
        return [{}]
    keys = list(spec)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*spec.values())]


def _parse_partition_filters(filters: Sequence[str]) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--partition expects key=value, got {item!r}")
        wanted.setdefault(key.strip(), set()).add(value.strip())
    return wanted


def _selected(partition: Mapping[str, Any], wanted: dict[str, set[str]]) -> bool:
    return all(key in partition and str(partition[key]) in values for key, values in wanted.items())


def _check_columns(job: Job) -> None:
    table = job.table
    columns = table.identity_columns
    reserved = {"_data", "_updated_at", "_synced_at"}
    if len(set(columns)) != len(columns) or reserved & set(columns):
        raise ConfigError(
            f"{job.source_name}.{job.stream_name}: key columns {list(columns)} collide with each "
            "other, a partition key, or a reserved column (_data, _updated_at, _synced_at)"
        )
