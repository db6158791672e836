"""Every sandbox fault, end to end: the real engine over real sockets into a real SQLite file.

Transient faults (rate limits, 5xx, broken bodies) injected at one request in
the middle of a pass must cost exactly one extra request and leave a store
identical to the source. Faults that outlast the retry policy fail (or defer)
the job with the earlier pages committed, and the next run resumes at the
refused page. Permanent faults (loops, unsafe links, GraphQL errors) fail the
job with the right error, keep the earlier pages, and a clean rerun completes.
Bad records are quarantined, duplicates absorbed, and a long ``Retry-After``
defers the job across runs without a single request until ``--ignore-deferral``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import syncline
from syncline.engine import SyncSummary
from syncline.sandbox import SandboxProcess
from tests.conftest import make_config, state_rows, stored
from tests.integration.streams import STYLES_BY_NAME, Style, comparable, expected_records
from tests.reliability.helpers import (
    FAST_RETRY,
    mismatches,
    rejects,
    requests_served,
    row_counts,
    run_cli,
    write_config,
)

RECORDS = 240
SIZE = 40  # 6 pages
FAULT_AT = 3  # the third request: page 3, after two committed pages
RETRY_AFTER = 0.25  # seconds, for the kinds that send a Retry-After
ATTEMPTS = 5  # the default retry.attempts
PAYLOAD_ATTEMPTS = 2  # a body that does not decode: one retry (retry.payload_retries = 1)

TRANSIENT_KINDS = (
    "429",
    "429_retry_after",
    "429_retry_after_date",
    "403_retry_after",
    "403_remaining_zero",
    "500",
    "502",
    "503",
    "504",
    "truncated",
    "reset",
    "html",
    "malformed_json",
)
STYLE_NAMES = ("page_number", "offset", "cursor", "next_link", "link_header", "relay")
MIN_WAIT = {
    "429_retry_after": RETRY_AFTER,
    "403_retry_after": RETRY_AFTER,
    # whole seconds on the wire: Retry-After (a date) - Date == ceil(RETRY_AFTER) == 1 s
    "429_retry_after_date": 1.0,
}
"""The least a sync must take when the server asked for a wait: Retry-After is never shortened."""


@pytest.fixture
def small(sandbox: SandboxProcess) -> SandboxProcess:
    """The shared sandbox with a 240-record dataset, no faults and zeroed counters."""
    sandbox.admin_reset(records=RECORDS, seed=7)
    return sandbox


def sync_once(sandbox: SandboxProcess, db: Path, style: Style, **retry: Any) -> SyncSummary:
    config = make_config(
        sandbox.base_url, db, {"items": style.stream(SIZE)}, retry={**FAST_RETRY, **retry}
    )
    return syncline.sync(config)


def assert_store_equals_source(sandbox: SandboxProcess, style: Style, db: Path) -> None:
    expected = expected_records(style, sandbox.records())
    actual = comparable(style, stored(db))
    assert actual == expected, mismatches(expected, actual)
    rows, distinct = row_counts(db)
    assert rows == distinct == len(expected)


def first_pages(sandbox: SandboxProcess, style: Style, pages: int) -> dict[Any, dict[str, Any]]:
    """The records of the first ``pages`` pages of a full pass (listing order: updated_at, id)."""
    listing = sorted(sandbox.records(), key=lambda r: (r["updated_at"], r["id"]))
    return expected_records(style, listing[: pages * SIZE])


def the_state(db: Path) -> dict[str, Any]:
    (state,) = state_rows(db)
    return state


# --- transient faults: retried, one extra request each ---------------------------------------


CASES = [(style, kind) for style in STYLE_NAMES for kind in TRANSIENT_KINDS]
CASES.append(("relay", "graphql_throttled"))


@pytest.mark.parametrize(("style_name", "kind"), CASES)
def test_a_transient_fault_mid_pass_costs_one_retry_and_the_store_equals_the_source(
    small: SandboxProcess, tmp_path: Path, style_name: str, kind: str
) -> None:
    style = STYLES_BY_NAME[style_name]
    clean = style.min_requests(RECORDS, SIZE)
    small.set_faults(schedule=[{"at": FAULT_AT, "kind": kind}], retry_after=RETRY_AFTER)
    db = tmp_path / "store.db"

    started = time.monotonic()
    summary = sync_once(small, db, style)
    elapsed = time.monotonic() - started

    assert small.faults()["injected"] == {kind: 1}
    assert summary.ok, summary.streams[0].error
    assert_store_equals_source(small, style, db)
    served = requests_served(small)
    assert served == clean + 1  # the faulty request again, nothing else
    assert summary.requests == served  # retries are counted, none is hidden
    state = the_state(db)
    assert json.loads(state["position"]) is None
    assert state["status"] == "ok"
    assert elapsed >= MIN_WAIT.get(kind, 0.0)


@pytest.mark.parametrize(
    ("kind", "budget"),
    [("503", ATTEMPTS), ("reset", ATTEMPTS), ("429", ATTEMPTS), ("html", PAYLOAD_ATTEMPTS)],
)
def test_faults_in_a_row_short_of_the_attempt_budget_are_all_absorbed(
    small: SandboxProcess, tmp_path: Path, kind: str, budget: int
) -> None:
    style = STYLES_BY_NAME["cursor"]
    clean = style.min_requests(RECORDS, SIZE)
    small.set_faults(schedule=[{"at": FAULT_AT, "kind": kind, "count": budget - 1}])
    db = tmp_path / "store.db"

    summary = sync_once(small, db, style)

    assert summary.ok, summary.streams[0].error
    assert_store_equals_source(small, style, db)
    assert requests_served(small) == clean + budget - 1


@pytest.mark.parametrize(
    ("kind", "budget", "outcome"),
    [
        ("503", ATTEMPTS, "failed"),
        ("reset", ATTEMPTS, "failed"),
        ("429", ATTEMPTS, "deferred"),
        ("html", PAYLOAD_ATTEMPTS, "failed"),
        ("malformed_json", PAYLOAD_ATTEMPTS, "failed"),
    ],
)
def test_a_fault_outlasting_the_retries_stops_at_that_page_and_the_next_run_resumes_there(
    small: SandboxProcess, tmp_path: Path, kind: str, budget: int, outcome: str
) -> None:
    style = STYLES_BY_NAME["cursor"]
    clean = style.min_requests(RECORDS, SIZE)
    small.set_faults(schedule=[{"at": FAULT_AT, "kind": kind, "count": budget}])
    db = tmp_path / "store.db"

    summary = sync_once(small, db, style)

    (result,) = summary.streams
    assert result.status == outcome, result.error
    assert requests_served(small) == FAULT_AT - 1 + budget  # bounded: no request past the budget
    assert comparable(style, stored(db)) == first_pages(small, style, FAULT_AT - 1)
    state = the_state(db)
    assert state["status"] == outcome
    assert json.loads(state["position"]) is not None  # the pass resumes, it does not restart
    if outcome == "deferred":  # no Retry-After: kept away for wait_max, then allowed again
        assert result.not_before is not None
        not_before = datetime.fromisoformat(result.not_before)
        time.sleep(max(0.0, (not_before - datetime.now(UTC)).total_seconds()) + 0.05)

    small.clear_faults()
    small.reset_stats()
    again = sync_once(small, db, style)

    assert again.ok, again.streams[0].error
    assert requests_served(small) == clean - (FAULT_AT - 1)  # from the refused page on
    assert_store_equals_source(small, style, db)
    assert json.loads(the_state(db)["position"]) is None


# --- permanent faults: the job fails, earlier pages stay, a clean rerun completes ------------

PERMANENT = [
    ("cursor", "repeat_cursor", "PaginationLoop", "already fetched"),
    ("next_link", "repeat_cursor", "PaginationLoop", "already fetched"),
    ("next_link", "cyclic_link", "PaginationLoop", "already fetched"),
    ("link_header", "cyclic_link", "PaginationLoop", "already fetched"),
    ("next_link", "cross_origin_link", "UnsafeNextLink", "refused to follow a link"),
    ("link_header", "cross_origin_link", "UnsafeNextLink", "refused to follow a link"),
    ("relay", "graphql_errors", "BadPayload", "GraphQL errors"),
]


def run_permanent_fault(sandbox: SandboxProcess, db: Path, style: Style, kind: str) -> SyncSummary:
    sandbox.set_faults(schedule=[{"at": FAULT_AT, "kind": kind}])
    summary = sync_once(sandbox, db, style)
    assert sandbox.faults()["injected"] == {kind: 1}
    return summary


@pytest.mark.parametrize(("style_name", "kind", "error_class", "text"), PERMANENT)
def test_a_permanent_fault_fails_the_job_with_its_error_and_keeps_the_earlier_pages(
    small: SandboxProcess, tmp_path: Path, style_name: str, kind: str, error_class: str, text: str
) -> None:
    style = STYLES_BY_NAME[style_name]
    db = tmp_path / "store.db"

    summary = run_permanent_fault(small, db, style, kind)

    (result,) = summary.streams
    assert result.status == "failed"
    assert summary.outcome == "failed"
    assert text in (result.error or ""), f"{error_class} expected, got: {result.error}"
    state = the_state(db)
    assert state["status"] == "failed"
    assert text in (state["error"] or "")
    # What is stored is whole pages of the source, from the first: the pages before the fault.
    rows = stored(db)
    pages, partial = divmod(len(rows), SIZE)
    assert partial == 0
    assert pages >= FAULT_AT - 1
    assert comparable(style, rows) == first_pages(small, style, pages)
    if kind == "graphql_errors":  # a partial GraphQL page is never checkpointed (B9)
        assert pages == FAULT_AT - 1
    if kind == "cross_origin_link":  # refused before its page commits: never a checkpoint
        assert pages == FAULT_AT - 1
        assert "169.254.169.254" not in (state["position"] or "")
        assert "evil.example" not in (state["position"] or "")
    # No retry of a permanent error, and no spinning: at most one page re-read to see the loop.
    assert requests_served(small) <= FAULT_AT + 1


@pytest.mark.parametrize(("style_name", "kind"), [(style, kind) for style, kind, _, _ in PERMANENT])
def test_after_a_permanent_fault_a_clean_rerun_completes_and_equals_the_source(
    small: SandboxProcess, tmp_path: Path, style_name: str, kind: str
) -> None:
    style = STYLES_BY_NAME[style_name]
    clean = style.min_requests(RECORDS, SIZE)
    db = tmp_path / "store.db"
    assert run_permanent_fault(small, db, style, kind).outcome == "failed"
    small.clear_faults()
    small.reset_stats()

    again = sync_once(small, db, style)

    assert again.ok, again.streams[0].error
    assert_store_equals_source(small, style, db)
    assert requests_served(small) <= clean  # resumed from the checkpoint, not from scratch
    assert json.loads(the_state(db)["position"]) is None


# next_link only: the sandbox's Link header names the first page "?page=1", an address the
# first request (which sends no page) never had, so that cycle is caught one page later.
@pytest.mark.parametrize("style_name", ["next_link"])
def test_a_link_back_to_the_first_page_is_refused_before_it_is_requested(
    small: SandboxProcess, tmp_path: Path, style_name: str
) -> None:
    db = tmp_path / "store.db"
    summary = run_permanent_fault(small, db, STYLES_BY_NAME[style_name], "cyclic_link")
    assert "already fetched" in (summary.streams[0].error or "")
    assert requests_served(small) == FAULT_AT


# --- bad records and duplicates ----------------------------------------------------------


@pytest.mark.parametrize("style_name", ["page_number", "cursor", "next_link", "relay"])
def test_records_without_a_key_are_quarantined_and_the_others_stored(
    small: SandboxProcess, tmp_path: Path, style_name: str
) -> None:
    style = STYLES_BY_NAME[style_name]
    small.set_faults(missing_key_rate=0.1, seed=3)
    db = tmp_path / "store.db"

    summary = sync_once(small, db, style)

    dropped = small.faults()["injected"]["missing_key"]
    assert dropped > 0
    assert summary.ok, summary.streams[0].error
    assert summary.rejected == dropped
    quarantined = rejects(db)
    assert len(quarantined) == dropped
    assert all("no primary key 'id'" in reason for reason, _ in quarantined)
    # Every source record is either stored exactly or quarantined (matched by its unique
    # updated_at, since its id is what the fault removed): nothing lost, nothing invented.
    expected = expected_records(style, small.records())
    actual = comparable(style, stored(db))
    assert all(actual[key] == expected[key] for key in actual)
    by_updated = {record["updated_at"]: key for key, record in expected.items()}
    rejected_keys = {by_updated[record["updated_at"]] for _, record in quarantined}
    assert len(rejected_keys) == dropped
    assert rejected_keys.isdisjoint(actual)
    assert rejected_keys | set(actual) == set(expected)
    assert the_state(db)["status"] == "ok"


@pytest.mark.parametrize(
    "style_name",
    [
        "page_number",
        "offset",
        "cursor",
        "next_link",
        "link_header",
        "relay",
    ],
)
def test_a_record_repeated_across_pages_is_stored_once(
    small: SandboxProcess, tmp_path: Path, style_name: str
) -> None:
    style = STYLES_BY_NAME[style_name]
    clean = style.min_requests(RECORDS, SIZE)
    small.set_faults(duplicate_across_pages=True)
    db = tmp_path / "store.db"

    summary = sync_once(small, db, style)

    assert small.faults()["injected"]["duplicate_across_pages"] == clean - 1
    assert summary.ok, summary.streams[0].error
    assert_store_equals_source(small, style, db)  # also: count(*) == count(DISTINCT id)
    assert requests_served(small) == clean


# --- a long Retry-After defers the job across runs (CLI) ---------------------------------


def test_a_long_retry_after_defers_the_job_until_not_before_across_runs(
    small: SandboxProcess, tmp_path: Path
) -> None:
    style = STYLES_BY_NAME["cursor"]
    clean = style.min_requests(RECORDS, SIZE)
    retry = {**FAST_RETRY, "max_wait": 1}
    config = write_config(tmp_path, small.base_url, style.stream(SIZE), retry=retry)
    db = tmp_path / "store.db"
    small.set_faults(
        schedule=[{"at": FAULT_AT, "kind": "429_retry_after", "count": 1000}], retry_after=3600
    )

    first = run_cli(config, "sync", "--json")

    assert first.returncode == 3, first.stderr
    summary = json.loads(first.stdout)
    assert summary["outcome"] == "deferred"
    (result,) = summary["streams"]
    assert result["status"] == "deferred"
    assert requests_served(small) == FAULT_AT  # no sleep and no retry: it asked for an hour
    not_before = datetime.fromisoformat(result["not_before"])
    now = datetime.now(UTC)
    assert now + timedelta(seconds=3500) < not_before < now + timedelta(seconds=3700)

    status = run_cli(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)
    assert row["status"] == "deferred"
    assert row["not_before"] == result["not_before"]
    assert row["in_progress"] is True
    assert row["rows"] == (FAULT_AT - 1) * SIZE

    # The API is healthy again, but it asked for an hour: the next run must not call it.
    small.clear_faults()
    small.reset_stats()
    second = run_cli(config, "sync", "--json")
    assert second.returncode == 3, second.stderr
    assert json.loads(second.stdout)["requests"] == 0
    assert requests_served(small) == 0

    forced = run_cli(config, "sync", "--json", "--ignore-deferral")
    assert forced.returncode == 0, forced.stderr
    assert requests_served(small) == clean - (FAULT_AT - 1)  # resumed at the refused page
    assert_store_equals_source(small, style, db)
    (row,) = json.loads(run_cli(config, "status", "--json").stdout)
    assert row["status"] == "ok"
    assert row["not_before"] is None
    assert row["in_progress"] is False


def test_an_exhausted_quota_defers_until_its_reset_without_spinning(
    small: SandboxProcess, tmp_path: Path
) -> None:
    style = STYLES_BY_NAME["cursor"]
    small.set_faults(
        schedule=[{"at": FAULT_AT, "kind": "403_remaining_zero", "count": 1000}],
        retry_after=3600,  # X-RateLimit-Reset = now + 3600
    )
    db = tmp_path / "store.db"

    summary = sync_once(small, db, style, max_wait=60)

    (result,) = summary.streams
    assert result.status == "deferred"
    assert requests_served(small) == FAULT_AT  # no retry before the announced reset
    assert result.not_before is not None
    not_before = datetime.fromisoformat(result.not_before)
    assert not_before > datetime.now(UTC) + timedelta(seconds=3000)


def test_the_checkpoint_request_count_equals_the_requests_sent_after_a_failed_run(
    small: SandboxProcess, tmp_path: Path
) -> None:
    style = STYLES_BY_NAME["cursor"]
    small.set_faults(schedule=[{"at": FAULT_AT, "kind": "503", "count": ATTEMPTS}])
    db = tmp_path / "store.db"

    summary = sync_once(small, db, style)

    assert summary.outcome == "failed"
    served = requests_served(small)
    assert summary.requests == served == FAULT_AT - 1 + ATTEMPTS
    assert the_state(db)["requests"] == served
