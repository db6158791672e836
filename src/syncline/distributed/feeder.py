"""``syncline run --distributed``: the scheduler queues due jobs instead of running them.

The scheduler loop is the same as in-process (:mod:`syncline.schedule`); only
its "run a job" differs: queue it, wait until no job for that (stream,
partition) is waiting or running any more (the workers queue a job's rest
themselves: the next slice, the wait for a budget's reset), then read the
checkpoint the workers left, which decides when the job is due again.

One query per poll serves every waiting job, so thousands of partitions cost
one round trip a second, not thousands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from procrastinate import App

from syncline.distributed.queue import TASK_NAME, enqueue
from syncline.engine import JobResult
from syncline.plan import Job
from syncline.schedule import job_key
from syncline.stores import State, Store

__all__ = ["QueueFeeder"]

POLL = 1.0
"""Seconds between two looks at the queue."""


class QueueFeeder:
    def __init__(self, app: App, queue: str, store: Store, *, poll: float = POLL) -> None:
        self.app = app
        self.queue = queue
        self.store = store
        self.poll = poll
        self._pending: set[str] = set()
        self._seen_at = float("-inf")
        self._refreshing = asyncio.Lock()

    async def run(self, job: Job, stop: Callable[[], bool]) -> JobResult:
        """Queue ``job`` and wait for the workers to be done with it; its outcome."""
        before = await asyncio.to_thread(self.store.load_state, job.state_key)
        await enqueue(self.app, self.queue, job)
        key = job_key(job)
        self._pending.add(key)
        self._seen_at = float("-inf")  # look again: the job just queued may already be done
        while not stop():
            await self._refresh()
            if key not in self._pending:
                break
            await asyncio.sleep(self.poll)
        after = await asyncio.to_thread(self.store.load_state, job.state_key)
        return outcome(job, before, after, stopped=stop())

    async def _refresh(self) -> None:
        async with self._refreshing:
            if time.monotonic() - self._seen_at < self.poll:
                return
            rows = await self.app.connector.execute_query_all_async(
                "SELECT DISTINCT lock FROM procrastinate_jobs WHERE queue_name = %(queue)s "
                "AND task_name = %(task)s AND status IN ('todo', 'doing')",
                queue=self.queue,
                task=TASK_NAME,
            )
            self._pending = {row["lock"] for row in rows}
            self._seen_at = time.monotonic()


def outcome(job: Job, before: State | None, after: State | None, *, stopped: bool) -> JobResult:
    """What the workers' runs of ``job`` came to, read from its checkpoint."""
    result = JobResult(job.source_name, job.stream_name, job.partition_label)
    if after is None:
        result.unfinished = stopped
        return result
    result.records = after.records - (before.records if before else 0)
    result.requests = after.requests - (before.requests if before else 0)
    status = after.status or "ok"
    result.status = "ok" if status == "running" else status
    result.unfinished = status == "running" or stopped
    result.not_before, result.error = after.not_before, after.error
    return result
