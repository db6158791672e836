"""``syncline worker``: take (stream, partition) jobs from the queue, on any number of machines.

The guarantees are the single machine's, held by the same means:

- one (stream, partition) at a time: procrastinate's job ``lock`` keeps a second
  job for it from being fetched while one runs, and underneath, the store's
  lease (with its fencing token) refuses a second writer anyway;
- a worker that dies mid-job: its heartbeat stops, another worker finds the
  job stalled and queues it again; the lease of a dead holder on the same host
  is taken over at once (elsewhere it expires after ``lease_ttl``), and the job
  resumes from its last committed page;
- limits across machines: every call permit comes from the ledger in the same
  PostgreSQL database, under one lock per scope;
- fairness: a job gives its place up after ``run.slice`` and is queued again at
  the back; a job whose budget is spent leaves the queue's running set and
  waits, scheduled for the window's reset, instead of holding a place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from procrastinate import App, JobContext, exceptions, jobs
from procrastinate.worker import Worker as QueueWorker

from syncline.config import Config
from syncline.distributed.queue import (
    TASK_NAME,
    enqueue,
    install_queue,
    open_app,
    queue_target,
)
from syncline.engine import JobResult
from syncline.plan import Job, plan_jobs
from syncline.runner import JobRunner
from syncline.schedule import job_key
from syncline.schedule.timing import comes_back
from syncline.stores import open_store

__all__ = ["STOP_GRACE", "Worker", "WorkerReport"]

log = logging.getLogger("syncline.worker")

STOP_GRACE = 20.0
"""Seconds a stopping worker waits for its jobs to reach a page boundary before cancelling
them (a cancelled job is consistent too: its page in flight is simply not committed)."""
REGISTRY_KEEP = timedelta(days=1)
"""How long a silent worker's row stays in ``syncline workers`` (marked silent)."""

WorkerReport = Callable[[Job, JobResult, datetime, datetime, str], None]
"""Told about every job done: the job, its result, start, end and what was queued after."""


