"""Distributed workers on a real PostgreSQL: three ``syncline worker`` processes, thirty
partitions, one worker SIGKILLed mid-run.

The sandbox is the referee: it counts requests per tenant, refuses any over a
tenant's window with a 429, and records a request that starts while another of
the same tenant is still in flight (its latency keeps each one in flight long
enough to see). So "never two workers on one partition" and "zero 429s" are
the server's word, not ours.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from syncline.distributed.queue import install_queue
from syncline.sandbox import SandboxProcess
from syncline.stores import open_store
from syncline.stores.postgres_connect import parse_url
from tests.conftest import RECORDS, PostgresSchemas
from tests.integration.test_cli import syncline

TENANTS = [f"t{i:02d}" for i in range(30)]
WINDOW = {"calls": 10, "per": 1}


@pytest.fixture
def limited(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    sandbox.set_limits(tenant_param="tenant", windows=[WINDOW], headers="none")
    sandbox.set_faults(latency_ms=20)
    sandbox.reset_stats()
    yield sandbox
    sandbox.clear_faults()
    sandbox.clear_limits()


def write_config(tmp_path: Path, base_url: str, store: str, tenants: list[str], **run: Any) -> Path:
    config = {
        "store": store,
        "lease_ttl": "5s",
        "run": {"heartbeat": 0.3, "stalled_after": 1.5, "slice": 1, **run},
        "sources": {
            "sb": {
                "base_url": base_url,
                "partitions": {"tenant": tenants},
                "limits": [WINDOW],
                "streams": {"items": _page_stream(100)},
            }
        },
    }
    path = tmp_path / "syncline.yaml"
    path.write_text(json.dumps(config))
    return path


def start_worker(tmp_path: Path, name: str, concurrency: int = 4) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncline", "worker", "--name", name,
         "--concurrency", str(concurrency)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def status_rows(tmp_path: Path) -> list[dict[str, Any]]:
    result = syncline("status", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def workers(tmp_path: Path) -> dict[str, dict[str, Any]]:
    result = syncline("workers", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def all_done(tmp_path: Path) -> bool:
    rows = status_rows(tmp_path)
    return all(r["status"] == "ok" and not r["in_progress"] and not r["queue"] for r in rows)


def stored_by_tenant(store_url: str) -> dict[str, dict[int, Any]]:
    target = parse_url(store_url)
    with psycopg.connect(target.conninfo) as conn:
        rows = conn.execute(
            f'SELECT tenant, id, _data FROM "{target.schema}".items ORDER BY tenant, id'
        ).fetchall()
    found: dict[str, dict[int, Any]] = {}
    for tenant, key, data in rows:
        found.setdefault(str(tenant), {})[int(key)] = data
    return found


def stop(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    ended = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        ended.append((proc.returncode, out, err))
    return ended


@pytest.mark.slow
def test_three_workers_thirty_partitions_one_killed(
    limited: SandboxProcess, tmp_path: Path, postgres_url: str
) -> None:
    write_config(tmp_path, limited.base_url, postgres_url, TENANTS)
    queued = syncline("enqueue", cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.startswith("queued 30 job(s); 0 already waiting")

    procs = [start_worker(tmp_path, f"w{i}") for i in range(3)]
    try:
        # Kill w0 while it is in the middle of jobs (the registry says which it runs).
        wait_until(lambda: workers(tmp_path).get("w0", {}).get("running", 0) >= 2, "w0 busy")
        wait_until(lambda: limited.stats()["total"] >= 100, "some progress")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        wait_until(lambda: not workers(tmp_path)["w0"]["alive"], "w0 seen as silent", 30)
        wait_until(lambda: all_done(tmp_path), "every partition synced")
        survivors = stop(procs[1:])
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()

    for code, _out, err in survivors:
        assert code == 0, err
        assert "stopped" in err
    recovered = "".join(err for _, _, err in survivors)
    assert "of a silent worker is queued again" in recovered

    # Every partition equals the sandbox, each record once.
    expected = {record["id"]: record for record in limited.records()}
    assert len(expected) == RECORDS
    stored = stored_by_tenant(postgres_url)
    assert sorted(stored) == TENANTS
    for tenant in TENANTS:
        assert stored[tenant] == expected, f"tenant {tenant} differs from the sandbox"

    stats = limited.stats()
    # Never two requests of one tenant at once: no two workers ever had one partition.
    assert all(t["overlaps"] == 0 for t in stats["overlaps"].values()), stats["overlaps"]
    assert sorted(stats["overlaps"]) == TENANTS
    # Every tenant's limit held across the three machines' worth of workers.
    counters = limited.limits()["tenants"]
    assert sum(t["rejected"] for t in counters.values()) == 0
    # The job w0 was running was resumed from its checkpoint, not restarted: calls stay
    # close to the minimum (24 pages a tenant; a page lost in flight costs one more).
    assert sum(t["allowed"] for t in counters.values()) <= 30 * 24 + 8


def test_status_names_the_worker_of_a_job_before_its_first_heartbeat(
    limited: SandboxProcess, tmp_path: Path, postgres_url: str
) -> None:
    write_config(
        tmp_path, limited.base_url, postgres_url, ["a"], heartbeat=10, stalled_after=30, slice=0
    )
    limited.set_faults(latency_ms=200)  # 24 pages: the job runs for seconds
    assert syncline("enqueue", cwd=tmp_path).returncode == 0
    worker = start_worker(tmp_path, "solo")
    try:
        wait_until(lambda: limited.stats()["total"] >= 1, "the job under way", 30)
        started = time.monotonic()
        wait_until(
            lambda: status_rows(tmp_path)[0]["queue_detail"] == "running on solo",
            "status to name the worker",
            30,
        )
        assert time.monotonic() - started < 8  # not a 10 s heartbeat later
        row = workers(tmp_path)["solo"]
        assert row["running"] == 1
        assert row["jobs"] == ["sb.items [tenant=a]"]
        table = syncline("workers", cwd=tmp_path, env={"COLUMNS": "250"})
        assert "sb.items [tenant=a]" in table.stdout, table.stdout  # brackets kept
        stop([worker])
    finally:
        worker.kill()
        worker.communicate()


def test_a_stopped_worker_hands_its_job_over_at_a_page_boundary(
    limited: SandboxProcess, tmp_path: Path, postgres_url: str
) -> None:
    write_config(tmp_path, limited.base_url, postgres_url, ["a"], slice=0)
    limited.set_faults(latency_ms=100)
    assert syncline("enqueue", cwd=tmp_path).returncode == 0
    first = start_worker(tmp_path, "first")
    try:
        wait_until(lambda: limited.stats()["total"] >= 3, "the job under way")
        ((code, out, err),) = stop([first])
    finally:
        first.kill()
    assert code == 0, err
    assert "queued again now (continues its pass)" in out
    (row,) = status_rows(tmp_path)
    assert row["in_progress"]
    assert row["queue"] == "queued"
    done_before = row["records_total"]
    assert 0 < done_before < RECORDS

    limited.set_faults(latency_ms=0)
    second = start_worker(tmp_path, "second")
    try:
        wait_until(lambda: all_done(tmp_path), "the second worker to finish the pass")
        stop([second])
    finally:
        second.kill()
    stored = stored_by_tenant(postgres_url)
    assert len(stored["a"]) == RECORDS
    # Continued, not restarted: 24 pages in all, plus at most the one cut off in flight.
    assert limited.limits()["tenants"]["a"]["allowed"] <= 25


def test_one_huge_tenant_does_not_starve_the_others(
    sandbox: SandboxProcess, tmp_path: Path, postgres_url: str
) -> None:
    config = {
        "store": postgres_url,
        "run": {"slice": 0.3},
        "sources": {
            "sb": {
                "base_url": sandbox.base_url,
                "streams": {
                    # 235 pages for one tenant, 5 for each of the others.
                    "big": {**_page_stream(10), "partitions": {"tenant": ["huge"]}},
                    "small": {**_page_stream(500), "partitions": {"tenant": list("abcdef")}},
                },
            }
        },
    }
    (tmp_path / "syncline.yaml").write_text(json.dumps(config))
    # The huge one is queued first and there is one place: without slices it would hold
    # the place until its 235 pages are done.
    assert syncline("enqueue", "--stream", "big", cwd=tmp_path).returncode == 0
    assert syncline("enqueue", "--stream", "small", cwd=tmp_path).returncode == 0
    worker = start_worker(tmp_path, "only", concurrency=1)
    try:
        wait_until(lambda: all_done(tmp_path), "every job done")
        ((code, out, err),) = stop([worker])
    finally:
        worker.kill()
    assert code == 0, err
    lines = out.splitlines()
    huge_done = next(i for i, line in enumerate(lines) if "big [tenant=huge]: ok" in line
                     and "queued again" not in line)  # fmt: skip
    small_done = [i for i, line in enumerate(lines) if "small [tenant=" in line]
    assert len(small_done) == 6
    assert max(small_done) < huge_done, "\n".join(lines)
    assert sum("big [tenant=huge]" in line for line in lines[: max(small_done)]) >= 1


def _page_stream(size: int) -> dict[str, Any]:
    return {
        "path": "/page/items",
        "params": {"tenant": "{tenant}"},
        "records": "data",
        "primary_key": "id",
        "paginate": {
            "type": "page_number",
            "size_param": "per_page",
            "size": size,
            "last_page": "last_page",
        },
    }


def test_the_scheduler_queues_due_jobs_for_the_workers(
    limited: SandboxProcess, tmp_path: Path, postgres_url: str
) -> None:
    path = write_config(tmp_path, limited.base_url, postgres_url, ["a", "b", "c"])
    config = json.loads(path.read_text())
    config["sources"]["sb"]["schedule"] = {"every": "1s"}
    path.write_text(json.dumps(config))
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "syncline", "run", "--distributed"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = start_worker(tmp_path, "w")
    try:
        # Every tenant synced once (a moment with nothing queued may never come: each
        # job is queued again a second after it ends).
        wait_until(
            lambda: all(r["rows"] == RECORDS for r in status_rows(tmp_path)), "the first round"
        )
        limited.mutate(insert=2)
        wait_until(
            lambda: (
                {len(stored_by_tenant(postgres_url).get(t, {})) for t in "abc"} == {RECORDS + 2}
            ),
            "the next round to bring the new records",
        )
        ended = stop([scheduler, worker])
    finally:
        for proc in (scheduler, worker):
            proc.kill()
    (code, out, err), (worker_code, _worker_out, worker_err) = ended
    assert code == 0, err
    assert worker_code == 0, worker_err
    assert "stopped; queued jobs stay for the workers" in err
    rounds = [line for line in out.splitlines() if "[tenant=a]: ok" in line]
    assert len(rounds) >= 2, out
    assert "(every 1s)" in rounds[0]
    assert limited.stats()["overlaps"]["a"]["overlaps"] == 0
    assert sum(t["rejected"] for t in limited.limits()["tenants"].values()) == 0


def test_a_worker_and_the_store_starting_together_on_a_new_schema_do_not_race(
    postgres_schemas: PostgresSchemas,
) -> None:
    """``syncline run --distributed`` opens the store while a worker installs the queue:
    both create the schema, and must not fail on each other's ``CREATE SCHEMA``."""
    for _ in range(12):
        url = postgres_schemas.url()
        start = threading.Barrier(2, timeout=30)

        def open_the_store(url: str = url, start: threading.Barrier = start) -> None:
            start.wait()
            open_store(url).close()

        def install_the_queue(url: str = url, start: threading.Barrier = start) -> None:
            start.wait()
            install_queue(parse_url(url))

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            done = [pool.submit(open_the_store), pool.submit(install_the_queue)]
            for future in done:
                future.result(timeout=60)  # raises what the thread raised


