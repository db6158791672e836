"""What the reliability proofs share: a fast retry policy, configs on disk, the CLI, store reads."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from syncline.sandbox import SandboxProcess

FAST_RETRY: dict[str, Any] = {"wait_initial": 0.01, "wait_max": 0.05, "min_wait": 0.01}
"""Same attempts and rules as the default policy, but waits of milliseconds, not seconds."""

CLI_TIMEOUT = 60
"""Seconds any one ``syncline`` subprocess may take before the test fails."""


def write_config(directory: Path, base_url: str, stream: dict[str, Any], **source: Any) -> Path:
    """``syncline.yaml`` (JSON is YAML) with one source ``sb`` and one stream ``items``."""
    path = directory / "syncline.yaml"
    body = {"base_url": base_url, "streams": {"items": stream}, **source}
    path.write_text(json.dumps({"store": "sqlite:///store.db", "sources": {"sb": body}}))
    return path


def cli_env(failpoint: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNCLINE_FAILPOINT"}
    if failpoint:
        env["SYNCLINE_FAILPOINT"] = failpoint
    return env


def cli_command(config: Path, *args: str) -> list[str]:
    command, *rest = args
    return [sys.executable, "-m", "syncline", command, "-c", str(config), *rest]


def run_cli(
    config: Path, *args: str, failpoint: str | None = None, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``syncline ARGS -c CONFIG`` to completion (``sync`` when no args)."""
    return subprocess.run(
        cli_command(config, *(args or ("sync",))),
        env=cli_env(failpoint),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def requests_served(sandbox: SandboxProcess) -> int:
    """Data requests the sandbox answered since its stats were last reset."""
    total: int = sandbox.stats()["total"]
    return total


def row_counts(db: Path, table: str = "items") -> tuple[int, int]:
    """``(rows, distinct primary keys)`` of a stream table."""
    with sqlite3.connect(db) as conn:
        rows, distinct = conn.execute(
            f'SELECT count(*), count(DISTINCT id) FROM "{table}"'
        ).fetchone()
    return int(rows), int(distinct)


def rejects(db: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(reason, record)`` of every quarantined record."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT reason, record FROM _syncline_rejects ORDER BY id").fetchall()
    return [(reason, json.loads(record)) for reason, record in rows]


def mismatches(
    expected: dict[Any, dict[str, Any]], actual: dict[Any, dict[str, Any]]
) -> dict[str, list[Any]]:
    """Ids missing from ``actual``, extra in it, or stored with a different body (for messages)."""
    return {
        "missing": sorted(set(expected) - set(actual)),
        "extra": sorted(set(actual) - set(expected)),
        "different": sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k]),
    }
