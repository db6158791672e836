"""Each preset, loaded from the package, against the sandbox's emulation of its API.

Only the environment differs from a real run (base URL, credentials, tenant
ids), as a user would set it. The emulation is the referee: its ``__records``
is the truth the store must equal, and its ``__stats`` count every request
and every 429, so "minimal requests" is the server's word.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import syncline
from syncline import Config
from syncline.engine import JobResult
from syncline.plan import Job
from syncline.presets import preset_config
from syncline.sandbox import SandboxProcess


@pytest.fixture
def emulations(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The sandbox with every emulation at its launch config; restored for the next test."""
    for api in ("fattureincloud", "demarches", "inxmail", "exact"):
        sandbox.seed_reset(api)
    yield sandbox
    for api in ("fattureincloud", "demarches", "inxmail", "exact"):
        sandbox.seed_reset(api)


def load(
    name: str,
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    partitions: dict[str, list[Any]] | None = None,
) -> Config:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    return preset_config(name, store=f"sqlite:///{db}", partitions=partitions, base_dir=db.parent)


def rows(db: Path, table: str, key: str, field: str) -> dict[str, Any]:
    """Live rows of ``table`` as {primary key: the record's ``field``}."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        found = conn.execute(
            f'SELECT "{key}", json_extract(_data, ?) FROM "{table}" WHERE _deleted_at IS NULL',
            (f"$.{field}",),
        )
        return {str(k): v for k, v in found.fetchall()}


def keys(db: Path, table: str, key: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {str(k) for (k,) in conn.execute(f'SELECT "{key}" FROM "{table}"')}


def remote(
    api: SandboxProcess, seed: str, tenants: list[str], key: str, field: str
) -> dict[str, Any]:
    return {
        str(record[key]): record[field]
        for tenant in tenants
        for record in api.seed_records(seed, tenant)
    }


def requests(api: SandboxProcess, seed: str) -> dict[str, int]:
    return {t: s["requests"] for t, s in api.seed_stats(seed)["tenants"].items()}


def ok(summary: syncline.SyncSummary) -> None:
    assert summary.ok, [(r.stream, r.partition, r.error) for r in summary.streams]


# -- Fatture in Cloud: full polling, 1-based pages, never past last_page ----------------


def test_fattureincloud_polls_in_full_one_based_and_never_past_the_last_page(
    emulations: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    env = {"FIC_BASE_URL": emulations.seed_url("fattureincloud"), "FIC_TOKEN": "fic-token"}
    companies = ["1001", "1002", "1003"]  # 237, 58 and 0 products
    config = load("fattureincloud", db, monkeypatch, env, {"company_id": [1001, 1002, 1003]})

    ok(syncline.sync(config))
    assert rows(db, "products", "id", "updated_at") == remote(
        emulations, "fattureincloud", companies, "id", "updated_at"
    )
    stats = emulations.seed_stats("fattureincloud")
    pages = {"1001": 3, "1002": 1, "1003": 1}  # ceil(n / 100), and one page for an empty list
    assert requests(emulations, "fattureincloud") == pages
    # Only 200s: no page 0 (a 422 there), no page past last_page, no quota error.
    for company in companies:
        assert stats["tenants"][company]["statuses"] == {"200": pages[company]}
    assert stats["rate_limited"] == 0

    emulations.seed_mutate("fattureincloud", "1001", update=3, insert=2, delete=2)
    emulations.seed_reset_stats("fattureincloud")
    again = syncline.sync(config)
    ok(again)
    assert again.changed() == {"inserted": 2, "updated": 3, "deleted": 2}
    assert requests(emulations, "fattureincloud") == pages  # no filter exists: a full poll
    assert rows(db, "products", "id", "updated_at") == remote(
        emulations, "fattureincloud", companies, "id", "updated_at"
    )


def test_fattureincloud_pages_stay_one_based_when_the_server_caps_the_page(
    emulations: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server serves 40 per page whatever we ask: last_page still ends the walk exactly."""
    emulations.seed_config("fattureincloud", max_per_page=40)
    db = tmp_path / "store.db"
    env = {
        "FIC_BASE_URL": emulations.seed_url("fattureincloud"),
        "FIC_TOKEN": "fic-token",
        "FIC_COMPANY_ID": "1001",
    }
    ok(syncline.sync(load("fattureincloud", db, monkeypatch, env)))
    stats = emulations.seed_stats("fattureincloud")["tenants"]["1001"]
    assert stats["statuses"] == {"200": math.ceil(237 / 40)}
    assert len(rows(db, "products", "id", "updated_at")) == 237


