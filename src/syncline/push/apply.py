"""Carrying out a plan: one call per item, within budget, each item settled exactly once.

The rules that make "never applied twice" hold through crashes, timeouts and
resumes:

* an item is marked ``unknown`` (committed) *before* its call is sent, after
  its permit is taken; a crash or a lost answer leaves it so;
* an ``unknown`` item is read back before anything else: if the record holds
  the new values it is ``applied``, otherwise it is sent again;
* a write is retried automatically only when it surely did not reach the
  server (429, connection refused); a timeout or a 5xx is verified instead;
* the item's final status and its mirror row are one transaction, and the
  (stream, partition) lease a sync takes is held throughout, so a sync and a
  push never interleave their writes to one partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from syncline.budget.permits import (
    JobBudget,
    PermitLine,
    RunCap,
    Slot,
    declared_windows,
    scope_windows,
)
from syncline.config import Config
from syncline.engine import spellings_of
from syncline.errors import (
    AuthError,
    ClientError,
    LeaseHeld,
    NetworkError,
    QuotaExhausted,
    RateLimited,
    SourceError,
    StoreError,
)
from syncline.failpoints import failpoint
from syncline.http import HttpClient, RequestCounter, secrets_of
from syncline.leases import held_lease, holder_name
from syncline.plan import Job
from syncline.push.planning import WritableStream, plan_condition, row_namespace
from syncline.push.target import WriteTarget, has_values, patched
from syncline.records import RecordShaper
from syncline.redact import Redactor
from syncline.stores import OUTBOX_OPEN, Lease, OutboxItem, PushPlan, Row, RunRecord, Store

__all__ = ["PartitionReport", "PushSummary", "apply_plan"]

log = logging.getLogger("syncline")


@dataclass
class PartitionReport:
    """What one partition's part of a push did in this run."""

    partition: str
    settled: dict[str, int] = field(default_factory=dict)
    """Items settled in this run, by status."""
    open: int = 0
    """Items still pending or unknown after the run."""
    calls: int = 0
    outcome: str = "ok"
    """``ok``, ``paused`` (budget spent), ``deferred`` (rate limited), ``busy`` (a sync or
    push holds the partition), ``stopped`` (the run's limit or error threshold), ``failed``."""
    message: str | None = None
    resume_at: float | None = None

    def count(self, status: str) -> None:
        self.settled[status] = self.settled.get(status, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "settled": dict(self.settled),
            "open": self.open,
            "calls": self.calls,
            "outcome": self.outcome,
            "message": self.message,
            "resume_at": self.resume_at,
        }


@dataclass
class PushSummary:
    plan: PushPlan
    run_id: str
    partitions: list[PartitionReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        """The worst partition outcome (``stopped`` by a threshold counts as failed)."""
        outcomes = {p.outcome for p in self.partitions}
        for worst in ("failed", "busy", "deferred", "paused"):
            if worst in outcomes:
                return worst
        if "stopped" in outcomes:
            return "failed" if self.errors_stopped else "paused"
        return "ok"

    errors_stopped: bool = False

    def total(self, status: str) -> int:
        return sum(p.settled.get(status, 0) for p in self.partitions)

    @property
    def open(self) -> int:
        return sum(p.open for p in self.partitions)

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.id,
            "statement": self.plan.statement,
            "run_id": self.run_id,
            "outcome": self.outcome,
            "calls": self.calls,
            "open": self.open,
            "seconds": round(self.seconds, 3),
            "partitions": [p.as_dict() for p in self.partitions],
        }


@dataclass
class _Prepaid:
    """A budget whose next permit was already taken (before the item was marked ``unknown``,
    so waiting for a permit never leaves an item in doubt)."""

    budget: JobBudget
    paid: bool = True

    async def acquire(self) -> None:
        if self.paid:
            self.paid = False
            return
        await self.budget.acquire()

    async def observe(self, headers: Mapping[str, str]) -> None:
        await self.budget.observe(headers)


def _surely_unsent(exc: Exception) -> bool:
    """Retry a write only when the server surely did not apply it."""
    return isinstance(exc, RateLimited) or (isinstance(exc, NetworkError) and not exc.sent)


def _status_of(exc: SourceError) -> int | None:
    return exc.request.status if exc.request is not None else None


