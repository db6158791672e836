"""``syncline worker``, ``syncline enqueue`` and ``syncline workers``: the distributed side."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from syncline.cli_common import (
    EXIT_FAILED,
    EXIT_USAGE,
    add_text_row,
    config_option,
    fail,
    load,
)
from syncline.cli_run import DISTRIBUTED_MISSING
from syncline.config import Config
from syncline.engine import JobResult
from syncline.errors import ConfigError, StoreError, SynclineError
from syncline.plan import Job, plan_jobs
from syncline.signals import run_until_signalled

__all__ = ["enqueue_command", "worker_command", "workers_command"]


def _queue_error(exc: Exception) -> None:
    if isinstance(exc, ConfigError):
        fail(str(exc), EXIT_USAGE)
    if isinstance(exc, SynclineError):
        fail(str(exc), EXIT_FAILED)


@click.command(name="worker")
@config_option
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    help="Jobs this worker runs at once (default: run.concurrency, 8).",
)
@click.option("--name", default=None, help="How `syncline workers` names it (default host:pid).")
def worker_command(config_path: Path, concurrency: int | None, name: str | None) -> None:
    """Take (stream, partition) jobs from the queue in the PostgreSQL store until SIGTERM."""
    config = load(config_path)
    try:
        from syncline.distributed.worker import Worker
    except ImportError:
        fail(DISTRIBUTED_MISSING, EXIT_USAGE)
    try:
        worker = Worker(config, concurrency=concurrency, name=name, report=print_worker_job)
    except (ConfigError, StoreError) as exc:
        _queue_error(exc)
        raise
    click.echo(
        f"syncline worker {worker.name}: queue {worker.queue!r}, {worker.concurrency} job(s) "
        "at once; SIGTERM or Ctrl-C stops after the pages in flight",
        err=True,
    )
    try:
        run_until_signalled(worker.run, on_first=lambda _signum: worker.stop())
    except SynclineError as exc:
        _queue_error(exc)
    click.echo(f"syncline worker {worker.name}: stopped", err=True)


def print_worker_job(
    job: Job, result: JobResult, started: datetime, ended: datetime, follow_up: str
) -> None:
    seconds = (ended - started).total_seconds()
    line = (
        f"{ended.strftime('%Y-%m-%dT%H:%M:%SZ')} {job.label}: {result.status}, "
        f"{result.records} records, {result.requests} calls, {seconds:.1f}s"
    )
    if follow_up:
        line += f"; {follow_up}"
    if result.error and result.status != "ok":
        line += f": {result.error}"
    click.echo(line)
    sys.stdout.flush()


@click.command(name="enqueue")
@config_option
@click.option("--stream", "streams", multiple=True, help="Only this stream (NAME or SOURCE.NAME).")
@click.option("--partition", "partitions", multiple=True, help="Only partitions with key=value.")
def enqueue_command(config_path: Path, streams: Sequence[str], partitions: Sequence[str]) -> None:
    """Queue the selected (stream, partition) jobs for the workers, now."""
    config = load(config_path)
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        fail(DISTRIBUTED_MISSING, EXIT_USAGE)
    try:
        jobs = plan_jobs(config, streams, partitions)
        queued, waiting = asyncio.run(_enqueue_all(config, jobs))
    except (ConfigError, StoreError) as exc:
        _queue_error(exc)
        raise
    click.echo(
        f"queued {queued} job(s); {waiting} already waiting in the queue "
        f"(queue {config.run.queue!r})"
    )


async def _enqueue_all(config: Config, jobs: list[Job]) -> tuple[int, int]:
    from syncline.distributed.queue import enqueue, install_queue, open_app, queue_target
    from syncline.stores import open_store

    target = queue_target(config, "syncline enqueue")
    store = await asyncio.to_thread(open_store, config.store)  # creates the schema and tables
    try:
        for job in jobs:
            store.ensure_table(job.table)
    finally:
        store.close()
    await asyncio.to_thread(install_queue, target)
    queued = 0
    async with open_app(target).open_async() as app:
        for job in jobs:
            queued += (await enqueue(app, config.run.queue, job)).queued
    return queued, len(jobs) - queued


@click.command(name="workers")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def workers_command(config_path: Path, as_json: bool) -> None:
    """List the workers of this config's queue: heartbeats and the jobs they are running."""
    config = load(config_path)
    from syncline.distributed.queue import queue_target
    from syncline.distributed.view import workers

    try:
        rows = workers(queue_target(config, "syncline workers"), config.run.queue)
    except (ConfigError, StoreError) as exc:
        _queue_error(exc)
        raise
    silent_after = config.run.stalled_after
    if as_json:
        click.echo(
            json.dumps([{**row.as_dict(), "alive": row.silent_for < silent_after} for row in rows])
        )
        return
    if not rows:
        click.echo(f"no workers on queue {config.run.queue!r}")
        return
    table = Table("worker", "started", "heartbeat", "running", "done", "jobs")
    now = datetime.now(UTC)
    for row in rows:
        beat = f"{row.silent_for:.0f}s ago"
        if row.silent_for >= silent_after:
            beat += " (silent: presumed dead; its jobs are queued again)"
        add_text_row(
            table,
            row.name,
            f"{(now - row.started_at).total_seconds() / 60:.0f} min ago",
            beat,
            f"{row.running}/{row.concurrency}",
            str(row.done),
            ", ".join(row.jobs),
        )
    Console().print(table)
