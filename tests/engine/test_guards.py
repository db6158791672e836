"""The loop guards and safety checks every paginator gets, driven by a scripted server.

These cases need a misbehaving server, which the sandbox deliberately is not,
so they use httpx's MockTransport behind the real engine and a real SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncline import iter_records, sync
from tests.conftest import make_config, state_rows, stored

BASE = "https://api.example.test"
Handler = Callable[[httpx.Request], httpx.Response]


def items(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "updated_at": f"2024-01-01T00:00:{i:02d}Z"} for i in ids]


def cursor_stream(**paginate: Any) -> dict[str, Any]:
    return {
        "path": "/items",
        "records": "items",
        "primary_key": "id",
        "paginate": {"type": "cursor", "cursor_path": "next", **paginate},
    }


def run(tmp_path: Path, stream: dict[str, Any], handler: Handler, **source: Any):
    db = tmp_path / "store.db"
    config = make_config(BASE, db, {"items": stream}, **source)
    return sync(config, transport=httpx.MockTransport(handler)), db


def test_repeated_cursor_is_a_loop_and_keeps_earlier_pages(tmp_path: Path) -> None:
    pages = {None: ("A", items(1, 2)), "A": ("B", items(3, 4)), "B": ("A", items(5))}
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        seen.append(cursor)
        nxt, records = pages[cursor]
        return httpx.Response(200, json={"items": records, "next": nxt})

    summary, db = run(tmp_path, cursor_stream(), handler)

    (result,) = summary.streams
    assert result.status == "failed"
    assert "led back to a page already fetched" in (result.error or "")
    assert seen == [None, "A", "B"]  # A is never requested twice
    # Pages before the repeat are committed; the page that pointed back (B) was committed
    # with its rows too, and the checkpoint stays at the repeated cursor, not past it.
    assert sorted(stored(db)) == [1, 2, 3, 4, 5]
    (state,) = state_rows(db)
    assert json.loads(state["position"]) == {"cursor": "A"}
    assert state["status"] == "failed"


def test_link_cycle_is_detected(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("p", "1")
        nxt = {"1": "/items?p=2", "2": "/items?p=3", "3": "/items?p=2"}[page]
        return httpx.Response(200, json={"items": items(int(page)), "links": {"next": nxt}})

    stream = {
        "path": "/items",
        "params": {"p": 1},
        "records": "items",
        "primary_key": "id",
        "paginate": {"type": "next_link", "next_url_path": "links.next"},
    }
    summary, db = run(tmp_path, stream, handler)

    assert summary.streams[0].status == "failed"
    assert summary.streams[0].requests == 3
    # Page 3 is not committed: its link would become the checkpoint and lead back into the loop.
    assert sorted(stored(db)) == [1, 2]


def test_max_pages_is_a_backstop(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("cursor") or 0)
        return httpx.Response(200, json={"items": items(n + 1), "next": str(n + 1)})

    summary, _ = run(tmp_path, cursor_stream(max_pages=5), handler)

    (result,) = summary.streams
    assert result.status == "failed"
    assert "max_pages (5)" in (result.error or "")
    assert result.requests == 5


def test_endless_empty_pages_stop(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("page") or 1)
        return httpx.Response(200, json={"items": [], "has_more": True, "page": n})

    stream = {
        "path": "/items",
        "records": "items",
        "primary_key": "id",
        "paginate": {"type": "page_number", "has_more": "has_more", "stop_on_short_page": False},
    }
    summary, _ = run(tmp_path, stream, handler)
    # An empty page ends a page-number pass by itself: one request, no loop.
    assert summary.ok
    assert summary.requests == 1


def test_relay_has_next_without_cursor_is_bad_payload(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        info = {"hasNextPage": True, "endCursor": None}
        return httpx.Response(200, json={"data": {"x": {"nodes": items(1), "pageInfo": info}}})

    stream = {
        "path": "/graphql",
        "graphql": {"query": "query { x { nodes { id } pageInfo { hasNextPage endCursor } } }"},
        "records": "data.x.nodes",
        "primary_key": "id",
        "paginate": {"type": "relay", "page_info": "data.x.pageInfo"},
    }
    summary, db = run(tmp_path, stream, handler)

    assert summary.streams[0].status == "failed"
    assert "endCursor is empty" in (summary.streams[0].error or "")
    assert stored(db) == {}  # the offending page is not committed


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example.test/items?page=2",
        "http://api.example.test/items?page=2",  # https → http downgrade
        "https://api.example.test:8443/items?page=2",
        "https://user:pw@169.254.169.254/latest/meta-data",
    ],
)
def test_next_link_to_another_origin_is_refused_without_sending(tmp_path: Path, link: str) -> None:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(200, json={"items": items(1), "next": link})

    stream = {
        "path": "/items",
        "records": "items",
        "primary_key": "id",
        "paginate": {"type": "next_link", "next_url_path": "next"},
    }
    auth = {"type": "bearer", "token": "tok-SECRET-123"}
    summary, db = run(tmp_path, stream, handler, auth=auth)

    (result,) = summary.streams
    assert result.status == "failed"
    assert "refused to follow a link" in (result.error or "")
    assert requested == [f"{BASE}/items"]
    assert "pw" not in (result.error or "")
    assert "meta-data" not in (result.error or "")
    # The page that led there is not committed: a refused link never becomes the checkpoint.
    assert stored(db) == {}


def test_graphql_errors_with_http_200_commit_nothing(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"data": {"x": {"nodes": items(1)}}, "errors": [{"message": "field exploded"}]}
        return httpx.Response(200, json=body)

    stream = {
        "path": "/graphql",
        "graphql": {"query": "{ x { nodes { id } } }"},
        "records": "data.x.nodes",
        "primary_key": "id",
    }
    summary, db = run(tmp_path, stream, handler)

    assert "field exploded" in (summary.streams[0].error or "")
    assert stored(db) == {}


def test_html_page_with_200_is_bad_payload_and_secret_is_redacted(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"})

    stream = {"path": "/items", "records": "items", "primary_key": "id"}
    auth = {"type": "api_key", "name": "api_key", "value": "k3y-SECRET", "in": "query"}
    summary, db = run(tmp_path, stream, handler, auth=auth)

    error = summary.streams[0].error or ""
    assert "expected a JSON body, got an HTML page" in error
    assert "k3y-SECRET" not in error
    assert stored(db) == {}


def test_non_retryable_4xx_fails_fast_and_others_continue(tmp_path: Path) -> None:
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        calls[request.url.path] = calls.get(request.url.path, 0) + 1
        if request.url.path == "/bad":
            return httpx.Response(422, json={"error": "no"})
        return httpx.Response(200, json={"items": items(1, 2)})

    db = tmp_path / "store.db"
    streams = {
        "good": {"path": "/good", "records": "items", "primary_key": "id"},
        "bad": {"path": "/bad", "records": "items", "primary_key": "id"},
    }
    summary = sync(make_config(BASE, db, streams), transport=httpx.MockTransport(handler))

    status = {r.stream: r.status for r in summary.streams}
    assert status == {"good": "ok", "bad": "failed"}
    assert calls["/bad"] == 1
    assert sorted(stored(db, "good")) == [1, 2]


def test_server_errors_are_retried_then_succeed(tmp_path: Path) -> None:
    attempts = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        attempts["n"] += 1
        if attempts["n"] < 3:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"items": items(1)})

    stream = {"path": "/items", "records": "items", "primary_key": "id"}
    retry = {"wait_initial": 0.01, "wait_max": 0.02, "wait_jitter": 0}
    summary, db = run(tmp_path, stream, handler, retry=retry)

    assert summary.ok
    assert summary.requests == 3
    assert sorted(stored(db)) == [1]


def test_missing_primary_key_fails_the_page_when_the_stream_says_fail(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [{"id": 1}, {"name": "no id"}]})

    stream = {"path": "/x", "records": "items", "primary_key": "id", "on_invalid_record": "fail"}
    summary, db = run(tmp_path, stream, handler)

    assert "record 1 has no primary key 'id'" in (summary.streams[0].error or "")
    assert stored(db) == {}


def test_records_without_a_key_are_quarantined_with_the_page(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [{"id": 1}, {"name": "no id"}, {"id": None}]})

    summary, db = run(tmp_path, {"path": "/x", "records": "items", "primary_key": "id"}, handler)

    (result,) = summary.streams
    assert result.status == "ok"
    assert result.records == 1
    assert result.rejected == 2
    assert summary.as_dict()["rejected"] == 2
    assert sorted(stored(db)) == [1]
    with sqlite3.connect(db) as conn:
        rejects = conn.execute(
            "SELECT stream, run_id, reason, record FROM _syncline_rejects ORDER BY id"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rejects] == [
        ("items", summary.run_id, "record 1 has no primary key 'id'"),
        ("items", summary.run_id, "record 2 has no primary key 'id'"),
    ]
    assert json.loads(rejects[0][3]) == {"name": "no id"}


def test_iter_records_streams_without_a_store(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("cursor") or 0)
        nxt = str(n + 1) if n < 2 else None
        return httpx.Response(200, json={"items": items(n * 2 + 1, n * 2 + 2), "next": nxt})

    config = make_config(BASE, tmp_path / "unused.db", {"items": cursor_stream()})
    records = list(iter_records(config, "items", transport=httpx.MockTransport(handler)))

    assert [r["id"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "unused.db").exists()


def test_json_with_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'\xef\xbb\xbf{"items": [{"id": 1}]}')

    summary, db = run(tmp_path, {"path": "/x", "records": "items", "primary_key": "id"}, handler)

    assert summary.ok
    assert sorted(stored(db)) == [1]


def test_single_request_stream_still_sends_the_page_size(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"items": items(1)})

    stream = {
        "path": "/x",
        "records": "items",
        "primary_key": "id",
        "paginate": {"type": "none", "size_param": "limit", "size": 500},
    }
    summary, _ = run(tmp_path, stream, handler)

    assert summary.ok
    assert seen == [f"{BASE}/x?limit=500"]
