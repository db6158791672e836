"""The change feed for downstream systems: what each run inserted, updated and deleted.

The store records one entry per real change in the same transaction as the
row (see :mod:`syncline.stores.sqlite_changes`); this module reads them back
for people: by run or time, per stream, with the record as now stored, as
JSON lines a downstream system can consume.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from syncline.config import Config
from syncline.errors import ConfigError
from syncline.plan import plan_jobs
from syncline.stores import Change, Store, TableSpec
from syncline.timestamps import parse_iso

__all__ = ["iter_changes"]

_BATCH = 500


def iter_changes(
    config: Config,
    store: Store,
    *,
    since: str | None = None,
    streams: Sequence[str] = (),
    run_id: str | None = None,
    records: bool = True,
) -> Iterator[dict[str, Any]]:
    """Changes in commit order, as JSON-ready dicts.

    ``since``: a run id (changes after that run's) or an ISO time (changes at or
    after it). ``records``: attach each inserted/updated record as stored now
    (``None`` for deletions, and for a record deleted since).
    """
    tables = {(job.source_name, job.stream_name): job.table for job in plan_jobs(config, streams)}
    after_id, since_time = _resolve_since(store, since)
    feed = store.changes(
        after_id=after_id,
        since=since_time,
        run_id=run_id,
        streams=sorted(tables) if streams else (),
    )
    batch: list[Change] = []
    for change in feed:
        batch.append(change)
        if len(batch) >= _BATCH:
            yield from _with_records(store, tables, batch, records)
            batch = []
    yield from _with_records(store, tables, batch, records)


def _resolve_since(store: Store, since: str | None) -> tuple[int, str | None]:
    if since is None:
        return 0, None
    moment = parse_iso(since)
    if moment is not None:
        return 0, moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    last = store.last_change_of(since)
    if last is not None:
        return last, None
    for run in store.last_runs(limit=10_000):
        if run.id == since or run.id.startswith(since):
            return 0, run.ended_at or run.started_at
    raise ConfigError(f"--since {since!r} is neither an ISO time nor a run id in this store")


def _with_records(
    store: Store,
    tables: dict[tuple[str, str], TableSpec],
    batch: list[Change],
    records: bool,
) -> Iterator[dict[str, Any]]:
    found: dict[tuple[str, str, tuple[Any, ...]], Any] = {}
    if records:
        wanted: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for change in batch:
            table = tables.get((change.source, change.stream))
            if change.kind != "delete" and table is not None:
                wanted.setdefault((change.source, change.stream), []).append(
                    _identity(change, table)
                )
        for pair, identities in wanted.items():
            for identity, data in store.fetch_rows(tables[pair], identities).items():
                found[(*pair, identity)] = json.loads(data)
    for change in batch:
        entry: dict[str, Any] = {
            "id": change.id,
            "run_id": change.run_id,
            "source": change.source,
            "stream": change.stream,
            "partition": json.loads(change.partition),
            "key": change.key,
            "kind": change.kind,
            "changed_at": change.changed_at,
        }
        table = tables.get((change.source, change.stream))
        if records:
            entry["record"] = (
                None
                if table is None
                else found.get((change.source, change.stream, _identity(change, table)))
            )
        yield entry


def _identity(change: Change, table: TableSpec) -> tuple[Any, ...]:
    """The row's identity: partition values in the table's column order, then the key."""
    partition = json.loads(change.partition)
    key = change.key if len(table.key_columns) > 1 else [change.key]
    return (*(partition[column] for column in table.partition_columns), *key)
