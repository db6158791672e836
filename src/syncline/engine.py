"""Running jobs: each (stream, partition) walks its pages and commits each with its checkpoint.

Jobs run concurrently (bounded); one failing job never stops the others, and
whatever a job committed before failing stays committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from syncline.backoff import Backoff
from syncline.budget.headers import HeaderSpelling
from syncline.budget.permits import (
    JobBudget,
    PermitLine,
    RunCap,
    Slot,
    declared_windows,
    scope_windows,
)
from syncline.config import Config, SourceConfig
from syncline.config.strategies import NoIncremental, WatermarkIncremental
from syncline.errors import (
    ClientError,
    LeaseHeld,
    QuotaExhausted,
    RateLimited,
    SourceError,
    StoreError,
    SynclineError,
)
from syncline.failpoints import failpoint
from syncline.http import HttpClient, RequestCounter, secrets_of
from syncline.incremental import (
    finish_pass,
    full_pass_proves_deletes,
    merge_newest,
    opening,
    start_pass,
    token_refused,
)
from syncline.leases import DEFAULT_TTL, held_lease, holder_name
from syncline.pages import FetchedPage, walk_pages
from syncline.paginate import DriftAware, Paginator, make_paginator
from syncline.plan import Job, plan_jobs
from syncline.records import RecordShaper, ShapedPage
from syncline.redact import Redactor
from syncline.stores import Lease, PageChanges, RunRecord, State, Store, Sweep, columns, open_store
from syncline.timestamps import parse_iso

log = logging.getLogger("syncline")

__all__ = [
    "JobOptions",
    "JobResult",
    "ProgressListener",
    "SyncSummary",
    "close_clients",
    "open_clients",
    "prune_feed",
    "run_job",
    "run_sync",
]


@dataclass(slots=True)
class JobResult:
    source: str
    stream: str
    partition: str
    records: int = 0
    requests: int = 0
    pages: int = 0
    status: str = "ok"
    """``ok``, ``paused`` (budget spent until ``not_before``), ``deferred`` (rate limited
    until ``not_before``), ``busy`` or ``failed``."""
    error: str | None = None
    rejected: int = 0
    not_before: str | None = None
    scope: str = ""
    """The call-budget scope the job's requests were billed to."""
    rate_limited: int = 0
    """429s (and other "slow down" answers) received."""
    waited: float = 0.0
    """Seconds spent waiting for call permits."""
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    """What the committed pages changed in the store (the change feed's counts)."""
    unfinished: bool = False
    """Stopped at a page boundary before its pass ended (a time slice, a shutdown): the
    committed checkpoint continues it."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


OUTCOMES = ("ok", "paused", "deferred", "busy", "failed")
"""Job statuses from best to worst; a run's outcome is its worst job's."""


@dataclass(slots=True)
class SyncSummary:
    run_id: str
    streams: list[JobResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing failed, was deferred or busy (a job paused on its budget is fine)."""
        return all(result.status in ("ok", "paused") for result in self.streams)

    @property
    def outcome(self) -> str:
        worst = max((OUTCOMES.index(r.status) for r in self.streams), default=0)
        return OUTCOMES[worst]

    @property
    def records(self) -> int:
        return sum(result.records for result in self.streams)

    @property
    def requests(self) -> int:
        return sum(result.requests for result in self.streams)

    @property
    def rejected(self) -> int:
        return sum(result.rejected for result in self.streams)

    def changed(self) -> dict[str, int]:
        """Rows inserted, updated and deleted in the store by this run."""
        return {
            kind: sum(getattr(result, kind) for result in self.streams)
            for kind in ("inserted", "updated", "deleted")
        }

    def scopes(self) -> dict[str, dict[str, float]]:
        """Calls spent, 429s received and seconds waited, per budget scope."""
        totals: dict[str, dict[str, float]] = {}
        for result in self.streams:
            scope = totals.setdefault(result.scope, {"calls": 0, "rate_limited": 0, "waited": 0.0})
            scope["calls"] += result.requests
            scope["rate_limited"] += result.rate_limited
            scope["waited"] = round(scope["waited"] + result.waited, 3)
        return totals

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "outcome": self.outcome,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "records": self.records,
            "requests": self.requests,
            "rejected": self.rejected,
            **self.changed(),
            "scopes": self.scopes(),
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
    return _stamp(datetime.now(UTC))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


