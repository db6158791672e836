"""Soak: 50 real ``syncline sync`` processes against a flaky, changing API, some SIGKILLed.

Every run meets random transient faults (5 % of requests: 500, 503, a short
429 Retry-After, a truncated body, a reset connection, cut JSON); between runs
the source changes (updates, inserts, hard deletes); about a third of the runs
are killed, either at a random failpoint or by ``proc.kill()`` at a random
moment. The stream is incremental (watermark on ``updated_at`` sent as
``updated_since``) over the keyset cursor endpoint, so each run only reads what
changed. After one last clean run the store must hold every record the source
has, each exactly as the source has it, no duplicate, and no pass in progress.
Hard deletes are invisible to an incremental feed, so deleted records may stay.

The figures (runs, faults injected, kills survived, records lost, duplicates)
are printed (``pytest -s``) and written as JSON to ``$SYNCLINE_SOAK_REPORT``
when that is set. ``SYNCLINE_SOAK_SEED`` replays another random sequence.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from syncline.sandbox import SandboxProcess
from tests.conftest import state_rows, stored
from tests.integration.streams import STYLES_BY_NAME, expected_records
from tests.reliability.helpers import (
    CLI_TIMEOUT,
    FAST_RETRY,
    cli_command,
    cli_env,
    row_counts,
    run_cli,
    write_config,
)

RUNS = 50
BUDGET = 150.0
"""Seconds the loop may take (target well under 90); past it the loop stops early."""
MIN_RUNS = 25
"""Fewer runs than this within the budget would not be a soak: the test fails."""
RECORDS = 400
SIZE = 10
LOOKBACK = "1m"
"""Each run re-reads the last minute of changes (the sandbox's clock ticks 1 s per change):
more requests per run, so more faults met, and overlapping pages the upsert must absorb."""
FAULTS: dict[str, Any] = {
    "rate": 0.05,
    "kinds": ["500", "503", "429_retry_after", "truncated", "reset", "malformed_json"],
    "retry_after": 0.01,
    "latency_ms": 10,  # widens the windows a timed kill can land in
}
KILL_POINTS = (
    "engine.page_fetched",
    "store.rows_written",
    "store.before_commit",
    "engine.page_committed",
)
EXPECTED_EXITS = {0, 1, 3, -signal.SIGKILL}
"""ok, failed (a fault outlasted the retries), deferred (rate limited), killed."""


def one_run(
    config: Path, rng: random.Random, figures: Counter[str], typical: float
) -> tuple[int, float]:
    """One ``syncline sync``, maybe killed at a failpoint or at a random moment.

    ``typical`` is how long an unkilled run takes here (interpreter start-up is
    most of it), so a timed kill lands in its last quarter: mostly mid-sync.
    Returns the exit code and the seconds the run took.
    """
    roll = rng.random()
    failpoint = None
    timed_kill = None
    if roll < 0.15:
        failpoint = f"{rng.choice(KILL_POINTS)}:{rng.randint(1, 3)}"
    elif roll < 0.35:
        timed_kill = rng.uniform(0.75, 1.0) * typical
    started = time.monotonic()
    proc = subprocess.Popen(
        cli_command(config, "sync"),
        env=cli_env(failpoint),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        try:
            _, stderr = proc.communicate(timeout=timed_kill or CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            if timed_kill is None:
                raise
            proc.kill()
            _, stderr = proc.communicate(timeout=CLI_TIMEOUT)  # reaped: its lease holder is dead
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=CLI_TIMEOUT)
    code = proc.returncode
    assert code in EXPECTED_EXITS, f"exit {code}: {stderr}"
    if code == -signal.SIGKILL:
        figures["kills_failpoint" if failpoint else "kills_timed"] += 1
    return code, time.monotonic() - started


def test_fifty_flaky_killed_runs_over_a_changing_source_lose_and_double_nothing(
    sandbox: SandboxProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("SYNCLINE_SOAK_SEED", "20240601"))
    rng = random.Random(seed)
    style = STYLES_BY_NAME["cursor"]  # keyset pages + watermark on updated_at (updated_since)
    sandbox.admin_reset(records=RECORDS, seed=7)
    stream = style.stream(SIZE)
    stream["incremental"] = {**stream["incremental"], "lookback": LOOKBACK}
    config = write_config(tmp_path, sandbox.base_url, stream, retry=FAST_RETRY)
    db = tmp_path / "store.db"
    figures: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    exits: Counter[int] = Counter()
    deleted: set[int] = set()

    durations: list[float] = []
    started = time.monotonic()
    runs = 0
    while runs < RUNS and time.monotonic() - started < BUDGET:
        sandbox.set_faults(seed=rng.randrange(2**31), **FAULTS)  # new dice, counters at zero
        typical = statistics.median(durations[-9:]) if durations else 0.6
        code, seconds = one_run(config, rng, figures, typical)
        counters = sandbox.faults()  # read before the next set_faults resets them
        injected.update(counters["injected"])
        if code == 0:
            durations.append(seconds)
        elif code == -signal.SIGKILL and counters["data_requests"]:
            figures["kills_mid_sync"] += 1  # it had already talked to the API
        exits[code] += 1
        runs += 1
        changed = sandbox.mutate(
            update=rng.randint(0, 10), insert=rng.randint(0, 5), delete=rng.randint(0, 2)
        )
        deleted.update(changed["deleted"])
        for kind in ("updated", "inserted", "deleted"):
            figures[f"records_{kind}"] += len(changed[kind])
    loop_seconds = time.monotonic() - started

    sandbox.clear_faults()
    final = run_cli(config)
    assert final.returncode == 0, final.stderr

    expected = expected_records(style, sandbox.records())
    actual = stored(db)
    lost = sorted(key for key in expected if key not in actual)
    stale = sorted(key for key in expected if key in actual and actual[key] != expected[key])
    extra = sorted(set(actual) - set(expected))
    rows, distinct = row_counts(db)
    (state,) = state_rows(db)
    faults_total = sum(injected.values())
    kills = figures["kills_failpoint"] + figures["kills_timed"]
    report = {
        "seed": seed,
        "runs": runs,
        "loop_seconds": round(loop_seconds, 1),
        "exit_codes": {str(code): n for code, n in sorted(exits.items())},
        "faults_injected": faults_total,
        "faults_by_kind": dict(sorted(injected.items())),
        "kills_survived": kills,
        "kills_failpoint": figures["kills_failpoint"],
        "kills_timed": figures["kills_timed"],
        "kills_mid_sync": figures["kills_mid_sync"],
        "records_updated": figures["records_updated"],
        "records_inserted": figures["records_inserted"],
        "records_deleted": figures["records_deleted"],
        "source_records": len(expected),
        "stored_rows": rows,
        "records_lost": len(lost) + len(stale),
        "duplicates": rows - distinct,
        "deleted_still_stored": len(extra),
    }
    with capsys.disabled():
        print(f"\nsoak figures: {json.dumps(report)}")
    if path := os.environ.get("SYNCLINE_SOAK_REPORT"):
        Path(path).write_text(json.dumps(report, indent=2) + "\n")

    assert runs >= MIN_RUNS, f"only {runs} runs in {BUDGET:.0f} s"
    assert faults_total > 0  # the soak did meet faults
    assert kills > 0  # and kills
    assert (lost, stale) == ([], []), "records lost or stale"
    assert rows == distinct  # no duplicates (the primary key makes them impossible; check anyway)
    assert set(extra) <= deleted  # only hard-deleted records may linger
    assert json.loads(state["position"]) is None
    assert state["status"] == "ok"
