"""Write-back against the sandbox's Exact Online emulation, over real sockets.

The Invantive seed's scenario: set ``InvoiceAttachmentType`` from 3 to 1 on
accounts, customers (``Status 'C'``) first, at most N per run, within each
division's call limits, never the reserve, all divisions in parallel. The
emulation is the referee: it counts the writes it applied per record, so
"applied exactly once" is the server's word.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import syncline
from syncline import Config, config_from_dict
from syncline.cli import main
from syncline.presets import preset_config
from syncline.sandbox import SandboxProcess

SELECT = "ID,Timestamp,Code,Name,Status,InvoiceAttachmentType,City,Modified,Division"
DIVISIONS = ("3001", "3002")
WHERE_CUSTOMERS = "InvoiceAttachmentType = 3 AND status = 'C'"
KILL_TIMEOUT = 60


@pytest.fixture
def exact(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The Exact emulation: 2 divisions of 200 accounts, its limits far away unless a test
    sets them; restored for the next test."""
    sandbox.seed_reset("exact", tenants={"3001": 200, "3002": 200}, minutely_limit=10_000)
    yield sandbox
    sandbox.seed_reset("exact")


def raw_config(
    api: SandboxProcess,
    db: Path,
    *,
    limits: list[dict[str, Any]] | None = None,
    write: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    timeout: float = 30.0,
    divisions: tuple[str, ...] = DIVISIONS,
) -> dict[str, Any]:
    stream = {
        "path": "/api/v1/{division}/sync/CRM/Accounts",
        "params": {"$select": SELECT},
        "records": "d.results",
        "primary_key": "ID",
        "updated_at": "Timestamp",
        "paginate": {"type": "next_link", "next_url_path": "d.__next"},
        "incremental": {
            "type": "watermark",
            "param": "$filter",
            "template": "Timestamp gt {value}",
            "format": "raw",
            "initial": 1,
        },
        "write": {
            "method": "PUT",
            "path": "/api/v1/{division}/crm/Accounts(guid'{ID}')",
            "read_path": "/api/v1/{division}/sync/CRM/Accounts",
            "read_params": {"$filter": "ID eq guid'{ID}'", "$select": SELECT},
            "read_record": "d.results[0]",
            "priority": "low",
            **(write or {}),
        },
    }
    source: dict[str, Any] = {
        "base_url": api.seed_url("exact"),
        "auth": {"type": "bearer", "token": "exact-token"},
        "partitions": {"division": [int(d) for d in divisions]},
        "timeout": timeout,
        "limits": limits or [],
        "streams": {"accounts": stream},
    }
    if retry:
        source["retry"] = retry
    return {"store": f"sqlite:///{db}", "sources": {"exact": source}}


def make(api: SandboxProcess, db: Path, **options: Any) -> Config:
    return config_from_dict(raw_config(api, db, **options), base_dir=db.parent)


def mirror(db: Path, field: str = "InvoiceAttachmentType") -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        found = conn.execute(
            "SELECT ID, json_extract(_data, ?) FROM accounts WHERE _deleted_at IS NULL",
            (f"$.{field}",),
        )
        return {str(k): v for k, v in found.fetchall()}


def remote(api: SandboxProcess, field: str = "InvoiceAttachmentType") -> dict[str, Any]:
    return {r["ID"]: r[field] for d in DIVISIONS for r in api.seed_records("exact", d)}


def customers_to_change(api: SandboxProcess, division: str) -> set[str]:
    return {
        r["ID"]
        for r in api.seed_records("exact", division)
        if r["InvoiceAttachmentType"] == 3 and r["Status"] == "C"
    }


def writes(api: SandboxProcess) -> dict[str, int]:
    counts: dict[str, int] = {}
    for division in DIVISIONS:
        counts.update(api.seed_writes("exact", division))
    return counts


def outbox(db: Path) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM _syncline_outbox ORDER BY seq")]


def synced(config: Config) -> syncline.SyncSummary:
    summary = syncline.sync(config)
    assert summary.ok, [(r.partition, r.error) for r in summary.streams]
    return summary


