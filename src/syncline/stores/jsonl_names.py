"""The files of a JSON lines store directory, and the file name each table gets.

A table name can be anything a config holds (quotes, slashes, emoji, 200
characters), so it never becomes a path as it is: characters outside
``[A-Za-z0-9_.-]`` are percent-encoded, a leading dot too (our own working
files are the hidden ones), long names are cut and made unique with a hash.
Two names that would give the same file on a case-insensitive file system
(``Items``, ``items``) get distinct files: the later one a ``~hash`` suffix.
The name chosen is recorded in the sidecar (and ``manifest.json``), so it
never changes once given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = [
    "FEED_FILE",
    "MANIFEST_FILE",
    "SIDECAR_FILE",
    "file_name_for",
    "is_working_file",
    "pass_name",
    "temp_name",
]

SIDECAR_FILE = "_syncline.db"
FEED_FILE = "_changes.jsonl"
MANIFEST_FILE = "manifest.json"
_RESERVED = (SIDECAR_FILE, FEED_FILE, MANIFEST_FILE)
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_MAX_STEM = 120
"""Bytes of a file name before its suffixes (file systems allow 255)."""


def _digest(name: str, size: int) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def _escaped(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def _stem(name: str) -> str:
    stem = "".join(char if char in _SAFE else _escaped(char) for char in name)
    if not stem or stem.startswith("."):
        stem = "%2E" + stem[1:] if stem else "%"
    if len(stem) > _MAX_STEM:
        stem = stem[: _MAX_STEM - 13].rstrip("%0123456789ABCDEF") + "~" + _digest(name, 12)
    return stem


def file_name_for(table: str, taken: Iterable[str]) -> str:
    """A file name for ``table`` that no other file of the directory has, case aside."""
    used = {name.casefold() for name in (*taken, *_RESERVED)}
    stem = _stem(table)
    candidate = f"{stem}.jsonl"
    number = 0
    while candidate.casefold() in used:
        number += 1
        candidate = f"{stem}~{_digest(f'{table}#{number}', 8)}.jsonl"
    return candidate


def temp_name(file: str) -> str:
    """Where a rewrite of ``file`` is written before it replaces it."""
    return f".{file}.new"


def pass_name(file: str, partition: str) -> str:
    """The lines of the open pass of one partition of a snapshot table."""
    return f".{file}.pass-{_digest(partition, 16)}"


def is_working_file(name: str) -> bool:
    """One of our hidden working files (a rewrite's temporary file or a pass file)."""
    return name.startswith(".") and (name.endswith((".new", ".old")) or ".jsonl.pass-" in name)
