"""From a ``duckdb:///`` URL to a connection: the one-process rule, one lock per file,
private files.

**One process at a time.** DuckDB locks the file for the process that opens
it, readers included; a second process gets a :class:`StoreError` naming the
file and the holder DuckDB reports (program and PID). Inside one process,
any number of store objects may share a file: DuckDB gives them one database
instance (its per-process cache, keyed by path and configuration: every
connection here uses the default one), each its own connection.

**One writer at a time, per file.** DuckDB's transactions are optimistic: two
that write the same row (a ledger bucket, a lease, a stream row) abort one of
them with a conflict or duplicate-key error. Every store object of one file
therefore works under that file's lock (:func:`file_lock`, one per resolved
path), which costs nothing DuckDB would give: it serialises commits anyway.

**Privacy.** DuckDB creates the file, its WAL (again after every checkpoint)
and its spill directory with the process umask: a ``0644`` WAL would hand
every local user the records. So while a store works (:func:`private_umask`)
the umask also masks group and others: the files are the owner's alone.
Other threads of the process meanwhile create files at most more private
than they asked, never less. A new parent directory is created ``0700``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb

from syncline.errors import ConfigError, StoreError

__all__ = [
    "SCHEME",
    "check_private",
    "connect",
    "file_lock",
    "parse_url",
    "private_umask",
    "reason",
]

log = logging.getLogger("syncline")
SCHEME = "duckdb:///"

_FILE_LOCKS: dict[str, threading.RLock] = {}
_REGISTRY = threading.Lock()
_UMASK = threading.Lock()
_umask_users = 0
_umask_saved = 0
_HOLDER = re.compile(r"Conflicting lock is held in (.+?)(?:\. See also|$)")


def parse_url(url: str) -> str:
    """The file of a ``duckdb:///`` URL (``:memory:``: a private in-memory database)."""
    if not url.startswith(SCHEME):
        raise ConfigError(
            f"not a DuckDB store URL: {url.split('://', 1)[0]}://…; write duckdb:///path.duckdb "
            "(relative) or duckdb:////absolute/path.duckdb",
            key="store",
        )
    path = url.removeprefix(SCHEME)
    if not path:
        raise ConfigError("duckdb:/// needs a file: duckdb:///syncline.duckdb", key="store")
    return path


def file_lock(path: str) -> threading.RLock:
    """The lock every store object on ``path`` shares (kept for the process's life: one
    small object per file ever opened)."""
    with _REGISTRY:
        return _FILE_LOCKS.setdefault(os.path.realpath(path), threading.RLock())


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created meanwhile are the owner's alone; nested and concurrent uses share one
    saved umask, restored when the last one ends."""
    global _umask_users, _umask_saved  # noqa: PLW0603 - the umask is process-wide too
    with _UMASK:
        if _umask_users == 0:
            _umask_saved = os.umask(0o077)
            os.umask(_umask_saved | 0o077)
        _umask_users += 1
    try:
        yield
    finally:
        with _UMASK:
            _umask_users -= 1
            if _umask_users == 0:
                os.umask(_umask_saved)


def check_private(path: Path) -> None:
    """A new parent directory is ``0700``; an existing world-readable file is reported.

    Not :func:`syncline.stores.sqlite._create_private`, which creates the file
    empty: DuckDB refuses to open an empty file, so DuckDB creates it (under
    :func:`private_umask`).
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode
        if mode & stat.S_IROTH:
            log.warning(
                "store file %s is readable by every local user (mode %o); run chmod 600 on it",
                path,
                stat.S_IMODE(mode),
            )


def reason(exc: BaseException) -> str:
    """A DuckDB error on one line (its messages carry a caret diagram over several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def connect(path: str) -> duckdb.DuckDBPyConnection:
    """A connection to ``path``, or a :class:`StoreError` saying who holds the file."""
    try:
        return duckdb.connect(path)
    except duckdb.IOException as exc:
        text = reason(exc)
        if "lock" not in text:
            raise StoreError(f"cannot open DuckDB store {path}: {text}") from None
        found = _HOLDER.search(text)
        holder = f" ({found.group(1)})" if found else ""
        raise StoreError(
            f"DuckDB store {path} is open in another process{holder}: DuckDB lets one "
            "process at a time open a database file. Wait for that process to finish or "
            "stop it, or give each concurrent job its own store file"
        ) from None
    except duckdb.Error as exc:
        raise StoreError(f"cannot open DuckDB store {path}: {reason(exc)}") from None
