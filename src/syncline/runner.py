"""Running single jobs for a long-lived process: ``syncline run`` and ``syncline worker``.

``run_sync`` is one run over a fixed set of jobs. A scheduler or a queue worker
instead receives jobs one by one for hours, so the expensive parts (the HTTP
clients with their connection pools, the store, the permit line) live as
long as the process, and each job execution is recorded as a run of its own
(``syncline status`` lists it like any sync).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import httpx

from syncline.budget.permits import PermitLine
from syncline.config import Config
from syncline.engine import (
    JobOptions,
    JobResult,
    close_clients,
    job_budget,
    open_clients,
    prune_feed,
    run_job,
)
from syncline.http import HttpClient
from syncline.plan import Job
from syncline.stores import RunRecord, Store
from syncline.timestamps import canonical

__all__ = ["JobRunner"]

PRUNE_EVERY = 1000
"""Job executions between two prunings of the change feed."""


class JobRunner:
    """Runs one (stream, partition) job at a time, or many side by side, on shared clients."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        connections: int = 8,
        lock_wait: float = 0.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.lock_wait = lock_wait
        self._connections = connections
        self._transport = transport
        self._clients: dict[str, HttpClient] = {}
        self._line = PermitLine()
        self._runs = 0
        self._prepared: set[str] = set()

    async def __aenter__(self) -> Self:
        self._clients = open_clients(
            self.config,
            self.config.sources,
            transport=self._transport,
            connections=self._connections,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await close_clients(self._clients)

    async def run(self, job: Job, stop: Callable[[], bool] | None = None) -> JobResult:
        """Sync ``job`` once (resuming its checkpoint), recorded as a run of its own."""
        # The store's calls go to a thread: the loop keeps other jobs and heartbeats going.
        if job.table.name not in self._prepared:
            await asyncio.to_thread(self.store.ensure_table, job.table)
            self._prepared.add(job.table.name)
        run = RunRecord(id=uuid.uuid4().hex, started_at=_now())
        await asyncio.to_thread(self.store.start_run, run)
        result = JobResult(job.source_name, job.stream_name, job.partition_label, status="failed")
        try:
            result = await run_job(
                job,
                self._clients[job.source_name],
                self.store,
                run_id=run.id,
                options=JobOptions(
                    run_id=run.id, lease_ttl=self.config.lease_ttl, lock_wait=self.lock_wait
                ),
                budget=job_budget(job, self.store, self._line),
                stop=stop,
            )
            run.status = result.status
        except BaseException:
            run.status = "interrupted"
            raise
        finally:
            run.ended_at = _now()
            run.records, run.requests = result.records, result.requests
            run.errors = [result.as_dict()] if result.status != "ok" else []
            await asyncio.to_thread(self.store.finish_run, run)
            self._runs += 1
            if self._runs % PRUNE_EVERY == 1:
                await asyncio.to_thread(prune_feed, self.store, self.config)
        return result


def _now() -> str:
    return canonical(datetime.now(UTC))
