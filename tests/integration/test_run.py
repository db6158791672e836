"""``syncline run``: a real scheduler process against the real sandbox, stopped by SIGTERM.

What a user relies on: due jobs run on their schedule and pick up what changed,
a spent budget makes the job come back when the window resets (zero 429s), and
SIGTERM leaves every checkpoint consistent so the next start continues.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncline.sandbox import SandboxProcess
from tests.conftest import RECORDS, state_rows
from tests.integration.test_budgets import tenant_stream
from tests.integration.test_cli import syncline

TENANTS = ["a", "b"]


@pytest.fixture
def limited(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    yield sandbox
    sandbox.clear_limits()
    sandbox.clear_faults()


def write_config(tmp_path: Path, base_url: str, **source: Any) -> Path:
    config = {
        "store": "sqlite:///store.db",
        "run": {"slice": 0},
        "sources": {
            "sb": {
                "base_url": base_url,
                "partitions": {"tenant": TENANTS},
                "streams": {"items": tenant_stream(size=500)},
                **source,
            }
        },
    }
    path = tmp_path / "syncline.yaml"
    path.write_text(json.dumps(config))
    return path


class Running:
    """A ``syncline run`` process whose stdout lines are read as they come."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncline", "run", *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, done: Callable[[list[str]], bool], timeout: float = 30) -> list[str]:
        """Read lines until ``done(lines)``; bounded in time (and by the process's end)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while not done(self.lines):
            assert time.monotonic() < deadline, f"waited {timeout}s; got {self.lines}"
            line = self.proc.stdout.readline()
            assert line, f"syncline run ended early: {self.proc.stderr and self.proc.stderr.read()}"
            self.lines.append(line.rstrip("\n"))
        return self.lines

    def stop(self, timeout: float = 30) -> tuple[str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        self.lines += out.splitlines()
        return out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def runs_of(lines: list[str], tenant: str) -> list[str]:
    return [line for line in lines if f"[tenant={tenant}]" in line]


def rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


def test_jobs_run_on_their_schedule_and_pick_up_changes(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    write_config(tmp_path, sandbox.base_url, schedule={"every": "1s"})
    runner = Running(tmp_path)
    try:
        runner.wait_for(lambda lines: all(runs_of(lines, t) for t in TENANTS))
        assert rows(tmp_path / "store.db") == RECORDS * 2
        sandbox.mutate(insert=3)
        first = len(runner.lines)
        # Every second, each tenant runs again: its next run reads the new records.
        runner.wait_for(
            lambda lines: all(len(runs_of(lines[first:], t)) >= 2 for t in TENANTS), timeout=30
        )
        _, err = runner.stop()
    finally:
        runner.kill()
    assert runner.proc.returncode == 0, err
    assert "stopped; every committed page and its checkpoint are kept" in err
    assert rows(tmp_path / "store.db") == (RECORDS + 3) * 2
    line = runs_of(runner.lines, "a")[0]
    assert re.search(
        r"\[tenant=a\]: ok, \d+ records, \d+ calls, [\d.]+s; next \S+ \(every 1s\)$", line
    )


def test_sigterm_mid_pass_keeps_the_checkpoint_and_the_next_start_continues(
    limited: SandboxProcess, tmp_path: Path
) -> None:
    write_config(tmp_path, limited.base_url, schedule="0 0 1 1 *")  # due once: never run
    limited.set_faults(latency_ms=300)
    runner = Running(tmp_path, "--concurrency", "1")
    try:
        deadline = time.monotonic() + 20
        while limited.stats()["total"] < 2:
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
        _, err = runner.stop()
    finally:
        runner.kill()
    assert runner.proc.returncode == 0, err
    assert "finishing the page in flight" in err
    (state, *_) = state_rows(tmp_path / "store.db")
    assert state["position"] is not None, "stopped at a page boundary, its pass still open"
    stored_rows = rows(tmp_path / "store.db")
    assert 0 < stored_rows < RECORDS * 2
    assert state["records"] == stored_rows

    limited.clear_faults()
    status = syncline("status", "--json", cwd=tmp_path)
    due = {row["partition"]: row for row in json.loads(status.stdout)}
    assert due["tenant=a"]["due_reason"] == "continues its unfinished pass"
    assert due["tenant=b"]["due_reason"] == "never synced"

    again = Running(tmp_path)
    try:
        again.wait_for(lambda lines: all(runs_of(lines, t) for t in TENANTS))
        again.stop()
    finally:
        again.kill()
    assert rows(tmp_path / "store.db") == RECORDS * 2
    status = syncline("status", "--json", cwd=tmp_path)
    for row in json.loads(status.stdout):
        assert row["next_due"].startswith(f"{time.gmtime().tm_year + 1}-01-01T00:00")


def test_a_spent_budget_brings_the_job_back_when_the_window_resets(
    limited: SandboxProcess, tmp_path: Path
) -> None:
    # 5 pages per tenant, 2 calls per 1.5 s: each tenant pauses twice and comes back.
    limited.set_limits(tenant_param="tenant", windows=[{"calls": 2, "per": 1.5}], headers="none")
    write_config(
        tmp_path,
        limited.base_url,
        schedule={"every": "1h"},
        limits=[{"calls": 2, "per": 1.5}],
        retry={"max_wait": 0},
    )
    runner = Running(tmp_path)
    try:
        lines = runner.wait_for(
            lambda lines: all(any(": ok, " in line for line in runs_of(lines, t)) for t in TENANTS),
            timeout=40,
        )
        runner.stop()
    finally:
        runner.kill()
    for tenant in TENANTS:
        mine = runs_of(lines, tenant)
        assert mine[0].split(": ")[1].startswith("paused"), mine
        assert "(its call budget resets)" in mine[0]
        assert "(every 3600s)" in mine[-1]
    assert rows(tmp_path / "store.db") == RECORDS * 2
    assert sum(t["rejected"] for t in limited.limits()["tenants"].values()) == 0


def test_run_without_any_schedule_says_what_to_add(sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_config(tmp_path, sandbox.base_url)
    result = syncline("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "no selected stream has a schedule" in result.stderr
    assert "schedule: {every: 15m}" in result.stderr