def test_distributed_commands_need_a_postgresql_store(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    config = {
        "store": "sqlite:///store.db",
        "sources": {"sb": {"base_url": sandbox.base_url, "streams": {"items": _page_stream(500)}}},
    }
    (tmp_path / "syncline.yaml").write_text(json.dumps(config))
    for args in (["worker"], ["enqueue"], ["workers"]):
        result = syncline(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "needs a PostgreSQL store (store: postgresql://…)" in result.stderr
        assert "this config's store is sqlite" in result.stderr


def test_distributed_commands_without_procrastinate_say_what_to_install(
    tmp_path: Path, postgres_url: str
) -> None:
    (tmp_path / "syncline.yaml").write_text(
        json.dumps(
            {
                "store": postgres_url,
                "sources": {
                    "sb": {"base_url": "http://127.0.0.1:9", "streams": {"items": _page_stream(5)}}
                },
            }
        )
    )
    hide = "import sys; sys.modules['procrastinate'] = None; from syncline.cli import main; "
    for args in (["worker"], ["enqueue"], ["run", "--distributed"]):
        code = hide + f"sys.exit(main({args!r}))"
        if args[0] == "run":
            config = json.loads((tmp_path / "syncline.yaml").read_text())
            config["sources"]["sb"]["schedule"] = {"every": "1m"}
            (tmp_path / "syncline.yaml").write_text(json.dumps(config))
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert "pip install 'syncline[distributed]'" in result.stderr
