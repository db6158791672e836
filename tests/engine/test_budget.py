"""Call budgets through the real engine: a scripted server that enforces its limits and counts.

The sandbox-driven versions (several tenants, real sockets, the bench
scenario) live with the sandbox's limit enforcement; these pin the engine's
decisions: wait, pause, keep the reserve, let high priority go first, learn.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from syncline import sync
from tests.conftest import make_config, state_rows, stored
from tests.engine.test_guards import BASE, cursor_stream, items


class LimitedServer:
    """A cursor API allowing ``calls`` per ``per`` seconds (sliding), 429 beyond."""

    def __init__(self, calls: int, per: float, pages: int = 10, headers: bool = False) -> None:
        self.calls, self.per, self.pages, self.headers = calls, per, pages, headers
        self.sent: collections.deque[float] = collections.deque()
        self.served = 0
        self.refused = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        while self.sent and self.sent[0] <= now - self.per:
            self.sent.popleft()
        if len(self.sent) >= self.calls:
            self.refused += 1
            wait = self.sent[0] + self.per - now
            return httpx.Response(429, headers=self._headers(0, wait))
        self.sent.append(now)
        self.served += 1
        page = int(request.url.params.get("cursor") or 0)
        nxt = str(page + 1) if page + 1 < self.pages else None
        body = {"items": items(page * 2 + 1, page * 2 + 2), "next": nxt}
        reset = self.sent[0] + self.per - now
        return httpx.Response(
            200, json=body, headers=self._headers(self.calls - len(self.sent), reset)
        )

    def _headers(self, remaining: int, reset: float) -> dict[str, str]:
        if not self.headers:
            return {}
        return {
            "X-RateLimit-Limit": str(self.calls),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{max(reset, 0):.3f}",
        }


def run(tmp_path: Path, streams: dict[str, Any], server: LimitedServer, **source: Any) -> Any:
    config = make_config(BASE, tmp_path / "store.db", streams, **source)
    return sync(config, transport=httpx.MockTransport(server), concurrency=4)


def test_declared_limits_mean_zero_429s(tmp_path: Path) -> None:
    server = LimitedServer(calls=4, per=0.4, pages=10)
    limits = [{"calls": 4, "per": 0.4}]
    summary = run(tmp_path, {"items": cursor_stream()}, server, limits=limits)
    assert summary.ok
    assert server.refused == 0
    assert server.served == 10
    assert len(stored(tmp_path / "store.db")) == 20
    (result,) = summary.streams
    assert result.waited > 0  # it did have to wait for permits
    assert summary.scopes()["sb"]["calls"] == 10


def test_a_spent_daily_budget_pauses_cleanly_and_the_next_run_continues(tmp_path: Path) -> None:
    server = LimitedServer(calls=1000, per=60, pages=5)
    limits = [{"calls": 3, "per": "1d", "name": "daily"}]
    db = tmp_path / "store.db"
    first = run(tmp_path, {"items": cursor_stream()}, server, limits=limits)
    (result,) = first.streams
    assert result.status == "paused"
    assert first.outcome == "paused"
    assert first.ok  # a paused job is not a failure
    assert server.served == 3
    assert sorted(stored(db)) == [1, 2, 3, 4, 5, 6]
    (state,) = state_rows(db)
    assert state["status"] == "paused"
    assert state["not_before"] == result.not_before

    again = run(tmp_path, {"items": cursor_stream()}, server, limits=limits)
    assert again.streams[0].status == "paused"
    assert server.served == 3  # nothing sent while the budget is spent

    with sqlite3.connect(db) as conn:  # the next day: the window has moved on
        conn.execute("DELETE FROM _syncline_quota")
        conn.execute("UPDATE _syncline_state SET not_before = NULL")
    done = run(tmp_path, {"items": cursor_stream()}, server, limits=limits)
    assert done.ok
    assert done.streams[0].status == "ok"
    assert server.served == 5  # resumed at page 4: nothing fetched twice
    assert sorted(stored(db)) == list(range(1, 11))


def test_low_priority_stops_at_the_reserve_while_high_priority_spends_it(tmp_path: Path) -> None:
    server = LimitedServer(calls=1000, per=60, pages=4)
    limits = [{"calls": 6, "per": "1d", "reserve": 3}]
    streams = {
        "backfill": {**cursor_stream(), "priority": "low", "table": "backfill"},
        "customers": {**cursor_stream(), "priority": "high", "table": "customers"},
    }
    summary = run(tmp_path, streams, server, limits=limits)
    by_name = {r.stream: r for r in summary.streams}
    assert by_name["backfill"].status == "paused"
    assert by_name["backfill"].requests <= 3
    assert server.served == 6  # every call of the window, and not one more
    assert by_name["customers"].requests == 6 - by_name["backfill"].requests


def test_header_learned_limits_cost_at_most_one_429_per_window(tmp_path: Path) -> None:
    server = LimitedServer(calls=3, per=0.3, pages=12, headers=True)
    source = {"retry": {"wait_initial": 0.01, "wait_max": 0.05, "min_wait": 0.01}}
    summary = run(tmp_path, {"items": cursor_stream()}, server, **source)
    assert summary.ok
    assert server.served == 12
    assert server.refused <= 1
    assert summary.streams[0].rate_limited == server.refused


class VendorHeaders(LimitedServer):
    """The same limits, told in a vendor's own header names."""

    def _headers(self, remaining: int, reset: float) -> dict[str, str]:
        return {"X-Calls-Left": str(remaining), "X-Calls-Renew": f"{max(reset, 0):.3f}"}


def test_a_sources_own_rate_limit_header_names_are_learned(tmp_path: Path) -> None:
    server = VendorHeaders(calls=3, per=0.3, pages=12)
    source = {
        "retry": {"wait_initial": 0.01, "wait_max": 0.05, "min_wait": 0.01},
        "rate_limit_headers": [{"name": "burst", "remaining": "X-Calls-Left",
                                "reset": "X-Calls-Renew"}],
    }  # fmt: skip
    summary = run(tmp_path, {"items": cursor_stream()}, server, **source)
    assert summary.ok
    assert server.served == 12
    assert server.refused <= 1
    with sqlite3.connect(tmp_path / "store.db") as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM _syncline_quota_server")}
    assert names == {"burst"}


class TwoTenants(LimitedServer):
    """One window shared by two tenants; ``big`` has 12 pages, ``small`` 2."""

    def __init__(self) -> None:
        super().__init__(calls=3, per=0.3)
        self.finished: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        tenant = request.url.params["tenant"]
        self.pages = 12 if tenant == "big" else 2
        response = super().__call__(request)
        if response.status_code == 200 and response.json()["next"] is None:
            self.finished.append(tenant)
        return response


def test_a_shared_window_is_shared_fairly_a_big_tenant_does_not_starve_a_small_one(
    tmp_path: Path,
) -> None:
    server = TwoTenants()
    stream = {**cursor_stream(), "params": {"tenant": "{tenant}"}}
    limits = [{"calls": 3, "per": 0.3, "scope": "source"}]
    summary = run(
        tmp_path, {"items": stream}, server, partitions={"tenant": ["big", "small"]}, limits=limits
    )
    assert summary.ok
    assert server.refused == 0
    assert server.finished == ["small", "big"]  # small's 2 calls were not queued behind 12
    assert set(summary.scopes()) == {"sb[tenant=big]", "sb[tenant=small]"}
