"""The data files of a JSON lines store and their manifest, kept in step with the sidecar.

The manifest (table ``_syncline_jsonl_files`` of the sidecar) holds, for each
file, the bytes and lines committed, the file's inode and a generation that
grows whenever the file is replaced. Every change happens under the
sidecar's write transaction (``BEGIN IMMEDIATE``, which also serialises
processes sharing the directory), in this order:

* :meth:`Files.check` first puts the file back to what the manifest says:
  bytes past the committed size are a torn or uncommitted write (truncated,
  with a warning); fewer bytes, or a missing file, were cut by someone else
  (:class:`StoreError`, never silently continued).
* :meth:`Files.append` writes lines at the committed size and syncs them
  to disk before the transaction commits, so the file is never behind the
  manifest, even after a power cut (at worst ahead: truncated next time).
* :meth:`Files.replace` swaps in a rewritten file: written and synced under
  a temporary name, the manifest records its inode, and only once that is
  committed (and durable) is it renamed over the file. Readers of the path
  see the old file or the new one, whole, and never one that was not
  committed. A crash between the commit and the rename is finished by the
  next :meth:`Files.check` (the manifest names the inode the temporary file
  holds); a crash before the commit leaves a stale temporary file, removed.

Writers that touch files also hold an exclusive ``flock`` on the directory
for the whole transaction, the rename included (the sidecar's lock ends at
the commit): no writer ever sees a swap half done.

A :class:`Journal` collects what undoes the file changes if the transaction
fails in this process, and what to clean once it has committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from syncline.errors import StoreError
from syncline.stores.jsonl_io import TempFile, sync_data, write_all
from syncline.stores.jsonl_names import MANIFEST_FILE, is_working_file, temp_name

__all__ = ["FILES_SCHEMA", "FileRow", "Files", "Journal"]

FILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS _syncline_jsonl_files (
    file TEXT PRIMARY KEY, kind TEXT NOT NULL, table_name TEXT, partition TEXT,
    bytes INTEGER NOT NULL, lines INTEGER NOT NULL, generation INTEGER NOT NULL,
    inode INTEGER NOT NULL
)
"""
_COLUMNS = "file, kind, table_name, partition, bytes, lines, generation, inode"

log = logging.getLogger("syncline")


@dataclass(frozen=True, slots=True)
class FileRow:
    file: str
    kind: str
    """``stream`` (a table's file), ``pass`` (a snapshot pass in progress) or ``feed``."""
    table: str | None
    partition: str | None
    bytes: int
    lines: int
    generation: int
    inode: int


@dataclass(slots=True)
class Journal:
    """Undo steps for this process if the transaction fails; cleanups once it committed."""

    undo: list[Callable[[], None]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)
    renames: list[tuple[Path, Path]] = field(default_factory=list)
    """Rewritten files to rename into place once the transaction is committed."""

    def rolled_back(self) -> None:
        for step in reversed(self.undo):
            try:
                step()
            except OSError as exc:  # the next check() repairs it from the manifest
                log.warning("could not undo a file change after a failed commit: %s", exc)

    def committed(self, dir_fd: int) -> None:
        for temp, path in self.renames:
            with contextlib.suppress(FileNotFoundError):  # already rolled forward
                os.replace(temp, path)
        if self.renames:
            os.fsync(dir_fd)
        for step in self.after:
            with contextlib.suppress(FileNotFoundError):
                step()


