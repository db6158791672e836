"""From a response body to store rows: decode once, select records, extract keys.

This is the per-record hot path: one getter call per key, one normalisation
of the modification value, one ``orjson.dumps``; nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from syncline.config import StreamConfig
from syncline.errors import BadPayload
from syncline.jpath import compile_path
from syncline.stores.base import Row
from syncline.timestamps import Comparable, normalize

__all__ = ["RecordShaper", "decode_body"]


def decode_body(content: bytes, content_type: str | None) -> Any:
    """Parse a JSON body strictly; HTML login pages and truncated JSON are bad payloads."""
    if content.startswith(b"\xef\xbb\xbf"):  # RFC 8259 lets parsers ignore a UTF-8 BOM
        content = content[3:]
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        kind = "an HTML page" if content.lstrip()[:1] == b"<" else "malformed JSON"
        shown = f" (Content-Type {content_type})" if content_type else ""
        raise BadPayload(f"expected a JSON body, got {kind}{shown}: {exc}") from None


class RecordShaper:
    """Turns one stream's decoded pages into records and rows."""

    def __init__(self, stream: StreamConfig) -> None:
        self.records_path = stream.records
        self._records = compile_path(stream.records) if stream.records else None
        self._keys = [(name, compile_path(name)) for name in stream.primary_keys]
        self._updated_at = compile_path(stream.updated_at) if stream.updated_at else None
        self.graphql = stream.graphql is not None

    def select(self, body: Any) -> list[Any]:
        if self.graphql and isinstance(body, dict) and body.get("errors"):
            messages = "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body["errors"]
            )
            raise BadPayload(f"GraphQL errors: {messages[:300]}")
        found = self._records(body) if self._records is not None else body
        if found is None:
            where = f"at {self.records_path!r}" if self.records_path else "(body)"
            raise BadPayload(f"no records {where} in the response")
        if not isinstance(found, list):
            where = f"at {self.records_path!r}" if self.records_path else "as the body"
            raise BadPayload(f"expected a list of records {where}, got {type(found).__name__}")
        return found

    def rows(
        self, records: Sequence[Any], partition_values: tuple[Any, ...]
    ) -> tuple[list[Row], tuple[Comparable, Any] | None]:
        """Rows for the store and the page's newest ``(normalised, raw)`` modification value."""
        rows: list[Row] = []
        newest: tuple[Comparable, Any] | None = None
        get_updated = self._updated_at
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise BadPayload(f"record {index} is a {type(record).__name__}, not an object")
            key = []
            for name, get in self._keys:
                value = get(record)
                if value is None or value == "":
                    raise BadPayload(f"record {index} has no primary key {name!r}")
                if isinstance(value, dict | list):
                    value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
                key.append(value)
            updated: Comparable | None = None
            if get_updated is not None:
                raw = get_updated(record)
                updated = normalize(raw)
                if updated is not None and (newest is None or _newer(updated, newest[0])):
                    newest = (updated, raw)
            rows.append((*partition_values, *key, orjson.dumps(record).decode(), updated))
        return rows, newest


def _newer(candidate: Comparable, current: Comparable) -> bool:
    try:
        return candidate > current  # type: ignore[operator]
    except TypeError:  # a number against text: keep the first kind seen
        return False
