"""The JSON lines store's page commit against SQLite's, measured.

    .venv/bin/python bench/jsonl_bulk.py [records]   (default 100,000)

``records`` records (~480 B of JSON each) committed page by page through
``commit_page`` (lookup, classification, lines appended and synced to disk,
index, feed, checkpoint, manifest: the real path), into a fresh store: the
initial load (all inserts), then the same records again (all unchanged
re-reads, what a full poll does: no line is written, only the index moves).
Then, for the JSON lines store, ``compact`` of a file holding the load twice
over (every record updated once). Same machine, same data, same page sizes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncline.stores import State, StateKey, TableSpec, open_store
from syncline.stores.jsonl import JsonlStore

RECORDS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
TABLE = TableSpec("products", ("company_id",), ("id",))
KEY = StateKey("bench", "products", '{"company_id":1}')


def record(i: int, version: int = 0) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"Product {i:06d} deluxe edition",
        "description": "A sturdy, well-made thing that does what it says. " * 4,
        "price": round(i * 0.37 % 500, 2),
        "stock": (i + version) % 97,
        "tags": ["alpha", "beta", "gamma"][: 1 + i % 3],
        "updated_at": f"2024-0{1 + version}-{1 + i % 28:02d}T10:{i % 60:02d}:00.000000Z",
    }


def rows(version: int = 0) -> list[tuple[Any, ...]]:
    return [
        (1, i, json.dumps(r), r["updated_at"]) for i in range(RECORDS) for r in [record(i, version)]
    ]


def run(url: str, data: list[tuple[Any, ...]], size: int) -> tuple[float, float]:
    """Records/s of the initial load and of a pass of unchanged re-reads."""
    store = open_store(url)
    try:
        store.ensure_table(TABLE)
        speeds = []
        for _ in range(2):
            started = time.perf_counter()
            for start in range(0, len(data), size):
                store.commit_page(TABLE, data[start : start + size], State(KEY, position={"n": 1}))
            speeds.append(len(data) / (time.perf_counter() - started))
        return speeds[0], speeds[1]
    finally:
        store.close()


def compaction(tmp: str, size: int) -> str:
    store = JsonlStore(Path(tmp) / "compact")
    try:
        store.ensure_table(TABLE)
        for version in range(2):
            data = rows(version)
            for start in range(0, len(data), size):
                store.commit_page(TABLE, data[start : start + size], State(KEY))
        started = time.perf_counter()
        (done,) = store.compact([TABLE])
        seconds = time.perf_counter() - started
    finally:
        store.close()
    return (
        f"compact: {done.lines_before:,} -> {done.lines_after:,} lines, "
        f"{done.bytes_before / 1e6:.1f} -> {done.bytes_after / 1e6:.1f} MB in {seconds:.2f}s "
        f"({done.lines_before / seconds:,.0f} lines/s)"
    )


def main() -> None:
    data = rows()
    print(f"{RECORDS:,} records, records/s (initial load / unchanged re-read)")
    for size in (100, 1000):
        for name, url in (("sqlite", "sqlite:///{tmp}/bench.db"), ("jsonl", "jsonl:///{tmp}/out")):
            with tempfile.TemporaryDirectory() as tmp:
                load, again = run(url.format(tmp=tmp), data, size)
            print(f"page {size:>5}  {name:<7} {load:>9,.0f} / {again:>9,.0f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(compaction(tmp, 1000), flush=True)


if __name__ == "__main__":
    main()