# -- plan, then apply ---------------------------------------------------------------------


def test_dry_run_shows_the_plan_and_changes_nothing(exact: SandboxProcess, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    config = make(exact, db)
    synced(config)
    exact.seed_reset_stats("exact")

    outcome = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, limit=10
    )

    draft = outcome.draft
    assert draft is not None
    assert len(draft.items) == 10
    expected = sum(len(customers_to_change(exact, d)) for d in DIVISIONS)
    assert draft.matched == expected
    assert all(i.before == {"InvoiceAttachmentType": 3} for i in draft.items)
    assert all(i.patch == {"InvoiceAttachmentType": 1} for i in draft.items)
    assert set(draft.per_partition().values()) == {5}  # no order: spread over the divisions
    assert exact.seed_stats("exact")["total"] == 0  # planning costs no call
    assert writes(exact) == {}
    assert outbox(db) == []


def test_customers_first_limit_n_each_item_written_once_and_mirror_matches(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = make(exact, db)
    synced(config)

    first = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, limit=12,
        apply=True,
    )  # fmt: skip

    assert first.outcome == "ok"
    (summary,) = first.summaries
    assert summary.total("applied") == 12
    written = writes(exact)
    assert len(written) == 12
    assert set(written.values()) == {1}
    customers = set().union(*(customers_to_change(exact, d) for d in DIVISIONS))
    assert customers.isdisjoint(written)  # what is left to change excludes what was written
    truth = remote(exact)
    assert mirror(db) == truth  # each changed row was refreshed from the server
    # The next sync brings nothing new for the pushed rows: they are not a foreign change.
    again = synced(config)
    changed_keys = {e["key"] for e in syncline.changes(config, run_id=again.run_id)}
    assert changed_keys.isdisjoint(written)

    # The rest of the customers, then the non-customers: customers come first.
    rest = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, apply=True
    )
    assert rest.outcome == "ok"
    assert all(not customers_to_change(exact, d) for d in DIVISIONS)
    others = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where="InvoiceAttachmentType = 3",
        apply=True,
    )  # fmt: skip
    assert others.outcome == "ok"
    assert 3 not in remote(exact).values()
    assert set(writes(exact).values()) == {1}
    assert mirror(db) == remote(exact)


def test_budget_pauses_without_spending_the_reserve_and_resume_applies_each_once(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    """A "day" of 3 s with 40 calls per division and 10 kept in reserve: a low-priority push
    spends at most 30, pauses, and continues once the window has moved on."""
    exact.seed_config("exact", daily_limit=40, daily_window=3.0, minutely_limit=10_000)
    db = tmp_path / "store.db"
    limits = [{"calls": 40, "per": "3s", "reserve": 10, "name": "daily"}]
    config = make(exact, db, limits=limits, retry={"max_wait": 0.5})
    synced(config)  # 1 call per division
    todo = {d: customers_to_change(exact, d) for d in DIVISIONS}
    assert all(len(ids) > 15 for ids in todo.values())  # more than one window's worth

    paused = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, apply=True
    )

    assert paused.outcome == "paused"
    stats = exact.seed_stats("exact")
    assert stats["rate_limited"] == 0
    for division in DIVISIONS:
        spent = stats["tenants"][division]["requests"]
        assert spent <= 30  # the reserve of 10 was never touched
    assert any(i["status"] == "pending" for i in outbox(db))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(3.1)  # the window moves on
        resumed = syncline.push(config, "accounts", resume=True, apply=True)
        assert exact.seed_stats("exact")["rate_limited"] == 0
        if resumed.outcome == "ok":
            break
    assert all(i["status"] == "applied" for i in outbox(db))
    written = writes(exact)
    assert set(written) == set().union(*todo.values())
    assert set(written.values()) == {1}  # every item applied exactly once
    assert mirror(db) == remote(exact)


