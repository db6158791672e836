"""Rewriting a table's file: compaction, the snapshot swap, a mode or column change.

Each rewrite runs inside the sidecar's write transaction: the new file is
written and synced under a temporary name, the index is pointed at the new
offsets, and :meth:`.jsonl_files.Files.replace` swaps it in, committed with
the index. A reader of the file sees the old one or the new one, whole; a
kill at any moment leaves the old file and index, or the new file and index.

Two ways to rewrite:

* from the index (:func:`_compose`): each identity's newest line, found where
  the index says; what compaction, a snapshot's new partition block and a
  mode change need;
* line by line (:func:`_rerender_file`): every line kept, its typed columns
  computed again; what a new column declaration needs (the history stays).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from syncline.stores.base import TableSpec
from syncline.stores.jsonl_files import FileRow, Files, Journal
from syncline.stores.jsonl_index import (
    Placement,
    Registered,
    Remap,
    identity_order,
    located,
    partition_key,
    partition_where,
)
from syncline.stores.jsonl_io import TempFile, iter_lines, read_spans
from syncline.stores.jsonl_lines import LineFormat, feed_line, head_of
from syncline.stores.jsonl_names import FEED_FILE, pass_name
from syncline.stores.sql import quote_identifier as q

__all__ = ["Compacted", "Rewrite", "change_mode", "compact_feed", "compact_table", "refill",
           "swap_partition"]  # fmt: skip


_OPEN_SNAPSHOT = "a snapshot pass is in progress; compact after it completes"


@dataclass(frozen=True, slots=True)
class Compacted:
    """What a compaction did to one file."""

    file: str
    table: str | None
    lines_before: int
    lines_after: int
    bytes_before: int
    bytes_after: int
    skipped: str | None = None
    """Why the file was left as it is."""


@dataclass(slots=True)
class Rewrite:
    db: sqlite3.Connection
    files: Files
    journal: Journal
    found: Registered
    table: TableSpec
    """The table as declared now (its typed columns are what lines get)."""


@dataclass(slots=True)
class _Sources:
    """The open files lines are read from: the table's file and its pass files."""

    rewrite: Rewrite
    fds: dict[str, int] = field(default_factory=dict)

    def read(self, partition: Sequence[Any], in_pass: bool, offset: int, length: int) -> bytes:
        found = self.rewrite.found
        file = pass_name(found.file, partition_key(partition)) if in_pass else found.file
        if file not in self.fds:
            self.rewrite.files.check(file)
            self.fds[file] = os.open(self.rewrite.files.path(file), os.O_RDONLY)
        return read_spans(self.fds[file], [(offset, length)])[0]

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _compose(
    rw: Rewrite,
    temp: TempFile,
    where: str,
    args: Sequence[Any],
    order: str,
    *,
    rerender: bool,
) -> Placement:
    """Append the newest line of each index row matching ``where`` to ``temp``, in ``order``
    (``rerender``: typed columns computed again, and a row the index says is deleted gets
    its deletion stamped on its line). Returns where they went, to apply to the index."""
    index = rw.found.index
    width, parts = len(index.identity_columns), len(index.partition_columns)
    fmt = LineFormat(rw.table)
    placement = Placement(rw.db, index)
    sources = _Sources(rw)
    try:
        for row in located(rw.db, index, where, args, order):
            identity = row[:width]
            offset, length, in_pass, updated, synced, deleted = row[width:]
            line = sources.read(identity[:parts], bool(in_pass), offset, length)
            if rerender:
                line = fmt.rerender(line, None if deleted is None else (updated, synced, deleted))
            placement.add(identity, temp.write(line), len(line))
    finally:
        sources.close()
    return placement


def _rerender_file(rw: Rewrite, source: FileRow, in_pass: bool) -> FileRow:
    fmt = LineFormat(rw.table)
    temp = TempFile(rw.files.root, source.file, rw.journal.undo)
    remap = Remap(rw.db)
    for offset, line in iter_lines(rw.files.path(source.file), source.bytes):
        new = fmt.rerender(line)
        remap.add(offset, temp.write(new), len(new))
    temp.finish()
    partition = orjson.loads(source.partition) if in_pass and source.partition else []
    remap.apply(rw.found.index, in_pass, partition)
    return rw.files.replace(source, temp, rw.journal)


def _passes(rw: Rewrite) -> list[FileRow]:
    return [row for row in rw.files.rows(rw.found.name) if row.kind == "pass"]


