"""The `syncline` command as users run it: real processes, exit codes, messages, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from syncline.sandbox import SandboxProcess
from tests.conftest import RECORDS, stored
from tests.integration.streams import STYLES_BY_NAME

CONFIG_TEMPLATE = """\
store: sqlite:///store.db
sources:
  sb:
    base_url: {base_url}
    auth: {{type: bearer, token: "${{SB_TOKEN}}"}}
    partitions:
      shard: [a, b]
    streams:
      items:
        path: /page/items
        params: {{tag: "{{shard}}"}}
        records: data
        primary_key: id
        updated_at: updated_at
        paginate: {{type: page_number, size_param: per_page, size: 1000, last_page: last_page}}
        incremental: {{type: watermark, param: updated_since}}
      broken:
        path: /no/such/endpoint
        records: data
        primary_key: id
"""


def syncline(
    *args: str, cwd: Path, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-m", "syncline", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def project(sandbox: SandboxProcess, tmp_path: Path) -> Path:
    (tmp_path / "syncline.yaml").write_text(CONFIG_TEMPLATE.format(base_url=sandbox.base_url))
    return tmp_path


def test_sync_json_summary_and_partial_failure(project: Path) -> None:
    done = syncline("sync", "--json", cwd=project, env={"SB_TOKEN": "s3cret-token"})

    assert done.returncode == 1, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    assert summary["ok"] is False
    by_job = {(s["stream"], s["partition"]): s for s in summary["streams"]}
    assert set(by_job) == {
        ("items", "shard=a"),
        ("items", "shard=b"),
        ("broken", "shard=a"),
        ("broken", "shard=b"),
    }
    for shard in "ab":
        ok = by_job[("items", f"shard={shard}")]
        assert (ok["status"], ok["records"], ok["requests"], ok["pages"]) == ("ok", RECORDS, 3, 3)
        failed = by_job[("broken", f"shard={shard}")]
        assert failed["status"] == "failed"
        assert "404" in failed["error"]
        assert "/no/such/endpoint" in failed["error"]
        assert failed["requests"] == 1  # a 404 is not retried
    # Partitions share one table, told apart by their partition column.
    assert len(stored(project / "store.db")) == RECORDS
    assert "s3cret-token" not in done.stdout + done.stderr


def test_sync_selected_stream_and_partition_exit_zero(project: Path) -> None:
    done = syncline(
        "sync",
        "--stream",
        "items",
        "--partition",
        "shard=b",
        cwd=project,
        env={"SB_TOKEN": "t0ken"},
    )

    assert done.returncode == 0, done.stderr
    assert "sb.items [shard=b]" in done.stderr
    assert "shard=a" not in done.stderr
    assert "1/1 ok" in done.stdout


def test_missing_environment_variable_exits_2_naming_key(project: Path) -> None:
    done = syncline("check", cwd=project, unset=("SB_TOKEN",))

    assert done.returncode == 2
    assert "syncline.yaml" in done.stderr
    assert "sources.sb.auth.token" in done.stderr
    assert "SB_TOKEN" in done.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("size: 1000", "size: -5", "sources.sb.streams.items.paginate.size"),
        ("last_page: last_page", "last_pgae: last_page", "paginate.last_pgae: unknown key"),
        ("type: page_number", "type: pages", "unknown type 'pages'"),
        (
            "records: data\n        primary_key: id\n        updated_at",
            "records: '[['\n        primary_key: id\n        updated_at",
            "not a valid JMESPath",
        ),
        ("path: /page/items", "path: /c/{company}/items", "uses ['company']"),
        (
            "store: sqlite:///store.db",
            "store: sqlite:///store.db\n  oops: [",
            "invalid YAML at line",
        ),
    ],
)
def test_bad_config_exits_2_with_key_path(project: Path, old: str, new: str, expected: str) -> None:
    path = project / "syncline.yaml"
    path.write_text(path.read_text().replace(old, new, 1))

    for command in ("check", "sync"):
        done = syncline(command, cwd=project, env={"SB_TOKEN": "x"})
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert str(path.name) in done.stderr
        assert expected in done.stderr


def test_unknown_stream_is_a_usage_error(project: Path) -> None:
    done = syncline("sync", "--stream", "nope", cwd=project, env={"SB_TOKEN": "x"})
    assert done.returncode == 2
    assert "no stream named nope" in done.stderr


def test_status_and_reset(project: Path) -> None:
    env = {"SB_TOKEN": "x"}
    syncline("sync", "--stream", "items", cwd=project, env=env)

    status = syncline("status", "--json", cwd=project, env=env)
    assert status.returncode == 0, status.stderr
    rows = {(r["stream"], r["partition"]): r for r in json.loads(status.stdout)}
    items_a = rows[("items", "shard=a")]
    assert items_a["rows"] == RECORDS
    assert items_a["status"] == "ok"
    assert items_a["watermark"] == "2024-01-01T00:39:05Z"  # record 2345: 2345 s after midnight
    assert rows[("broken", "shard=a")]["status"] is None

    reset = syncline(
        "reset", "--stream", "items", "--partition", "shard=a", "--yes", cwd=project, env=env
    )
    assert reset.returncode == 0, reset.stderr
    assert "forgot 1 checkpoint" in reset.stdout
    after = {
        (r["stream"], r["partition"]): r
        for r in json.loads(syncline("status", "--json", cwd=project, env=env).stdout)
    }
    assert after[("items", "shard=a")]["watermark"] is None
    assert after[("items", "shard=b")]["watermark"] == "2024-01-01T00:39:05Z"


def test_check_counts_jobs(project: Path) -> None:
    done = syncline("check", cwd=project, env={"SB_TOKEN": "x"})
    assert done.returncode == 0
    assert "1 source(s), 2 stream(s), 4 (stream, partition) job(s)" in done.stdout


def test_sigint_exits_130_with_consistent_state(sandbox: SandboxProcess, tmp_path: Path) -> None:
    stream = STYLES_BY_NAME["page_number_short_page"].stream(1)
    config = {
        "store": "sqlite:///store.db",
        "sources": {"sb": {"base_url": sandbox.base_url, "streams": {"items": stream}}},
    }
    (tmp_path / "syncline.yaml").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncline", "sync"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait (bounded) until some pages are committed, then interrupt.
        for _ in range(200):
            if sandbox.stats()["total"] >= 20:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        proc.send_signal(2)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    resumed = syncline("sync", cwd=tmp_path)
    assert resumed.returncode == 0
    assert stored(tmp_path / "store.db") == {r["id"]: r for r in sandbox.records()}


def test_partition_key_typo_is_a_usage_error(project: Path) -> None:
    done = syncline("sync", "--partition", "shrad=a", cwd=project, env={"SB_TOKEN": "x"})
    assert done.returncode == 2
    assert "no partition key shrad" in done.stderr
    assert "['shard']" in done.stderr


def test_config_show_masks_every_secret_and_literal_secrets_are_warned(tmp_path: Path) -> None:
    (tmp_path / "syncline.yaml").write_text(
        """\
