"""Records/s into each store for the same 100,000-record full sync, and the ratio to SQLite.

Each run is a fresh ``syncline sync`` process (bench/syncline_run.py) reading
the sandbox's page_number listing at page size 1000 into a new, empty store;
best of ``BENCH_REPEATS``. ``sqlite+columns`` is the same run with five typed
columns (one indexed), to show what filling them costs. PostgreSQL is a
throw-away server from the Debian binaries (tests/pg_server.py), on the same
2-core machine, with ``fsync=off`` (as SQLite's ``synchronous=NORMAL`` it then
survives a process crash, not a power cut).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncline.sandbox import SandboxProcess

HERE = Path(__file__).resolve().parent
RECORDS = 100_000
SIZE = 1000
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
STORES = ("sqlite", "sqlite+columns", "postgresql", "duckdb", "jsonl")


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    from tests.pg_server import PostgresServer

    with PostgresServer() as server:
        yield server


def store_url(name: str, tmp: str, server: Any) -> str:
    if name.startswith("sqlite"):
        return f"sqlite:///{tmp}/bench.db"
    if name == "postgresql":
        return str(server.url(f"bench_{uuid.uuid4().hex[:8]}"))
    if name == "duckdb":
        return f"duckdb:///{tmp}/bench.duckdb"
    return f"jsonl:///{tmp}/out"


def run_once(base_url: str, name: str, server: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = store_url(name, tmp, server)
        command = [sys.executable, str(HERE / "syncline_run.py"), base_url, "page_number",
                   str(SIZE), f"{tmp}/bench.db", url]  # fmt: skip
        if name.endswith("+columns"):
            command.append("columns")
        done = subprocess.run(command, capture_output=True, check=False, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed: {done.stdout!r} {done.stderr[-2000:]!r}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["records_per_s"] = result["records"] / result["seconds"]
    return result


def main() -> dict[str, Any]:
    report: dict[str, Any] = {"records": RECORDS, "page_size": SIZE, "repeats": REPEATS}
    with SandboxProcess(records=RECORDS) as api, postgres() as server:
        for name in STORES:
            runs = [run_once(api.base_url, name, server) for _ in range(REPEATS)]
            report[name] = min(runs, key=lambda r: r["seconds"])
    sqlite_rate = report["sqlite"]["records_per_s"]
    for name in STORES:
        report[name]["ratio_to_sqlite"] = report[name]["records_per_s"] / sqlite_rate
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"\n{report['records']:,} records full sync into each store, best of {report['repeats']}")
    print(f"{'store':18}{'seconds':>9}{'records/s':>11}{'x SQLite':>10}")
    for name in STORES:
        row = report[name]
        print(
            f"{name:18}{row['seconds']:9.2f}{row['records_per_s']:11,.0f}"
            f"{row['ratio_to_sqlite']:10.2f}"
        )


if __name__ == "__main__":
    print_report(main())
