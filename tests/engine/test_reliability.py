"""Deferral, leases, drift, redirects, size caps and OAuth2, driven by a scripted server.

MockTransport behind the real engine and a real SQLite file: these faults need
exact control of each answer (the sandbox-driven versions are in tests/reliability).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncline import sync
from syncline.engine import run_sync
from syncline.stores import SQLiteStore, StateKey
from syncline.stores.sqlite import SCHEMA_VERSION
from tests.conftest import make_config, state_rows, stored
from tests.engine.test_guards import BASE, Handler, cursor_stream, items

OFFSET = {
    "path": "/items",
    "records": "items",
    "primary_key": "id",
    "paginate": {"type": "offset", "size_param": "limit", "size": 2, "total": "total"},
}


def run(tmp_path: Path, stream: dict[str, Any], handler: Handler, **options: Any) -> Any:
    source = options.pop("source", {})
    db = tmp_path / "store.db"
    config = make_config(BASE, db, {"items": stream}, **source)
    return sync(config, transport=httpx.MockTransport(handler), **options), db


# --- deferral -----------------------------------------------------------------------------


def test_a_long_retry_after_defers_the_job_and_keeps_its_checkpoint(tmp_path: Path) -> None:
    calls: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        calls.append(cursor)
        if cursor == "B":
            return httpx.Response(429, headers={"Retry-After": "3600"})
        return httpx.Response(200, json={"items": items(1, 2), "next": "B"})

    summary, db = run(tmp_path, cursor_stream(), handler, source={"retry": {"max_wait": 60}})

    (result,) = summary.streams
    assert result.status == "deferred"
    assert summary.outcome == "deferred"
    assert result.not_before is not None
    assert calls == [None, "B"]  # no sleep, no retry: the server asked for an hour
    (state,) = state_rows(db)
    assert state["status"] == "deferred"
    assert state["not_before"] == result.not_before
    assert '"B"' in state["position"]  # resumes at the refused page
    assert sorted(stored(db)) == [1, 2]

    calls.clear()
    again, _ = run(tmp_path, cursor_stream(), handler, source={"retry": {"max_wait": 60}})
    assert again.streams[0].status == "deferred"
    assert calls == []  # not one request before not_before

    def recovered(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.params.get("cursor"))
        return httpx.Response(200, json={"items": items(3), "next": None})

    forced, _ = run(tmp_path, cursor_stream(), recovered, ignore_not_before=True)
    assert forced.ok
    assert calls == ["B"]
    assert sorted(stored(db)) == [1, 2, 3]
    assert state_rows(db)[0]["not_before"] is None


def test_a_short_retry_after_is_waited_out_in_the_same_run(tmp_path: Path) -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "0"}),
            httpx.Response(503),
            httpx.Response(200, json={"items": items(1), "next": None}),
        ]
    )
    source = {"retry": {"wait_initial": 0.01, "min_wait": 0.01}}
    summary, db = run(tmp_path, cursor_stream(), lambda _r: next(answers), source=source)
    assert summary.ok
    assert summary.requests == 3
    assert sorted(stored(db)) == [1]


def test_a_plain_4xx_fails_at_once_without_retries(tmp_path: Path) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(422, json={"error": "bad filter"})

    summary, _ = run(tmp_path, cursor_stream(), handler)
    assert calls == 1
    assert summary.streams[0].status == "failed"
    assert "422" in (summary.streams[0].error or "")


def test_an_html_page_with_status_200_is_retried_once_then_fails(tmp_path: Path) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, text="<html>Please log in</html>")

    source = {"retry": {"wait_initial": 0.01}}
    summary, db = run(tmp_path, cursor_stream(), handler, source=source)
    assert calls == 2
    assert "HTML page" in (summary.streams[0].error or "")
    assert stored(db) == {}


# --- leases -------------------------------------------------------------------------------


def test_a_stream_leased_by_another_process_is_busy_and_untouched(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    key = StateKey("sb", "items", "{}")
    other = SQLiteStore(db)
    other.acquire_lease(key, "other-host:1:abc", ttl=60)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json={"items": items(1), "next": None})

    summary, _ = run(tmp_path, cursor_stream(), handler)
    (result,) = summary.streams
    assert result.status == "busy"
    assert "other-host:1:abc" in (result.error or "")
    assert calls == 0
    assert summary.outcome == "busy"
    other.close()


def test_an_expired_lease_is_taken_over_and_the_zombie_cannot_commit(tmp_path: Path) -> None:
    from syncline.errors import LeaseHeld, LeaseLost
    from syncline.stores import State, TableSpec

    db = tmp_path / "store.db"
    key = StateKey("sb", "items", "{}")
    table = TableSpec("items", (), ("id",))
    zombie_store, live_store = SQLiteStore(db), SQLiteStore(db)
    zombie_store.ensure_table(table)
    live_store.ensure_table(table)
    zombie = zombie_store.acquire_lease(key, "zombie", ttl=0.2)
    with pytest.raises(LeaseHeld):
        live_store.acquire_lease(key, "live", ttl=30)
    asyncio.run(asyncio.sleep(0.3))
    live = live_store.acquire_lease(key, "live", ttl=30)
    assert live.token == zombie.token + 1

    row = (1, '{"id": 1}', None)
    with pytest.raises(LeaseLost):
        zombie_store.commit_page(table, [row], State(key, position={"p": 9}), lease=zombie)
    live_store.commit_page(table, [row], State(key, position={"p": 2}), lease=live)
    assert live_store.load_state(key).position == {"p": 2}  # type: ignore[union-attr]
    live_store.release_lease(live)
    assert live_store.acquire_lease(key, "third", ttl=1).token == live.token + 1
    zombie_store.close()
    live_store.close()


def test_a_lease_is_waited_for_with_wait_lock(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    key = StateKey("sb", "items", "{}")
    holder = SQLiteStore(db)
    holder.acquire_lease(key, "other", ttl=0.5)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": items(1), "next": None})

    summary, _ = run(tmp_path, cursor_stream(), handler, lock_wait=5)
    assert summary.ok
    holder.close()


# --- offset drift (B7) -------------------------------------------------------------------


def test_records_deleted_ahead_of_an_offset_pass_are_not_skipped(tmp_path: Path) -> None:
    data = items(*range(1, 11))
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        if requests == 2:
            del data[0]  # a deletion at the head while we page: everything shifts left
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        return httpx.Response(
            200, json={"items": data[offset : offset + limit], "total": len(data)}
        )

    summary, db = run(tmp_path, OFFSET, handler)
    assert summary.ok
    assert set(stored(db)) >= {record["id"] for record in data}  # nothing the server has is missed
    assert state_rows(db)[0]["pass_restarts"] == 0  # reset once the pass completed


def test_a_listing_that_never_settles_stops_after_bounded_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    total = 100

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal total
        total += 1  # every answer reports a new total
        offset = int(request.url.params["offset"])
        body = items(offset + 1, offset + 2) if offset < 4 else []
        return httpx.Response(200, json={"items": body, "total": min(total, 4) + total % 2})

    with caplog.at_level(logging.WARNING, logger="syncline"):
        summary, _ = run(tmp_path, OFFSET, handler)
    assert summary.ok
    assert summary.requests <= 3 * 4
    assert any("kept changing" in r.getMessage() for r in caplog.records)


# --- end_on_status, redirects, size ---------------------------------------------------------


def test_end_on_status_treats_a_404_past_the_first_page_as_the_end(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") == "B":
            return httpx.Response(404, json={"error": "no such page"})
        return httpx.Response(200, json={"items": items(1), "next": "B"})

    summary, db = run(tmp_path, cursor_stream(), handler, source={"end_on_status": [404]})
    assert summary.ok
    assert state_rows(db)[0]["position"] == "null"

    strict, _ = run(tmp_path, cursor_stream(), handler, full_refresh=True)
    assert strict.streams[0].status == "failed"


def test_redirects_are_refused_unless_enabled_and_same_origin(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        if request.url.path == "/items":
            return httpx.Response(301, headers={"Location": "/v2/items"})
        if request.url.path == "/v2/items":
            return httpx.Response(302, headers={"Location": "https://evil.example.test/steal"})
        return httpx.Response(200, json={"items": items(1)})

    auth = {"type": "bearer", "token": "tok-SECRET-9"}
    refused, _ = run(tmp_path, cursor_stream(), handler, source={"auth": auth})
    assert "redirect not followed" in (refused.streams[0].error or "")

    seen.clear()
    followed, _ = run(
        tmp_path, cursor_stream(), handler, source={"auth": auth, "follow_redirects": True}
    )
    assert "refused to follow a link to https://evil.example.test" in (
        followed.streams[0].error or ""
    )
    assert [url for url, _ in seen] == [f"{BASE}/items", f"{BASE}/v2/items"]
    assert all(token == "Bearer tok-SECRET-9" for _, token in seen)


def test_allowed_hosts_may_be_followed_but_never_downgraded_to_http(tmp_path: Path) -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.host == "api.example.test":
            return httpx.Response(
                200, json={"items": items(1), "next": "https://cdn.example.test/p2"}
            )
        return httpx.Response(200, json={"items": items(2), "next": None})

    stream = {
        "path": "/items",
        "records": "items",
        "primary_key": "id",
        "paginate": {"type": "next_link", "next_url_path": "next"},
    }
    summary, db = run(tmp_path, stream, handler, source={"allowed_hosts": ["cdn.example.test"]})
    assert summary.ok
    assert hosts == ["api.example.test", "cdn.example.test"]
    assert sorted(stored(db)) == [1, 2]


def test_a_body_larger_than_max_response_size_is_a_bad_payload(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": items(*range(1, 200))})

    summary, db = run(tmp_path, cursor_stream(), handler, source={"max_response_size": "1KB"})
    assert "larger than max_response_size" in (summary.streams[0].error or "")
    assert stored(db) == {}


def test_a_gzip_bomb_is_stopped_at_the_decoded_size(tmp_path: Path) -> None:
    import gzip

    bomb = gzip.compress(b'{"items": [' + b" " * 5_000_000 + b"]}")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})

    summary, _ = run(tmp_path, cursor_stream(), handler, source={"max_response_size": "1MB"})
    assert "larger than max_response_size" in (summary.streams[0].error or "")


# --- oauth2 ---------------------------------------------------------------------------------


def oauth_source(tmp_path: Path) -> dict[str, Any]:
    return {
        "auth": {
            "type": "oauth2",
            "grant": "refresh_token",
            "token_url": f"{BASE}/oauth/token",
            "client_id": "cid",
            "client_secret": "csecret-XYZ",
            "refresh_token": "rt-initial-SECRET",
            "token_file": str(tmp_path / "tokens" / "api.json"),
        }
    }


def test_oauth2_refreshes_once_on_401_and_persists_the_rotated_token(tmp_path: Path) -> None:
    issued = 0
    valid: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal issued
        if request.url.path == "/oauth/token":
            issued += 1
            token = f"at-{issued}"
            valid.clear()
            valid.add(token)
            return httpx.Response(
                200,
                json={"access_token": token, "expires_in": 3600, "refresh_token": f"rt-{issued}"},
            )
        if request.headers.get("authorization") != f"Bearer at-{issued}" or issued < 2:
            return httpx.Response(401)  # the first token is "revoked" server-side
        return httpx.Response(200, json={"items": items(1), "next": None})

    summary, _ = run(tmp_path, cursor_stream(), handler, source=oauth_source(tmp_path))
    assert summary.ok
    assert issued == 2
    token_file = tmp_path / "tokens" / "api.json"
    assert '"rt-2"' in token_file.read_text()
    assert token_file.stat().st_mode & 0o777 == 0o600


def test_oauth2_a_second_401_is_an_auth_error_not_a_loop(tmp_path: Path) -> None:
    counts = {"token": 0, "data": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            counts["token"] += 1
            n = counts["token"]
            return httpx.Response(200, json={"access_token": f"at-{n}", "refresh_token": f"r{n}"})
        counts["data"] += 1
        return httpx.Response(401)

    summary, _ = run(tmp_path, cursor_stream(), handler, source=oauth_source(tmp_path))
    assert summary.streams[0].status == "failed"
    assert "credentials refused" in (summary.streams[0].error or "")
    assert counts == {"token": 2, "data": 2}


# --- schema migration -----------------------------------------------------------------------


def test_a_version_1_store_is_migrated_in_place_to_the_current_version(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            """
            CREATE TABLE _syncline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO _syncline_meta VALUES ('schema_version', '1');
            CREATE TABLE _syncline_state (
                source TEXT NOT NULL, stream TEXT NOT NULL, partition TEXT NOT NULL,
                watermark TEXT, cursor TEXT, position TEXT, pass_filter TEXT, pass_max TEXT,
                run_id TEXT, status TEXT, error TEXT,
                records INTEGER NOT NULL DEFAULT 0, pages INTEGER NOT NULL DEFAULT 0,
                requests INTEGER NOT NULL DEFAULT 0, updated_at TEXT,
                PRIMARY KEY (source, stream, partition));
            INSERT INTO _syncline_state (source, stream, partition, position, status)
                VALUES ('sb', 'items', '{}', '{"cursor": "B"}', 'running');
            """
        )
    store = SQLiteStore(db)
    state = store.load_state(StateKey("sb", "items", "{}"))
    assert state is not None
    assert state.position == {"cursor": "B"}
    assert state.not_before is None
    assert state.last_pass_requests is None
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM _syncline_meta").fetchone() == (str(SCHEMA_VERSION),)


def test_a_new_store_file_is_private(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "store.db"
    SQLiteStore(db).close()
    assert db.stat().st_mode & 0o777 == 0o600
    assert db.parent.stat().st_mode & 0o777 == 0o700


# --- time -------------------------------------------------------------------------------------


def test_a_watermark_in_the_future_is_kept_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = {
        **cursor_stream(),
        "updated_at": "updated_at",
        "incremental": {"type": "watermark", "param": "since"},
    }
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.params.get("since"))
        return httpx.Response(200, json={"items": [], "next": None})

    db = tmp_path / "store.db"
    config = make_config(BASE, db, {"items": stream})
    store = SQLiteStore(db)
    from syncline.stores import State

    future = {"value": "2999-01-01T00:00:00.000000Z", "raw": "2999-01-01T00:00:00Z"}
    store.save_state(State(StateKey("sb", "items", "{}"), watermark=future))
    store.close()
    with caplog.at_level(logging.WARNING, logger="syncline"):
        summary = asyncio.run(run_sync(config, transport=httpx.MockTransport(handler)))
    assert summary.ok
    assert summary.records == 0
    assert sent == ["2999-01-01T00:00:00Z"]
    assert state_rows(db)[0]["watermark"] == (
        '{"value": "2999-01-01T00:00:00.000000Z", "raw": "2999-01-01T00:00:00Z"}'
    )
    assert any("in the future" in r.getMessage() for r in caplog.records)


def test_many_records_sharing_one_timestamp_across_pages_lose_nothing(tmp_path: Path) -> None:
    same = "2024-05-05T10:00:00Z"
    data = [{"id": i, "updated_at": same} for i in range(1, 8)]

    def handler(request: httpx.Request) -> httpx.Response:
        since = request.url.params.get("since")
        rows = [r for r in data if since is None or r["updated_at"] >= since]
        offset = int(request.url.params["offset"])
        page = rows[offset : offset + 2]
        return httpx.Response(200, json={"items": page, "total": len(rows)})

    stream = {
        **OFFSET,
        "updated_at": "updated_at",
        "incremental": {"type": "watermark", "param": "since"},
    }
    first, db = run(tmp_path, stream, handler)
    assert first.ok
    assert sorted(stored(db)) == list(range(1, 8))
    data.append({"id": 8, "updated_at": same})  # one more at the very same instant
    second, _ = run(tmp_path, stream, handler)
    assert second.ok
    assert sorted(stored(db)) == list(range(1, 9))
    assert second.requests <= 5
