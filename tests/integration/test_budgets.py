"""Call budgets against the sandbox enforcing (and counting) its own limits, over real sockets.

The sandbox is the referee: it refuses with 429 any request over its
per-tenant window and counts both allowed and refused requests per tenant, so
"zero 429s" is the server's word, not ours.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncline import sync
from syncline.engine import JobResult
from syncline.plan import Job
from syncline.sandbox import SandboxProcess
from tests.conftest import RECORDS, make_config, state_rows

TENANTS = ("a", "b", "c", "d", "e")
PAGE = 200
PAGES = -(-RECORDS // PAGE)  # 12 pages of 200 for 2,345 records


def tenant_stream(size: int = PAGE, table: str = "items") -> dict[str, Any]:
    return {
        "path": "/page/items",
        "params": {"tenant": "{tenant}"},
        "records": "data",
        "primary_key": "id",
        "table": table,
        "paginate": {
            "type": "page_number",
            "size_param": "per_page",
            "size": size,
            "last_page": "last_page",
        },
    }


@pytest.fixture
def limited(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    yield sandbox
    sandbox.clear_limits()


class Order:
    """When each job started and finished, in event order (no clocks: order is the proof)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def job_started(self, job: Job) -> None:
        self.events.append(("start", job.partition_label))

    def page_committed(self, job: Job, records: int, requests: int) -> None:
        pass

    def job_finished(self, job: Job, result: JobResult) -> None:
        self.events.append(("end", job.partition_label))


def rejected(sandbox: SandboxProcess) -> int:
    return sum(t["rejected"] for t in sandbox.limits()["tenants"].values())


def test_declared_limits_zero_429s_and_every_tenant_runs_at_once(
    limited: SandboxProcess, tmp_path: Path
) -> None:
    limited.set_limits(tenant_param="tenant", windows=[{"calls": 4, "per": 0.4}], headers="none")
    db = tmp_path / "store.db"
    config = make_config(
        limited.base_url,
        db,
        {"items": tenant_stream()},
        partitions={"tenant": list(TENANTS)},
        limits=[{"calls": 4, "per": 0.4}],
    )
    order = Order()
    summary = sync(config, concurrency=2, listener=order)

    assert summary.ok, [r.error for r in summary.streams]
    counters = limited.limits()["tenants"]
    assert {t: counters[t]["allowed"] for t in TENANTS} == dict.fromkeys(TENANTS, PAGES)
    assert rejected(limited) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == RECORDS * 5
    # Two slots, five tenants: a job waiting for its window lends its slot, so every
    # tenant starts before the first one finishes (held slots would run them 2 by 2).
    first_end = order.events.index(next(e for e in order.events if e[0] == "end"))
    assert {p for kind, p in order.events[:first_end] if kind == "start"} == {
        f"tenant={t}" for t in TENANTS
    }
    assert all(r.waited > 0 for r in summary.streams)
    scopes = summary.scopes()
    assert {scope: spent["calls"] for scope, spent in scopes.items()} == {
        f"sb[tenant={t}]": PAGES for t in TENANTS
    }


@pytest.mark.parametrize("style", ["x-ratelimit", "exact", "ietf"])
def test_header_learned_limits_cost_at_most_one_429_per_window(
    limited: SandboxProcess, tmp_path: Path, style: str
) -> None:
    limited.set_limits(
        tenant_param="tenant",
        windows=[{"calls": 6, "per": 1, "name": "minutely"}],
        headers=style,
    )
    config = make_config(
        limited.base_url,
        tmp_path / "store.db",
        {"items": tenant_stream(size=500)},  # 5 pages per tenant
        partitions={"tenant": ["a", "b"]},
        retry={"wait_initial": 0.05, "wait_max": 0.2},
    )
    summary = sync(config)
    assert summary.ok, [r.error for r in summary.streams]
    counters = limited.limits()["tenants"]
    assert counters["a"]["allowed"] == counters["b"]["allowed"] == 5
    for tenant in ("a", "b"):  # 5 calls fit one window: not even the one allowed 429
        assert counters[tenant]["rejected"] == 0

    # A second run in the same window: the ledger remembers what the server said.
    again = sync(config, full_refresh=True)
    assert again.ok
    counters = limited.limits()["tenants"]
    for tenant in ("a", "b"):
        assert counters[tenant]["rejected"] <= 1
    assert again.requests - sum(r.rate_limited for r in again.streams) == 10