class Worker:
    """One worker process: a procrastinate worker running syncline's one task."""

    def __init__(
        self,
        config: Config,
        *,
        concurrency: int | None = None,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        report: WorkerReport | None = None,
    ) -> None:
        self.config = config
        self.concurrency = concurrency or config.run.concurrency
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.target = queue_target(config, "syncline worker")
        self.queue = config.run.queue
        self._transport = transport
        self._report = report
        self._jobs = {job_key(job): job for job in plan_jobs(config)}
        self._stopping = False
        self._queue_worker: QueueWorker | None = None
        self._running = 0
        self._done = 0

    def stop(self) -> None:
        """Take no more jobs; running ones stop at their next page boundary."""
        self._stopping = True
        if self._queue_worker is not None:
            self._queue_worker.stop()  # type: ignore[no-untyped-call]

    async def run(self) -> None:
        await asyncio.to_thread(install_queue, self.target)
        store = await asyncio.to_thread(open_store, self.config.store)
        try:
            app = open_app(self.target, pool_size=self.concurrency + 3)
            async with (
                app.open_async(),
                JobRunner(
                    self.config,
                    store,
                    connections=self.concurrency,
                    lock_wait=1.0,
                    transport=self._transport,
                ) as runner,
            ):
                self._register_task(app, runner)
                self._queue_worker = QueueWorker(
                    app=app,
                    queues=[self.queue],
                    name=self.name,
                    concurrency=self.concurrency,
                    install_signal_handlers=False,
                    update_heartbeat_interval=self.config.run.heartbeat,
                    stalled_worker_timeout=self.config.run.stalled_after,
                    shutdown_graceful_timeout=STOP_GRACE,
                    delete_jobs=jobs.DeleteJobCondition.SUCCESSFUL,
                    fetch_job_polling_interval=min(5.0, self.config.run.heartbeat),
                )
                if self._stopping:
                    return
                await self._registry_write(app, "insert")
                keeper = asyncio.create_task(self._keep(app))
                try:
                    await self._queue_worker.run()  # type: ignore[no-untyped-call]
                finally:
                    keeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeper
                    with contextlib.suppress(Exception):
                        await self._registry_write(app, "delete")
        finally:
            await asyncio.to_thread(store.close)

    def _register_task(self, app: App, runner: JobRunner) -> None:
        @app.task(name=TASK_NAME, pass_context=True, queue=self.queue)
        async def sync_partition(
            context: JobContext, source: str, stream: str, partition: dict[str, Any]
        ) -> dict[str, Any]:
            return await self._work(app, runner, source, stream, partition)

    async def _work(
        self, app: App, runner: JobRunner, source: str, stream: str, partition: dict[str, Any]
    ) -> dict[str, Any]:
        key = f"{source}.{stream}:" + json.dumps(partition, sort_keys=True, separators=(",", ":"))
        job = self._jobs.get(key)
        if job is None:
            log.warning("%s: not in this worker's config (changed?); the job is dropped", key)
            return {"status": "unknown"}
        slice_seconds = self.config.run.slice or None
        deadline = None if slice_seconds is None else time.monotonic() + slice_seconds

        def stop() -> bool:
            return self._stopping or (deadline is not None and time.monotonic() >= deadline)

        started = datetime.now(UTC)
        self._running += 1
        await self._beat(app)
        try:
            result = await runner.run(job, stop)
        except asyncio.CancelledError:
            # Cancelled at shutdown: the page in flight is not committed; queue the rest.
            await asyncio.shield(enqueue(app, self.queue, job))
            raise
        finally:
            self._running -= 1
            self._done += 1
        await self._beat(app)
        follow_up = await self._follow_up(app, job, result)
        if self._report is not None:
            self._report(job, result, started, datetime.now(UTC), follow_up)
        return result.as_dict()

    async def _follow_up(self, app: App, job: Job, result: JobResult) -> str:
        """Queue what is left of the job: the rest of its pass, or itself after a wait."""
        now = datetime.now(UTC)
        back = comes_back(result, now)
        if back is None:
            return ""
        at = None if back.at <= now else back.at
        await enqueue(app, self.queue, job, at=at)
        when = "now" if at is None else at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"queued again {when} ({back.reason})"

    async def _keep(self, app: App) -> None:
        """Every heartbeat: say we are alive, and queue again the jobs of dead workers.

        The first beat goes as soon as the queue has named this worker, not a
        heartbeat later: until then ``syncline status`` cannot tell on which
        worker a job runs.
        """
        deadline = time.monotonic() + self.config.run.heartbeat
        while self._queue_worker is not None and self._queue_worker.worker_id is None:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        await self._beat(app)
        while True:
            await asyncio.sleep(self.config.run.heartbeat)
            try:
                await self._registry_write(app, "beat")
                await self._registry_write(app, "prune")
                await self._recover_stalled(app)
            except Exception:  # a busy database now and then must not stop the worker
                log.warning("worker upkeep failed; trying again", exc_info=True)

    async def _beat(self, app: App) -> None:
        """Tell the registry now what this worker runs (a job started or ended)."""
        try:
            await self._registry_write(app, "beat")
        except Exception:  # the next heartbeat says it again; the job must not fail for it
            log.warning("worker registry update failed; the next heartbeat retries", exc_info=True)

    async def _recover_stalled(self, app: App) -> None:
        manager = app.job_manager
        await manager.prune_stalled_workers(self.config.run.stalled_after)
        stalled = await manager.get_stalled_jobs(
            queue=self.queue,
            task_name=TASK_NAME,
            seconds_since_heartbeat=self.config.run.stalled_after,
        )
        for job in stalled:
            assert job.id is not None
            try:
                await manager.retry_job(job)
                log.warning("job %s of a silent worker is queued again", job.call_string)
            except exceptions.UniqueViolation:
                # Another job for this partition already waits: it continues the pass.
                await manager.finish_job_by_id_async(
                    job.id, status=jobs.Status.FAILED, delete_job=False
                )

    async def _registry_write(self, app: App, action: str) -> None:
        connector = app.connector
        if action == "insert":
            await connector.execute_query_async(
                "INSERT INTO _syncline_workers (name, queue, host, pid, concurrency) "
                "VALUES (%(name)s, %(queue)s, %(host)s, %(pid)s, %(concurrency)s) "
                "ON CONFLICT (name) DO UPDATE SET started_at = now(), heartbeat_at = now(), "
                "running = 0, done = 0, queue = excluded.queue",
                name=self.name,
                queue=self.queue,
                host=socket.gethostname(),
                pid=os.getpid(),
                concurrency=self.concurrency,
            )
        elif action == "beat":
            queue_worker = self._queue_worker
            await connector.execute_query_async(
                "UPDATE _syncline_workers SET heartbeat_at = now(), running = %(running)s, "
                "done = %(done)s, queue_worker_id = %(worker_id)s WHERE name = %(name)s",
                name=self.name,
                running=self._running,
                done=self._done,
                worker_id=None if queue_worker is None else queue_worker.worker_id,
            )
        elif action == "prune":
            await connector.execute_query_async(
                "DELETE FROM _syncline_workers WHERE heartbeat_at < now() - %(keep)s",
                keep=REGISTRY_KEEP,
            )
        else:
            await connector.execute_query_async(
                "DELETE FROM _syncline_workers WHERE name = %(name)s", name=self.name
            )
