"""One syncline sync of the sandbox, in its own process so its peak RSS is its own."""

from __future__ import annotations

import json
import sys
import time

import syncline

STREAMS = {
    "page_number": {
        "path": "/page/items",
        "records": "data",
        "primary_key": "id",
        "updated_at": "updated_at",
        "paginate": {
            "type": "page_number",
            "size_param": "per_page",
            "last_page": "last_page",
        },
        "incremental": {"type": "watermark", "param": "updated_since"},
    },
    "cursor": {
        "path": "/cursor/items",
        "records": "items",
        "primary_key": "id",
        "updated_at": "updated_at",
        "paginate": {"type": "cursor", "cursor_path": "next_cursor", "size_param": "limit"},
        "incremental": {"type": "watermark", "param": "updated_since"},
    },
}


COLUMNS = {
    "name": "name",
    "price": {"path": "price", "type": "numeric", "index": True},
    "stock": {"path": "stock", "type": "integer"},
    "color": "attributes.color",
    "updated": {"path": "updated_at", "type": "timestamp"},
}
"""Typed columns for the ``+columns`` run: one of each common kind, one indexed."""


def main(
    base_url: str, style: str, size: int, db_path: str, store: str = "", columns: bool = False
) -> dict[str, float]:
    stream = STREAMS[style]
    stream["paginate"]["size"] = size  # type: ignore[index]
    if columns:
        stream["columns"] = COLUMNS
    config = syncline.config_from_dict(
        {
            "store": store or f"sqlite:///{db_path}",
            "sources": {"sb": {"base_url": base_url, "streams": {"items": stream}}},
        }
    )
    started = time.perf_counter()
    summary = syncline.sync(config)
    seconds = time.perf_counter() - started
    if not summary.ok:
        raise SystemExit(json.dumps(summary.as_dict()))
    return {"seconds": seconds, "records": summary.records, "requests": summary.requests}


if __name__ == "__main__":
    # base_url style page_size db_path [store_url] [columns]
    store_url = sys.argv[5] if len(sys.argv) > 5 else ""
    with_columns = len(sys.argv) > 6 and sys.argv[6] == "columns"
    print(
        json.dumps(
            main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], store_url, with_columns)
        )
    )
