"""The scale-out scenario: 1, 2 and 4 ``syncline worker`` processes on 40 rate-limited tenants.

One sandbox, one PostgreSQL server (tests/pg_server.py, ``fsync=off``), 40
tenants ``t00``..``t39``. Every tenant is limited to ``CALLS`` per ``PER``
seconds, declared in the config (``limits``) and enforced by the sandbox with
429s, so the sandbox is the referee: a run passes only with zero 429s and
every partition done. Per worker count, a fresh schema: ``syncline enqueue``
queues the 40 jobs, then N workers start and the clock runs until
``syncline status --json`` shows every partition ``ok`` with nothing queued or
running. The clock includes the workers' start-up (Python imports, config), as
a real scale-out's would; the report shows it apart too.

Why these numbers (the arithmetic the report compares against):

- A tenant needs ``PAGES`` calls; a sliding window lets the first ``CALLS`` go
  at once, then ``CALLS`` per ``PER``: ``(ceil(PAGES / CALLS) - 1) * PER``
  seconds of limit, however fast the machine. That is *the limit's floor*:
  the wall time if every tenant ran in parallel from t=0.
- A job holds one of a worker's places (``--concurrency``) for its whole pass
  (its waits for permits are short, so it does not give the place up, and the
  default ``run.slice`` of 300 s never cuts it), so W workers run
  ``W * CONCURRENCY`` tenants at a time: ``ceil(40 / places)`` rounds of a
  tenant's time is *the places' floor*. The floor is the larger of the two.
- ``CONCURRENCY`` is fixed per worker (a worker is "one machine's worth" of
  places), so adding workers adds places: 10 each gives 10, 20 and 40 places,
  i.e. 4, 2 and 1 rounds of 5 s, and the 4-worker run reaches the limit's
  floor: past it, more workers cannot help, only a bigger quota can.
- The limit is low on purpose (1 call a second per tenant, 6 pages of 100):
  at full parallel the 40 tenants ask for at most 40 pages (4,000 records) a
  second, well under what the sandbox, PostgreSQL and the workers serve
  together on 2 cores, so the 4-worker run is bound by the limit, not by CPU
  (2 calls a second on 12 pages, the same 5 s a tenant, had the 4 workers
  keep three quarters of the machine busy). The CPU columns show what each
  side cost, and "cores busy" how much of the machine the run took.

Run alone: ``python bench/scaleout.py [--json]``; ``make bench`` includes it
(``BENCH_SCALEOUT=0`` skips it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psutil

from syncline.sandbox import SandboxProcess

TENANTS = tuple(f"t{i:02d}" for i in range(40))
WORKERS = (1, 2, 4)
# 100 records a page, the most common default of real APIs; small pages keep the CPU a
# page costs low, so the run is about the limits, not about parsing and writing.
PAGE = 100
RECORDS = 600  # per tenant (every tenant sees the same dataset): 6 pages
PAGES = math.ceil(RECORDS / PAGE)
# 1 call a second per tenant: 6 pages -> 5 s of limit each, and at most 40 calls (4,000
# records) a second for the whole run, so the machine is not what bounds it.
CALLS, PER = 1, 1.0
# Places per worker: 10, so 4 workers hold all 40 tenants at once (one round), 2 need
# two rounds and 1 needs four: the speed-up per worker is the arithmetic's, not a guess.
CONCURRENCY = 10
POLL = 0.2  # seconds between checks for the end (see wait_until_done)
SLOW_POLL = 5.0  # seconds between status calls while the workers' log says jobs are left
TIMEOUT = 300.0  # seconds a run may take before it counts as failed
CORES = os.cpu_count() or 1
JOB_LINE = re.compile(r"\[tenant=(\w+)\]: ok, \d+ records, \d+ calls, ([\d.]+)s")
"""A worker's line for a finished job (cli_queue.print_worker_job): tenant and seconds."""
READY_LINE = "job(s) at once"
"""In the banner a worker prints once it has loaded its config and imports."""


def tenant_seconds() -> float:
    """One tenant alone: its first window's calls go at once, then CALLS per PER."""
    return (math.ceil(PAGES / CALLS) - 1) * PER