store: sqlite:///store.db
sources:
  api:
    base_url: https://api.example.test
    auth: {type: bearer, token: tok-LITERAL-4242}
    headers: {X-Api-Key: key-LITERAL-777, Accept: application/json}
    streams:
      items: {path: /items, primary_key: id, params: {access_token: "${QTOKEN}"}}
"""
    )
    shown = syncline("config", "show", cwd=tmp_path, env={"QTOKEN": "q-ENV-31337"})
    assert shown.returncode == 0, shown.stderr
    for secret in ("tok-LITERAL-4242", "key-LITERAL-777", "q-ENV-31337"):
        assert secret not in shown.stdout + shown.stderr
    assert "token: '***'" in shown.stdout
    assert "X-Api-Key: '***'" in shown.stdout
    assert "Accept: application/json" in shown.stdout
    assert "sources.api.auth.token holds a secret written in the file" in shown.stderr
    assert "sources.api.headers.X-Api-Key holds a secret written in the file" in shown.stderr


def write_limited_config(
    tmp_path: Path,
    sandbox: SandboxProcess,
    limit: dict[str, Any],
    *,
    stream: dict[str, Any],
    **source: Any,
) -> None:
    """One stream of 100-record pages under one declared ``limit``."""
    items = {**STYLES_BY_NAME["page_number_short_page"].stream(100), **stream}
    source = {
        "base_url": sandbox.base_url,
        "limits": [limit],
        "streams": {"items": items},
        **source,
    }
    config = {"store": "sqlite:///store.db", "sources": {"sb": source}}
    (tmp_path / "syncline.yaml").write_text(json.dumps(config))


def test_a_spent_budget_pauses_with_exit_0_and_quota_shows_it(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    write_limited_config(
        tmp_path,
        sandbox,
        {"calls": 2, "per": "day", "reserve": 1, "name": "daily"},
        stream={"priority": "high"},
    )
    done = syncline("sync", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["outcome"] == "paused"
    assert summary["requests"] == 2
    assert sandbox.stats()["total"] == 2
    status = json.loads(syncline("status", "--json", cwd=tmp_path).stdout)
    assert status[0]["status"] == "paused"
    assert status[0]["not_before"]
    quota = syncline("quota", "--json", cwd=tmp_path)
    assert quota.returncode == 0, quota.stderr
    (row,) = json.loads(quota.stdout)
    assert row["scope"] == "sb"
    assert row["window"] == "daily"
    assert (row["limit"], row["used"], row["remaining"], row["reserve"]) == (2, 2, 0, 1)


def test_tables_show_bracketed_values_as_they_are(sandbox: SandboxProcess, tmp_path: Path) -> None:
    """Scopes and labels hold brackets (``sb[tenant=a]``); a table must not read them as
    markup and drop them."""
    write_limited_config(
        tmp_path,
        sandbox,
        {"calls": 2, "per": "day", "name": "daily"},
        stream={"params": {"tenant": "{tenant}"}},
        partitions={"tenant": ["a"]},
    )
    assert syncline("sync", cwd=tmp_path).returncode == 0
    wide = {"COLUMNS": "200"}
    quota = syncline("quota", cwd=tmp_path, env=wide)
    assert quota.returncode == 0, quota.stderr
    assert "sb[tenant=a]" in quota.stdout
    planned = syncline("sync", "--plan", cwd=tmp_path, env=wide)
    assert planned.returncode == 0, planned.stderr
    assert "sb[tenant=a]" in planned.stdout  # the spent window, named in the plan's reason
