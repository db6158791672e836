"""The minimal baseline: a plain async client that fetches the same pages and inserts raw JSON.

One ``executemany`` per page into a table keyed by id. No checkpoints, no
upsert guard, no retries: the floor syncline's overhead is measured against.
Prints one JSON line: seconds, records, requests.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time

import httpx
import orjson


async def run(base_url: str, style: str, size: int, db_path: str) -> dict[str, float]:
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS items (id PRIMARY KEY, data TEXT NOT NULL)")
    insert = "INSERT OR REPLACE INTO items (id, data) VALUES (?, ?)"
    records = requests = 0
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        page, cursor = 1, None
        while True:
            if style == "page_number":
                response = await client.get("/page/items", params={"page": page, "per_page": size})
            else:
                params: dict[str, str | int] = {"limit": size}
                if cursor:
                    params["cursor"] = cursor
                response = await client.get("/cursor/items", params=params)
            requests += 1
            body = orjson.loads(response.content)
            items = body["data"] if style == "page_number" else body["items"]
            db.execute("BEGIN")
            db.executemany(insert, [(item["id"], orjson.dumps(item).decode()) for item in items])
            db.execute("COMMIT")
            records += len(items)
            if style == "page_number":
                if page >= body["last_page"]:
                    break
                page += 1
            else:
                cursor = body["next_cursor"]
                if not cursor:
                    break
    return {"seconds": time.perf_counter() - started, "records": records, "requests": requests}


if __name__ == "__main__":
    base_url, style, size, db_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    print(json.dumps(asyncio.run(run(base_url, style, size, db_path))))