# -- démarches-simplifiées: updatedSince watermark, Relay cursor, repeated last page ----


def ds_env(api: SandboxProcess) -> dict[str, str]:
    return {"DS_BASE_URL": api.seed_url("demarches"), "DS_TOKEN": "ds-token"}


def live_dossiers(db: Path) -> dict[str, Any]:
    gone = keys(db, "deleted_dossiers", "number")
    found = rows(db, "dossiers", "number", "dateDerniereModification")
    return {number: date for number, date in found.items() if number not in gone}


def test_demarches_sync_what_changed_since_the_watermark(
    emulations: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    tenants = ["1001", "1002", "1003"]  # 180, 45 and 0 dossiers
    config = load(
        "demarches-simplifiees",
        db,
        monkeypatch,
        ds_env(emulations),
        {"demarche": [1001, 1002, 1003]},
    )
    ok(syncline.sync(config))
    truth = remote(emulations, "demarches", tenants, "number", "dateDerniereModification")
    assert live_dossiers(db) == truth
    # dossiers: ceil(n / 100) pages (1 for none); deleted_dossiers: 1 page each.
    assert requests(emulations, "demarches") == {"1001": 2 + 1, "1002": 1 + 1, "1003": 1 + 1}

    changed = emulations.seed_mutate("demarches", "1001", update=4, insert=2, delete=1)
    emulations.seed_reset_stats("demarches")
    again = syncline.sync(config)
    ok(again)
    # One call per stream and démarche: only what changed since the watermark travels.
    assert requests(emulations, "demarches") == {"1001": 2, "1002": 2, "1003": 2}
    truth = remote(emulations, "demarches", tenants, "number", "dateDerniereModification")
    assert live_dossiers(db) == truth
    assert keys(db, "deleted_dossiers", "number") == {str(n) for n in changed["deleted"]}
    assert again.changed() == {"inserted": 2 + 1, "updated": 4, "deleted": 0}


def test_demarches_repeated_last_page_doubles_nothing(
    emulations: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's trap: polling again serves the last page again until something new arrives."""
    emulations.seed_reset("demarches", repeat_last_page=True, max_page_size=50)
    db = tmp_path / "store.db"
    config = load(
        "demarches-simplifiees", db, monkeypatch, ds_env(emulations), {"demarche": [1001]}
    )
    ok(syncline.sync(config))
    for _ in range(2):  # nothing changed: the same dossiers again, no duplicate, no change
        emulations.seed_reset_stats("demarches")
        quiet = syncline.sync(config)
        ok(quiet)
        assert quiet.changed() == {"inserted": 0, "updated": 0, "deleted": 0}
        assert requests(emulations, "demarches") == {"1001": 2}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT number) FROM dossiers").fetchone() == (
            180,
            180,
        )

    emulations.seed_mutate("demarches", "1001", update=3)
    changed = syncline.sync(config)
    ok(changed)
    assert changed.changed() == {"inserted": 0, "updated": 3, "deleted": 0}
    truth = remote(emulations, "demarches", ["1001"], "number", "dateDerniereModification")
    assert live_dossiers(db) == truth


# -- Inxmail: sync token, a record changed mid-sync comes again ------------------------------


