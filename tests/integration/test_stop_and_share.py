"""Stopping and sharing: signals mid-page, two processes on one store, OAuth2 for real.

Real `syncline sync` processes against the real sandbox over sockets; the
sandbox's ``latency_ms`` keeps a request in flight long enough to signal it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from syncline.sandbox import SandboxProcess
from tests.conftest import state_rows, stored
from tests.integration.streams import STYLES_BY_NAME
from tests.integration.test_cli import syncline


def write_config(tmp_path: Path, base_url: str, **source: Any) -> Path:
    stream = STYLES_BY_NAME["page_number_short_page"].stream(1)
    stream["paginate"]["size"] = 50
    config = {
        "store": "sqlite:///store.db",
        "sources": {"sb": {"base_url": base_url, "streams": {"items": stream}, **source}},
    }
    path = tmp_path / "syncline.yaml"
    path.write_text(json.dumps(config))
    return path


def start_sync(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncline", "sync", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_requests(sandbox: SandboxProcess, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while sandbox.stats()["total"] < count:
        assert time.monotonic() < deadline, "the sync never got going"
        time.sleep(0.02)


def assert_consistent(db: Path) -> None:
    """Rows and checkpoint agree: the next position starts right after the stored rows."""
    (state,) = state_rows(db)
    position = json.loads(state["position"]) if state["position"] else None
    rows = len(stored(db))
    if position is not None:
        assert (position["page"] - 1) * 50 == rows
    assert state["records"] == rows


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_page_stops_cleanly_and_the_next_run_resumes(
    sandbox: SandboxProcess, tmp_path: Path, signum: int, code: int
) -> None:
    write_config(tmp_path, sandbox.base_url)
    sandbox.set_faults(latency_ms=150)
    proc = start_sync(tmp_path)
    try:
        wait_for_requests(sandbox, 4)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "finishing the page in flight" in err
    assert_consistent(tmp_path / "store.db")
    with sqlite3.connect(tmp_path / "store.db") as conn:
        (status,) = conn.execute("SELECT status FROM _syncline_runs").fetchone()
    assert status == "interrupted"

    sandbox.clear_faults()
    resumed = syncline("sync", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert stored(tmp_path / "store.db") == {r["id"]: r for r in sandbox.records()}


def test_back_to_back_signals_still_leave_consistent_state(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    write_config(tmp_path, sandbox.base_url)
    sandbox.set_faults(latency_ms=300)
    proc = start_sync(tmp_path)
    try:
        wait_for_requests(sandbox, 3)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert_consistent(tmp_path / "store.db")
    sandbox.clear_faults()
    assert syncline("sync", cwd=tmp_path).returncode == 0
    assert stored(tmp_path / "store.db") == {r["id"]: r for r in sandbox.records()}


SLOW_SHUTDOWN = """
import asyncio, sys
from syncline.signals import Interrupted, run_until_signalled

async def stubborn():
    try:
        print("ready", flush=True)
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        print("cancelled: cleaning up slowly", flush=True)
        await asyncio.sleep(60)  # a shutdown that takes too long for the operator

try:
    run_until_signalled(stubborn)
except Interrupted as stop:
    sys.exit(stop.exit_code)
"""


def test_a_second_signal_exits_at_once_when_shutdown_is_slow() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SHUTDOWN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().startswith("cancelled")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert "exiting now" in err
    assert time.monotonic() - started < 5


def test_two_processes_on_one_stream_never_interleave(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    write_config(tmp_path, sandbox.base_url)
    sandbox.set_faults(latency_ms=100)
    first = start_sync(tmp_path)
    try:
        wait_for_requests(sandbox, 2)
        second = syncline("sync", cwd=tmp_path)
        assert second.returncode == 4, second.stderr
        assert "BUSY" in second.stdout
        assert "is being synced by" in second.stdout
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    finally:
        first.kill()
    sandbox.clear_faults()
    # The first process released its lease on the way out: no wait for expiry.
    done = syncline("sync", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stored(tmp_path / "store.db") == {r["id"]: r for r in sandbox.records()}


def test_a_killed_holders_lease_does_not_block_the_next_run(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    write_config(tmp_path, sandbox.base_url)
    sandbox.set_faults(latency_ms=100)
    proc = start_sync(tmp_path)
    try:
        wait_for_requests(sandbox, 3)
        proc.kill()  # SIGKILL: no chance to release the lease
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    sandbox.clear_faults()
    with sqlite3.connect(tmp_path / "store.db") as conn:
        (expires,) = conn.execute("SELECT expires_at FROM _syncline_leases").fetchone()
    assert expires > time.time()  # still formally held...
    done = syncline("sync", cwd=tmp_path)  # ...but its holder is provably dead
    assert done.returncode == 0, done.stderr + done.stdout
    assert stored(tmp_path / "store.db") == {r["id"]: r for r in sandbox.records()}


# --- OAuth2 against the sandbox's token endpoint ------------------------------------------


@pytest.fixture(scope="module")
def oauth_sandbox() -> Any:
    with SandboxProcess(
        records=120, seed=3, oauth_client=("cid", "csecret-Q1"), oauth_ttl=600
    ) as sb:
        yield sb


def oauth_config(tmp_path: Path, sandbox: SandboxProcess, refresh_token: str) -> Path:
    return write_config(
        tmp_path,
        sandbox.base_url,
        auth={
            "type": "oauth2",
            "grant": "refresh_token",
            "token_url": f"{sandbox.base_url}/oauth/token",
            "client_id": "cid",
            "client_secret": "csecret-Q1",
            "refresh_token": refresh_token,
            "token_file": "tokens/sandbox.json",
        },
    )


def test_oauth2_refresh_token_rotation_across_runs_and_a_forced_401(
    oauth_sandbox: SandboxProcess, tmp_path: Path
) -> None:
    initial = oauth_sandbox.oauth_refresh_token()
    oauth_config(tmp_path, oauth_sandbox, initial)
    first = syncline("sync", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    token_file = tmp_path / "tokens" / "sandbox.json"
    saved = json.loads(token_file.read_text())
    assert saved["refresh_token"] != initial  # rotated, and persisted
    assert token_file.stat().st_mode & 0o777 == 0o600

    oauth_sandbox.oauth_expire()  # every access token now gets 401
    before = oauth_sandbox.oauth_stats()["grants"]["refresh_token"]
    second = syncline("sync", "--full-refresh", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert oauth_sandbox.oauth_stats()["grants"]["refresh_token"] == before + 1
    assert stored(tmp_path / "store.db") == {r["id"]: r for r in oauth_sandbox.records()}


def test_oauth2_a_refresh_token_lost_in_a_crash_asks_to_reauthenticate(
    oauth_sandbox: SandboxProcess, tmp_path: Path
) -> None:
    oauth_config(tmp_path, oauth_sandbox, oauth_sandbox.oauth_refresh_token())
    crashed = syncline("sync", cwd=tmp_path, env={"SYNCLINE_FAILPOINT": "oauth2.token_received:1"})
    assert crashed.returncode == -signal.SIGKILL
    # The server rotated the token, our process died before saving the new one.
    again = syncline("sync", cwd=tmp_path)
    assert again.returncode == 1
    assert "re-authenticate" in again.stdout + again.stderr
