"""Running jobs: each (stream, partition) walks its pages and commits each with its checkpoint.

Jobs run concurrently (bounded); one failing job never stops the others, and
whatever a job committed before failing stays committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from syncline.config import Config
from syncline.config.strategies import WatermarkIncremental
from syncline.errors import SourceError, StoreError, SynclineError
from syncline.failpoints import failpoint
from syncline.http import HttpClient, RequestCounter, secrets_of
from syncline.incremental import finish_pass, merge_newest, start_pass
from syncline.pages import walk_pages
from syncline.paginate import make_paginator
from syncline.plan import Job, plan_jobs
from syncline.records import RecordShaper
from syncline.redact import Redactor
from syncline.stores import RunRecord, State, Store, open_store

__all__ = ["JobResult", "ProgressListener", "SyncSummary", "run_job", "run_sync"]


@dataclass(slots=True)
class JobResult:
    source: str
    stream: str
    partition: str
    records: int = 0
    requests: int = 0
    pages: int = 0
    status: str = "ok"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class SyncSummary:
    run_id: str
    streams: list[JobResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(result.status == "ok" for result in self.streams)

    @property
    def records(self) -> int:
        return sum(result.records for result in self.streams)

    @property
    def requests(self) -> int:
        return sum(result.requests for result in self.streams)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "records": self.records,
            "requests": self.requests,
            "streams": [result.as_dict() for result in self.streams],
        }


class ProgressListener(Protocol):
    def job_started(self, job: Job) -> None: ...

    def page_committed(self, job: Job, records: int, requests: int) -> None: ...

    def job_finished(self, job: Job, result: JobResult) -> None: ...


class _Silent:
    def job_started(self, job: Job) -> None:
        pass

    def page_committed(self, job: Job, records: int, requests: int) -> None:
        pass

    def job_finished(self, job: Job, result: JobResult) -> None:
        pass


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def run_job(
    job: Job,
    client: HttpClient,
    store: Store,
    *,
    run_id: str,
    full_refresh: bool = False,
    listener: ProgressListener | None = None,
) -> JobResult:
    """Sync one (stream, partition): resume or start a pass; commit pages with checkpoints."""
    listener = listener or _Silent()
    result = JobResult(job.source_name, job.stream_name, job.partition_label)
    listener.job_started(job)
    counter = RequestCounter()
    paginator = make_paginator(job.stream.paginate)
    shaper = RecordShaper(job.stream)
    table = job.table
    partition_values = tuple(job.partition.values())
    mode = job.stream.incremental
    try:
        committed = await asyncio.to_thread(store.load_state, job.state_key) or State(job.state_key)
        if full_refresh or committed.position is None:
            start_pass(job.stream, paginator, committed, full_refresh=full_refresh)
        pages = walk_pages(
            job,
            client,
            paginator,
            shaper,
            committed.position or paginator.start(),
            filter_param=mode.param if isinstance(mode, WatermarkIncremental) else None,
            filter_value=committed.pass_filter,
            counter=counter,
        )
        async for fetched in pages:
            failpoint("engine.page_fetched")
            rows, newest = shaper.rows(fetched.records, partition_values)
            # Work on a copy: if the commit fails, the checkpoint held is still the committed one.
            state = dataclasses.replace(committed, run_id=run_id, status="running", error=None)
            state.pass_max = merge_newest(state.pass_max, newest)
            if fetched.next_position is None:
                finish_pass(job.stream, paginator, state, fetched.position, fetched.page)
                state.status = "ok"
            else:
                state.position = fetched.next_position
            state.records += len(rows)
            state.pages += 1
            state.requests += counter.sent - result.requests
            await asyncio.to_thread(store.commit_page, table, rows, state)
            committed = state
            failpoint("engine.page_committed")
            result.records += len(rows)
            result.pages += 1
            result.requests = counter.sent
            listener.page_committed(job, len(rows), counter.sent)
    except SynclineError as exc:
        if isinstance(exc, SourceError):
            exc.located(stream=job.stream_name, partition=job.partition_label)
        result.status, result.error = "failed", str(exc)
        result.requests = counter.sent
        await _record_failure(store, job, run_id, str(exc))
    listener.job_finished(job, result)
    return result


async def _record_failure(store: Store, job: Job, run_id: str, message: str) -> None:
    """Note the failure on the last committed checkpoint, leaving its position untouched."""
    try:
        state = await asyncio.to_thread(store.load_state, job.state_key) or State(job.state_key)
        state.run_id, state.status, state.error = run_id, "failed", message
        await asyncio.to_thread(store.save_state, state)
    except StoreError:
        pass  # the store is what failed; the job result already says so


async def run_sync(
    config: Config,
    *,
    streams: Sequence[str] = (),
    partitions: Sequence[str] = (),
    full_refresh: bool = False,
    concurrency: int = 4,
    listener: ProgressListener | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: Store | None = None,
) -> SyncSummary:
    """Sync every selected (stream, partition) of ``config`` into its store."""
    jobs = plan_jobs(config, streams, partitions)
    own_store = store is None
    store = store or open_store(config.store)
    started = time.perf_counter()
    summary = SyncSummary(run_id=uuid.uuid4().hex)
    run = RunRecord(id=summary.run_id, started_at=_now())
    try:
        for job in jobs:
            store.ensure_table(job.table)
        store.start_run(run)
        redactor = Redactor(s for source in config.sources.values() for s in secrets_of(source))
        clients = {
            name: HttpClient(
                source, redactor=redactor, transport=transport, max_connections=concurrency
            )
            for name, source in config.sources.items()
            if any(job.source_name == name for job in jobs)
        }
        limit = asyncio.Semaphore(max(1, concurrency))

        async def one(job: Job) -> JobResult:
            async with limit:
                return await run_job(
                    job,
                    clients[job.source_name],
                    store,
                    run_id=summary.run_id,
                    full_refresh=full_refresh,
                    listener=listener,
                )

        try:
            summary.streams = list(await asyncio.gather(*(one(job) for job in jobs)))
            run.status = "ok" if summary.ok else "failed"
        except asyncio.CancelledError:
            run.status = "interrupted"
            raise
        finally:
            for client in clients.values():
                await client.__aexit__(None, None, None)
            summary.seconds = time.perf_counter() - started
            run.ended_at = _now()
            run.records, run.requests = summary.records, summary.requests
            run.errors = [r.as_dict() for r in summary.streams if r.status != "ok"]
            store.finish_run(run)
    finally:
        if own_store:
            store.close()
    return summary
