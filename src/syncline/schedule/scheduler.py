"""The long-running loop of ``syncline run``: start due jobs, never one twice, stop gracefully.

The loop owns no policy (that is :mod:`.timetable` and :mod:`.timing`) and no
I/O of its own: it is handed a function that runs one job, so the same loop
syncs in-process (``syncline run``) or hands jobs to a queue and waits for the
workers (``syncline run --distributed``). Time comes from a :class:`Clock`, so
tests can drive a week of cron ticks through it in milliseconds.

Stopping (SIGTERM): no job is started any more, every running job is told to
stop at its next page boundary (its checkpoint is committed with its page), and
the loop returns once they have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from syncline.engine import JobResult
from syncline.plan import Job
from syncline.schedule.clock import Clock, SystemClock
from syncline.schedule.timetable import Entry, Timetable

__all__ = ["JobRun", "Report", "Scheduler"]

log = logging.getLogger("syncline.run")

JobRun = Callable[[Job, Callable[[], bool]], Awaitable[JobResult]]
"""Runs one job; the job asks the callable after every page whether to stop there."""
Report = Callable[[Entry, JobResult, datetime, datetime], None]
"""Told about every finished run: the entry (with its next due time), result, start, end."""


class Scheduler:
    def __init__(
        self,
        timetable: Timetable,
        run: JobRun,
        *,
        clock: Clock | None = None,
        concurrency: int = 8,
        slice_seconds: float | None = None,
        report: Report | None = None,
    ) -> None:
        self.timetable = timetable
        self.clock: Clock = clock or SystemClock()
        self.concurrency = max(1, concurrency)
        self.slice_seconds = slice_seconds
        self._run = run
        self._report = report
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        """Jobs started and not yet finished (a task may outlive its job by a callback)."""

    def stop(self) -> None:
        """Start no more jobs; running jobs end at their next page boundary."""
        self._stopping = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(self) -> None:
        """Run until :meth:`stop`; then wait for the running jobs to leave."""
        try:
            while not self._stopping:
                self._wake.clear()
                now = self.clock.now()
                for entry in self.timetable.ready(now, self.concurrency - self._active):
                    self._start(entry, now)
                room = self.concurrency - self._active
                wake_at = self.timetable.next_wake() if room > 0 else None
                await self.clock.sleep_until(wake_at, self._wake)
            if self._tasks:
                await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:  # cancelled ourselves (a second signal): end them too
                task.cancel()
            if self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, entry: Entry, now: datetime) -> None:
        self.timetable.started(entry, now)
        self._active += 1
        task = asyncio.create_task(self._one(entry, now), name=entry.key)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one(self, entry: Entry, started: datetime) -> None:
        deadline = None if self.slice_seconds is None else started.timestamp() + self.slice_seconds

        def stop() -> bool:
            return self._stopping or (
                deadline is not None and self.clock.now().timestamp() >= deadline
            )

        try:
            result = await self._run(entry.job, stop)
        except Exception as exc:  # a bug in one job must not end the scheduler
            log.exception("%s: the job raised", entry.job.label)
            job = entry.job
            result = JobResult(job.source_name, job.stream_name, job.partition_label)
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        ended = self.clock.now()
        self.timetable.finished(entry, result, ended)
        self._active -= 1
        if self._report is not None:
            self._report(entry, result, started, ended)
        self._wake.set()