@dataclass
class _Run:
    """What every partition of one push run shares."""

    config: Config
    store: Store
    target: WriteTarget
    writable: WritableStream
    plan: PushPlan
    client: HttpClient
    run_id: str
    line: PermitLine
    cap: RunCap | None
    item_limit: int | None
    max_errors: int
    max_wait: float
    lock_wait: float
    sent_items: int = 0
    errors: int = 0
    stopped: bool = False

    def take_item(self) -> bool:
        if self.item_limit is not None and self.sent_items >= self.item_limit:
            return False
        self.sent_items += 1
        return True

    def count_error(self) -> None:
        self.errors += 1
        if self.errors >= self.max_errors:
            self.stopped = True


class _Stop(Exception):
    """This partition cannot go on now (its items stay open); ``outcome`` says why."""

    def __init__(self, outcome: str, message: str, resume_at: float | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.resume_at = resume_at


class _Partition:
    """One partition's items, worked through in plan order under its lease."""

    def __init__(self, run: _Run, job: Job, lease: Lease, slot: Slot | None) -> None:
        self.run = run
        self.job = job
        self.lease = lease
        self.table = job.table
        self.shaper = RecordShaper(job.stream, job.source)
        self.counter = RequestCounter()
        self.condition = plan_condition(run.plan)
        write_weight = job.stream.write.weight if job.stream.write else 1
        self.writes = self._budget("write", write_weight, slot)
        self.reads = self._budget("read", job.stream.weight, slot)
        self.report = PartitionReport(job.partition_label or "-")

    def _budget(self, operation: str, weight: int, slot: Slot | None) -> JobBudget:
        job, run = self.job, self.run
        return JobBudget(
            store=run.store,
            scopes=scope_windows(
                job.source_name, job.partition_label, declared_windows(job.source, operation)
            ),
            priority=run.plan.priority,
            weight=weight,
            max_wait=run.max_wait,
            line=run.line,
            slot=slot,
            cap=run.cap,
            spellings=spellings_of(job.source),
        )

    # -- store --------------------------------------------------------------------

    async def _settle(self, item: OutboxItem, record: Any = None) -> None:
        rows: Sequence[Row] = ()
        if record is not None:
            shaped = self.shaper.rows([record], tuple(self.job.partition.values()))
            rows = shaped.rows
        await asyncio.to_thread(
            self.run.store.settle_outbox,
            self.table,
            [item],
            rows,
            key=self.job.state_key,
            run_id=self.run.run_id,
            lease=self.lease,
        )
        if item.status not in OUTBOX_OPEN:
            self.report.count(item.status)
            if item.status in ("failed", "conflict"):
                self.run.count_error()

    def _mirror_row(self, item: OutboxItem) -> tuple[dict[str, Any], str] | None:
        """The item's live mirror record, and its stored JSON text (what typed columns
        are read from)."""
        identity = (*self.job.partition.values(), *item.key)
        found = self.run.store.fetch_rows(self.table, [identity]).get(identity)
        if found is None:
            return None
        record = orjson.loads(found)
        return (record, found) if isinstance(record, dict) else None

    def _mirror_record(self, item: OutboxItem) -> dict[str, Any] | None:
        row = self._mirror_row(item)
        return None if row is None else row[0]

    def _key_record(self, item: OutboxItem) -> dict[str, Any]:
        """Enough of a record to fill a URL when the mirror row is gone: its key fields."""
        return dict(zip(self.job.stream.primary_keys, item.key, strict=True))

    # -- the loop -----------------------------------------------------------------

    async def run_items(self, items: Sequence[OutboxItem]) -> None:
        await self.writes.start()
        await self.reads.start()
        for item in items:
            if self.run.stopped:
                raise _Stop("stopped", f"stopped after {self.run.errors} failed items")
            await self._item(item)

    async def _item(self, item: OutboxItem) -> None:
        write = self.job.stream.write
        assert write is not None
        if item.status == "unknown" and await self._verify(item):
            return
        while True:
            row = await asyncio.to_thread(self._mirror_row, item)
            if row is None:
                item.status, item.error = "skipped", "the record is no longer in the mirror"
                await self._settle(item)
                return
            record, data = row
            if has_values(record, item.patch):
                item.status, item.error = "skipped", "the record already holds the new values"
                await self._settle(item)
                return
            identity = (*self.job.partition.values(), *item.key)
            names = row_namespace(self.job, identity, record, data)
            if self.condition is not None and not self.condition(names):
                item.status = "skipped"
                item.error = "the mirror row no longer matches the plan's condition"
                await self._settle(item)
                return
            if item.attempts >= write.attempts:
                item.status = "failed"
                item.error = f"not applied after {item.attempts} attempts"
                await self._settle(item)
                return
            if not self.run.take_item():
                raise _Stop("stopped", "this run's --limit of items is reached")
            if await self._send(item, record):
                return
            # verified as not applied: look again, then send again

    async def _send(self, item: OutboxItem, record: dict[str, Any]) -> bool:
        """Write one item; ``False`` when it turned out not applied and may be sent again."""
        spec = self.run.target.write_request(self.job.partition, record, item.patch)
        await self._permit(self.writes)
        item.status, item.attempts, item.error = "unknown", item.attempts + 1, None
        await self._settle(item)
        failpoint("push.before_send")
        try:
            response, _ = await self.run.client.fetch(
                spec, self.counter, budget=_Prepaid(self.writes), retry_if=_surely_unsent
            )
        except (RateLimited, QuotaExhausted) as exc:
            await self._reopen(item, str(exc))
            raise
        except AuthError as exc:
            await self._reopen(item, str(exc))
            raise _Stop("failed", f"credentials refused: {exc}") from None
        except ClientError as exc:
            write = self.job.stream.write
            assert write is not None
            conflict = _status_of(exc) in write.conflict_statuses
            item.status, item.error = ("conflict" if conflict else "failed"), str(exc)
            await self._settle(item)
            return True
        except SourceError as exc:
            if isinstance(exc, NetworkError) and not exc.sent:
                await self._reopen(item, str(exc))
                raise _Stop("failed", f"the API cannot be reached: {exc}") from None
            item.error = f"answer lost, verifying: {exc}"
            await self._settle(item)
            return await self._verify(item)
        failpoint("push.after_send")
        await self._applied(item, record, self.run.target.written_record(response))
        return True

    async def _reopen(self, item: OutboxItem, reason: str) -> None:
        """The write surely did not reach the server: the item is pending again, and this
        attempt does not count."""
        item.status, item.attempts, item.error = "pending", max(0, item.attempts - 1), reason
        await self._settle(item)

    async def _permit(self, budget: JobBudget) -> None:
        try:
            await budget.acquire()
        except QuotaExhausted as exc:
            raise _Stop("paused", str(exc), exc.resume_at) from None

    async def _applied(
        self, item: OutboxItem, record: dict[str, Any], answer: dict[str, Any] | None
    ) -> None:
        """Settle an applied write with the mirror row the server now has: from its answer,
        else read back (``read_back``), else the mirror's copy with the change made."""
        write = self.job.stream.write
        assert write is not None
        target = self.run.target
        fresh = answer if answer is not None and target.is_same_record(answer, record) else None
        paused: _Stop | None = None
        if fresh is None and write.read_back:
            try:
                fresh = await self._read(item, record)
            except _Stop as stop:
                paused = stop  # the write is applied all the same: settle it first
            except SourceError as exc:
                log.warning("%s: reading back %s failed (%s); mirror patched locally",
                            self.job.label, list(item.key), exc)  # fmt: skip
        item.status, item.error = "applied", None
        await self._settle(item, fresh if fresh is not None else patched(record, item.patch))
        if paused is not None:
            raise paused

    async def _read(self, item: OutboxItem, record: dict[str, Any]) -> dict[str, Any] | None:
        await self._permit(self.reads)
        spec = self.run.target.read_request(self.job.partition, record)
        response, _ = await self.run.client.fetch(spec, self.counter, budget=_Prepaid(self.reads))
        return self.run.target.read_record(response)

    async def _verify(self, item: OutboxItem) -> bool:
        """Read an ``unknown`` item's record back; ``True`` when that settled it."""
        record = await asyncio.to_thread(self._mirror_record, item) or self._key_record(item)
        try:
            found = await self._read(item, record)
        except ClientError as exc:
            if _status_of(exc) in (404, 410):
                item.status, item.error = "failed", "the record no longer exists on the server"
                await self._settle(item)
                return True
            raise
        except (RateLimited, NetworkError, SourceError) as exc:
            raise _Stop("deferred", f"cannot verify item {item.seq} now: {exc}") from None
        if found is not None and has_values(found, item.patch):
            item.status, item.error = "applied", None
            await self._settle(item, found)
            return True
        item.status = "pending"
        item.error = "verified as not applied" if found is not None else item.error
        await self._settle(item)
        return False


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _partition(run: _Run, job: Job, limit: asyncio.Semaphore) -> PartitionReport:
    items = await asyncio.to_thread(
        run.store.outbox_items, run.plan.id, statuses=OUTBOX_OPEN, partition=job.partition_key
    )
    report = PartitionReport(job.partition_label or "-")
    if not items:
        return report
    holder = holder_name(run.run_id)
    try:
        async with (
            Slot(limit) as slot,
            held_lease(
                run.store, job.state_key, holder, ttl=run.config.lease_ttl, wait=run.lock_wait
            ) as lease,
        ):
            worker = _Partition(run, job, lease, slot)
            report = worker.report
            try:
                await worker.run_items(items)
            finally:
                report.calls = worker.counter.sent
    except _Stop as stop:
        report.outcome, report.message, report.resume_at = stop.outcome, str(stop), stop.resume_at
    except QuotaExhausted as exc:
        report.outcome, report.message, report.resume_at = "paused", str(exc), exc.resume_at
    except RateLimited as exc:
        report.outcome, report.message = "deferred", str(exc)
    except LeaseHeld as exc:
        report.outcome = "busy"
        report.message = f"{job.label} is being synced or pushed by {exc.holder}"
    except (SourceError, StoreError) as exc:
        report.outcome, report.message = "failed", str(exc)
    counts = await asyncio.to_thread(run.store.outbox_counts, run.plan.id)
    report.open = sum(
        n for _, partition, status, n in counts
        if partition == job.partition_key and status in OUTBOX_OPEN
    )  # fmt: skip
    return report


async def apply_plan(
    config: Config,
    store: Store,
    writable: WritableStream,
    plan: PushPlan,
    jobs: Sequence[Job],
    *,
    limit: int | None = None,
    max_calls: int | None = None,
    max_errors: int | None = None,
    concurrency: int = 4,
    lock_wait: float = 0.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PushSummary:
    """Work through the open items of ``plan`` in every partition of ``jobs``, in parallel
    (each partition within its own budget)."""
    write = writable.stream.write
    assert write is not None
    started = time.perf_counter()
    summary = PushSummary(plan=plan, run_id=uuid.uuid4().hex)
    redactor = Redactor(s for source in config.sources.values() for s in secrets_of(source))
    run_record = RunRecord(id=summary.run_id, started_at=_now())
    store.start_run(run_record)
    async with HttpClient(
        writable.source,
        redactor=redactor,
        transport=transport,
        max_connections=concurrency,
        base_dir=config.base_dir,
    ) as client:
        run = _Run(
            config=config,
            store=store,
            target=WriteTarget(writable.source, writable.stream),
            writable=writable,
            plan=plan,
            client=client,
            run_id=summary.run_id,
            line=PermitLine(),
            cap=None if max_calls is None else RunCap(max_calls),
            item_limit=limit,
            max_errors=max_errors or write.max_errors,
            max_wait=writable.source.retry.max_wait,
            lock_wait=lock_wait,
        )
        slots = asyncio.Semaphore(max(1, concurrency))
        try:
            summary.partitions = list(
                await asyncio.gather(*(_partition(run, job, slots) for job in jobs))
            )
            summary.errors_stopped = run.stopped
            run_record.status = summary.outcome
        except asyncio.CancelledError:
            run_record.status = "interrupted"
            raise
        finally:
            summary.seconds = time.perf_counter() - started
            run_record.ended_at = _now()
            run_record.requests = summary.calls
            run_record.records = summary.total("applied")
            run_record.errors = [
                p.as_dict() for p in summary.partitions if p.outcome not in ("ok", "paused")
            ]
            store.finish_run(run_record)
    return summary
