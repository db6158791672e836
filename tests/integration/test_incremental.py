"""Incremental runs: after 37 updates and 5 inserts only the changes travel; the store is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncline import sync
from syncline.sandbox import SandboxProcess
from syncline.timestamps import normalize
from tests.conftest import make_config, state_rows, stored
from tests.integration.streams import STYLES_BY_NAME, comparable, expected_records

WATERMARK_STYLES = ["page_number", "offset", "cursor", "relay", "next_link", "link_header"]


@pytest.mark.parametrize("size", [7, 100])
@pytest.mark.parametrize("name", WATERMARK_STYLES)
def test_watermark_second_run_fetches_only_changes(
    sandbox: SandboxProcess, tmp_path: Path, name: str, size: int
) -> None:
    style = STYLES_BY_NAME[name]
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": style.stream(size)})
    assert sync(config).ok
    watermark = max(normalize(r["updated_at"]) for r in sandbox.records())

    changed = sandbox.mutate(update=37, insert=5)
    sandbox.reset_stats()
    summary = sync(config)

    # The filter is inclusive (updated_at >= watermark): the boundary record comes again.
    after = [r for r in sandbox.records() if normalize(r["updated_at"]) >= watermark]
    assert len(changed["updated"]) + len(changed["inserted"]) == 42
    assert summary.ok, summary.as_dict()
    assert summary.records == len(after)
    assert summary.requests == style.min_requests(len(after), size)
    assert sandbox.stats()["total"] == summary.requests
    assert comparable(style, stored(db)) == expected_records(style, sandbox.records())


@pytest.mark.parametrize("size", [7, 100])
def test_cursor_mode_continues_from_the_last_cursor(
    sandbox: SandboxProcess, tmp_path: Path, size: int
) -> None:
    style = STYLES_BY_NAME["cursor_feed"]
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": style.stream(size)})
    assert sync(config).ok
    sandbox.mutate(update=37, insert=5)
    sandbox.reset_stats()

    summary = sync(config)

    assert summary.ok
    assert summary.records == 42
    assert summary.requests == style.min_requests(42, size)
    assert comparable(style, stored(db)) == expected_records(style, sandbox.records())
    # Nothing new: one request, which answers with the same cursor and no records.
    sandbox.reset_stats()
    again = sync(config)
    assert (again.records, again.requests) == (0, 1)


def test_lookback_rereads_a_window_and_stays_exact(sandbox: SandboxProcess, tmp_path: Path) -> None:
    stream = STYLES_BY_NAME["page_number"].stream(100)
    stream["incremental"] = {"type": "watermark", "param": "updated_since", "lookback": "5m"}
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": stream})
    assert sync(config).ok
    sandbox.mutate(update=3)

    summary = sync(config)

    # Base records are one second apart: a 5-minute lookback re-reads ~300 of them.
    assert summary.ok
    assert 300 <= summary.records <= 305
    assert stored(db) == {r["id"]: r for r in sandbox.records()}


def test_full_refresh_reads_everything_and_keeps_rows(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    style = STYLES_BY_NAME["page_number"]
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": style.stream(1000)})
    assert sync(config).ok
    first = stored(db)

    summary = sync(config, full_refresh=True)

    assert summary.records == 2345
    assert stored(db) == first
    (state,) = state_rows(db)
    assert state["position"] == "null"
    assert state["status"] == "ok"


def test_initial_watermark_is_sent_on_the_first_run(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    stream = STYLES_BY_NAME["page_number"].stream(1000)
    stream["incremental"] = {
        "type": "watermark",
        "param": "updated_since",
        "initial": "2024-01-01T00:30:00+00:00",
    }
    db = tmp_path / "store.db"
    summary = sync(make_config(sandbox.base_url, db, {"items": stream}))

    # Base record i is updated at 2024-01-01T00:00:00Z + i seconds: ids 1800.. match.
    assert summary.records == 2345 - 1800 + 1
    assert min(stored(db)) == 1800
