"""One JSON line per stored row version: how it is written, and read back.

A line is a flat JSON object: the partition and key columns by name,
``_updated_at``, ``_synced_at``, ``_deleted_at`` (``null`` while the record
lives), the typed columns by name, and last ``_data``, the record itself::

    {"company_id":1,"id":7,"_updated_at":"2024-03-01T09:00:00.000000Z",
     "_synced_at":"…","_deleted_at":null,"price":"12.50","_data":{"id":7,…}}

Why ``_data`` last, pasted as the API's JSON text: the record is never parsed
and dumped again (no number is rounded, no key reordered), and its exact
text is found again from the line alone: everything before it is a flat
object whose strings have every quote escaped, so the first ``,"_data":`` is
the key, and the record runs from there to the closing ``}``.

Why a record holding an unpaired surrogate (``"\\ud800"``) is quarantined
rather than escaped: such a line is valid UTF-8 but strict JSON readers
(orjson, Go, Rust's serde, jq's) refuse it, and one unreadable line makes the
whole file unreadable to them. It goes to ``_syncline_rejects`` with the
reason, like a record PostgreSQL cannot hold; the rest of the page is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from syncline.errors import StoreError
from syncline.stores.base import Reject, Row, TableSpec
from syncline.stores.columns import encode_json_value, typed_values

__all__ = [
    "UNWRITABLE",
    "LineFormat",
    "checked_data",
    "data_of",
    "feed_line",
    "head_of",
    "parse_json",
    "quarantined",
    "unwritable",
]

UNWRITABLE = (
    "a JSON lines store cannot write this record: it contains an unpaired surrogate "
    "(such as \\ud800), which UTF-8 cannot encode and strict JSON readers refuse"
)
_DATA_KEY = b',"_data":'

log = logging.getLogger("syncline")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: bytes | str) -> Any:
    """Parse JSON text exactly (integers beyond 64 bits stay integers); NaN is not JSON."""
    return json.loads(text, parse_constant=_no_constants)


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")  # C speed; only a surrogate makes it fail
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


def checked_data(data: Any) -> bytes | None:
    """The record as it goes into a line (``None``: it cannot, see :data:`UNWRITABLE`).

    Line breaks outside strings are JSON whitespace and become spaces (inside
    strings they cannot be: such text is not JSON). Anything but exactly one
    JSON value is a caller's bug: :class:`StoreError`, nothing is written.
    """
    if not isinstance(data, str):
        raise StoreError(f"a record must be JSON text, got {type(data).__name__}")
    try:
        raw = data.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if b"\n" in raw or b"\r" in raw:
        raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            raise StoreError(f"a record is not one JSON value: {data[:80]!r}") from None
        if _has_surrogate(value):
            return None
    return raw


def _writable(row: Row, width: int, checked: dict[str, bytes]) -> bool:
    for value in (*row[:width], row[width + 1]):
        if isinstance(value, str) and _has_surrogate(value):
            return False
    data = row[width]
    if data in checked:
        return True
    raw = checked_data(data)
    if raw is None:
        return False
    checked[data] = raw
    return True


def unwritable(rows: Iterable[Row], width: int, checked: dict[str, bytes]) -> list[Row]:
    """The rows no line can hold (see :data:`UNWRITABLE`); each other row's record text, as
    it goes into a line, lands in ``checked`` (by ``_data``)."""
    return [row for row in rows if not _writable(row, width, checked)]


def quarantined(rows: Sequence[Row], width: int) -> list[Reject]:
    """The rejects of the rows :func:`unwritable` found."""
    log.warning("%d record(s) quarantined: %s", len(rows), UNWRITABLE)
    return [Reject(UNWRITABLE, _as_text(row[width])) for row in rows]


def _as_text(data: Any) -> str:
    """The record for the rejects table: its JSON text, or its repr when SQLite cannot hold
    that text either (a surrogate character, not an escape)."""
    if isinstance(data, str) and not _has_surrogate(data):
        return data
    return repr(data)


def _dump(fields: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(fields)
    except TypeError:  # an integer beyond 64 bits: the exact, slower path
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class LineFormat:
    """Renders the lines of one table, with its typed columns as declared now."""

    def __init__(self, table: TableSpec) -> None:
        self.table = table
        self.identity = table.identity_columns
        self.typed = tuple(column.name for column in table.columns)

    def render(
        self,
        identity: Sequence[Any],
        data: bytes,
        updated_at: Any,
        synced_at: Any,
        deleted_at: Any,
        typed: Sequence[Any],
    ) -> bytes:
        fields = dict(zip(self.identity, identity, strict=True))
        fields["_updated_at"] = updated_at
        fields["_synced_at"] = synced_at
        fields["_deleted_at"] = deleted_at
        for name, value in zip(self.typed, typed, strict=True):
            fields[name] = encode_json_value(value)
        return _dump(fields)[:-1] + _DATA_KEY + data + b"}\n"

    def rerender(self, line: bytes, deletion: Sequence[Any] | None = None) -> bytes:
        """The same row version with its typed columns computed again from ``_data``;
        ``deletion`` (``_updated_at``, ``_synced_at``, ``_deleted_at``) stamped on a line
        that does not say yet that its record was deleted."""
        head = head_of(line)
        data = data_of(line)
        typed = typed_values(self.table, data.decode("utf-8")) if self.typed else ()
        identity = [head.get(name) for name in self.identity]
        meta = (head.get("_updated_at"), head.get("_synced_at"), head.get("_deleted_at"))
        if deletion is not None and meta[2] is None:
            meta = (deletion[0], deletion[1], deletion[2])
        return self.render(identity, data, *meta, typed)


def data_of(line: bytes) -> bytes:
    """The record's JSON text, exactly as it was written, from one line."""
    start = line.find(_DATA_KEY)
    if start < 0 or not line.endswith(b"}\n"):
        raise StoreError(f"not a line syncline wrote: {line[:80]!r}")
    return line[start + len(_DATA_KEY) : -2]


def head_of(line: bytes) -> dict[str, Any]:
    """Every field of one line but ``_data`` (cheap: the record is not parsed)."""
    start = line.find(_DATA_KEY)
    if start < 0:
        raise StoreError(f"not a line syncline wrote: {line[:80]!r}")
    head = parse_json(line[:start] + b"}")
    if not isinstance(head, dict):
        raise StoreError(f"not a line syncline wrote: {line[:80]!r}")
    return head


def feed_line(entry: Sequence[Any]) -> bytes:
    """One change-feed entry (a page's inserts, updates or deletes) as a line."""
    id_, run_id, source, stream, partition, kind, keys, changed_at = entry
    try:
        where: Any = orjson.loads(partition)
    except orjson.JSONDecodeError:
        where = partition
    fields = {
        "id": id_, "run_id": run_id, "source": source, "stream": stream,
        "partition": where, "kind": kind, "changed_at": changed_at,
    }  # fmt: skip
    return _dump(fields)[:-1] + b',"keys":' + str(keys).encode("utf-8") + b"}\n"
