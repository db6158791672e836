"""Showing a sync as it runs: rich progress bars on a terminal, one log line per job otherwise."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column

from syncline.engine import JobResult
from syncline.plan import Job

__all__ = ["BarsListener", "LogLinesListener"]


class LogLinesListener:
    """Plain lines for logs and pipes: one when a job ends, with its outcome and counts."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._started: dict[str, float] = {}

    def job_started(self, job: Job) -> None:
        self._started[job.label] = time.perf_counter()

    def page_committed(self, job: Job, records: int, requests: int) -> None:
        pass

    def job_finished(self, job: Job, result: JobResult) -> None:
        seconds = time.perf_counter() - self._started.get(job.label, time.perf_counter())
        outcome = "ok" if result.status == "ok" else f"{result.status.upper()}: {result.error}"
        self.console.print(
            f"{job.label}: {result.records} records, {result.pages} pages, "
            f"{result.requests} requests in {seconds:.1f}s: {outcome}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


class BarsListener:
    """One live line per job: records, pages, requests per second."""

    def __init__(self, console: Console) -> None:
        # On a narrow terminal the job's name gives way (ellipsis), never the numbers.
        def fixed(width: int) -> Column:
            return Column(no_wrap=True, width=width)

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn(
                "{task.description}",
                table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"),
            ),
            TextColumn("{task.fields[records]:>9,} records", table_column=fixed(17)),
            TextColumn("{task.fields[pages]:>6,} pages", table_column=fixed(12)),
            TextColumn("{task.fields[rate]:>7.1f} req/s", table_column=fixed(13)),
            TextColumn("{task.fields[outcome]}", table_column=fixed(6)),
            TimeElapsedColumn(table_column=fixed(7)),
            console=console,
            expand=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started: dict[str, float] = {}
        self._pages: dict[str, int] = {}
        self._records: dict[str, int] = {}

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def job_started(self, job: Job) -> None:
        self._started[job.label] = time.perf_counter()
        self._pages[job.label] = self._records[job.label] = 0
        self._tasks[job.label] = self.progress.add_task(
            escape(job.label), total=None, records=0, pages=0, rate=0.0, outcome=""
        )

    def page_committed(self, job: Job, records: int, requests: int) -> None:
        self._pages[job.label] += 1
        self._records[job.label] += records
        elapsed = max(time.perf_counter() - self._started[job.label], 1e-6)
        self.progress.update(
            self._tasks[job.label],
            records=self._records[job.label],
            pages=self._pages[job.label],
            rate=requests / elapsed,
        )

    def job_finished(self, job: Job, result: JobResult) -> None:
        colour = {"ok": "green", "deferred": "yellow", "busy": "yellow"}.get(result.status, "red")
        outcome = f"[{colour}]{result.status}[/]"
        self.progress.update(
            self._tasks[job.label],
            records=result.records,
            pages=result.pages,
            outcome=outcome,
            total=1,
            completed=1,
        )
