"""The demo's two files: the SQLite store and the config that reads it afterwards.

The demo replaces its files on every run, so it must never replace someone
else's: a store is only removed when the demo marked it as its own, a config
only when it starts with the demo's header line.

The config is the four presets unchanged, with the sandbox's address and
public test credentials as ``${VAR:-default}`` defaults: it loads without any
environment (``syncline status -c syncline-demo.yaml`` works after the demo),
no secret is written as a literal, and the demo itself loads it with an
environment of its own, so a real token exported in the shell never reaches
the sandbox.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from syncline.errors import ConfigError
from syncline.presets import get_preset

__all__ = ["DemoError", "claim_files", "config_text", "mark_store"]

HEADER = "# Written by `syncline demo`"
MARK_TABLE = "_syncline_demo"
_VAR = re.compile(r"\$\{(env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


class DemoError(ConfigError):
    """The demo cannot run as asked (exit code 2): e.g. its file would replace another's."""


def claim_files(db: Path, config: Path) -> None:
    """Remove the previous demo's store and config; refuse to touch anything else."""
    if db.is_dir() or config.is_dir():
        raise DemoError(f"{db if db.is_dir() else config} is a directory; give a file name")
    if db.suffix == ".yaml":
        raise DemoError(f"{db}: the store needs another name than its config; use a .db name")
    if db.exists() and not _is_demo_store(db):
        raise DemoError(
            f"{db} exists and was not written by `syncline demo`; "
            "choose another --db or move that file away"
        )
    if config.exists() and not config.read_text(encoding="utf-8", errors="replace").startswith(
        HEADER
    ):
        raise DemoError(
            f"{config} exists and was not written by `syncline demo`; "
            "choose another --db or move that file away"
        )
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), config):
        path.unlink(missing_ok=True)
    db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def mark_store(db: Path) -> None:
    """Mark the store as the demo's, so the next demo may replace it."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{MARK_TABLE}" (note TEXT)')


def _is_demo_store(db: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MARK_TABLE,)
            ).fetchone()
    except sqlite3.DatabaseError:
        return False
    return found is not None


def config_text(
    db_name: str,
    sources: Sequence[tuple[str, Mapping[str, list[Any]] | None]],
    environ: Mapping[str, str],
) -> str:
    """The demo config: each ``(preset, partitions)`` source, with ``environ`` as defaults."""
    merged: dict[str, Any] = {}
    for preset_name, partitions in sources:
        data = get_preset(preset_name).data()
        for name, source in data["sources"].items():
            if partitions is not None:
                source["partitions"] = {key: list(values) for key, values in partitions.items()}
            merged[name] = _with_defaults(source, environ)
    body = yaml.safe_dump(
        {"store": f"sqlite:///{db_name}", "sources": merged},
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return (
        f"{HEADER} from the presets {', '.join(name for name, _ in sources)},\n"
        "# pointed at the sandbox it started (gone now). Read the store with\n"
        "# `syncline status -c THIS_FILE`; the commented originals come from\n"
        "# `syncline init --preset NAME`.\n" + body
    )


def _with_defaults(value: Any, environ: Mapping[str, str]) -> Any:
    """``${NAME}`` -> ``${NAME:-value}`` for every ``NAME`` the demo sets."""
    if isinstance(value, dict):
        return {key: _with_defaults(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_defaults(item, environ) for item in value]
    if isinstance(value, str):

        def default(match: re.Match[str]) -> str:
            name = match.group(2)
            if name not in environ:
                return match.group(0)
            return f"${{{match.group(1) or ''}{name}:-{environ[name]}}}"

        return _VAR.sub(default, value)
    return value
