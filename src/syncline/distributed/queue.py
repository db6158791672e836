"""The job queue in the PostgreSQL store, kept by procrastinate.

Why procrastinate (and not Celery with Redis): the store is already a
PostgreSQL database every worker reaches, so the queue needs no second server,
shares its backups and its access control, and a job can be queued in the same
database as the checkpoints it continues. procrastinate gives what syncline's
guarantees need and nothing to maintain ourselves: a ``lock`` per job (two jobs
with one lock never run at once, across all machines), a ``queueing_lock`` (at
most one waiting job per (stream, partition), so a slow queue never piles up
duplicates), scheduled jobs (``schedule_at``: a paused job waits in the queue
for its budget's reset), worker heartbeats (a dead worker's job is found and
queued again), and async workers that fit our async engine.

Its tables live in the store's schema (``?schema=``, default ``syncline``),
beside the checkpoints; each deployment keeps its jobs apart by queue name
(``run.queue``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from procrastinate import App, PsycopgConnector, exceptions
from procrastinate.schema import SchemaManager
from psycopg import sql

from syncline.config import Config
from syncline.errors import ConfigError
from syncline.plan import Job
from syncline.schedule import job_key
from syncline.stores.postgres_connect import Target, connect, parse_url
from syncline.stores.postgres_names import pg_name
from syncline.stores.postgres_schema import xact_lock

__all__ = [
    "PRIORITY",
    "TASK_NAME",
    "Enqueued",
    "describe_args",
    "enqueue",
    "install_queue",
    "job_args",
    "open_app",
    "queue_target",
]

TASK_NAME = "syncline.sync"
PRIORITY = {"high": 10, "normal": 0, "low": -10}
"""procrastinate runs higher numbers first; a stream's ``priority`` maps onto it."""

_REGISTRY = """
CREATE TABLE IF NOT EXISTS {s}._syncline_workers (
    name text PRIMARY KEY,
    queue text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    queue_worker_id bigint,
    concurrency integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    running integer NOT NULL DEFAULT 0,
    done integer NOT NULL DEFAULT 0
)
"""


def queue_target(config: Config, command: str) -> Target:
    """The PostgreSQL store's target; any other store is a clear error (exit 2)."""
    if not config.store.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{command} needs a PostgreSQL store (store: postgresql://…), whose database "
            f"holds the job queue; this config's store is {config.store.split(':', 1)[0]}",
            key="store",
        )
    return parse_url(config.store)


def install_queue(target: Target) -> None:
    """Create procrastinate's tables and the worker registry in the store's schema, once.

    Under the store's own schema lock (:func:`~syncline.stores.postgres_schema.xact_lock`),
    so workers, the scheduler and the store starting together never race: ``CREATE
    SCHEMA IF NOT EXISTS`` run by two transactions at once fails with a duplicate key.
    """
    with connect(target) as conn, conn.cursor() as cur:
        schema = sql.Identifier(target.schema)
        xact_lock(cur, "syncline-schema", pg_name(target.schema))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
        cur.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = cur.fetchone()
        if not (row and row[0]):
            cur.execute(SchemaManager.get_schema())
        cur.execute(sql.SQL(_REGISTRY).format(s=schema))


def open_app(target: Target, *, pool_size: int = 4) -> App:
    """A procrastinate app on the store's database, its queries run in the store's schema."""
    schema = sql.Identifier(target.schema)

    async def in_schema(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(sql.SQL("SET search_path TO {}").format(schema))
        await conn.commit()

    connector = PsycopgConnector(
        conninfo=target.conninfo,
        configure=in_schema,
        min_size=1,
        max_size=max(2, pool_size),
        json_dumps=json.dumps,
    )
    return App(connector=connector)


def job_args(job: Job) -> dict[str, Any]:
    """A job as the queue stores it: names and the partition, never a secret."""
    return {"source": job.source_name, "stream": job.stream_name, "partition": dict(job.partition)}


class Enqueued:
    """What :func:`enqueue` did: ``queued`` (a new job id) or ``already`` (one waits)."""

    def __init__(self, queued: bool, job_id: int | None) -> None:
        self.queued = queued
        self.job_id = job_id


async def enqueue(app: App, queue: str, job: Job, *, at: datetime | None = None) -> Enqueued:
    """Queue ``job`` (at ``at``, else now); a job already waiting for it is left as it is."""
    key = job_key(job)
    deferrer = app.configure_task(
        TASK_NAME,
        queue=queue,
        lock=key,
        queueing_lock=key,
        priority=PRIORITY[job.stream.priority],
        schedule_at=at,
    )
    try:
        return Enqueued(True, await deferrer.defer_async(**job_args(job)))
    except exceptions.AlreadyEnqueued:
        return Enqueued(False, None)


def describe_args(args: Mapping[str, Any]) -> str:
    partition = args.get("partition") or {}
    where = ",".join(f"{k}={v}" for k, v in partition.items())
    return f"{args.get('source')}.{args.get('stream')}" + (f" [{where}]" if where else "")