def floors(workers: int) -> dict[str, Any]:
    """The limit's floor, the places' floor and which one binds for ``workers`` workers."""
    alone = tenant_seconds()
    places = workers * CONCURRENCY
    rounds = math.ceil(len(TENANTS) / places)
    limit_floor, places_floor = alone, rounds * alone
    return {
        "places": places,
        "rounds": rounds,
        "limit_floor_seconds": limit_floor,
        "places_floor_seconds": places_floor,
        "floor_seconds": max(limit_floor, places_floor),
        "bound_by": "limits" if places_floor <= limit_floor else "places",
    }


def write_config(directory: Path, base_url: str, store: str) -> Path:
    config = {
        "store": store,
        "sources": {
            "sb": {
                "base_url": base_url,
                "partitions": {"tenant": list(TENANTS)},
                "limits": [{"calls": CALLS, "per": PER}],
                "streams": {
                    "items": {
                        "path": "/page/items",
                        "params": {"tenant": "{tenant}"},
                        "records": "data",
                        "primary_key": "id",
                        "paginate": {
                            "type": "page_number",
                            "size_param": "per_page",
                            "size": PAGE,
                            "last_page": "last_page",
                        },
                    }
                },
            }
        },
    }
    path = directory / "syncline.yaml"
    path.write_text(json.dumps(config))
    return path