def test_divisions_run_in_parallel_each_within_its_own_minute_limit(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    exact.seed_config("exact", minutely_limit=6, minutely_window=0.5)
    db = tmp_path / "store.db"
    config = make(exact, db, limits=[{"calls": 6, "per": 0.5}])
    synced(config)

    outcome = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, limit=16,
        apply=True,
    )  # fmt: skip

    assert outcome.outcome == "ok"
    (summary,) = outcome.summaries
    assert {p.partition: p.settled.get("applied") for p in summary.partitions} == {
        "division=3001": 8,
        "division=3002": 8,
    }
    assert exact.seed_stats("exact")["rate_limited"] == 0
    # In parallel: a division's items were settled while the other division still had some
    # to do (the order of the settle times proves it, no clock budget involved).
    order = [i["partition"] for i in sorted(outbox(db), key=lambda i: i["updated_at"])]
    first_done = min(len(order) - order[::-1].index(p) for p in set(order))
    assert len(set(order[:first_done])) == 2


# -- safe: lost answers, conflicts, refusals ---------------------------------------------


def test_a_write_whose_answer_is_lost_is_verified_not_sent_again(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = make(exact, db, timeout=0.3)
    synced(config)
    exact.seed_config("exact", slow_writes=1, slow_write_seconds=1.0)

    outcome = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, limit=3,
        apply=True,
    )  # fmt: skip

    assert outcome.outcome == "ok"
    time.sleep(1.0)  # let the slow answer finish on the server side
    items = outbox(db)
    assert [i["status"] for i in items] == ["applied"] * 3
    assert [i["attempts"] for i in items] == [1, 1, 1]  # the slow one was verified, not resent
    assert set(writes(exact).values()) == {1}


def test_a_5xx_that_did_not_apply_is_verified_then_sent_again(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = make(exact, db)
    synced(config)
    exact.seed_config("exact", failed_writes=1)

    outcome = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, limit=2,
        apply=True,
    )  # fmt: skip

    assert outcome.outcome == "ok"
    items = outbox(db)
    assert [i["status"] for i in items] == ["applied", "applied"]
    assert items[0]["attempts"] == 2  # 500 → read back: not applied → sent again
    assert set(writes(exact).values()) == {1}


def test_etag_conflict_is_recorded_and_the_record_is_not_overwritten(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    exact.seed_config("exact", etags=True)
    db = tmp_path / "store.db"
    config = make(exact, db, write={"etag": "__metadata.etag"}, divisions=("3001",))
    synced(config)
    target = sorted(customers_to_change(exact, "3001"))[:3]
    # Someone else changes one of them after our sync: its ETag moves on.
    exact.seed_mutate("exact", "3001", update_ids=[target[0]])
    changed_by_them = {r["ID"]: r for r in exact.seed_records("exact", "3001")}[target[0]]

    outcome = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1},
        where=f"ID IN ('{target[0]}', '{target[1]}', '{target[2]}')", apply=True,
    )  # fmt: skip

    by_key = {json.loads(i["key"])[0]: i for i in outbox(db)}
    assert by_key[target[0]]["status"] == "conflict"
    assert "412" in by_key[target[0]]["error"]
    assert {by_key[k]["status"] for k in target[1:]} == {"applied"}
    after = {r["ID"]: r for r in exact.seed_records("exact", "3001")}[target[0]]
    assert after == changed_by_them  # their change stands
    assert outcome.summaries[0].total("conflict") == 1


