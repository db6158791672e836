"""Deletions listed apart from the records: démarches-simplifiées' ``deletedDossiers``.

The GraphQL query asks for the changed dossiers and, in the same answer, the
dossiers deleted since the same watermark; ``deleted: {records: …}`` turns
that list into tombstones. Over real sockets against the sandbox emulation.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import syncline
from syncline import Config
from syncline.sandbox import SandboxProcess
from tests.conftest import make_config

QUERY = """
query getDemarche($demarcheNumber: Int!, $first: Int, $after: String,
                  $updatedSince: ISO8601DateTime) {
  demarche(number: $demarcheNumber) {
    dossiers(first: $first, after: $after, updatedSince: $updatedSince) {
      pageInfo { hasNextPage endCursor }
      nodes { number state dateDerniereModification }
    }
    deletedDossiers(deletedSince: $updatedSince) { nodes { number dateSupression } }
  }
}
"""
DEMARCHE = "1002"


def dossiers_stream(on_delete: str) -> dict[str, Any]:
    return {
        "path": "/api/v2/graphql",
        "graphql": {"query": QUERY, "variables": {"demarcheNumber": "{demarche}", "first": 20}},
        "partitions": {"demarche": [int(DEMARCHE)]},
        "records": "data.demarche.dossiers.nodes",
        "primary_key": "number",
        "updated_at": "dateDerniereModification",
        "deleted": {"records": "data.demarche.deletedDossiers.nodes"},
        "on_delete": on_delete,
        "paginate": {"type": "relay", "page_info": "data.demarche.dossiers.pageInfo", "size": 20},
        "incremental": {"type": "watermark", "param": "updatedSince"},
    }


@pytest.fixture
def ds(sandbox: SandboxProcess) -> SandboxProcess:
    sandbox.seed_reset("demarches")
    return sandbox


def config_for(api: SandboxProcess, db: Path, on_delete: str = "soft") -> Config:
    return make_config(
        api.seed_url("demarches"),
        db,
        {"dossiers": dossiers_stream(on_delete)},
        auth={"type": "bearer", "token": "ds-token"},
    )


def live(db: Path) -> set[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT number FROM dossiers WHERE _deleted_at IS NULL")
        return {number for (number,) in rows}


def remote(api: SandboxProcess) -> set[int]:
    return {int(record["number"]) for record in api.seed_records("demarches", DEMARCHE)}


def test_a_separate_list_of_deletions_marks_rows_deleted(
    ds: SandboxProcess, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    config = config_for(ds, db)
    first = syncline.sync(config)
    assert first.ok, [r.error for r in first.streams]
    assert live(db) == remote(ds)
    assert first.changed()["deleted"] == 0

    touched = ds.seed_mutate("demarches", DEMARCHE, delete=3, update=2)
    second = syncline.sync(config)
    assert second.ok, [r.error for r in second.streams]
    assert live(db) == remote(ds)
    assert second.changed() == {"inserted": 0, "updated": 2, "deleted": 3}
    deleted = sorted(
        int(c["key"])
        for c in syncline.changes(config, run_id=second.run_id)
        if c["kind"] == "delete"
    )
    assert deleted == sorted(int(n) for n in touched["deleted"])
    with sqlite3.connect(db) as conn:  # soft: the last known record stays, marked deleted
        kept = conn.execute(
            "SELECT count(*) FROM dossiers WHERE _deleted_at IS NOT NULL AND "
            "json_extract(_data, '$.state') IS NOT NULL"
        ).fetchone()[0]
    assert kept == 3

    third = syncline.sync(config)  # the same deletions listed again change nothing
    assert third.changed() == {"inserted": 0, "updated": 0, "deleted": 0}


def test_hard_deletes_remove_the_rows(ds: SandboxProcess, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    config = config_for(ds, db, on_delete="hard")
    syncline.sync(config)
    ds.seed_mutate("demarches", DEMARCHE, delete=2)
    syncline.sync(config)
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT count(*) FROM dossiers").fetchone()[0]
    assert count == len(remote(ds)) == 43
