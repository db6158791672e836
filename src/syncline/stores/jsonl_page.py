"""One page into a JSON lines table: lines appended for real changes only, the index and
the change feed updated, all inside the page's sidecar transaction.

The classification (insert, update, unchanged, older copy, deleted) is the
shared :func:`~syncline.stores.page_plan.plan_page`, so the feed and
newest-wins mean exactly what they mean in SQLite. What is JSON-lines
specific: each identity the page changed gets one line, its final version
(a deletion is a line too, with ``_deleted_at`` set, so a reader of the
append-only file learns of it); an identity read again unchanged gets none,
only its ``_synced_at`` in the index moves (the sweep reads it). A snapshot
table writes its lines to the partition's pass file instead (see
:mod:`.jsonl_snapshot`), and a deletion there needs no line: the next
snapshot simply lacks the record.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from syncline.errors import StoreError
from syncline.stores.base import PageChanges, Reject, Row, State, Sweep, TableSpec
from syncline.stores.columns import typed_rows, typed_values
from syncline.stores.jsonl_files import Files, Journal
from syncline.stores.jsonl_index import (
    Found,
    IndexEntry,
    Registered,
    delete,
    lookup,
    partition_key,
    touch,
    unseen,
    upsert,
)
from syncline.stores.jsonl_io import read_spans
from syncline.stores.jsonl_lines import (
    LineFormat,
    data_of,
    feed_line,
    quarantined,
    unwritable,
)
from syncline.stores.jsonl_names import FEED_FILE, pass_name
from syncline.stores.page_plan import PagePlan, plan_page
from syncline.stores.sqlite_changes import record_feed

__all__ = ["PageContext", "apply_page"]

Identity = tuple[Any, ...]


@dataclass(slots=True)
class PageContext:
    db: sqlite3.Connection
    files: Files
    journal: Journal
    found: Registered
    table: TableSpec
    synced_at: str
    checked: dict[str, bytes] = field(default_factory=dict)
    """Each record's text as it goes into a line (see :func:`.jsonl_lines.unwritable`)."""


@dataclass(slots=True)
class _Lines:
    """Lines to append per file, each with the index entry it becomes."""

    by_file: dict[str, list[tuple[bytes, IndexEntry]]] = field(default_factory=dict)

    def add(self, file: str, line: bytes, entry: IndexEntry) -> None:
        self.by_file.setdefault(file, []).append((line, entry))


def _same(stored: Any, new: Any) -> bool:
    return type(stored) is type(new) and stored == new


def apply_page(
    ctx: PageContext, rows: Sequence[Row], deletes: Sequence[Row], state: State, sweep: Sweep | None
) -> tuple[PageChanges, list[Reject]]:
    """Write the page; what it changed, and the records quarantined because no line can hold
    them (only records that get a line are checked: a re-read, unchanged, costs nothing)."""
    table, index = ctx.table, ctx.found.index
    width = len(table.identity_columns)
    found = lookup(ctx.db, index, (row[:width] for row in (*rows, *deletes)))
    original = {identity: entry.stored for identity, entry in found.items()}
    plan = plan_page(width, rows, deletes, dict(original))
    finals = {row[:width]: (row, digest) for row, digest in plan.last_writes(width)}
    if sweep is not None:
        _sweep(ctx, plan, sweep, set(finals) | set(plan.touched))
        missing = [identity for _, identity in plan.gone if identity not in found]
        found.update(lookup(ctx.db, index, missing))
    gone = {identity: updated for updated, identity in plan.gone}
    seen_only = [i for i in plan.touched if i not in finals and i not in gone]
    changed: list[tuple[Row, str]] = []
    for identity, (row, digest) in finals.items():
        before = original.get(identity)
        if identity in gone:
            continue
        if (before is not None and not before.deleted and before.hash == digest
                and _same(before.updated_at, row[width + 1])):  # fmt: skip
            seen_only.append(identity)
        else:
            changed.append((row, digest))
    lined = [row for row, _ in changed] + [finals[i][0] for i in gone if i in finals]
    bad = unwritable(lined, width, ctx.checked)
    if bad:  # rare: plan the page again without them, before anything is written
        skip = {id(row) for row in bad}
        changes, rejects = apply_page(
            ctx, [row for row in rows if id(row) not in skip], deletes, state, sweep
        )
        return changes, quarantined(bad, width) + rejects
    lines = _Lines()
    _live_lines(ctx, changed, lines)
    removed = _deleted_lines(ctx, gone, finals, found, lines)
    _write(ctx, lines)
    touch(ctx.db, index, seen_only, ctx.synced_at)
    delete(ctx.db, index, removed)
    _feed(ctx, state, plan)
    return plan.changes(), []


def _sweep(ctx: PageContext, plan: PagePlan, sweep: Sweep, page: set[Identity]) -> None:
    """The live rows of the partition the complete pass did not see, as SQLite finds them
    (it looks after writing the page: the page's own rows count as seen now)."""
    found = [i for i in unseen(ctx.db, ctx.found.index, sweep) if i not in page]
    if ctx.synced_at < sweep.seen_since:  # our clock behind the pass start, as SQLite would
        parts = len(sweep.partition)
        found += [i for i in page if i[:parts] == tuple(sweep.partition)]
    plan.sweep(found)


def _target(ctx: PageContext, identity: Identity) -> tuple[str, bool]:
    if ctx.found.mode != "snapshot":
        return ctx.found.file, False
    parts = len(ctx.table.partition_columns)
    return pass_name(ctx.found.file, partition_key(identity[:parts])), True