def inxmail_config(api: SandboxProcess, db: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    env = {
        "INXMAIL_BASE_URL": api.seed_url("inxmail"),
        "INXMAIL_KEY_ID": "acme",
        "INXMAIL_SECRET": "inx-secret",
    }
    return load("inxmail", db, monkeypatch, env)


def test_inxmail_full_sync_then_only_changes_by_the_token(
    emulations: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    config = inxmail_config(emulations, db, monkeypatch)
    ok(syncline.sync(config))
    table = ("mailing_synchronizations", "id", "modificationDate")
    assert rows(db, *table) == remote(emulations, "inxmail", ["acme"], "id", "modificationDate")
    assert requests(emulations, "inxmail") == {"acme": 1}  # 240 records, pageSize 1000

    emulations.seed_mutate("inxmail", "acme", update=3, insert=2, delete=2)
    again = syncline.sync(config)
    ok(again)
    assert requests(emulations, "inxmail") == {"acme": 2}
    assert again.changed() == {"inserted": 2, "updated": 3, "deleted": 2}
    assert rows(db, *table) == remote(emulations, "inxmail", ["acme"], "id", "modificationDate")


class MutateAfterFirstPage:
    """Changes one record of page 1 on the server right after page 1 is committed."""

    def __init__(self, api: SandboxProcess, record_id: str) -> None:
        self.api, self.record_id, self.done = api, record_id, False

    def job_started(self, job: Job) -> None:
        pass

    def page_committed(self, job: Job, records: int, requests: int) -> None:
        if not self.done:
            self.done = True
            self.api.seed_mutate("inxmail", "acme", update_ids=[self.record_id])

    def job_finished(self, job: Job, result: JobResult) -> None:
        pass


def test_inxmail_record_changed_mid_sync_keeps_its_newest_version(
    emulations: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulations.seed_config("inxmail", max_page_size=50)  # 5 pages for 240 records
    oldest = min(emulations.seed_records("inxmail", "acme"), key=lambda r: r["modificationDate"])
    db = tmp_path / "store.db"
    config = inxmail_config(emulations, db, monkeypatch)

    summary = syncline.sync(config, listener=MutateAfterFirstPage(emulations, oldest["id"]))
    ok(summary)
    truth = remote(emulations, "inxmail", ["acme"], "id", "modificationDate")
    stored = rows(db, "mailing_synchronizations", "id", "modificationDate")
    assert stored == truth
    assert stored[oldest["id"]] > oldest["modificationDate"]  # the later, newer copy won
    seen = [e["kind"] for e in syncline.changes(config, run_id=summary.run_id)
            if e["key"] == oldest["id"]]  # fmt: skip
    assert seen == ["insert", "update"]  # page 1 brought it, a later page brought it again
    assert requests(emulations, "inxmail") == {"acme": 5}


# -- Exact Online: the sync API's Timestamp, within the per-division minute limit ------------


def exact_env(api: SandboxProcess, division: str = "3001") -> dict[str, str]:
    return {
        "EXACT_BASE_URL": api.seed_url("exact"),
        "EXACT_ACCESS_TOKEN": "exact-token",
        "EXACT_DIVISION": division,
    }


def live_accounts(db: Path) -> dict[str, Any]:
    gone = keys(db, "deleted_accounts", "EntityKey")
    return {k: v for k, v in rows(db, "accounts", "ID", "Timestamp").items() if k not in gone}


def test_exact_syncs_by_timestamp_and_fetches_only_changes(
    emulations: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulations.seed_config("exact", sync_page_size=250)  # 600 accounts: 3 pages
    db = tmp_path / "store.db"
    config = load("exact-online", db, monkeypatch, exact_env(emulations))
    ok(syncline.sync(config))
    assert live_accounts(db) == remote(emulations, "exact", ["3001"], "ID", "Timestamp")
    assert requests(emulations, "exact") == {"3001": 3 + 1}  # accounts + sync/Deleted

    changed = emulations.seed_mutate("exact", "3001", update=5, insert=2, delete=2)
    emulations.seed_reset_stats("exact")
    again = syncline.sync(config)
    ok(again)
    assert requests(emulations, "exact") == {"3001": 1 + 1}
    assert live_accounts(db) == remote(emulations, "exact", ["3001"], "ID", "Timestamp")
    assert keys(db, "deleted_accounts", "EntityKey") == set(changed["deleted"])
    assert emulations.seed_stats("exact")["rate_limited"] == 0


def test_exact_minute_limit_is_respected_zero_429s(
    emulations: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "minute" of 0.5 s with 4 calls: 13 calls per division must wait, never be refused."""
    emulations.seed_config("exact", minutely_limit=4, minutely_window=0.5, sync_page_size=50)
    db = tmp_path / "store.db"
    config = load(
        "exact-online", db, monkeypatch, exact_env(emulations), {"division": [3001, 3002]}
    )
    summary = syncline.sync(config)
    ok(summary)
    stats = emulations.seed_stats("exact")
    assert stats["rate_limited"] == 0
    for division in ("3001", "3002"):
        assert stats["tenants"][division]["statuses"] == {"200": 600 // 50 + 1}
    truth = remote(emulations, "exact", ["3001", "3002"], "ID", "Timestamp")
    assert live_accounts(db) == truth