FUTURE_SKEW = timedelta(minutes=5)
"""How far past our clock a stored watermark may be before we warn about it."""
MAX_DRIFT_RESTARTS = 2
"""Extra passes allowed when an offset listing shifts under us (see ``drifted``)."""


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How one run treats its jobs (the same for every job of the run)."""

    run_id: str
    full_refresh: bool = False
    lease_ttl: float = DEFAULT_TTL
    lock_wait: float = 0.0
    ignore_not_before: bool = False


async def run_job(
    job: Job,
    client: HttpClient,
    store: Store,
    *,
    run_id: str,
    full_refresh: bool = False,
    listener: ProgressListener | None = None,
    options: JobOptions | None = None,
    budget: JobBudget | None = None,
    stop: Callable[[], bool] | None = None,
) -> JobResult:
    """Sync one (stream, partition) under its lease: resume or start a pass, commit each page.

    ``stop`` is asked after every committed page: true ends the job there, its pass
    unfinished (``result.unfinished``), to be continued from the checkpoint.
    """
    listener = listener or _Silent()
    options = options or JobOptions(run_id=run_id, full_refresh=full_refresh)
    result = JobResult(job.source_name, job.stream_name, job.partition_label)
    result.scope = budget.scope if budget is not None else job.source_name
    listener.job_started(job)
    counter = RequestCounter()
    try:
        committed = await asyncio.to_thread(store.load_state, job.state_key) or State(job.state_key)
        if _deferred(committed, options, result):
            listener.job_finished(job, result)
            return result
        holder = holder_name(options.run_id)
        async with held_lease(
            store, job.state_key, holder, ttl=options.lease_ttl, wait=options.lock_wait
        ) as lease:
            # Re-read under the lease: the previous holder may have committed since.
            latest = await asyncio.to_thread(store.load_state, job.state_key)
            committed = latest if latest is not None else committed
            if budget is not None:
                await budget.start()
            await _sync_passes(job, client, store, committed, lease, options, counter, result,
                               listener, budget, stop)  # fmt: skip
    except LeaseHeld as exc:
        result.status, result.error = "busy", str(exc)
    except QuotaExhausted as exc:
        result.status = "paused"
        if exc.resume_at is None:
            result.error = str(exc)
        else:
            result.not_before = _stamp(datetime.fromtimestamp(exc.resume_at, UTC))
            result.error = f"call budget of {exc.scope} spent; paused until {result.not_before}"
        uncommitted, result.requests = counter.sent - result.requests, counter.sent
        await _record_outcome(store, job, options.run_id, result, uncommitted)
    except RateLimited as exc:
        exc.located(stream=job.stream_name, partition=job.partition_label)
        wait = Backoff(job.source.retry).defer_for(exc) or 0.0
        result.not_before = _stamp(datetime.now(UTC) + timedelta(seconds=wait))
        result.status = "deferred"
        result.error = f"rate limited; deferred until {result.not_before}: {exc}"
        uncommitted, result.requests = counter.sent - result.requests, counter.sent
        await _record_outcome(store, job, options.run_id, result, uncommitted)
    except SynclineError as exc:
        if isinstance(exc, SourceError):
            exc.located(stream=job.stream_name, partition=job.partition_label)
        result.status, result.error = "failed", str(exc)
        uncommitted, result.requests = counter.sent - result.requests, counter.sent
        await _record_outcome(store, job, options.run_id, result, uncommitted)
    result.rate_limited = counter.rate_limited
    if budget is not None:
        result.waited = round(budget.waited, 3)
    listener.job_finished(job, result)
    return result


def _deferred(state: State, options: JobOptions, result: JobResult) -> bool:
    """A job the server asked us to leave alone until ``not_before`` is not started."""
    if options.ignore_not_before or state.not_before is None or state.not_before <= _now():
        return False
    if state.status == "paused":
        result.status, result.not_before = "paused", state.not_before
        result.error = f"paused until {state.not_before} (its call budget is spent)"
    else:
        result.status, result.not_before = "deferred", state.not_before
        result.error = f"deferred until {state.not_before} (the server asked us to wait)"
    return True


@dataclass
class _Pass:
    """What every page of one job's passes needs (the job's working set)."""

    job: Job
    client: HttpClient
    store: Store
    lease: Lease
    options: JobOptions
    counter: RequestCounter
    result: JobResult
    listener: ProgressListener
    paginator: Paginator
    shaper: RecordShaper
    watch_moves: bool
    stop: Callable[[], bool] | None = None

    def stopping(self, committed: State) -> bool:
        """Asked to stop, with a pass still open: leave it for the next run."""
        if committed.position is None or self.stop is None or not self.stop():
            return False
        self.result.unfinished = True
        return True


async def _sync_passes(
    job: Job,
    client: HttpClient,
    store: Store,
    committed: State,
    lease: Lease,
    options: JobOptions,
    counter: RequestCounter,
    result: JobResult,
    listener: ProgressListener,
    budget: JobBudget | None = None,
    stop: Callable[[], bool] | None = None,
) -> None:
    paginator = make_paginator(job.stream.paginate)
    mode = job.stream.incremental
    # Positional listings (pages, offsets) sorted by modification time shift when a
    # record we already read is updated and moves to the end: watch for that.
    watch_moves = isinstance(paginator, DriftAware) and job.stream.updated_at is not None
    work = _Pass(job, client, store, lease, options, counter, result, listener, paginator,
                 RecordShaper(job.stream, job.source), watch_moves, stop)  # fmt: skip
    committed.not_before = None
    if options.full_refresh or committed.position is None:
        _open_pass(job, paginator, committed, options.full_refresh)
    token_retried = False
    while committed.position is not None:
        pages = walk_pages(
            job,
            client,
            paginator,
            work.shaper,
            committed.position,
            filter_param=mode.param if isinstance(mode, WatermarkIncremental) else None,
            filter_value=committed.pass_filter,
            counter=counter,
            budget=budget,
            opening=opening(job.stream, committed.pass_filter),
            # Under declared limits calls are what is scarce: none is spent before it is
            # needed (a pass that stops early would waste it), and permits go in turn.
            request_ahead=budget is None or not budget.declared,
        )
        try:
            async with contextlib.aclosing(pages):
                async for fetched in pages:
                    committed = await _take_page(work, committed, fetched)
                    if work.stopping(committed):
                        return
                    if committed.position is None or fetched.next_position is None:
                        break
        except ClientError as exc:
            if not _token_expired(job, committed, exc):
                raise
            token_retried = _after_expired_token(job, paginator, committed, token_retried)


async def _take_page(work: _Pass, committed: State, fetched: FetchedPage) -> State:
    """Shape one fetched page, decide the next checkpoint, commit both; the new checkpoint."""
    job, result, paginator = work.job, work.result, work.paginator
    failpoint("engine.page_fetched")
    shaped = work.shaper.rows(fetched.records, tuple(job.partition.values()), fetched.page.body)
    # Work on a copy: if the commit fails, the checkpoint held is still the committed one.
    state = dataclasses.replace(committed, run_id=work.options.run_id, status="running", error=None)
    state.pass_max = merge_newest(state.pass_max, shaped.newest)
    if work.watch_moves and state.pass_started and shaped.rows and not state.pass_drift:
        moved = await asyncio.to_thread(
            work.store.count_moved, job.table, shaped.rows, state.pass_started
        )
        state.pass_drift = moved > 0
    if fetched.next_position is not None:
        state.position = fetched.next_position
    elif _restart_for_drift(job, paginator, fetched, state):
        state.position = paginator.start()
        state.pass_restarts += 1
        state.pass_drift, state.pass_started = False, _now()
    else:
        _warn_if_behind(job, state)
        if state.pass_drift or _drifted(paginator, fetched):
            state.pass_max = None  # keep the watermark: the next run reads this again
        finish_pass(job.stream, paginator, state, fetched.position, fetched.page)
        if isinstance(state.cursor, str):
            state.cursor = work.client.scrub_url(state.cursor)
        state.pass_restarts = 0
        state.status = "ok"
    # One reading of the counter for the checkpoint and the result: the next page, already
    # requested ahead, may send (and retry) while this one commits; its calls belong to it.
    sent = work.counter.sent
    _count_page(state, len(shaped.rows), sent - result.requests)
    changes = await asyncio.to_thread(
        _commit, work.store, job, shaped, committed, state, work.lease
    )
    failpoint("engine.page_committed")
    result.inserted += changes.inserted
    result.updated += changes.updated
    result.deleted += changes.deleted
    result.records += len(shaped.rows)
    result.rejected += len(shaped.rejects)
    result.pages += 1
    result.requests = sent
    work.listener.page_committed(job, len(shaped.rows), sent)
    return state


def _token_expired(job: Job, state: State, exc: ClientError) -> bool:
    """The server refused the sync token (or a link of its pass) as expired or unknown."""
    status = exc.request.status if exc.request is not None else None
    return (
        isinstance(state.pass_filter, dict)
        and "from" in state.pass_filter
        and token_refused(job.stream, status, exc.answer)
    )


def _after_expired_token(job: Job, paginator: Paginator, state: State, retried: bool) -> bool:
    """Restart a pass whose link expired from the stored token once; then, or when the
    stored token itself is refused, resync everything (deletions included)."""
    at_start = state.position == paginator.start()
    if not at_start and not retried:
        log.warning("%s: a link of this pass expired; restarting from the stored token", job.label)
        state.position = paginator.start()
        return True
    log.warning(
        "%s: the server no longer accepts the stored sync token; reading everything again "
        "(rows stay readable meanwhile; what the full pass does not see is deleted after it)",
        job.label,
    )
    state.cursor = None
    _open_pass(job, paginator, state, full_refresh=False)
    return retried


def _open_pass(job: Job, paginator: Paginator, state: State, full_refresh: bool) -> None:
    start_pass(job.stream, paginator, state, full_refresh=full_refresh)
    state.pass_restarts, state.pass_drift = 0, False
    state.pass_requests = 0
    state.pass_started = _now()
    _warn_if_future(job, state)


def _commit(
    store: Store, job: Job, shaped: ShapedPage, before: State, after: State, lease: Lease
) -> PageChanges:
    return store.commit_page(
        job.table,
        shaped.rows,
        after,
        lease=lease,
        rejects=shaped.rejects,
        deletes=shaped.deletes,
        sweep=_sweep(job, before, after),
    )


def _sweep(job: Job, before: State, after: State) -> Sweep | None:
    """The deletions a complete full pass proves: what it did not see (``detect_deletes``,
    ``mode: snapshot``).

    Only when this page completes the pass (``after.position`` is ``None``):
    an interrupted pass proves nothing, and its rows are never swept.
    """
    mode = job.stream.incremental
    detects = isinstance(mode, NoIncremental) and (
        mode.detect_deletes or job.stream.mode == "snapshot"
    )
    if not (detects or full_pass_proves_deletes(job.stream, before.pass_filter)):
        return None
    if after.position is not None or before.pass_started is None:
        return None
    return Sweep(tuple(job.partition.values()), before.pass_started)


def _count_page(state: State, records: int, requests: int) -> None:
    state.records += records
    state.pages += 1
    state.requests += requests
    state.pass_requests += requests
    if state.position is None:  # the pass is complete: what the next one should cost
        state.last_pass_requests = state.pass_requests


def _restart_for_drift(job: Job, paginator: Paginator, fetched: FetchedPage, state: State) -> bool:
    """A positional listing that changed mid-pass may have shifted records past us."""
    if not (state.pass_drift or _drifted(paginator, fetched)):
        return False
    if state.pass_restarts >= MAX_DRIFT_RESTARTS:
        log.warning(
            "%s: the listing kept changing during %d passes; the watermark stays where it "
            "was so the next run reads these records again",
            job.label,
            state.pass_restarts + 1,
        )
        return False
    log.info("%s: the listing changed while paging; reading it again", job.label)
    return True


def _drifted(paginator: Paginator, fetched: FetchedPage) -> bool:
    return isinstance(paginator, DriftAware) and paginator.drifted(fetched.position, fetched.page)


def _warn_if_future(job: Job, state: State) -> None:
    watermark = state.watermark
    if watermark is None or not isinstance(watermark.get("value"), str):
        return
    moment = parse_iso(watermark["value"])
    if moment is not None and moment > datetime.now(UTC) + FUTURE_SKEW:
        log.warning(
            "%s: the stored watermark %s is in the future; only records changed after it "
            "will be read (rewind it with `syncline reset` if that is wrong)",
            job.label,
            watermark["raw"],
        )


def _warn_if_behind(job: Job, state: State) -> None:
    newest, stored = state.pass_max, state.watermark
    if newest is None or stored is None:
        return
    try:
        behind = newest["value"] < stored["value"]
    except TypeError:
        return
    if behind:
        log.warning(
            "%s: the newest record the server has (%s) is older than the stored watermark "
            "(%s); keeping the watermark (was the API restored from a backup?). "
            "`syncline reset` re-reads the stream from the start.",
            job.label,
            newest["raw"],
            stored["raw"],
        )


async def _record_outcome(
    store: Store, job: Job, run_id: str, result: JobResult, uncommitted_requests: int
) -> None:
    """Note a failure or deferral on the last committed checkpoint, leaving its position alone.

    ``uncommitted_requests``: requests sent since the last commit (the committed
    pages already counted theirs).
    """
    try:
        state = await asyncio.to_thread(store.load_state, job.state_key) or State(job.state_key)
        state.run_id, state.status, state.error = run_id, result.status, result.error
        state.not_before = result.not_before
        state.requests += uncommitted_requests
        if state.position is not None:
            state.pass_requests += uncommitted_requests
        await asyncio.to_thread(store.save_state, state)
    except StoreError:
        pass  # the store is what failed; the job result already says so


def job_budget(
    job: Job,
    store: Store,
    line: PermitLine,
    *,
    slot: Slot | None = None,
    cap: RunCap | None = None,
) -> JobBudget:
    """The call budget a job draws from: its source's read windows, by scope."""
    return JobBudget(
        store=store,
        scopes=scope_windows(job.source_name, job.partition_label, declared_windows(job.source)),
        priority=job.stream.priority,
        weight=job.stream.weight,
        max_wait=job.source.retry.max_wait,
        line=line,
        slot=slot,
        cap=cap,
        spellings=spellings_of(job.source),
    )