def _forget_lines(rw: Rewrite, where: str, args: Sequence[Any]) -> None:
    rw.db.execute(
        f"UPDATE {q(rw.found.index.name)} SET _offset = NULL, _length = NULL, _pass = 0 "
        f"WHERE {where}",
        args,
    )


def swap_partition(rw: Rewrite, partition: Sequence[Any]) -> None:
    """A snapshot partition's pass is complete: the table's file becomes the other
    partitions' lines as they are, then this pass's live records, one line each."""
    index = rw.found.index
    stream = rw.files.check(rw.found.file)
    temp = TempFile(rw.files.root, rw.found.file, rw.journal.undo)
    names = rw.table.partition_columns
    if names:
        remap = Remap(rw.db)
        for offset, line in iter_lines(rw.files.path(stream.file), stream.bytes):
            head = head_of(line)
            if tuple(head.get(name) for name in names) != tuple(partition):
                remap.add(offset, temp.write(line), len(line))
        remap.apply(index, in_pass=False)  # before the block: its offsets are all new
    where, args = partition_where(index, partition)
    placement = _compose(rw, temp, f"{where} AND _deleted_at IS NULL", args,
                         identity_order(index), rerender=False)  # fmt: skip
    temp.finish()
    placement.apply()
    _forget_lines(rw, f"{where} AND _deleted_at IS NOT NULL", args)
    rw.files.replace(stream, temp, rw.journal)
    done = rw.files.row(pass_name(rw.found.file, partition_key(partition)))
    if done is not None:
        rw.files.drop(done, rw.journal)


def compact_table(rw: Rewrite) -> Compacted:
    """One line per identity, its newest (soft-deleted ones kept, hard-deleted ones gone),
    typed columns computed again, in the order they were last changed."""
    before = rw.files.check(rw.found.file)
    if rw.found.mode == "snapshot":
        if _passes(rw):
            return Compacted(before.file, rw.found.name, before.lines, before.lines,
                             before.bytes, before.bytes, _OPEN_SNAPSHOT)  # fmt: skip
        after = _rerender_file(rw, before, in_pass=False)  # already one line per record
    else:
        temp = TempFile(rw.files.root, before.file, rw.journal.undo)
        placement = _compose(rw, temp, "_offset IS NOT NULL", (), "_pass, _offset",
                             rerender=True)  # fmt: skip
        temp.finish()
        placement.apply()
        after = rw.files.replace(before, temp, rw.journal)
    return Compacted(before.file, rw.found.name, before.lines, after.lines, before.bytes,
                     after.bytes)  # fmt: skip


def change_mode(rw: Rewrite, mode: str) -> None:
    """Bring the file to ``mode``'s layout: a snapshot file holds one line per live record;
    a merge file one line per identity (deletions stamped), pass files folded in."""
    before = rw.files.check(rw.found.file)
    temp = TempFile(rw.files.root, before.file, rw.journal.undo)
    snapshot = mode == "snapshot"
    where = "_offset IS NOT NULL" + (" AND _deleted_at IS NULL" if snapshot else "")
    order = identity_order(rw.found.index) if snapshot else "_pass, _offset"
    placement = _compose(rw, temp, where, (), order, rerender=True)
    temp.finish()
    placement.apply()
    if snapshot:
        _forget_lines(rw, "_deleted_at IS NOT NULL", ())
    rw.files.replace(before, temp, rw.journal)
    for done in _passes(rw):
        rw.files.drop(done, rw.journal)


def refill(rw: Rewrite) -> None:
    """A new typed-column declaration: every line of the table's files gets it."""
    for row in [rw.files.check(rw.found.file), *(rw.files.check(p.file) for p in _passes(rw))]:
        if row.lines:
            _rerender_file(rw, row, in_pass=row.kind == "pass")


def compact_feed(db: sqlite3.Connection, files: Files, journal: Journal) -> Compacted:
    """The feed file down to the entries the sidecar still keeps (after pruning)."""
    before = files.check(FEED_FILE)
    temp = TempFile(files.root, FEED_FILE, journal.undo)
    for entry in db.execute(
        "SELECT id, run_id, source, stream, partition, kind, keys, changed_at "
        "FROM _syncline_changes ORDER BY id"
    ):
        temp.write(feed_line(entry))
    temp.finish()
    after = files.replace(before, temp, journal)
    return Compacted(FEED_FILE, None, before.lines, after.lines, before.bytes, after.bytes)