def status_rows(config: Path) -> list[dict[str, Any]]:
    """``syncline status --json``, run in this process (no Python start-up per poll)."""
    from click.testing import CliRunner

    from syncline.cli import cli

    result = CliRunner().invoke(cli, ["status", "-c", str(config), "--json"])
    if result.exit_code != 0:
        raise SystemExit(f"scaleout: syncline status failed: {result.output}")
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def all_done(rows: list[dict[str, Any]]) -> bool:
    return bool(rows) and all(
        r["status"] == "ok" and not r["in_progress"] and not r["queue"] for r in rows
    )


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of ``process``, its live children and the children it reaped."""
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


def postmaster(server: Any) -> psutil.Process | None:
    """The PostgreSQL server's main process (its backends are its children), if readable."""
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        pid = int((Path(server.data) / "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid)
    return None


def start_worker(
    directory: Path, config: Path, name: str, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncline", "worker", "-c", str(config), "--name", name,
         "--concurrency", str(CONCURRENCY)],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` ended, without reaping it (``Popen.poll`` would, and take its rusage)."""
    found = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return found is not None


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> tuple[float, list[int]]:
    """SIGTERM every worker, then reap each with wait4: their summed CPU and exit codes.

    Signals go through ``os.kill``: ``Popen.send_signal`` polls first, which would reap
    a worker that already ended and leave wait4 nothing to report. The pid is still ours
    (unreaped), so it cannot have been reused.
    """
    for proc in procs:
        os.kill(proc.pid, signal.SIGTERM)
    cpu, codes = 0.0, []
    deadline = time.monotonic() + 60  # a stopping worker waits up to 20 s for its pages
    for proc in procs:
        while True:  # WNOHANG, so a worker that hangs cannot hang the bench
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
                deadline += 10
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        codes.append(proc.returncode)
    return cpu, codes


@contextlib.contextmanager
def workers_running(
    directory: Path, config: Path, count: int
) -> Iterator[tuple[list[subprocess.Popen[bytes]], Path]]:
    """``count`` workers logging to one file; killed on the way out if still running."""
    log_path = directory / "workers.log"
    with log_path.open("wb") as log:
        procs = [start_worker(directory, config, f"w{i}", log) for i in range(count)]
        try:
            yield procs, log_path
        finally:
            for proc in procs:
                if proc.returncode is None and proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)


def own_cpu() -> float:
    """This process's CPU (the status polls), to count it in the machine's share."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_until_done(
    config: Path, procs: list[subprocess.Popen[bytes]], log_path: Path, started: float
) -> tuple[list[dict[str, Any]], float | None]:
    """Every POLL seconds until TIMEOUT: the last status rows, and when the workers were ready.

    ``syncline status`` is the judge of "done", but one call costs ~30 ms of this
    process's CPU and ~45 ms of PostgreSQL's (40 rows): five a second would take a
    seventh of this 2-core machine from the run it measures. So it is asked every
    POLL seconds only once the workers' log has an ``ok`` line for every tenant, and
    every SLOW_POLL seconds before (a safety net, should the log's wording change).
    """
    rows: list[dict[str, Any]] = []
    ready: float | None = None  # when the last worker printed its banner
    asked = -SLOW_POLL
    while (now := time.perf_counter()) - started < TIMEOUT:
        log = log_path.read_text(errors="replace")
        if ready is None and log.count(READY_LINE) >= len(procs):
            ready = now - started
        reported = {tenant for tenant, _seconds in JOB_LINE.findall(log)}
        if reported >= set(TENANTS) or now - asked >= SLOW_POLL:
            asked = now
            rows = status_rows(config)
            if all_done(rows):
                break
        if any(exited(proc) for proc in procs):
            break
        time.sleep(POLL)
    if not all_done(rows):
        rows = status_rows(config)  # fresh, for the failure's message
    return rows, ready


def one_run(api: SandboxProcess, server: Any, workers: int) -> dict[str, Any]:
    api.set_limits(tenant_param="tenant", windows=[{"calls": CALLS, "per": PER}], headers="none")
    store = str(server.url(f"scaleout_{workers}_{uuid.uuid4().hex[:8]}"))
    sandbox_proc, pg_proc = psutil.Process(api.pid), postmaster(server)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config = write_config(directory, api.base_url, store)
        queued = subprocess.run(
            [sys.executable, "-m", "syncline", "enqueue", "-c", str(config)],
            cwd=directory, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if queued.returncode != 0:
            raise SystemExit(f"scaleout: syncline enqueue failed: {queued.stderr[-2000:]}")
        sandbox_before = cpu_seconds(sandbox_proc)
        pg_before = None if pg_proc is None else cpu_seconds(pg_proc)
        poller_before = own_cpu()
        started = time.perf_counter()
        with workers_running(directory, config, workers) as (procs, log_path):
            rows, ready = wait_until_done(config, procs, log_path, started)
            seconds = time.perf_counter() - started
            workers_cpu, codes = stop_workers(procs)
            log = log_path.read_text(errors="replace")
        sandbox_cpu = cpu_seconds(sandbox_proc) - sandbox_before
        pg_cpu = None if pg_proc is None or pg_before is None else cpu_seconds(pg_proc) - pg_before
        poller_cpu = own_cpu() - poller_before
    if not all_done(rows):
        late = [r["partition"] for r in rows if r["status"] != "ok" or r["in_progress"]]
        raise SystemExit(
            f"scaleout: {workers} worker(s): not every partition done after {seconds:.0f}s "
            f"({len(late)} left: {late[:5]}); exit codes {codes}; log tail:\n{log[-3000:]}"
        )
    if any(codes):
        raise SystemExit(f"scaleout: {workers} worker(s) exited {codes}; log tail:\n{log[-3000:]}")
    tenants = api.limits()["tenants"]
    rejected = sum(tenants.get(t, {}).get("rejected", 0) for t in TENANTS)
    calls = sum(tenants.get(t, {}).get("allowed", 0) for t in TENANTS)
    if rejected:
        raise SystemExit(f"scaleout: {workers} worker(s): the sandbox answered {rejected} 429s")
    floor = floors(workers)
    cpu_total = workers_cpu + sandbox_cpu + (pg_cpu or 0.0) + poller_cpu
    jobs = [float(seconds) for _tenant, seconds in JOB_LINE.findall(log)]
    return {
        "workers": workers,
        "concurrency": CONCURRENCY,
        "seconds": seconds,
        **floor,
        "ratio": seconds / floor["floor_seconds"],
        # Python imports and config: until the last worker's banner (polled, +-POLL).
        "startup_seconds": ready,
        # The run without the start-up, against the same floor: what the limits left.
        "ratio_after_startup": None
        if ready is None
        else (seconds - ready) / floor["floor_seconds"],
        # Each tenant's pass as its worker timed it, against tenant_seconds().
        "job_seconds_mean": sum(jobs) / len(jobs) if jobs else None,
        "job_seconds_max": max(jobs, default=None),
        "calls": calls,
        "rejected_429": rejected,
        "records": sum(r["rows"] or 0 for r in rows),
        "workers_cpu_seconds": workers_cpu,
        "sandbox_cpu_seconds": sandbox_cpu,
        "postgres_cpu_seconds": pg_cpu,
        "poller_cpu_seconds": poller_cpu,
        # Share of the machine the three sides kept busy: far under 1 means not CPU-bound.
        "cpu_share": cpu_total / (seconds * CORES),
    }


def main() -> dict[str, Any]:
    from stores import postgres  # bench/stores.py: the same throw-away server

    report: dict[str, Any] = {
        "tenants": len(TENANTS),
        "records_per_tenant": RECORDS,
        "page_size": PAGE,
        "pages_per_tenant": PAGES,
        "limit": {"calls": CALLS, "per": PER},
        "concurrency_per_worker": CONCURRENCY,
        "tenant_seconds": tenant_seconds(),
        "cores": CORES,
        "runs": {},
    }
    with SandboxProcess(records=RECORDS) as api, postgres() as server:
        for workers in WORKERS:
            report["runs"][str(workers)] = one_run(api, server, workers)
    runs = report["runs"]
    one = runs[str(WORKERS[0])]["seconds"]
    for run in runs.values():
        run["speedup"] = one / run["seconds"]
        added = run["workers"] - WORKERS[0]
        # Of the ideal 1 per worker added: (speed-up - 1) / workers added.
        run["speedup_per_worker_added"] = (run["speedup"] - 1) / added if added else None
    return report


def _cell(value: float | None, spec: str, width: int) -> str:
    return f"{'-' if value is None else format(value, spec):>{width}}"


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\nscale-out: {report['tenants']} tenants x {report['records_per_tenant']:,} records at "
        f"{report['page_size']}/page ({report['pages_per_tenant']} calls each), each limited to "
        f"{report['limit']['calls']} call(s) per {report['limit']['per']:g}s (sliding) = "
        f"{report['tenant_seconds']:g}s a tenant; {report['concurrency_per_worker']} places a "
        "worker; floor: max(the limit's floor, rounds of places x a tenant's time)"
    )
    print(
        f"{'workers':>7}{'wall s':>8}{'floor s':>8}{'wall/floor':>11}{'speed-up':>9}"
        f"{'per worker added':>17}{'workers CPU s':>14}{'sandbox CPU s':>14}{'429s':>5}"
        f"{'bound by':>9}{'start-up s':>11}{'rest/floor':>11}{'job s':>6}{'PG CPU s':>9}"
        f"{'poll CPU s':>11}{'cores busy':>11}"
    )
    for run in report["runs"].values():
        print(
            f"{run['workers']:>7}{run['seconds']:8.2f}{run['floor_seconds']:8.1f}"
            f"{run['ratio']:11.3f}{run['speedup']:9.2f}"
            + _cell(run["speedup_per_worker_added"], ".2f", 17)
            + f"{run['workers_cpu_seconds']:14.2f}{run['sandbox_cpu_seconds']:14.2f}"
            + f"{run['rejected_429']:5}{run['bound_by']:>9}"
            + _cell(run["startup_seconds"], ".1f", 11)
            + _cell(run["ratio_after_startup"], ".3f", 11)
            + _cell(run["job_seconds_mean"], ".1f", 6)
            + _cell(run["postgres_cpu_seconds"], ".2f", 9)
            + f"{run['poller_cpu_seconds']:11.2f}{run['cpu_share']:11.0%}"
        )
    print(
        f"{report['cores']} cores: the sandbox, PostgreSQL and the workers share them; CPU time "
        "shows what each side cost"
    )
    print(
        "per worker added: (speed-up - 1) / workers added, 1.00 ideal; start-up s: until the "
        "last worker is ready (in wall s); rest/floor: (wall - start-up) / floor; job s: a "
        "tenant's pass as its worker timed it (mean); poll CPU: the status checks; cores "
        "busy: all CPU / (wall x cores)"
    )


if __name__ == "__main__":
    result = main()
    print_report(result)
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
