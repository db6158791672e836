"""`syncline demo --quick` as `make demo` runs it: a real process, its own sandbox, one store."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

# The emulations' default sizes (--quick): records per API, and the calls of the full run
# then of the incremental run, as the sandbox counts them.
EXPECTED = {
    "Fatture in Cloud": ("295", "5 → 5"),  # no change filter: the same full poll twice
    "démarches-simplifiées": ("225", "7 → 6"),  # 2 streams x 3 démarches, 1 call each
    "Inxmail": ("240", "1 → 1"),
    "Exact Online": ("1,800", "6 → 6"),  # 2 streams x 3 divisions, 1 call each
}


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A user's real settings in the shell must not redirect the demo (or reach the sandbox).
    env = {**os.environ, "FIC_BASE_URL": "https://unreachable.invalid", "FIC_TOKEN": "real-one"}
    return subprocess.run(
        [sys.executable, "-m", "syncline", "demo", "--quick", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("demo")
    done = demo(cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return cwd, done.stdout


def test_the_summary_shows_the_four_apis_with_their_costs(first_run: tuple[Path, str]) -> None:
    _, out = first_run
    for title, (records, calls) in EXPECTED.items():
        (row,) = [line for line in out.splitlines() if line.startswith(title)]
        cells = re.split(r"\s{1,}", row.removeprefix(title).strip())
        assert cells[0] == records, row
        assert f" {calls} " in row, row
        assert re.search(r" 0 +yes\s*$", row), row  # zero 429s, and the store equals the API
    assert "syncline status -c syncline-demo.yaml" in out
    assert "syncline init --preset" in out


def test_the_demo_store_holds_every_api_and_its_config_reads_it(
    first_run: tuple[Path, str],
) -> None:
    cwd, _ = first_run
    with contextlib.closing(sqlite3.connect(cwd / "syncline-demo.db")) as conn:
        live = {
            table: conn.execute(
                f'SELECT count(*) FROM "{table}" WHERE _deleted_at IS NULL'
            ).fetchone()[0]
            for table in ("products", "dossiers", "mailing_synchronizations", "accounts")
        }
    # Launch sizes plus the demo's inserts (deletes of Inxmail are soft; of the others,
    # mirrored in their deleted_* tables).
    assert live == {
        "products": 295 + 5 - 3,
        "dossiers": 225 + 4,
        "mailing_synchronizations": 240 + 3 - 2,
        "accounts": 1800 + 6,
    }
    status = subprocess.run(
        [sys.executable, "-m", "syncline", "status", "--json", "-c", "syncline-demo.yaml"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert '"status": "ok"' in status.stdout


def test_a_second_run_replaces_its_own_files_but_never_someone_elses(
    first_run: tuple[Path, str], tmp_path: Path
) -> None:
    cwd, _ = first_run
    again = demo(cwd)
    assert again.returncode == 0, again.stdout + again.stderr

    foreign = tmp_path / "mine.db"
    with contextlib.closing(sqlite3.connect(foreign)) as conn, conn:
        conn.execute("CREATE TABLE precious (x)")
    refused = demo(tmp_path, "--db", "mine.db")
    assert refused.returncode == 2
    assert "was not written by `syncline demo`" in refused.stderr
    with contextlib.closing(sqlite3.connect(foreign)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("precious",)]
