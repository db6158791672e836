"""The JSON lines store: ``store: jsonl:///dir``, one append-only file per table.

The directory (created 0700, every file 0600)::

    <table>.jsonl     one line per row version, appended (see :mod:`.jsonl_lines`)
    _changes.jsonl    the change feed, one line per entry
    manifest.json     committed bytes of each file, for readers that do not read SQLite
    _syncline.db      the sidecar (SQLite): checkpoints, call ledger, leases, runs,
                      rejects, the change feed, and per table an index of its rows

Why a sidecar: everything that is not row data (and the index that finds
each identity's newest line) needs transactions, and the SQLite store has
them already; this store is that store with the rows moved into files (it
inherits the bookkeeping, so none of it is written twice).

How a page commits, all under the sidecar's write transaction (and the
directory's lock, which every writer of files holds): the files
are put back to their committed size (a torn tail is truncated), the page's
lines are appended and synced, then the index, the feed, the checkpoint and
the files' new sizes are committed together (see :mod:`.jsonl_files`). A
crash before the commit leaves bytes past the committed size, removed next
time; after it, everything. A file is never behind its manifest.

``mode: snapshot`` tables write a pass's lines to a pass file and swap the
table's file when the pass completes (:mod:`.jsonl_rewrite`); ``compact``
rewrites files to one line per identity.

The push outbox lives in the sidecar, as in the SQLite store. A settled item
whose record came back commits like a page without a checkpoint (its lines,
then the index, feed, item and lease together); one without a record changes
no file, so it is the SQLite store's settle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from syncline.errors import ConfigError, StoreError
from syncline.failpoints import failpoint
from syncline.stores import outbox_sql
from syncline.stores.base import (
    Lease,
    OutboxItem,
    PageChanges,
    Reject,
    Row,
    State,
    StateKey,
    Sweep,
    TableSpec,
)
from syncline.stores.columns import check_names, column_changes, declared
from syncline.stores.jsonl_files import FILES_SCHEMA, Files, Journal
from syncline.stores.jsonl_index import (
    TABLES_SCHEMA,
    Registered,
    check_identity,
    live,
    lookup,
    partition_key,
    register,
    registered,
    save,
)
from syncline.stores.jsonl_io import directory_lock, read_spans
from syncline.stores.jsonl_lines import data_of
from syncline.stores.jsonl_names import FEED_FILE, SIDECAR_FILE, file_name_for, pass_name
from syncline.stores.jsonl_page import PageContext, apply_page
from syncline.stores.jsonl_rewrite import (
    Compacted,
    Rewrite,
    change_mode,
    compact_feed,
    compact_table,
    refill,
    swap_partition,
)
from syncline.stores.sqlite import SQLiteStore

__all__ = ["Compacted", "JsonlStore", "lease_now"]

_META = ("_data", "_updated_at", "_synced_at", "_deleted_at", "_hash")
log = logging.getLogger("syncline")
_T = TypeVar("_T")
Identity = tuple[Any, ...]
Placed = tuple[Identity, int, int, bool]
"""Where an identity's newest line is: offset, length, in its partition's pass file."""

_READ_ATTEMPTS = 50
"""Reads retried while another process is swapping a file in (each 20 ms apart)."""
ROW_CHUNK = 1000
"""Rows :meth:`JsonlStore.iter_rows` reads per read snapshot."""


def lease_now() -> float:
    """Wall-clock seconds: leases are compared across processes, so not a monotonic clock."""
    return time.time()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _root(url: str | Path) -> Path:
    if isinstance(url, Path) or not url.startswith("jsonl:"):
        return Path(url)
    path = url.removeprefix("jsonl:///")
    if path == url or not path:
        raise ConfigError(
            f"a JSON lines store is jsonl:///relative/dir or jsonl:////absolute/dir, not {url!r}",
            key="store",
        )
    return Path(path)


def _check_names(table: TableSpec) -> None:
    for name in (table.name, *table.identity_columns, *(c.name for c in table.columns)):
        if "\x00" in name:
            raise StoreError(f"name {name!r} of table {table.name!r} contains a NUL byte")
    check_names(table, _META, fold=False)  # JSON keys are case-sensitive


class JsonlStore(SQLiteStore):
    """A :class:`~syncline.stores.base.Store` on a directory of JSON lines files."""

    def __init__(self, url: str | Path, *, busy_timeout: float = 10.0) -> None:
        root = _root(url)
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"cannot create the JSON lines store {root}: {exc.strerror}") from None
        super().__init__(root / SIDECAR_FILE, busy_timeout=busy_timeout)
        self.root = root
        self._busy_timeout = busy_timeout
        self._dir_fd = -1
        try:
            self._dir_fd = os.open(root, os.O_RDONLY)
            self._files = Files(self._db, root, self._dir_fd)
            with self._change(f"opening {root}") as journal:
                for statement in (FILES_SCHEMA, TABLES_SCHEMA):
                    self._db.execute(statement)
                if self._files.row(FEED_FILE) is None:
                    self._files.create(FEED_FILE, "feed", None, None, journal)
                self._files.recover()
        except BaseException:
            self.close()
            raise

    def _clock(self) -> float:
        return lease_now()

    @contextlib.contextmanager
    def _change(self, what: str) -> Iterator[Journal]:
        """One write transaction over the sidecar and the files, under the directory lock:
        committed together (rewritten files renamed into place after the commit), or the
        files' changes undone before the rollback lets another writer in."""
        with self._lock, directory_lock(self._dir_fd, self._busy_timeout):
            journal = Journal()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield journal
                self._db.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                journal.rolled_back()
                self._rollback()
                raise StoreError(f"{what} failed: {exc}") from None
            except BaseException:
                journal.rolled_back()
                self._rollback()
                raise
            finally:
                self._files.settle()
            if journal.renames:
                self._durable()
            failpoint("store.after_commit")
            try:
                journal.committed(self._dir_fd)
            except OSError as exc:  # committed all the same: the next writer's check finishes it
                log.warning("%s: after a commit, %s", self.root, exc)
            self._files.publish()

    def _durable(self) -> None:
        """Make the last commit survive a power cut before a rename depends on it (the
        sidecar commits with ``synchronous=NORMAL``, which syncs its WAL only at checkpoints)."""
        wal = Path(f"{self.path}-wal")
        with contextlib.suppress(FileNotFoundError):  # checkpointed (and synced) meanwhile
            fd = os.open(wal, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- tables ---------------------------------------------------------------

    def ensure_table(self, table: TableSpec) -> None:
        _check_names(table)
        with self._change(f"creating table {table.name} in {self.root}") as journal:
            self._ensure(table, journal)

    def _ensure(self, table: TableSpec, journal: Journal) -> Registered:
        """Register a new table, or bring a known one to ``table``'s mode and columns."""
        known = registered(self._db, table.name)
        columns = declared(table)
        if not known:
            file = file_name_for(table.name, [row.file for row in self._files.rows()])
            self._files.create(file, "stream", table.name, None, journal)
            return register(self._db, table, file, columns)
        found = known[0]
        check_identity(found, table)
        rewrite = Rewrite(self._db, self._files, journal, found, table)
        if found.mode != table.mode:
            change_mode(rewrite, table.mode)
        else:
            changes = column_changes(found.columns, table)
            if changes.add or changes.drop:
                refill(rewrite)
        now = dataclasses.replace(
            found, mode=table.mode, on_delete=table.on_delete, columns=columns
        )
        if now != found:
            save(self._db, now)
        return now

    def _registered(self, table: TableSpec, journal: Journal) -> Registered:
        known = registered(self._db, table.name)
        return known[0] if known else self._ensure(table, journal)

    # -- pages ----------------------------------------------------------------

    def commit_page(
        self,
        table: TableSpec,
        rows: Sequence[Row],
        state: State,
        *,
        lease: Lease | None = None,
        rejects: Sequence[Reject] = (),
        deletes: Sequence[Row] = (),
        sweep: Sweep | None = None,
    ) -> PageChanges:
        synced_at = _now()
        with self._change(f"writing {table.name} to {self.root}") as journal:
            if lease is not None:
                self._extend(lease, lease.ttl)  # a zombie writes nothing, not even bytes
            changes = self._write_rows(
                journal, table, state, rows, deletes, rejects, sweep, synced_at
            )
            self._write_state(state)
            failpoint("store.before_commit")
        return changes

    def _write_rows(
        self,
        journal: Journal,
        table: TableSpec,
        state: State,
        rows: Sequence[Row],
        deletes: Sequence[Row],
        rejects: Sequence[Reject],
        sweep: Sweep | None,
        synced_at: str,
    ) -> PageChanges:
        """Inside :meth:`_change`: the lines appended and synced, then the index, the feed and
        the rejects (with the records no line can hold) in the sidecar; a completed snapshot
        pass swapped in. Everything of a page but its checkpoint: one path for a page and a
        settled push item, so a row is stored the same whoever writes it."""
        found = self._registered(table, journal)
        self._files.check(found.file)
        ctx = PageContext(self._db, self._files, journal, found, table, synced_at)
        changes, unwritable = apply_page(ctx, rows, deletes, state, sweep)
        failpoint("store.rows_written")
        if sweep is not None and found.mode == "snapshot":
            swap_partition(Rewrite(self._db, self._files, journal, found, table),
                           sweep.partition)  # fmt: skip
            failpoint("store.file_swapped")
        self._reject(state, [*rejects, *unwritable], synced_at)
        return changes

    def settle_outbox(
        self,
        table: TableSpec,
        items: Sequence[OutboxItem],
        rows: Sequence[Row] = (),
        *,
        key: StateKey | None = None,
        run_id: str | None = None,
        lease: Lease | None = None,
    ) -> None:
        if not rows:  # no line to write: the sidecar alone (no directory lock, no manifest)
            super().settle_outbox(table, items, key=key, run_id=run_id, lease=lease)
            return
        state = outbox_sql.feed_state(key, run_id)
        now = _now()
        with self._change(f"settling push items of {table.name} in {self.root}") as journal:
            if lease is not None:
                self._extend(lease, lease.ttl)  # a zombie writes nothing, not even bytes
            outbox_sql.save_items(self._db, items, now)
            self._write_rows(journal, table, state, rows, (), (), None, now)
            failpoint("store.outbox_settled")

    def _reject(self, state: State, rejects: Sequence[Reject], at: str) -> None:
        key = state.key
        self._db.executemany(
            "INSERT INTO _syncline_rejects (source, stream, partition, run_id, reason, record, "
            "rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(key.source, key.stream, key.partition, state.run_id, r.reason, r.record, at)
             for r in rejects],
        )  # fmt: skip

    def count_moved(self, table: TableSpec, rows: Sequence[Row], since: str) -> int:
        with self._lock:
            known = registered(self._db, table.name)
        return super().count_moved(known[0].index, rows, since) if known else 0

    def count_rows(self, table: str, partition_columns: dict[str, Any]) -> int | None:
        with self._lock:
            known = registered(self._db, table)
        if not known or not set(partition_columns) <= set(known[0].partition_columns):
            return None
        index, names = known[0].index, known[0].partition_columns
        mapped = {
            index.partition_columns[names.index(name)]: value
            for name, value in partition_columns.items()
        }
        return super().count_rows(index.name, mapped)

    # -- reading lines back -----------------------------------------------------

    def fetch_rows(
        self, table: TableSpec, identities: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], str]:
        return self._retrying(table, partial(self._read_rows, table, identities))

    def iter_rows(
        self, table: TableSpec, partition: Sequence[Any]
    ) -> Iterator[tuple[tuple[Any, ...], str]]:
        """The live rows from their newest lines, a range of the index per read snapshot."""
        after: Identity | None = None
        while True:
            found, after = self._retrying(table, partial(self._live_rows, table, partition, after))
            yield from found.items()
            if after is None:
                return

    def _retrying(self, table: TableSpec, read: Callable[[], _T | None]) -> _T:
        """``read()`` under the lock, again while another process swaps a file in (``None``)."""
        for _ in range(_READ_ATTEMPTS):
            with self._lock:
                found = read()
            if found is not None:
                return found
            time.sleep(0.02)
        raise StoreError(f"{self.root}: the file of {table.name} is being replaced; try again")

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read snapshot of the sidecar: the index and the manifest agree throughout."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _read_rows(
        self, table: TableSpec, identities: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], str] | None:
        """In one read snapshot of the sidecar: the live identities' newest lines (``None``:
        a file was swapped since the snapshot, read again)."""
        with self._snapshot():
            known = registered(self._db, table.name)
            if not known:
                return {}
            found = lookup(self._db, known[0].index, identities)
            placed = [
                (identity, where.offset, where.length, where.in_pass)
                for identity, where in found.items()
                if where.offset is not None and where.length is not None
                if not where.stored.deleted
            ]
            return self._read_placed(known[0], placed)

    def _live_rows(
        self, table: TableSpec, partition: Sequence[Any], after: Identity | None
    ) -> tuple[dict[Identity, str], Identity | None] | None:
        """In one read snapshot: up to :data:`ROW_CHUNK` live rows of the partition after the
        identity ``after``, and the identity to read on from (``None``: these were the last);
        ``None``: a file was swapped since the snapshot, read again."""
        with self._snapshot():
            known = registered(self._db, table.name)
            if not known:
                return {}, None
            placed = live(self._db, known[0].index, partition, after, ROW_CHUNK)
            found = self._read_placed(known[0], placed)
        if found is None:
            return None
        return found, placed[-1][0] if len(placed) == ROW_CHUNK else None

    def _read_placed(
        self, found: Registered, placed: Iterable[Placed]
    ) -> dict[Identity, str] | None:
        """The records on the lines ``placed`` names, in the table's file or a partition's
        pass file (``None``: a file was swapped since the snapshot)."""
        parts = len(found.partition_columns)
        spans: dict[str, list[tuple[Identity, int, int]]] = {}
        for identity, offset, length, in_pass in placed:
            file = pass_name(found.file, partition_key(identity[:parts])) if in_pass else found.file
            spans.setdefault(file, []).append((identity, offset, length))
        return self._read_spans(spans)

    def _read_spans(
        self, spans: dict[str, list[tuple[tuple[Any, ...], int, int]]]
    ) -> dict[tuple[Any, ...], str] | None:
        found: dict[tuple[Any, ...], str] = {}
        for file, wanted in spans.items():
            row = self._files.row(file)
            fd = None if row is None else self._files.open_committed(row)
            if fd is None:
                return None
            try:
                lines = read_spans(fd, [(offset, length) for _, offset, length in wanted])
            finally:
                os.close(fd)
            for (identity, _, _), line in zip(wanted, lines, strict=True):
                found[identity] = data_of(line).decode("utf-8")
        return found

    # -- compaction -------------------------------------------------------------

    def compact(
        self, tables: Sequence[TableSpec] = (), *, everything: bool = False
    ) -> list[Compacted]:
        """Rewrite table files to one line per identity (newest wins, hard-deleted identities
        dropped, typed columns as ``tables`` declare them), one transaction per file.

        ``everything``: also every other table the store knows (as last declared) and
        the feed file (down to the entries :meth:`prune_changes` left). A table never
        synced is left out.
        """
        with self._lock:
            known = {found.name: found for found in registered(self._db)}
        wanted = {table.name: table for table in tables}
        if everything:
            wanted |= {name: found.spec() for name, found in known.items() if name not in wanted}
        done = []
        for table in wanted.values():
            if table.name not in known:
                done.append(Compacted("", table.name, 0, 0, 0, 0, "not synced yet"))
                continue
            self.ensure_table(table)  # its own transaction: a file is rewritten once in one
            with self._change(f"compacting {table.name} in {self.root}") as journal:
                found = registered(self._db, table.name)[0]
                done.append(compact_table(Rewrite(self._db, self._files, journal, found, table)))
                failpoint("store.file_swapped")
        if everything:
            with self._change(f"compacting the change feed in {self.root}") as journal:
                done.append(compact_feed(self._db, self._files, journal))
                failpoint("store.file_swapped")
        return done

    def close(self) -> None:
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
        with contextlib.suppress(sqlite3.Error):
            super().close()
