"""Which bulk path the PostgreSQL store's page upsert uses, measured.

    .venv/bin/python bench/postgres_bulk.py [postgresql://…]   (default: a throwaway server)

100,000 records (~480 B of JSON each) committed page by page through
``PostgresStore.commit_page`` (classification, upsert, feed, checkpoint: the
real path), once per strategy, into a fresh schema: the initial load (all
inserts), then the same records again (all unchanged re-reads, what a full
poll does). SQLite on a temp file is printed for reference. Strategies:

- ``document`` (kept): the page as one JSON document, each record's JSON text
  pasted in, ``INSERT … SELECT FROM jsonb_array_elements(%s) ON CONFLICT``;
- ``copy``: ``COPY`` into a temporary table, then ``INSERT … SELECT ON CONFLICT``;
- ``unnest``: ``INSERT … SELECT FROM unnest(one array per column) ON CONFLICT``;
- ``executemany``: the upsert per row, pipelined by psycopg.

The throwaway server runs with ``fsync=off`` (like the tests'): the figures
compare the paths, not disks.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncline.stores import State, StateKey, TableSpec, open_store
from syncline.stores import postgres_changes as pgc
from syncline.stores.page_plan import PagePlan

RECORDS = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
TABLE = TableSpec("products", ("company_id",), ("id",))
KEY = StateKey("bench", "products", '{"company_id":1}')


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


def executemany(cur: Any, sql: pgc.TableSql, plan: PagePlan, width: int, synced_at: str) -> None:
    columns = sql.table.identity_columns
    names = ", ".join(pgc.q(c) for c in columns)
    marks = ", ".join(["%s::jsonb"] * len(columns))
    statement = (
        f"INSERT INTO {sql.name} AS t ({names}, _data, _updated_at, _synced_at, _hash, "
        f"_deleted_at) VALUES ({marks}, %s::jsonb, %s::jsonb, %s::timestamptz, %s, NULL) "
        f"ON CONFLICT ({names}) DO UPDATE SET _data = excluded._data, "
        "_updated_at = excluded._updated_at, _synced_at = excluded._synced_at, "
        "_hash = excluded._hash, _deleted_at = NULL WHERE excluded._updated_at IS NULL "
        f"OR t._updated_at IS NULL OR {pgc.not_older('excluded._updated_at', 't._updated_at')}"
    )
    cur.executemany(
        statement,
        [
            (*map(pgc.to_json, row[:width]), row[width],
             None if row[width + 1] is None else pgc.to_json(row[width + 1]), synced_at, digest)
            for row, digest in plan.last_writes(width)
        ],
    )  # fmt: skip


def copy(cur: Any, sql: pgc.TableSql, plan: PagePlan, width: int, synced_at: str) -> None:
    columns = sql.table.identity_columns
    names = ", ".join(pgc.q(c) for c in columns)
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _syncline_page (ident jsonb, d jsonb, u jsonb, h text) "
        "ON COMMIT DELETE ROWS",
        (),
    )
    with cur.copy("COPY _syncline_page (ident, d, u, h) FROM STDIN") as pipe:
        for row, digest in plan.last_writes(width):
            updated = row[width + 1]
            pipe.write_row(
                (pgc.to_json(list(row[:width])), row[width],
                 None if updated is None else pgc.to_json(updated), digest)
            )  # fmt: skip
    picks = ", ".join(f"p.ident -> {i}" for i in range(len(columns)))
    cur.execute(
        f"INSERT INTO {sql.name} AS t ({names}, _data, _updated_at, _synced_at, _hash, "
        f"_deleted_at) SELECT {picks}, p.d, p.u, %s::timestamptz, p.h, NULL "
        f"FROM _syncline_page AS p ON CONFLICT ({names}) DO UPDATE SET _data = excluded._data, "
        "_updated_at = excluded._updated_at, _synced_at = excluded._synced_at, "
        "_hash = excluded._hash, _deleted_at = NULL WHERE excluded._updated_at IS NULL "
        f"OR t._updated_at IS NULL OR {pgc.not_older('excluded._updated_at', 't._updated_at')}",
        (synced_at,),
    )


def unnest(cur: Any, sql: pgc.TableSql, plan: PagePlan, width: int, synced_at: str) -> None:
    columns = sql.table.identity_columns
    names = ", ".join(pgc.q(c) for c in columns)
    aliases = ", ".join(f"c{i}" for i in range(width))
    arrays = ", ".join(["%s::jsonb[]"] * (width + 2) + ["%s::text[]"])
    values: list[list[str | None]] = [[] for _ in range(width + 3)]
    for row, digest in plan.last_writes(width):
        for index in range(width):
            values[index].append(pgc.to_json(row[index]))
        updated = row[width + 1]
        values[width].append(row[width])
        values[width + 1].append(None if updated is None else pgc.to_json(updated))
        values[width + 2].append(digest)
    cur.execute(
        f"INSERT INTO {sql.name} AS t ({names}, _data, _updated_at, _synced_at, _hash, "
        f"_deleted_at) SELECT {aliases}, d, u, %s::timestamptz, h, NULL "
        f"FROM unnest({arrays}) AS page({aliases}, d, u, h) "
        f"ON CONFLICT ({names}) DO UPDATE SET _data = excluded._data, "
        "_updated_at = excluded._updated_at, _synced_at = excluded._synced_at, "
        "_hash = excluded._hash, _deleted_at = NULL WHERE excluded._updated_at IS NULL "
        f"OR t._updated_at IS NULL OR {pgc.not_older('excluded._updated_at', 't._updated_at')}",
        (synced_at, *values),
    )


STRATEGIES: dict[str, Callable[..., None]] = {
    "document": pgc._upsert,
    "copy": copy,
    "unnest": unnest,
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
    server = None
    if len(sys.argv) > 1 and sys.argv[1]:
        base = sys.argv[1]
    else:
        from tests.pg_server import PostgresServer

        server = PostgresServer().__enter__()
        base = server.url()
    try:
        print(f"{RECORDS:,} records, records/s (initial load / unchanged re-read)")
        for size in (100, 1000):
            with tempfile.TemporaryDirectory() as tmp:
                load, again = run(f"sqlite:///{tmp}/bench.db", data, size)
            print(f"page {size:>5}  sqlite       {load:>9,.0f} / {again:>9,.0f}")
            for name, strategy in STRATEGIES.items():
                pgc._upsert = strategy  # type: ignore[assignment]
                sep = "&" if "?" in base else "?"
                load, again = run(f"{base}{sep}schema=bench_{uuid.uuid4().hex[:8]}", data, size)
                print(f"page {size:>5}  {name:<12} {load:>9,.0f} / {again:>9,.0f}", flush=True)
    finally:
        if server is not None:
            server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
