"""Spending calls like money: a permit before every request, from every window of its scope.

The ledger (in the store) answers "may I, and if not, for how long must I
wait"; this module decides what to do with the answer: wait, let a higher
priority go first, or pause the job until the budget resets when the wait is
longer than the policy allows. It also feeds the server's own numbers
(rate-limit headers) back into the ledger, where they correct ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from syncline.budget.headers import HeaderSpelling, read_server_windows
from syncline.config import SourceConfig
from syncline.errors import QuotaExhausted
from syncline.stores import Store, WindowSpec

__all__ = [
    "PRIORITIES",
    "JobBudget",
    "PermitLine",
    "Place",
    "RunCap",
    "Slot",
    "declared_windows",
    "scope_windows",
]

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
GIVE_WAY = 0.02
"""Seconds a job waits before looking again while a job ahead of it is due for a permit."""
DUE_WITHIN = 0.05
"""A waiting job whose permit frees this soon counts as due: its clock may run a little late."""


@dataclass(frozen=True, order=True)
class Place:
    """A job's place in the line: more urgent first, then first come, first served."""

    rank: int
    ticket: float
    """When the job first had to wait (``inf`` for a job that has not waited yet)."""


@dataclass
class PermitLine:
    """Who in this process waits for a permit, per scope, and when each is due for one.

    Why: a permit freed by a sliding window goes to whoever asks first. Without
    a line that is the job that is already running (it asks the moment its
    page commits), not the one that has been sleeping until the window
    freed, so a tenant with 200 pages could take every freed permit of a
    shared window while a tenant with 2 waited behind it. With the line, a job
    asks the ledger only when no job ahead of it (higher priority, or the same
    and waiting longer) in any of its scopes is due: higher priorities go
    first, and equal ones take turns. A job waiting for a later reset holds
    no one up.
    """

    waiting: dict[str, dict[int, tuple[Place, float]]] = field(default_factory=dict)
    """Per scope: job id → (its place, when its permit is expected to free)."""

    def someone_ahead_is_due(self, scopes: Sequence[str], place: Place, now: float) -> bool:
        return any(
            other < place and due_at <= now + DUE_WITHIN
            for scope in scopes
            for other, due_at in self.waiting.get(scope, {}).values()
        )

    def wait(self, scopes: Sequence[str], job: int, place: Place, due_at: float) -> None:
        for scope in scopes:
            self.waiting.setdefault(scope, {})[job] = (place, due_at)

    def leave(self, scopes: Sequence[str], job: int) -> None:
        for scope in scopes:
            line = self.waiting.get(scope, {})
            line.pop(job, None)
            if not line:
                self.waiting.pop(scope, None)


class Slot:
    """A job's share of the run's concurrency, lent back while the job waits for a permit.

    Why: a job sleeping until its tenant's window frees uses no connection and
    no CPU. If it kept its slot, four tenants with spent windows would stall
    twenty tenants with budget to spare; lent back, every tenant with budget
    runs, each as fast as its own limit allows.
    """

    def __init__(self, limit: asyncio.Semaphore) -> None:
        self._limit = limit
        self._held = False

    async def __aenter__(self) -> Slot:
        await self._limit.acquire()
        self._held = True
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._held:
            self._held = False
            self._limit.release()

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        if not self._held:
            yield
            return
        self._held = False
        self._limit.release()
        try:
            yield
        finally:
            await self._limit.acquire()  # cancelled here: not held, so nothing to give back
            self._held = True


@dataclass
class RunCap:
    """``--max-calls``: the calls one run may send, over all its jobs."""

    limit: int
    spent: int = 0

    def take(self, weight: int) -> bool:
        if self.spent + weight > self.limit:
            return False
        self.spent += weight
        return True


def declared_windows(
    source: SourceConfig, operation: str | None = "read"
) -> list[tuple[str, WindowSpec]]:
    """The source's declared windows that bill ``operation`` (``None``: all of them),
    each with its scope setting."""
    return [
        (window.scope, WindowSpec(window.key, window.calls, window.per, window.reserve))
        for window in source.limits
        if operation is None or window.operation in (None, operation)
    ]