def test_per_item_refusals_are_recorded_and_the_run_stops_at_the_error_threshold(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = make(exact, db, write={"max_errors": 3}, divisions=("3001",))
    synced(config)

    outcome = syncline.push(
        config, "accounts", {"Status": "X"}, where="Status = 'C'", limit=10, apply=True
    )

    assert outcome.outcome == "failed"
    items = outbox(db)
    assert [i["status"] for i in items[:3]] == ["failed"] * 3
    assert "Invalid Status" in items[0]["error"]
    assert {i["status"] for i in items[3:]} == {"pending"}  # stopped: the rest wait
    assert writes(exact) == {}


# -- the command line ---------------------------------------------------------------------


def run(args: list[str]) -> int:
    """The command's exit code, in this process."""
    try:
        return main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def write_config(api: SandboxProcess, tmp_path: Path, **options: Any) -> Path:
    path = tmp_path / "syncline.yaml"
    path.write_text(json.dumps(raw_config(api, tmp_path / "store.db", **options)))
    return path


def test_sql_statement_and_outbox_command(
    exact: SandboxProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(exact, tmp_path)
    assert run(["sync", "-c", str(config_path)]) == 0
    capsys.readouterr()
    statement = (
        "UPDATE accounts SET InvoiceAttachmentType = 1 "
        "WHERE InvoiceAttachmentType = 3 AND status = 'C' ORDER BY Name LIMIT 4"
    )
    assert run(["sql", statement, "-c", str(config_path)]) == 0
    shown = capsys.readouterr().out
    assert "dry run" in shown
    assert "→ 1" in shown
    assert writes(exact) == {}

    assert run(["sql", statement, "-c", str(config_path), "--apply", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs"][0]["outcome"] == "ok"
    assert sum(writes(exact).values()) == 4
    names = sorted(
        r["Name"] for d in DIVISIONS for r in exact.seed_records("exact", d)
        if r["ID"] in writes(exact)
    )  # fmt: skip
    assert len(names) == 4

    assert run(["outbox", "-c", str(config_path), "--json", "--items"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)
    assert plan["counts"] == {"applied": 4}
    assert plan["statement"] == statement
    assert len(plan["items"]) == 4


def test_push_without_write_section_names_the_stream(tmp_path: Path) -> None:
    raw = {
        "store": f"sqlite:///{tmp_path / 'store.db'}",
        "sources": {
            "s": {
                "base_url": "http://127.0.0.1:9",
                "streams": {"items": {"path": "/items", "primary_key": "id"}},
            }
        },
    }
    config = config_from_dict(raw, base_dir=tmp_path)
    with pytest.raises(syncline.ConfigError, match=r"s\.items has no 'write:' section"):
        syncline.push(config, "items", {"a": 1})


# -- kill -9 during apply -----------------------------------------------------------------


def run_push_cli(config_path: Path, *args: str, failpoint: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "SYNCLINE_FAILPOINT"}
    if failpoint:
        env["SYNCLINE_FAILPOINT"] = failpoint
    done = subprocess.run(
        [sys.executable, "-m", "syncline", "push", "accounts", "-c", str(config_path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=KILL_TIMEOUT,
        check=False,
    )
    return done.returncode


@pytest.mark.parametrize("point", ["push.before_send:4", "push.after_send:4"])
def test_kill_9_during_apply_then_resume_applies_every_item_exactly_once(
    exact: SandboxProcess, tmp_path: Path, point: str
) -> None:
    """Killed after an item was marked in doubt, before its call (not applied) or after the
    server applied it (answer lost): the resume verifies it, and never writes twice."""
    config_path = write_config(exact, tmp_path)
    assert run(["sync", "-c", str(config_path)]) == 0
    args = ["--set", "InvoiceAttachmentType=1", "--where", WHERE_CUSTOMERS, "--limit", "10"]

    killed = run_push_cli(config_path, *args, "--apply", "--concurrency", "1", failpoint=point)

    assert killed == -signal.SIGKILL
    items = outbox(tmp_path / "store.db")
    assert len(items) == 10
    assert [i["status"] for i in items].count("unknown") == 1
    assert run_push_cli(config_path, "--resume", "--apply") == 0
    items = outbox(tmp_path / "store.db")
    assert {i["status"] for i in items} == {"applied"}
    written = writes(exact)
    assert len(written) == 10
    assert set(written.values()) == {1}


def test_the_exact_preset_pushes_the_seed_statement(
    exact: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXACT_BASE_URL", exact.seed_url("exact"))
    monkeypatch.setenv("EXACT_ACCESS_TOKEN", "exact-token")
    monkeypatch.setenv("EXACT_DIVISION", "3001")
    db = tmp_path / "store.db"
    config = preset_config("exact-online", store=f"sqlite:///{db}", base_dir=tmp_path)
    synced(config)

    outcome = syncline.sql(
        config,
        "UPDATE accounts SET InvoiceAttachmentType = 1 "
        "WHERE InvoiceAttachmentType = 3 AND status = 'C' LIMIT 5",
        apply=True,
    )

    assert outcome.outcome == "ok"
    assert outcome.summaries[0].plan.priority == "low"
    written = exact.seed_writes("exact", "3001")
    assert len(written) == 5
    assert set(written.values()) == {1}
    again = synced(config)
    assert not [e for e in syncline.changes(config, run_id=again.run_id) if e["key"] in written]


def test_a_write_only_limit_holds_with_zero_429s_while_reads_do_not_count(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    """The API allows 4 writes per 0.5 s per division; reads are free. Declared as an
    ``operation: write`` limit, the push never sends a write the window forbids."""
    exact.seed_config("exact", write_minutely_limit=4, write_minutely_window=0.5)
    db = tmp_path / "store.db"
    limits = [{"calls": 4, "per": 0.5, "operation": "write"}]
    config = make(exact, db, limits=limits, divisions=("3001",))
    synced(config)

    outcome = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, limit=10,
        apply=True,
    )  # fmt: skip

    assert outcome.outcome == "ok"
    stats = exact.seed_stats("exact")
    assert stats["rate_limited"] == 0
    assert stats["tenants"]["3001"]["statuses"] == {"200": 1 + 10, "204": 10}  # sync + reads
    assert len(writes(exact)) == 10


@pytest.mark.parametrize("store", ["postgresql", "duckdb", "jsonl"])
def test_push_end_to_end_on_every_other_store(
    exact: SandboxProcess, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    raw = raw_config(exact, tmp_path / "unused.db", divisions=("3001",))
    raw["store"] = {
        "postgresql": lambda: request.getfixturevalue("postgres_url"),
        "duckdb": lambda: f"duckdb:///{tmp_path / 'store.duckdb'}",
        "jsonl": lambda: f"jsonl:///{tmp_path / 'out'}",
    }[store]()
    config = config_from_dict(raw, base_dir=tmp_path)
    synced(config)
    before = syncline.push(config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS)
    assert before.draft is not None

    outcome = syncline.push(
        config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS, limit=6,
        apply=True,
    )  # fmt: skip

    assert outcome.outcome == "ok"
    written = exact.seed_writes("exact", "3001")
    assert len(written) == 6
    assert set(written.values()) == {1}
    after = syncline.push(config, "accounts", {"InvoiceAttachmentType": 1}, where=WHERE_CUSTOMERS)
    assert after.draft is not None
    assert after.draft.matched == before.draft.matched - 6  # the mirror rows were updated
    again = synced(config)
    assert not [e for e in syncline.changes(config, run_id=again.run_id) if e["key"] in written]


def test_max_calls_caps_a_run_and_the_same_push_again_continues_its_plan(
    exact: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = make(exact, db, divisions=("3001",))
    synced(config)
    push = {"where": WHERE_CUSTOMERS, "limit": 10, "apply": True}

    capped = syncline.push(config, "accounts", {"InvoiceAttachmentType": 1}, max_calls=6, **push)

    assert capped.outcome == "paused"
    (summary,) = capped.summaries
    assert summary.calls == 6  # 3 writes, 3 read-backs
    assert summary.total("applied") == 3
    assert summary.open == 7
    again = syncline.push(config, "accounts", {"InvoiceAttachmentType": 1}, **push)
    assert again.draft is None  # not planned anew: the unfinished plan is continued
    assert [p.id for p in again.continued] == [summary.plan.id]
    assert again.outcome == "ok"
    items = outbox(db)
    assert len(items) == 10
    assert {i["status"] for i in items} == {"applied"}
    written = writes(exact)
    assert len(written) == 10
    assert set(written.values()) == {1}