class Files:
    """The manifest rows and the files they describe, inside the caller's transaction."""

    def __init__(self, db: sqlite3.Connection, root: Path, dir_fd: int) -> None:
        self.db = db
        self.root = root
        self.dir_fd = dir_fd
        self._replaced: set[str] = set()
        """Files rewritten in the open transaction (renamed only after its commit)."""

    def settle(self) -> None:
        """The transaction ended: its rewrites are renamed, or discarded."""
        self._replaced.clear()

    def path(self, file: str) -> Path:
        return self.root / file

    def row(self, file: str) -> FileRow | None:
        found = self.db.execute(
            f"SELECT {_COLUMNS} FROM _syncline_jsonl_files WHERE file = ?", (file,)
        ).fetchone()
        return None if found is None else FileRow(*found)

    def rows(self, table: str | None = None) -> list[FileRow]:
        sql = f"SELECT {_COLUMNS} FROM _syncline_jsonl_files"
        args: tuple[str, ...] = ()
        if table is not None:
            sql, args = sql + " WHERE table_name = ?", (table,)
        return [FileRow(*found) for found in self.db.execute(sql + " ORDER BY file", args)]

    def _save(self, row: FileRow) -> FileRow:
        self.db.execute(
            f"INSERT OR REPLACE INTO _syncline_jsonl_files ({_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row.file, row.kind, row.table, row.partition, row.bytes, row.lines,
             row.generation, row.inode),
        )  # fmt: skip
        return row

    def create(
        self, file: str, kind: str, table: str | None, partition: str | None, journal: Journal
    ) -> FileRow:
        """A new empty file (0600) in the manifest; an existing file syncline does not know
        is refused rather than appended to."""
        path = self.path(file)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            fd = os.open(path, os.O_WRONLY)  # left empty by a crash before its commit: reuse
            if os.fstat(fd).st_size:
                os.close(fd)
                raise StoreError(
                    f"{path} exists but {self.root} does not record it as committed: move it "
                    "away (syncline never appends to a file whose committed size it does not "
                    "know)"
                ) from None
        except OSError as exc:
            raise StoreError(f"cannot create {path}: {exc.strerror}") from None
        try:
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        journal.undo.append(lambda: path.unlink(missing_ok=True))
        os.fsync(self.dir_fd)
        return self._save(FileRow(file, kind, table, partition, 0, 0, 1, inode))

    def check(self, file: str) -> FileRow:
        """The file's manifest row, after putting the file back to what it says."""
        row = self.row(file)
        if row is None:
            raise StoreError(f"{self.path(file)} is not in the manifest of {self.root}")
        if file in self._replaced:
            raise StoreError(f"internal: {file} used again after its rewrite, before the commit")
        path = self.path(file)
        stat = _stat(path)
        if stat is None or stat.st_ino != row.inode:
            stat = self._restore(row, stat)
        if stat.st_size > row.bytes:
            log.warning(
                "%s: removed %d byte(s) after the last committed line (a write torn or left "
                "uncommitted by a crash)", path, stat.st_size - row.bytes,
            )  # fmt: skip
            os.truncate(path, row.bytes)
        elif stat.st_size < row.bytes:
            raise StoreError(
                f"{path} holds {stat.st_size} bytes but {row.bytes} were committed: it was cut "
                "or replaced outside syncline; restore it from a backup, or move the directory "
                "away to sync again from scratch"
            )
        return row

    def _restore(self, row: FileRow, stat: os.stat_result | None) -> os.stat_result:
        """Finish a committed swap that a crash left before its rename, or adopt the file at
        the path (the directory was copied or restored: every inode changed)."""
        path, temp = self.path(row.file), self.root / temp_name(row.file)
        found = _stat(temp)
        if found is not None and found.st_ino == row.inode:
            os.replace(temp, path)
            os.fsync(self.dir_fd)
            log.warning("%s: finished a rewrite a crash interrupted after its commit", path)
            return found
        if stat is None:
            raise StoreError(
                f"{path} is missing but {row.bytes} bytes of it were committed: restore it "
                "from a backup, or move the directory away to sync again from scratch"
            )
        log.info("%s: new inode (the directory was copied or restored); adopting it", path)
        self._save(dataclasses.replace(row, inode=stat.st_ino))
        return stat

    def append(self, row: FileRow, data: bytes, lines: int, journal: Journal) -> FileRow:
        """Write ``data`` at the committed end and sync it; the row to commit with it."""
        path = self.path(row.file)
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {exc.strerror}") from None
        journal.undo.append(lambda: os.truncate(path, row.bytes))
        try:
            write_all(fd, data, row.bytes)
            sync_data(fd)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return self._save(
            dataclasses.replace(row, bytes=row.bytes + len(data), lines=row.lines + lines)
        )

    def replace(self, row: FileRow, temp: TempFile, journal: Journal) -> FileRow:
        """Swap the finished ``temp`` in for ``row``'s file once committed (see the module
        docstring); the manifest row that commits it."""
        journal.renames.append((temp.path, self.path(row.file)))
        self._replaced.add(row.file)
        new = FileRow(row.file, row.kind, row.table, row.partition, temp.size, temp.lines,
                      row.generation + 1, temp.inode)  # fmt: skip
        return self._save(new)

    def drop(self, row: FileRow, journal: Journal) -> None:
        """Forget a file; it is deleted once the transaction has committed."""
        self.db.execute("DELETE FROM _syncline_jsonl_files WHERE file = ?", (row.file,))
        journal.after.append(self.path(row.file).unlink)

    def open_committed(self, row: FileRow) -> int | None:
        """A read descriptor on the file ``row`` describes: at its path, or still under its
        temporary name (committed, not yet renamed); ``None``: replaced since ``row`` was read."""
        for name in (row.file, temp_name(row.file)):
            try:
                fd = os.open(self.path(name), os.O_RDONLY)
            except FileNotFoundError:
                continue
            if os.fstat(fd).st_ino == row.inode:
                return fd
            os.close(fd)
        return None

    def recover(self) -> None:
        """At open: every file back to its manifest, stale working files removed."""
        known = {row.file for row in self.rows()}
        for file in known:
            try:
                self.check(file)
            except StoreError as exc:
                log.error("%s", exc)  # raised again when the file is used
        for name in os.listdir(self.root):
            if is_working_file(name) and name not in known:
                (self.root / name).unlink(missing_ok=True)

    def publish(self) -> None:
        """Write ``manifest.json`` for readers that do not read SQLite: the committed size of
        every file, atomically (the caller holds the directory lock: writes stay in order)."""
        temp = self.root / f".{MANIFEST_FILE}.tmp"
        try:
            fd = os.open(temp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            try:
                write_all(fd, orjson.dumps(self._document(), option=orjson.OPT_INDENT_2), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.root / MANIFEST_FILE)
        except OSError as exc:
            log.warning("could not write %s: %s", self.root / MANIFEST_FILE, exc)

    def _document(self) -> dict[str, Any]:
        # Read under the lock, committed state only: a later writer reads what we read, or more.
        tables = {
            name: {"file": file, "partition_columns": orjson.loads(parts),
                   "key_columns": orjson.loads(keys), "mode": mode, "on_delete": on_delete,
                   "columns": orjson.loads(columns)}
            for name, file, parts, keys, mode, on_delete, columns in self.db.execute(
                "SELECT name, file, partition_columns, key_columns, mode, on_delete, columns "
                "FROM _syncline_jsonl_tables ORDER BY name"
            )
        }  # fmt: skip
        files = {
            row.file: {"kind": row.kind, "table": row.table, "bytes": row.bytes,
                       "lines": row.lines, "generation": row.generation, "inode": row.inode}
            for row in self.rows()
            if row.kind != "pass"
        }  # fmt: skip
        return {"format": "syncline-jsonl", "version": 1, "tables": tables, "files": files}


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
