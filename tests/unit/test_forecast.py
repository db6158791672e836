"""``sync --plan`` arithmetic on a real SQLite ledger: runs, throttled, pauses, waits."""

from __future__ import annotations

from pathlib import Path

from syncline import config_from_dict
from syncline.budget.forecast import forecast
from syncline.plan import plan_jobs
from syncline.stores import SQLiteStore, State, WindowSpec


def setup(tmp_path: Path, limits: list[dict[str, object]], **retry: object) -> tuple:
    stream = {"path": "/x", "records": "items", "primary_key": "id",
              "paginate": {"type": "page_number", "size": 50}}  # fmt: skip
    config = config_from_dict(
        {
            "store": f"sqlite:///{tmp_path / 'store.db'}",
            "sources": {
                "sb": {
                    "base_url": "https://api.example",
                    "limits": limits,
                    "retry": retry,
                    "streams": {"items": stream},
                }
            },
        },
        base_dir=tmp_path,
    )
    store = SQLiteStore(tmp_path / "store.db")
    (job,) = plan_jobs(config)
    return config, store, job


def test_a_window_longer_than_max_wait_that_runs_short_pauses_until_it_frees(
    tmp_path: Path,
) -> None:
    config, store, job = setup(tmp_path, [{"calls": 100, "per": "1d", "name": "daily"}])
    store.save_state(State(job.state_key, last_pass_requests=40))
    for _ in range(70):
        store.take_permit([("sb", [WindowSpec("daily", 100, 86400.0)])], 1, False)
    (planned,) = forecast(config, store)
    assert (planned.calls, planned.left, planned.verdict) == (40, 30, "pauses")
    assert planned.until is not None
    assert "10 calls short" in planned.detail


def test_a_short_window_throttles_instead(tmp_path: Path) -> None:
    config, store, job = setup(tmp_path, [{"calls": 10, "per": "1m"}])
    store.save_state(State(job.state_key, last_pass_requests=35))
    (planned,) = forecast(config, store)
    assert planned.verdict == "throttled"
    assert "180s" in planned.detail  # 25 calls over the first 10: 3 more minutes


def test_an_open_pass_costs_only_its_rest_and_a_deferred_job_waits(tmp_path: Path) -> None:
    config, store, job = setup(tmp_path, [])
    state = State(job.state_key, position={"page": 4}, last_pass_requests=10, pass_requests=3)
    store.save_state(state)
    (planned,) = forecast(config, store)
    assert (planned.calls, planned.left, planned.verdict) == (7, None, "runs")
    state.not_before = "2999-01-01T00:00:00.000000Z"
    store.save_state(state)
    (planned,) = forecast(config, store)
    assert (planned.verdict, planned.until) == ("waits", "2999-01-01T00:00:00.000000Z")


def test_stored_rows_over_the_page_size_when_no_pass_finished(tmp_path: Path) -> None:
    config, store, job = setup(tmp_path, [])
    store.ensure_table(job.table)
    rows = [(i, "{}", None) for i in range(120)]
    store.commit_page(job.table, rows, State(job.state_key, position={"page": 4}))
    (planned,) = forecast(config, store)
    assert planned.calls == 4  # 120 rows at 50 a page: 3 pages, and the one that says "end"