def _live_lines(ctx: PageContext, changed: list[tuple[Row, str]], lines: _Lines) -> None:
    width = len(ctx.table.identity_columns)
    fmt = LineFormat(ctx.table)
    typed = typed_rows(ctx.table, [row for row, _ in changed])
    for (row, digest), values in zip(changed, typed, strict=True):
        identity = row[:width]
        file, in_pass = _target(ctx, identity)
        line = fmt.render(identity, ctx.checked[row[width]], row[width + 1], ctx.synced_at,
                          None, values)  # fmt: skip
        entry = IndexEntry(identity, row[width + 1], ctx.synced_at, digest, None, None,
                           len(line), in_pass)  # fmt: skip
        lines.add(file, line, entry)


def _deleted_lines(
    ctx: PageContext,
    gone: dict[Identity, Any],
    finals: dict[Identity, tuple[Row, str]],
    found: dict[Identity, Found],
    lines: _Lines,
) -> list[Identity]:
    """Soft deletions keep their index row (marked); hard ones lose it. A merge table gets a
    line either way, the record as last stored with ``_deleted_at`` set."""
    width = len(ctx.table.identity_columns)
    hard = ctx.table.on_delete == "hard"
    snapshot = ctx.found.mode == "snapshot"
    stored = {} if snapshot else _stored_data(ctx, [i for i in gone if i not in finals], found)
    fmt = LineFormat(ctx.table)
    removed: list[Identity] = []
    marked: list[IndexEntry] = []
    for identity, tombstone in gone.items():
        final, before = finals.get(identity), found.get(identity)
        digest: str | None
        if final is not None:
            digest, updated, data = final[1], final[0][width + 1], ctx.checked[final[0][width]]
        elif before is not None:  # a deletion without a write is of a stored row
            digest, updated = before.stored.hash, before.stored.updated_at
            data = b"" if snapshot else stored[identity]
        else:
            raise StoreError(f"{ctx.table.name}: deleting {identity!r}, which is not stored")
        updated = updated if tombstone is None else tombstone
        if hard:
            removed.append(identity)
        if snapshot:
            if not hard:
                where = (None, None, False) if before is None else (before.offset, before.length,
                                                                   before.in_pass)  # fmt: skip
                marked.append(IndexEntry(identity, updated, ctx.synced_at, digest,
                                         ctx.synced_at, *where))  # fmt: skip
            continue
        typed = typed_values(ctx.table, data.decode("utf-8")) if ctx.table.columns else ()
        line = fmt.render(identity, data, updated, ctx.synced_at, ctx.synced_at, typed)
        entry = IndexEntry(identity, updated, ctx.synced_at, digest, ctx.synced_at, None,
                           len(line), False)  # fmt: skip
        lines.add(ctx.found.file, line, entry)
    upsert(ctx.db, ctx.found.index, marked)
    return removed


def _stored_data(
    ctx: PageContext, identities: list[Identity], found: dict[Identity, Found]
) -> dict[Identity, bytes]:
    """The stored record of each identity, read from its newest line in the table's file."""
    spans = [(found[i].offset, found[i].length) for i in identities]
    if not identities:
        return {}
    fd = os.open(ctx.files.path(ctx.found.file), os.O_RDONLY)
    try:
        read = read_spans(fd, [(int(o or 0), int(n or 0)) for o, n in spans])
    finally:
        os.close(fd)
    return {identity: data_of(line) for identity, line in zip(identities, read, strict=True)}


def _write(ctx: PageContext, lines: _Lines) -> None:
    """Append each file's lines, then index them where they landed."""
    entries: list[IndexEntry] = []
    hard = ctx.table.on_delete == "hard"
    for file, pending in lines.by_file.items():
        row = ctx.files.row(file)
        if row is None:  # the first line of a pass
            parts = len(ctx.table.partition_columns)
            key = partition_key(pending[0][1].identity[:parts])
            row = ctx.files.create(file, "pass", ctx.table.name, key, ctx.journal)
        else:
            row = ctx.files.check(file)
        offset = row.bytes
        for line, entry in pending:
            if not (hard and entry.deleted_at is not None):
                entries.append(IndexEntry(entry.identity, entry.updated_at, entry.synced_at,
                                          entry.hash, entry.deleted_at, offset, entry.length,
                                          entry.in_pass))  # fmt: skip
            offset += len(line)
        ctx.files.append(row, b"".join(line for line, _ in pending), len(pending), ctx.journal)
    upsert(ctx.db, ctx.found.index, entries)


def _feed(ctx: PageContext, state: State, plan: PagePlan) -> None:
    """The page's feed entries, in the sidecar (what ``changes()`` reads) and as lines."""
    if not any(plan.feed.values()):
        return
    last = ctx.db.execute("SELECT coalesce(max(id), 0) FROM _syncline_changes").fetchone()[0]
    record_feed(ctx.db, ctx.table, state, plan.feed, ctx.synced_at)
    entries = ctx.db.execute(
        "SELECT id, run_id, source, stream, partition, kind, keys, changed_at "
        "FROM _syncline_changes WHERE id > ? ORDER BY id",
        (last,),
    ).fetchall()
    row = ctx.files.check(FEED_FILE)
    ctx.files.append(row, b"".join(feed_line(e) for e in entries), len(entries), ctx.journal)