def scope_windows(
    source: str, partition_label: str, windows: Sequence[tuple[str, WindowSpec]]
) -> list[tuple[str, list[WindowSpec]]]:
    """The ledger scopes a job draws from: its partition's (always) and its source's (if any).

    ``windows`` pairs each declared window with its ``scope`` setting. The
    partition's scope comes first: it is where the server's reports are kept,
    since vendors limit per tenant (one administration, one company).
    """
    by_partition = [w for scope, w in windows if scope == "partition"]
    by_source = [w for scope, w in windows if scope == "source"]
    if not partition_label:  # unpartitioned: the partition is the source
        return [(source, by_partition + by_source)]
    scopes = [(f"{source}[{partition_label}]", by_partition)]
    if by_source:
        scopes.append((source, by_source))
    return scopes


@dataclass
class JobBudget:
    """The permits of one (stream, partition) job."""

    store: Store
    scopes: list[tuple[str, list[WindowSpec]]]
    priority: str
    weight: int
    max_wait: float
    line: PermitLine
    slot: Slot | None = None
    cap: RunCap | None = None
    spellings: Sequence[HeaderSpelling] = ()
    """The source's own rate-limit header names."""
    learned: bool = False
    """The server has reported limits for this scope (then every request asks the ledger)."""
    waited: float = 0.0
    permits: int = 0
    _taken_at: float | None = None
    """When the permit of the call in flight was taken (declared windows only)."""

    @property
    def scope(self) -> str:
        return self.scopes[0][0]

    @property
    def declared(self) -> bool:
        return any(windows for _, windows in self.scopes)

    async def start(self) -> None:
        self.learned = bool(await asyncio.to_thread(self.store.server_windows, self.scope))

    async def acquire(self) -> None:
        """Take a permit, waiting as needed; raise :class:`QuotaExhausted` to pause the job."""
        if self.cap is not None and not self.cap.take(self.weight):
            raise QuotaExhausted(
                f"this run's cap of {self.cap.limit} calls (--max-calls) is spent",
                scope="--max-calls",
                resume_at=None,
            )
        if not (self.declared or self.learned):
            return
        spend_reserve = self.priority == "high"
        scopes = [scope for scope, _ in self.scopes]
        place = Place(PRIORITIES[self.priority], math.inf)
        job = id(self)
        try:
            while True:
                now = time.time()
                if self.line.someone_ahead_is_due(scopes, place, now):
                    wait, due_at = GIVE_WAY, now  # ready the moment they are served
                else:
                    wait = await asyncio.to_thread(
                        self.store.take_permit, self.scopes, self.weight, spend_reserve, now=now
                    )
                    if wait <= 0:
                        self.permits += 1
                        self._taken_at = now if self.declared else None
                        return
                    if wait > self.max_wait:
                        raise QuotaExhausted(
                            f"the call budget of {self.scope} is spent for the next {wait:.0f}s",
                            scope=self.scope,
                            resume_at=time.time() + wait,
                        )
                    due_at = now + wait
                if place.ticket == math.inf:  # in line from the first time it had to wait
                    place = Place(place.rank, now)
                self.line.wait(scopes, job, place, due_at)
                await self._sleep(wait)
        finally:
            self.line.leave(scopes, job)

    async def _sleep(self, seconds: float) -> None:
        if self.slot is None:
            await asyncio.sleep(seconds)
        else:
            async with self.slot.lent():
                await asyncio.sleep(seconds)
        self.waited += seconds

    async def observe(self, headers: Mapping[str, str]) -> None:
        """Settle the call's permit and record what the server says about its limits
        (the strictest view wins at permit time)."""
        now = time.time()
        taken_at, self._taken_at = self._taken_at, None
        if taken_at is not None and any(
            window.bucket(taken_at) != window.bucket(now)
            for _, windows in self.scopes
            for window in windows
        ):
            await asyncio.to_thread(self.store.settle_permit, self.scopes, self.weight, taken_at)
        windows = read_server_windows(headers, now, self.spellings)
        if windows:
            self.learned = True
            await asyncio.to_thread(self.store.observe_server, self.scope, windows)