def test_a_spent_window_pauses_and_the_next_run_continues_exactly(
    limited: SandboxProcess, tmp_path: Path
) -> None:
    """A "daily" quota reached mid-run: paused (a normal outcome), nothing lost or doubled."""
    limited.set_limits(tenant_param="tenant", windows=[{"calls": 5, "per": 1.5}], headers="none")
    db = tmp_path / "store.db"
    config = make_config(
        limited.base_url,
        db,
        {"items": tenant_stream()},
        partitions={"tenant": ["a"]},
        limits=[{"calls": 5, "per": 1.5, "name": "daily"}],
        retry={"max_wait": 0.1},  # a wait longer than this pauses the job
    )
    first = sync(config)
    (result,) = first.streams
    assert result.status == "paused"
    assert first.ok
    assert result.requests == 5
    assert result.records == 5 * PAGE
    (state,) = state_rows(db)
    assert state["status"] == "paused"
    assert state["not_before"] == result.not_before

    done = None
    for _ in range(10):  # bounded: the window frees 1.5 s after each burst
        time.sleep(0.5)
        done = sync(config)
        if done.streams[0].status == "ok":
            break
    assert done is not None
    assert done.streams[0].status == "ok"
    counters = limited.limits()["tenants"]["a"]
    assert counters["allowed"] == PAGES  # every page fetched exactly once
    assert counters["rejected"] == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM items").fetchone() == (
            RECORDS,
            RECORDS,
        )


def test_max_calls_caps_a_run_and_the_next_run_continues(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": tenant_stream()})
    first = sync(config, max_calls=3)
    (result,) = first.streams
    assert (result.status, result.requests, result.not_before) == ("paused", 3, None)
    assert "--max-calls" in (result.error or "")
    assert sandbox.stats()["total"] == 3
    done = sync(config)
    assert done.streams[0].status == "ok"
    assert done.requests == PAGES - 3  # resumed at page 4
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == RECORDS


def test_two_processes_on_one_store_share_the_ledger(
    limited: SandboxProcess, tmp_path: Path
) -> None:
    """Each process alone would send 5 per 0.5 s; together they must still send 5, not 10."""
    limited.set_limits(windows=[{"calls": 5, "per": 0.5}], headers="none")
    stream_a = {**tenant_stream(table="items_a"), "params": {}}
    stream_b = {**tenant_stream(table="items_b"), "params": {}}
    config = {
        "store": "sqlite:///store.db",
        "sources": {
            "sb": {
                "base_url": limited.base_url,
                "limits": [{"calls": 5, "per": 0.5}],
                "streams": {"a": stream_a, "b": stream_b},
            }
        },
    }
    (tmp_path / "syncline.yaml").write_text(json.dumps(config))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "syncline", "sync", "--stream", name, "--json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert json.loads(out)["outcome"] == "ok"
    counters = limited.limits()["tenants"][""]
    assert counters == {"allowed": 2 * PAGES, "rejected": 0}
    with sqlite3.connect(tmp_path / "store.db") as conn:
        for table in ("items_a", "items_b"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == RECORDS


def test_plan_estimates_from_the_last_pass_and_sends_nothing(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    config = {
        "store": "sqlite:///store.db",
        "sources": {
            "sb": {
                "base_url": sandbox.base_url,
                "partitions": {"tenant": ["a", "b"]},
                "limits": [{"calls": 30, "per": "1d", "reserve": 5, "name": "daily"}],
                "streams": {
                    "items": {**tenant_stream(), "priority": "high"},
                    "backfill": {**tenant_stream(table="backfill"), "priority": "low"},
                },
            }
        },
    }
    (tmp_path / "syncline.yaml").write_text(json.dumps(config))
    first = subprocess.run(
        [sys.executable, "-m", "syncline", "sync", "--stream", "items", "--partition",
         "tenant=a", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    sent = sandbox.stats()["total"]
    assert sent == PAGES

    plan = subprocess.run(
        [sys.executable, "-m", "syncline", "sync", "--plan", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert sandbox.stats()["total"] == sent  # planning costs no call
    rows = {(r["stream"], r["partition"]): r for r in json.loads(plan.stdout)}
    # High priority first, each tenant's daily window on its own: a's spent 12 of 30.
    a, b = rows["items", "tenant=a"], rows["items", "tenant=b"]
    assert (a["calls"], a["left"], a["verdict"]) == (PAGES, 30 - PAGES, "runs")
    assert b["calls"] is None
    assert b["verdict"] == "runs"
    # Low priority may not touch the reserve: a has 30 - 5 - 12 - 12 = 1 left.
    low_a, low_b = rows["backfill", "tenant=a"], rows["backfill", "tenant=b"]
    assert low_a["left"] == 1
    assert low_a["verdict"] == "runs"
    assert low_b["left"] == 30 - 5 - 1
    assert a["priority"] == "high"
    assert low_a["priority"] == "low"
    table = subprocess.run(
        [sys.executable, "-m", "syncline", "sync", "--plan"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "nothing was sent" in table.stdout
