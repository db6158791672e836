"""Which bulk path the DuckDB store's page upsert uses, measured.

    .venv/bin/python bench/duckdb_bulk.py [records]   (default 100,000)

``records`` records (~480 B of JSON each) committed page by page through
``DuckDBStore.commit_page`` (lookup, classification, upsert, feed, checkpoint:
the real path), once per strategy, into a fresh file: the initial load (all
inserts), then the same records again (all unchanged re-reads, what a full
poll does). SQLite on a temp file is printed for reference. Strategies:

- ``lists`` (kept): one list parameter per column, ``INSERT … SELECT unnest(?::JSON[]), …``;
  new identities by a plain ``INSERT``, changed ones by ``ON CONFLICT … DO UPDATE``,
  unchanged ones by an ``UPDATE`` of ``_synced_at`` (the store's real path);
- ``lists-upsert``: the same binding, every row through ``ON CONFLICT … DO UPDATE`` (what
  the other strategies below do, so they compare binding alone);
- ``values``: one ``INSERT … SELECT … FROM (VALUES (?, ?, …), …) ON CONFLICT``,
  a parameter per value;
- ``document``: the page as one JSON document (each row a list of texts), unnested
  with ``from_json(?, '["VARCHAR[]"]')``;
- ``read_json``: the page written to a temporary JSON file, read with ``read_json``;
- ``executemany``: the upsert per row (on the first 2,000 records only: it is slow).

Arrow (``INSERT … SELECT FROM`` a registered ``pyarrow`` table) is left out:
syncline does not depend on pyarrow, and installing it for one store is not
worth what it could save (the per-commit cost dominates at 100 rows a page).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncline.stores import State, StateKey, TableSpec, open_store
from syncline.stores import duckdb_page as page
from syncline.stores.duckdb_values import to_json
from syncline.stores.page_plan import PagePlan

RECORDS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
SLOW = 2_000
TABLE = TableSpec("products", ("company_id",), ("id",))
KEY = StateKey("bench", "products", '{"company_id":1}')
CONFLICT = (
    ' ON CONFLICT ("company_id", "id") DO UPDATE SET _data = excluded._data, '
    "_updated_at = excluded._updated_at, _synced_at = excluded._synced_at, "
    "_hash = excluded._hash, _deleted_at = NULL"
)
INSERT = (
    'INSERT INTO "products" ("company_id", "id", _data, _updated_at, _synced_at, _hash, '
    "_deleted_at) "
)


def record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"Product {i:06d} deluxe edition",
        "description": "A sturdy, well-made thing that does what it says. " * 4,
        "price": round(i * 0.37 % 500, 2),
        "stock": i % 97,
        "tags": ["alpha", "beta", "gamma"][: 1 + i % 3],
        "updated_at": f"2024-01-{1 + i % 28:02d}T10:{i % 60:02d}:00.000000Z",
    }


def rows() -> list[tuple[Any, ...]]:
    return [(1, i, json.dumps(r), r["updated_at"]) for i in range(RECORDS) for r in [record(i)]]


def _texts(plan: PagePlan) -> list[tuple[str, str, str, str | None, str]]:
    """Each last write as ``(company_id, id, _data, _updated_at, _hash)`` texts."""
    return [
        (to_json(row[0]), to_json(row[1]), row[2], None if row[3] is None else to_json(row[3]),
         digest)
        for row, digest in plan.last_writes(2)
    ]  # fmt: skip


def values(con: Any, sql: page.TableSql, plan: PagePlan, before: Any, synced_at: str) -> list[Any]:
    writes = _texts(plan)
    if not writes:
        return []
    marks = ", ".join("(?, ?, ?, ?, ?)" for _ in writes)
    con.execute(
        f"{INSERT}SELECT c::JSON, k::JSON, d::JSON, u::JSON, ?::TIMESTAMPTZ, h, NULL "
        f"FROM (VALUES {marks}) AS page(c, k, d, u, h){CONFLICT}",
        [synced_at, *(value for write in writes for value in write)],
    )
    return []  # every row written: none left to mark seen


def document(
    con: Any, sql: page.TableSql, plan: PagePlan, before: Any, synced_at: str
) -> list[Any]:
    writes = _texts(plan)
    if not writes:
        return []
    con.execute(
        f"{INSERT}SELECT r[1]::JSON, r[2]::JSON, r[3]::JSON, r[4]::JSON, ?::TIMESTAMPTZ, r[5], "
        f"NULL FROM (SELECT unnest(from_json(?, '[\"VARCHAR[]\"]')) AS r){CONFLICT}",
        [synced_at, orjson.dumps(writes).decode()],
    )
    return []  # every row written: none left to mark seen


def read_json(
    con: Any, sql: page.TableSql, plan: PagePlan, before: Any, synced_at: str
) -> list[Any]:
    writes = _texts(plan)
    if not writes:
        return []
    fd, path = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps([dict(zip("ckduh", w, strict=True)) for w in writes]))
        con.execute(
            f"{INSERT}SELECT c::JSON, k::JSON, d::JSON, u::JSON, ?::TIMESTAMPTZ, h, NULL "
            "FROM read_json(?, columns = {c: 'VARCHAR', k: 'VARCHAR', d: 'VARCHAR', "
            f"u: 'VARCHAR', h: 'VARCHAR'}}){CONFLICT}",
            [synced_at, path],
        )
    finally:
        os.unlink(path)
    return []  # every row written: none left to mark seen


def executemany(
    con: Any, sql: page.TableSql, plan: PagePlan, before: Any, synced_at: str
) -> list[Any]:
    writes = _texts(plan)
    if not writes:
        return []
    con.executemany(
        f"{INSERT}VALUES (?::JSON, ?::JSON, ?::JSON, ?::JSON, ?::TIMESTAMPTZ, ?, NULL){CONFLICT}",
        [(c, k, d, u, synced_at, h) for c, k, d, u, h in writes],
    )
    return []  # every row written: none left to mark seen


def lists_upsert(
    con: Any, sql: page.TableSql, plan: PagePlan, before: Any, synced_at: str
) -> list[Any]:
    writes = _texts(plan)
    if not writes:
        return []
    columns = [list(column) for column in zip(*writes, strict=True)]
    con.execute(sql.upsert, [synced_at, *columns])
    return []  # every row written: none left to mark seen


STRATEGIES: dict[str, Callable[..., list[Any]]] = {
    "lists": page._upsert,
    "lists-upsert": lists_upsert,
    "values": values,
    "document": document,
    "read_json": read_json,
    "executemany": executemany,
}


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


def main() -> None:
    data = rows()
    print(f"{RECORDS:,} records, records/s (initial load / unchanged re-read)")
    for size in (100, 1000):
        with tempfile.TemporaryDirectory() as tmp:
            load, again = run(f"sqlite:///{tmp}/bench.db", data, size)
        print(f"page {size:>5}  sqlite       {load:>9,.0f} / {again:>9,.0f}", flush=True)
        for name, strategy in STRATEGIES.items():
            page._upsert = strategy  # type: ignore[assignment]
            subset = data[:SLOW] if name == "executemany" else data
            with tempfile.TemporaryDirectory() as tmp:
                load, again = run(f"duckdb:///{tmp}/bench.duckdb", subset, size)
            note = f"  ({len(subset):,} records)" if subset is not data else ""
            print(f"page {size:>5}  {name:<12} {load:>9,.0f} / {again:>9,.0f}{note}", flush=True)


if __name__ == "__main__":
    main()
