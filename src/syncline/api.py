"""The library entry points: load a config, sync it, or just iterate a stream's records."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from syncline.changes import iter_changes
from syncline.config import Config, load_config
from syncline.engine import ProgressListener, SyncSummary, run_sync
from syncline.errors import ConfigError
from syncline.http import HttpClient, secrets_of
from syncline.incremental import start_pass
from syncline.pages import walk_pages
from syncline.paginate import make_paginator
from syncline.plan import plan_jobs
from syncline.push.planning import PushRequest
from syncline.push.session import PushOutcome
from syncline.push.session import push as run_push
from syncline.records import RecordShaper
from syncline.redact import Redactor
from syncline.stores import State, open_store

__all__ = ["changes", "iter_records", "push", "sql", "sync"]


def _config(config: Config | str | os.PathLike[str]) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def sync(
    config: Config | str | os.PathLike[str],
    *,
    streams: Sequence[str] = (),
    partitions: Sequence[str] = (),
    full_refresh: bool = False,
    concurrency: int = 4,
    listener: ProgressListener | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    lock_wait: float = 0.0,
    ignore_not_before: bool = False,
    max_calls: int | None = None,
) -> SyncSummary:
    """Sync into the config's store and return the summary (``summary.ok`` says if all passed).

    ``summary.outcome`` tells ok / paused (budget spent) / deferred (rate limited) /
    busy / failed apart. ``max_calls`` caps the requests of this run.
    """
    return asyncio.run(
        run_sync(
            _config(config),
            streams=streams,
            partitions=partitions,
            full_refresh=full_refresh,
            concurrency=concurrency,
            listener=listener,
            transport=transport,
            lock_wait=lock_wait,
            ignore_not_before=ignore_not_before,
            max_calls=max_calls,
        )
    )


def push(
    config: Config | str | os.PathLike[str],
    stream: str,
    changes: Mapping[str, Any] | None = None,
    *,
    where: str | None = None,
    order: str | None = None,
    limit: int | None = None,
    priority: str | None = None,
    partitions: Sequence[str] = (),
    apply: bool = False,
    resume: bool = False,
    max_calls: int | None = None,
    max_errors: int | None = None,
    concurrency: int = 4,
    lock_wait: float = 0.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PushOutcome:
    """Set ``changes`` (field -> new value) on the records of ``stream`` that ``where`` (SQL
    on the mirror) selects; a dry run unless ``apply`` (see ``syncline push``)."""
    sets = [f"{name}={json.dumps(value)}" for name, value in (changes or {}).items()]
    request = PushRequest.of_parts(
        stream, sets, where=where, order=order, limit=limit, priority=priority,
        partitions=partitions,
    )  # fmt: skip
    return _run_push(
        config, request, apply=apply, resume=resume, max_calls=max_calls,
        max_errors=max_errors, concurrency=concurrency, lock_wait=lock_wait,
        transport=transport,
    )  # fmt: skip


def sql(
    config: Config | str | os.PathLike[str],
    statement: str,
    *,
    priority: str | None = None,
    partitions: Sequence[str] = (),
    apply: bool = False,
    max_calls: int | None = None,
    max_errors: int | None = None,
    concurrency: int = 4,
    lock_wait: float = 0.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PushOutcome:
    """``UPDATE table SET … WHERE … [ORDER BY …] [LIMIT n]`` as a push (see ``syncline sql``)."""
    request = PushRequest.of_statement(statement, priority=priority, partitions=partitions)
    return _run_push(
        config, request, apply=apply, resume=False, max_calls=max_calls,
        max_errors=max_errors, concurrency=concurrency, lock_wait=lock_wait,
        transport=transport,
    )  # fmt: skip


def _run_push(
    config: Config | str | os.PathLike[str], request: PushRequest, **options: Any
) -> PushOutcome:
    return asyncio.run(run_push(_config(config), request, **options))


def iter_records(
    config: Config | str | os.PathLike[str],
    stream: str,
    *,
    partitions: Sequence[str] = (),
    transport: httpx.AsyncBaseTransport | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record of one stream (all its partitions), page by page, with no store involved.

    Memory stays bounded: one page is held at a time. A full pass every time,
    since without a store there is no checkpoint to continue from.
    """
    cfg = _config(config)
    jobs = plan_jobs(cfg, [stream], partitions)
    if not jobs:
        raise ConfigError(f"no partition of stream {stream!r} matches {list(partitions)}")
    loop = asyncio.new_event_loop()
    try:
        for job in jobs:
            redactor = Redactor(secrets_of(job.source))
            client = HttpClient(
                job.source, redactor=redactor, transport=transport, base_dir=cfg.base_dir
            )
            paginator = make_paginator(job.stream.paginate)
            state = State(job.state_key)
            start_pass(job.stream, paginator, state, full_refresh=True)
            assert state.position is not None
            shaper = RecordShaper(job.stream, job.source)
            pages = walk_pages(job, client, paginator, shaper, state.position)
            try:
                while True:
                    try:
                        fetched = loop.run_until_complete(anext(pages))
                    except StopAsyncIteration:
                        break
                    yield from fetched.records
            finally:
                loop.run_until_complete(pages.aclose())
                loop.run_until_complete(client.__aexit__(None, None, None))
    finally:
        loop.close()


def changes(
    config: Config | str | os.PathLike[str],
    *,
    since: str | None = None,
    streams: Sequence[str] = (),
    run_id: str | None = None,
    records: bool = True,
) -> Iterator[dict[str, Any]]:
    """The change feed of the config's store, oldest first: one dict per insert, update or
    delete, with the record as now stored (``records=False`` leaves it out).

    ``since``: a run id (what came after that run) or an ISO time.
    """
    cfg = _config(config)
    store = open_store(cfg.store)
    try:
        yield from iter_changes(
            cfg, store, since=since, streams=streams, run_id=run_id, records=records
        )
    finally:
        store.close()
