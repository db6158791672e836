"""What the queue and the workers look like now: for ``syncline status`` and ``syncline workers``.

Plain SQL over procrastinate's tables and our worker registry, read in one
short transaction; a store whose queue was never installed simply has none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from syncline.distributed.queue import TASK_NAME, describe_args
from syncline.stores.postgres_connect import Target, connect

__all__ = ["QueuedJob", "WorkerRow", "queued_jobs", "workers"]


@dataclass(frozen=True, slots=True)
class QueuedJob:
    lock: str
    label: str
    status: str
    """``queued``, ``deferred`` (scheduled for later) or ``running``."""
    scheduled_at: datetime | None
    worker: str | None
    attempts: int

    def describe(self, now: datetime) -> str:
        if self.status == "running":
            return f"running on {self.worker or 'a worker'}"
        if self.status == "deferred" and self.scheduled_at is not None:
            return f"deferred until {self.scheduled_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        return "queued"


@dataclass(frozen=True, slots=True)
class WorkerRow:
    name: str
    host: str
    pid: int
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    silent_for: float
    running: int
    done: int
    jobs: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "silent_for": round(self.silent_for, 1),
            "running": self.running,
            "done": self.done,
            "jobs": self.jobs,
        }


@contextlib.contextmanager
def _queue_cursor(target: Target) -> Iterator[Any | None]:
    """A cursor in the store's schema, or ``None`` when the queue was never installed."""
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(target.schema)))
        cur.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = cur.fetchone()
        yield cur if row and row[0] else None


def queued_jobs(target: Target, queue: str) -> dict[str, QueuedJob]:
    """Jobs waiting or running, by lock (``source.stream:{partition}``)."""
    with _queue_cursor(target) as cur:
        if cur is None:
            return {}
        cur.execute(
            "SELECT j.lock, j.args, j.status, j.scheduled_at, w.name, j.attempts, "
            "j.scheduled_at > now() FROM procrastinate_jobs j "
            "LEFT JOIN _syncline_workers w ON w.queue_worker_id = j.worker_id "
            "WHERE j.queue_name = %s AND j.task_name = %s AND j.status IN ('todo', 'doing') "
            "ORDER BY j.id",
            (queue, TASK_NAME),
        )
        found: dict[str, QueuedJob] = {}
        rows: list[Any] = cur.fetchall()  # the SELECT above fixes the types
        for lock, args, status, scheduled_at, worker, attempts, later in rows:
            kind = "running" if status == "doing" else "deferred" if later else "queued"
            if lock in found and found[lock].status == "running":
                continue  # a running job says more than the one queued behind it
            found[lock] = QueuedJob(lock, describe_args(args), kind, scheduled_at, worker, attempts)
        return found


def workers(target: Target, queue: str) -> list[WorkerRow]:
    """Every registered worker of ``queue``, with the jobs it is running now."""
    with _queue_cursor(target) as cur:
        if cur is None:
            return []
        cur.execute(
            "SELECT w.name, w.host, w.pid, w.concurrency, w.started_at, w.heartbeat_at, "
            "extract(epoch FROM now() - w.heartbeat_at)::float8, w.running, w.done, "
            "coalesce(array_agg(j.args ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{}') "
            "FROM _syncline_workers w LEFT JOIN procrastinate_jobs j "
            "ON j.worker_id = w.queue_worker_id AND j.status = 'doing' "
            "WHERE w.queue = %s GROUP BY w.name ORDER BY w.name",
            (queue,),
        )
        rows: list[Any] = cur.fetchall()  # the SELECT above fixes the types
        return [_worker_row(row) for row in rows]


def _worker_row(row: Any) -> WorkerRow:
    values: Any = (*row[:9], [describe_args(args) for args in row[9]])
    return WorkerRow(*values)
