"""Every paginator, every page size: exactly the sandbox's records, in the fewest requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncline import sync
from syncline.sandbox import SandboxProcess
from tests.conftest import RECORDS, make_config, stored
from tests.integration.streams import STYLES, comparable, expected_records


@pytest.mark.parametrize("size", [1, 7, 100, 1000])
@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.name)
def test_full_sync_is_exact_and_minimal(
    sandbox: SandboxProcess, tmp_path: Path, style, size: int
) -> None:
    db = tmp_path / "store.db"
    summary = sync(make_config(sandbox.base_url, db, {"items": style.stream(size)}))

    assert summary.ok, summary.as_dict()
    minimal = style.min_requests(RECORDS, size)
    assert summary.requests == minimal
    assert sandbox.stats()["total"] == minimal
    assert summary.records == RECORDS
    assert comparable(style, stored(db)) == expected_records(style, sandbox.records())


def test_single_request_stream(sandbox: SandboxProcess, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    stream = {"path": "/none/items", "records": "items", "primary_key": "id"}
    summary = sync(make_config(sandbox.base_url, db, {"items": stream}))

    assert summary.ok
    assert summary.requests == 1
    assert stored(db) == {r["id"]: r for r in sandbox.records()}
