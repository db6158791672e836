"""Property: whatever transient faults hit a sync, and wherever it is SIGKILLed, reruns converge.

Hypothesis draws a paginator style, a schedule of transient faults at random
request numbers, and optionally a kill point (a failpoint and its hit count).
The real ``syncline sync`` runs as a subprocess with those faults (and the
kill); then it is rerun against the healed API until it exits 0 (at most
five runs in all). Whatever was drawn, the final store must equal the
source, the checkpoint must hold no pass in progress, and the requests of all
runs together must stay within the clean run's count plus one per injected
fault plus one re-read page per extra run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from syncline.sandbox import SandboxProcess
from tests.conftest import state_rows, stored
from tests.integration.streams import STYLES_BY_NAME, comparable, expected_records
from tests.reliability.helpers import FAST_RETRY, mismatches, requests_served, run_cli, write_config

RECORDS = 120
SIZE = 20
PAGES = RECORDS // SIZE  # 6 for every style drawn here (all know their last page)
MAX_RUNS = 5
EXAMPLES = int(os.environ.get("SYNCLINE_PROPERTY_EXAMPLES", "15"))
"""Examples per test run; raise it locally to search harder (about 1 s each)."""
STYLE_NAMES = ("page_number", "cursor", "next_link", "relay")
KINDS = (
    "429",
    "429_retry_after",
    "403_retry_after",
    "500",
    "502",
    "503",
    "504",
    "truncated",
    "reset",
    "html",
    "malformed_json",
)
KILL_POINTS = (  # as in tests/integration/test_crash.py
    "engine.page_fetched",
    "store.rows_written",
    "store.before_commit",
    "engine.page_committed",
)

faults = st.lists(
    st.fixed_dictionaries(
        {
            "at": st.integers(1, PAGES + 4),
            "kind": st.sampled_from(KINDS),
            "count": st.integers(1, 2),
        }
    ),
    max_size=4,
)
kills = st.none() | st.tuples(st.sampled_from(KILL_POINTS), st.integers(1, PAGES + 1))


def rerun_until_done(config: Path, first: subprocess.CompletedProcess[str]) -> list[int]:
    """Exit codes of every run, the given first one included, until one exits 0."""
    codes = [first.returncode]
    while codes[-1] != 0 and len(codes) < MAX_RUNS:
        if codes[-1] == 3:  # deferred by a rate limit: the not_before here is 10-50 ms away
            time.sleep(0.2)
        codes.append(run_cli(config).returncode)
    return codes


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(style_name=st.sampled_from(STYLE_NAMES), schedule=faults, kill=kills)
def test_faults_and_a_kill_anywhere_converge_to_the_source_within_bounded_requests(
    sandbox_server: SandboxProcess,
    style_name: str,
    schedule: list[dict[str, Any]],
    kill: tuple[str, int] | None,
) -> None:
    sandbox = sandbox_server  # the session fixture: each example resets it itself
    style = STYLES_BY_NAME[style_name]
    clean = style.min_requests(RECORDS, SIZE)
    assert clean == PAGES
    sandbox.admin_reset(records=RECORDS, seed=7)
    if schedule:
        sandbox.set_faults(schedule=schedule, retry_after=0.01)
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        config = write_config(tmp, sandbox.base_url, style.stream(SIZE), retry=FAST_RETRY)
        db = tmp / "store.db"

        first = run_cli(config, failpoint=None if kill is None else f"{kill[0]}:{kill[1]}")
        injected = sum(sandbox.faults()["injected"].values())
        sandbox.clear_faults()
        # Killed, or else ok, failed (faults beyond the retry budget) or deferred (rate limited).
        assert first.returncode in (-signal.SIGKILL, 0, 1, 3), first.stderr
        if injected == 0:  # nothing else can have stopped it: exactly what was asked
            killed = kill is not None and kill[1] <= PAGES
            assert first.returncode == (-signal.SIGKILL if killed else 0), first.stderr
        codes = rerun_until_done(config, first)
        event(f"first run exit {first.returncode}")
        event(f"{len(codes)} run(s)")

        assert codes[-1] == 0, (codes, first.stderr)
        expected = expected_records(style, sandbox.records())
        actual = comparable(style, stored(db))
        assert actual == expected, mismatches(expected, actual)
        (state,) = state_rows(db)
        assert json.loads(state["position"]) is None
        assert state["status"] == "ok"
        total = requests_served(sandbox)
        # Each interrupted run may have spent two calls that never committed: the page in
        # flight, and the next one already requested ahead.
        assert total <= clean + injected + 2 * (len(codes) - 1), (total, injected, codes)
        assert total <= 3 * clean + injected
