"""Where one record is written and read: URLs, bodies and the record in an answer.

Kept apart from the run loop so the rules a user configures (``write.path``,
``body: changed|full``, ``etag``, ``record``) read in one place, and can be
checked without a server.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from syncline.config import SourceConfig, StreamConfig, WriteConfig
from syncline.errors import BadPayload
from syncline.http import Response
from syncline.jpath import compile_path
from syncline.records import decode_body
from syncline.request import RequestSpec

__all__ = ["WriteTarget", "field_value", "has_values", "patched", "same_value"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _parts(field: str) -> list[str]:
    return field.split(".")


def field_value(record: Mapping[str, Any], field: str) -> Any:
    """The value at a (dotted) field of a record; ``None`` when absent."""
    value: Any = record
    for part in _parts(field):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def patched(record: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with ``patch`` set (dotted fields create nested objects)."""
    result: dict[str, Any] = copy.deepcopy(dict(record))
    for field, value in patch.items():
        *path, last = _parts(field)
        node = result
        for part in path:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[last] = value
    return result


def same_value(left: Any, right: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1`` and ``"1" != 1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_value(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same_value, left, right))
    return bool(left == right)


def has_values(record: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """Whether ``record`` already holds every value of ``patch``."""
    return all(same_value(field_value(record, f), v) for f, v in patch.items())


@dataclass(frozen=True)
class WriteTarget:
    """One stream's write and read requests."""

    source: SourceConfig
    stream: StreamConfig

    @property
    def write(self) -> WriteConfig:
        assert self.stream.write is not None
        return self.stream.write

    def _fill(
        self,
        template: str,
        partition: Mapping[str, Any],
        record: Mapping[str, Any],
        *,
        escape: bool,
    ) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            found = partition[name] if name in partition else field_value(record, name)
            if found is None or found == "":
                raise BadPayload(f"the record has no value for {{{name}}} in {template!r}")
            return quote(str(found), safe="") if escape else str(found)

        return _PLACEHOLDER.sub(value, template)

    def _url(self, template: str, partition: Mapping[str, Any], record: Mapping[str, Any]) -> str:
        path = self._fill(template, partition, record, escape=True)
        return self.source.base_url + (path if path.startswith("/") else "/" + path)

    def write_request(
        self, partition: Mapping[str, Any], record: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> RequestSpec:
        """The write of ``patch`` onto ``record`` (the mirror's copy), with ``If-Match``
        when the stream names where its ETag is."""
        write = self.write
        body = patched(record, patch) if write.body == "full" else patched({}, patch)
        headers = dict(write.headers)
        if write.etag is not None:
            etag = compile_path(write.etag)(record)
            if etag is not None:
                headers["If-Match"] = str(etag)
        url = self._url(write.path, partition, record)
        return RequestSpec(method=write.method, url=url, headers=headers, json=body)

    def read_request(self, partition: Mapping[str, Any], record: Mapping[str, Any]) -> RequestSpec:
        write = self.write
        params = {
            name: self._fill(value, partition, record, escape=False)
            for name, value in write.read_params.items()
        }
        url = self._url(write.read_path or write.path, partition, record)
        return RequestSpec(method="GET", url=url, params=params)

    def written_record(self, response: Response) -> dict[str, Any] | None:
        """The record a write's answer carries (``write.record`` selects it), or ``None``."""
        return _record_in(response, self.write.record)

    def read_record(self, response: Response) -> dict[str, Any] | None:
        """The record a read's answer carries (``write.read_record``), or ``None``."""
        write = self.write
        return _record_in(response, write.read_record or write.record)

    def is_same_record(self, found: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
        """Whether an answer's record is the one written (an API may answer with a summary)."""
        keys = [compile_path(k) for k in self.stream.primary_keys]
        return all(
            (value := get(found)) is not None and same_value(value, get(record)) for get in keys
        )


def _record_in(response: Response, path: str | None) -> dict[str, Any] | None:
    if not response.content.strip():
        return None
    try:
        body = decode_body(response.content, response.headers.get("content-type"))
    except BadPayload:
        return None
    found = compile_path(path)(body) if path else body
    return found if isinstance(found, dict) else None
