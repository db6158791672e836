"""Crash safety: SIGKILL the real `syncline sync` process at named points, rerun, compare.

Points (see ``syncline.failpoints``): after a page is fetched, after its rows
are written but before the checkpoint, after the checkpoint is written but
before COMMIT, and after the commit. Each is hit at the first, second, a middle
and the last page of a full pass (16 kills), plus 6 kills in incremental passes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from syncline.sandbox import SandboxProcess
from tests.conftest import RECORDS, state_rows, stored
from tests.integration.streams import STYLES_BY_NAME, comparable, expected_records

POINTS = [
    "engine.page_fetched",
    "store.rows_written",
    "store.before_commit",
    "engine.page_committed",
]
SIZE = 100
PAGES = -(-RECORDS // SIZE)  # 24
KILL_TIMEOUT = 60


def write_config(tmp_path: Path, base_url: str, stream: dict[str, Any]) -> Path:
    path = tmp_path / "syncline.yaml"
    source = {"base_url": base_url, "streams": {"items": stream}}
    config = {"store": "sqlite:///store.db", "sources": {"sb": source}}
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def run_cli(config: Path, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNCLINE_FAILPOINT"}
    if failpoint:
        env["SYNCLINE_FAILPOINT"] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "syncline", "sync", "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=KILL_TIMEOUT,
        check=False,
    )


def assert_checkpoint_not_ahead(db: Path) -> None:
    """A full page_number pass: the stored position's page count matches the committed rows."""
    if not db.exists():
        return
    states = state_rows(db)
    if not states:
        return
    (state,) = states
    position = json.loads(state["position"])
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        except sqlite3.OperationalError:
            rows = 0
    if position is None:
        assert rows == RECORDS
    else:
        assert rows == (position["page"] - 1) * SIZE
        assert state["pages"] == position["page"] - 1


@pytest.mark.parametrize("hit", [1, 2, PAGES // 2, PAGES])
@pytest.mark.parametrize("point", POINTS)
def test_kill_during_full_pass_then_resume(
    sandbox: SandboxProcess, tmp_path: Path, point: str, hit: int
) -> None:
    style = STYLES_BY_NAME["page_number_short_page"]
    config = write_config(tmp_path, sandbox.base_url, style.stream(SIZE))
    db = tmp_path / "store.db"

    killed = run_cli(config, f"{point}:{hit}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_checkpoint_not_ahead(db)

    resumed = run_cli(config)
    assert resumed.returncode == 0, resumed.stderr
    assert stored(db) == expected_records(style, sandbox.records())
    (state,) = state_rows(db)
    assert json.loads(state["position"]) is None
    assert state["status"] == "ok"


@pytest.mark.parametrize(
    ("point", "hit"),
    [("store.rows_written", 2), ("store.before_commit", 1), ("engine.page_committed", 3)],
)
@pytest.mark.parametrize("name", ["relay", "cursor_feed"])
def test_kill_during_incremental_pass_then_resume(
    sandbox: SandboxProcess, tmp_path: Path, name: str, point: str, hit: int
) -> None:
    style = STYLES_BY_NAME[name]
    config = write_config(tmp_path, sandbox.base_url, style.stream(7))
    db = tmp_path / "store.db"
    assert run_cli(config).returncode == 0
    sandbox.mutate(update=37, insert=5)

    killed = run_cli(config, f"{point}:{hit}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_cli(config)

    assert resumed.returncode == 0, resumed.stderr
    assert comparable(style, stored(db)) == expected_records(style, sandbox.records())
    (state,) = state_rows(db)
    assert json.loads(state["position"]) is None
