"""Low-level file I/O of the JSON lines store: whole writes, syncs, a rewrite's temporary
file, reading lines back, and the directory lock writers hold."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from syncline.errors import StoreError
from syncline.stores.jsonl_names import temp_name

__all__ = ["TempFile", "directory_lock", "iter_lines", "read_spans", "sync_data", "write_all"]

_CHUNK = 1 << 20


def sync_data(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


@contextlib.contextmanager
def directory_lock(fd: int, timeout: float) -> Iterator[None]:
    """The directory's exclusive ``flock`` (released by the kernel if we die), waited for at
    most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StoreError(
                    f"another process has been writing the store's files for {timeout:.0f}s "
                    "(a long compaction?); try again later"
                ) from None
            time.sleep(0.005)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class TempFile:
    """A rewrite of one file, written under its temporary name and synced before the swap."""

    def __init__(self, root: Path, file: str, undo: list[Callable[[], None]]) -> None:
        self.path = root / temp_name(file)
        self.size = 0
        self.lines = 0
        self.inode = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._fd = os.open(self.path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        undo.append(self._discard)

    def write(self, line: bytes) -> int:
        """Add one line; its offset in the new file."""
        offset = self.size
        self._buffer.append(line)
        self._buffered += len(line)
        self.size += len(line)
        self.lines += 1
        if self._buffered >= _CHUNK:
            self._flush()
        return offset

    def copy(self, data: bytes, lines: int) -> int:
        offset = self.size
        self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        self.lines += lines
        self._flush()
        return offset

    def _flush(self) -> None:
        data = b"".join(self._buffer)
        write_all(self._fd, data, self.size - len(data))
        self._buffer, self._buffered = [], 0

    def finish(self) -> None:
        self._flush()
        os.fsync(self._fd)
        self.inode = os.fstat(self._fd).st_ino
        os.close(self._fd)
        self._fd = -1

    def _discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)


def iter_lines(path: Path, limit: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of the first ``limit`` bytes of ``path``, in order."""
    with path.open("rb") as source:
        offset = 0
        while offset < limit:
            line = source.readline(limit - offset)
            if not line:
                raise StoreError(f"{path} ends before its committed size {limit}")
            yield offset, line
            offset += len(line)


def read_spans(fd: int, spans: Sequence[tuple[int, int]]) -> list[bytes]:
    """The bytes at each ``(offset, length)`` of an open file."""
    found = []
    for offset, length in spans:
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise StoreError(f"a committed line at byte {offset} is missing from its file")
        found.append(data)
    return found
