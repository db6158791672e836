"""From a push request to a plan: which mirror rows change, and how, at no API cost.

The mirror already knows every record, so selecting the rows to change is a
scan of the store, not a call: the seed's "push the filter to the server so
one call finds the rows" becomes "no call at all". A plan is then written to
the outbox before its first call, which is what makes a push resumable.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from syncline.config import Config, SourceConfig, StreamConfig
from syncline.errors import ConfigError
from syncline.plan import Job, plan_jobs
from syncline.push.query import (
    Assignment,
    Condition,
    Ordering,
    parse_assignment,
    parse_condition,
    parse_ordering,
    parse_update,
)
from syncline.push.target import field_value, has_values
from syncline.stores import OUTBOX_OPEN, OutboxItem, PushPlan, Store
from syncline.stores.columns import typed_values
from syncline.stores.outbox_sql import key_text

__all__ = [
    "Draft",
    "PushRequest",
    "WritableStream",
    "draft_plan",
    "row_namespace",
    "unfinished",
    "writable_stream",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PushRequest:
    """What a user asked: ``push STREAM --set … --where … --order … --limit …``."""

    stream: str
    assignments: tuple[Assignment, ...] = ()
    where: Condition | None = None
    order: Ordering | None = None
    limit: int | None = None
    priority: str | None = None
    partitions: tuple[str, ...] = ()
    statement: str | None = None
    """The request as one SQL statement (``syncline sql``); built from the parts otherwise."""
    set_texts: tuple[str, ...] = ()
    """``--set`` as typed, for the statement shown to people."""

    @classmethod
    def of_parts(
        cls,
        stream: str,
        sets: Sequence[str],
        *,
        where: str | None = None,
        order: str | None = None,
        limit: int | None = None,
        priority: str | None = None,
        partitions: Sequence[str] = (),
    ) -> PushRequest:
        """``push STREAM --set F=V … --where … --order … --limit n`` (raises QueryError)."""
        return cls(
            stream=stream,
            assignments=tuple(parse_assignment(text) for text in sets),
            where=parse_condition(where) if where else None,
            order=parse_ordering(order) if order else None,
            limit=limit,
            priority=priority,
            partitions=tuple(partitions),
            set_texts=tuple(sets),
        )

    @classmethod
    def of_statement(
        cls, statement: str, *, priority: str | None = None, partitions: Sequence[str] = ()
    ) -> PushRequest:
        """``UPDATE table SET … [WHERE …] [ORDER BY …] [LIMIT n]`` (raises QueryError)."""
        parsed = parse_update(statement)
        return cls(
            stream=parsed.table,
            assignments=parsed.assignments,
            where=parsed.where,
            order=parsed.order,
            limit=parsed.limit,
            priority=priority,
            partitions=tuple(partitions),
            statement=statement,
        )


@dataclass(frozen=True)
class WritableStream:
    source_name: str
    stream_name: str
    source: SourceConfig
    stream: StreamConfig

    @property
    def table_name(self) -> str:
        return self.stream.table or self.stream_name


def writable_stream(config: Config, name: str) -> WritableStream:
    """The stream ``name`` designates (``stream``, ``source.stream`` or its table), which must
    declare ``write:``."""
    found = [
        WritableStream(source_name, stream_name, source, stream)
        for source_name, source in config.sources.items()
        for stream_name, stream in source.streams.items()
        if name.lower()
        in {stream_name.lower(), f"{source_name}.{stream_name}".lower(),
            (stream.table or stream_name).lower()}
    ]  # fmt: skip
    if not found:
        known = sorted(f"{s}.{n}" for s, source in config.sources.items() for n in source.streams)
        raise ConfigError(f"no stream or table named {name!r}; the config has {known}")
    if len(found) > 1:
        names = sorted(f"{w.source_name}.{w.stream_name}" for w in found)
        raise ConfigError(f"{name!r} names several streams {names}; write source.stream")
    target = found[0]
    if target.stream.write is None:
        raise ConfigError(
            f"stream {target.source_name}.{target.stream_name} has no 'write:' section in "
            f"{config.file or 'the config'}; declare write: {{method, path}} to push to it"
        )
    return target


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + text.replace("'", "''") + "'"


def _identifier(field: str) -> str:
    return ".".join(
        part if _IDENTIFIER.match(part) else '"' + part.replace('"', '""') + '"'
        for part in field.split(".")
    )


def statement_of(request: PushRequest, table: str) -> str:
    """The push as one ``UPDATE`` statement (what ``syncline sql`` would take)."""
    if request.statement is not None:
        return request.statement.strip().rstrip(";").strip()
    sets = ", ".join(
        f"{_identifier(a.field)} = "
        + (_literal(a.value({})) if a.constant else _set_text(request, a.field))
        for a in request.assignments
    )
    text = f"UPDATE {_identifier(table)} SET {sets}"  # noqa: S608 - shown, parsed; never run
    if request.where is not None:
        text += f" WHERE {request.where.text}"
    if request.order is not None:
        text += f" ORDER BY {request.order.text}"
    if request.limit is not None:
        text += f" LIMIT {request.limit}"
    return text


def _set_text(request: PushRequest, field_name: str) -> str:
    for text in request.set_texts:
        name, _, value = text.partition("=")
        if name.strip() == field_name:
            return value.strip()
    raise ConfigError(f"--set {field_name}: cannot show its value as SQL")  # pragma: no cover


def fingerprint(target: WritableStream, request: PushRequest) -> str:
    """Same stream, same change, same condition and order: the same plan (``LIMIT`` apart,
    so a daily ``… LIMIT 100`` continues yesterday's unfinished plan)."""
    parts = {
        "source": target.source_name,
        "stream": target.stream_name,
        "set": sorted(
            (a.field, _literal(a.value({})) if a.constant else _set_text_or(request, a))
            for a in request.assignments
        ),
        "where": request.where.text.strip() if request.where else None,
        "order": request.order.text.strip() if request.order else None,
    }
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _set_text_or(request: PushRequest, assignment: Assignment) -> str:
    if request.statement is not None:
        return request.statement  # an expression: the statement as a whole tells it apart
    return _set_text(request, assignment.field)


def row_namespace(job: Job, identity: tuple[Any, ...], record: Any, data: str) -> Mapping[str, Any]:
    """What a condition sees of one row: the record's fields, then its typed columns, key
    and partition columns (a typed column shadows a record field of the same name)."""
    names: dict[str, Any] = dict(record) if isinstance(record, dict) else {}
    table = job.table
    if table.columns:
        for typed, value in zip(table.columns, typed_values(table, data), strict=True):
            names[typed.name] = value
    folded = {name.lower() for name in names}
    for column, value in zip(table.identity_columns, identity, strict=True):
        if column.lower() not in folded:  # the record's own field wins (no ambiguity)
            names[column] = value
    return names


@dataclass
class _Candidate:
    order: tuple[Any, ...]
    rank: int
    job: Job
    key: tuple[Any, ...]
    patch: dict[str, Any]
    before: dict[str, Any]

    def __lt__(self, other: _Candidate) -> bool:
        return (self.order, self.rank) < (other.order, other.rank)


@dataclass
class Draft:
    """A plan before it is written: its items, and what a dry run shows about them."""

    target: WritableStream
    plan: PushPlan
    items: list[OutboxItem]
    jobs: list[Job]
    matched: int = 0
    """Rows the condition selected (before ``LIMIT``)."""
    unchanged: int = 0
    """Selected rows that already hold the new values (no call needed)."""
    held: int = 0
    """Selected rows with an item still open in another plan (never written twice)."""
    unseen_names: list[str] = field(default_factory=list)
    """Fields the condition names that no stored record has (a typo, most likely)."""
    resumed: bool = False
    """The plan is an unfinished one of the same statement, continued."""

    def per_partition(self) -> Counter[str]:
        return Counter(item.partition for item in self.items)


def _jobs(config: Config, target: WritableStream, request: PushRequest) -> list[Job]:
    return plan_jobs(config, [f"{target.source_name}.{target.stream_name}"], request.partitions)


def _scan(
    store: Store,
    job: Job,
    request: PushRequest,
    held: set[tuple[str, str]],
    seen_names: set[str],
    counts: Counter[str],
) -> Iterator[_Candidate]:
    table = job.table
    width = len(table.partition_columns)
    wanted = {n.split(".")[0].lower() for n in request.where.names} if request.where else set()
    partition_values = tuple(job.partition.values())
    for rank, (identity, data) in enumerate(store.iter_rows(table, partition_values)):
        record = orjson.loads(data)
        names = row_namespace(job, identity, record, data)
        if wanted - seen_names:
            seen_names.update(n.lower() for n in names if n.lower() in wanted)
        if request.where is not None and not request.where(names):
            continue
        counts["matched"] += 1
        key = identity[width:]
        if (job.partition_key, key_text(key)) in held:
            counts["held"] += 1
            continue
        patch = {a.field: _json_value(a.value(names)) for a in request.assignments}
        if isinstance(record, dict) and has_values(record, patch):
            counts["unchanged"] += 1
            continue
        before = {f: field_value(record, f) if isinstance(record, dict) else None for f in patch}
        order = request.order.key(names) if request.order is not None else ()
        yield _Candidate(order, rank, job, key, patch, before)


def _json_value(value: Any) -> Any:
    """A value as the API's JSON will carry it (a numeric column's Decimal included)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _round_robin(lists: Sequence[list[_Candidate]]) -> Iterator[_Candidate]:
    """One candidate of each partition in turn: without an order, a limit spreads evenly."""
    for batch in itertools.zip_longest(*lists):
        yield from (c for c in batch if c is not None)


def _chosen(scans: list[Iterator[_Candidate]], request: PushRequest) -> Iterable[_Candidate]:
    """Every scan is read to its end, so a dry run counts all the rows that match."""
    if request.order is not None:
        if request.limit is not None:
            return heapq.nsmallest(request.limit, itertools.chain(*scans))
        return sorted(itertools.chain(*scans))
    picked = _round_robin([list(scan) for scan in scans])
    return list(itertools.islice(picked, request.limit))


def draft_plan(config: Config, store: Store, request: PushRequest) -> Draft:
    """Select the rows to change and make their items; writes nothing."""
    target = writable_stream(config, request.stream)
    jobs = _jobs(config, target, request)
    held = store.open_outbox_keys(target.source_name, target.stream_name)
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    scans = [_scan(store, job, request, held, seen, counts) for job in jobs]
    chosen = list(_chosen(scans, request))
    plan = PushPlan(
        id=uuid.uuid4().hex,
        fingerprint=fingerprint(target, request),
        source=target.source_name,
        stream=target.stream_name,
        statement=statement_of(request, target.table_name),
        priority=_priority(target, request),
        created_at=_now(),
    )
    items = [
        OutboxItem(plan.id, seq, c.job.partition_key, c.key, c.patch, c.before)
        for seq, c in enumerate(chosen, start=1)
    ]
    draft = Draft(target, plan, items, jobs, counts["matched"], counts["unchanged"])
    draft.held = counts["held"]
    if request.where is not None:
        draft.unseen_names = sorted(
            n for n in request.where.names if n.split(".")[0].lower() not in seen
        )
    return draft


def _priority(target: WritableStream, request: PushRequest) -> str:
    write = target.stream.write
    assert write is not None
    return request.priority or write.priority or target.stream.priority


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unfinished(store: Store, target: WritableStream) -> list[tuple[PushPlan, Counter[str]]]:
    """The stream's plans with items still open, oldest first, each with its open items per
    partition (one count query, not one item list per plan)."""
    open_items: dict[str, Counter[str]] = {}
    for plan_id, partition, status, count in store.outbox_counts():
        if status in OUTBOX_OPEN:
            open_items.setdefault(plan_id, Counter())[partition] += count
    plans = store.push_plans(target.source_name, target.stream_name)
    return [(plan, open_items[plan.id]) for plan in plans if plan.id in open_items]


def plan_condition(plan: PushPlan) -> Condition | None:
    """The condition a plan's rows must still meet when their turn comes."""
    return parse_update(plan.statement).where