def spellings_of(source: SourceConfig) -> list[HeaderSpelling]:
    """The source's own rate-limit header names, as the budget reads them."""
    return [
        HeaderSpelling(h.name, h.remaining.lower(), _lower(h.limit), _lower(h.reset), h.period)
        for h in source.rate_limit_headers
    ]


def _lower(name: str | None) -> str | None:
    return None if name is None else name.lower()


def open_clients(
    config: Config,
    sources: Iterable[str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    connections: int = 4,
) -> dict[str, HttpClient]:
    """One HTTP client per named source, all masking every source's secrets."""
    redactor = Redactor(s for source in config.sources.values() for s in secrets_of(source))
    clients = {}
    for name in sorted(set(sources)):
        source = config.sources[name]
        clients[name] = HttpClient(
            source,
            redactor=redactor,
            transport=transport,
            max_connections=connections,
            base_dir=config.base_dir,
        )
        if not source.verify_tls:
            # Shown whatever the log level: this must never be silent.
            log.log(
                max(logging.WARNING, log.getEffectiveLevel()),
                "source %s: TLS certificate verification is OFF (verify: false); "
                "anyone on the network path can read and change this sync",
                name,
            )
    return clients


async def close_clients(clients: dict[str, HttpClient]) -> None:
    for client in clients.values():
        await client.__aexit__(None, None, None)


def prune_feed(store: Store, config: Config) -> None:
    """Drop change-feed entries older than ``changes_retention``."""
    if config.changes_retention is not None:
        horizon = datetime.now(UTC) - timedelta(seconds=config.changes_retention)
        store.prune_changes(_stamp(horizon))


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
    lock_wait: float = 0.0,
    ignore_not_before: bool = False,
    max_calls: int | None = None,
) -> SyncSummary:
    """Sync every selected (stream, partition) of ``config`` into its store.

    ``concurrency``: jobs sending requests at once (a job waiting for a call
    permit lends its place to another). ``lock_wait``: seconds to wait for a
    (stream, partition) another process is syncing before reporting it busy.
    ``ignore_not_before``: call APIs that asked us to wait anyway (an
    operator's override). ``max_calls``: pause every job once the run has sent
    this many requests.
    """
    jobs = plan_jobs(config, streams, partitions)
    own_store = store is None
    store = store or open_store(config.store)
    started = time.perf_counter()
    summary = SyncSummary(run_id=uuid.uuid4().hex)
    run = RunRecord(id=summary.run_id, started_at=_now())
    columns.warn_again()  # each run says once what its typed columns could not hold
    try:
        for job in jobs:
            store.ensure_table(job.table)
        store.start_run(run)
        clients = open_clients(
            config, {job.source_name for job in jobs}, transport=transport, connections=concurrency
        )
        options = JobOptions(
            run_id=summary.run_id,
            full_refresh=full_refresh,
            lease_ttl=config.lease_ttl,
            lock_wait=lock_wait,
            ignore_not_before=ignore_not_before,
        )
        limit = asyncio.Semaphore(max(1, concurrency))
        line = PermitLine()
        cap = None if max_calls is None else RunCap(max_calls)

        async def one(job: Job) -> JobResult:
            async with Slot(limit) as slot:
                return await run_job(
                    job,
                    clients[job.source_name],
                    store,
                    run_id=summary.run_id,
                    listener=listener,
                    options=options,
                    budget=job_budget(job, store, line, slot=slot, cap=cap),
                )

        try:
            summary.streams = list(await asyncio.gather(*(one(job) for job in jobs)))
            run.status = summary.outcome
        except asyncio.CancelledError:
            run.status = "interrupted"
            raise
        finally:
            await close_clients(clients)
            summary.seconds = time.perf_counter() - started
            run.ended_at = _now()
            run.records, run.requests = summary.records, summary.requests
            run.errors = [r.as_dict() for r in summary.streams if r.status != "ok"]
            store.finish_run(run)
            prune_feed(store, config)
    finally:
        if own_store:
            store.close()
    return summary
