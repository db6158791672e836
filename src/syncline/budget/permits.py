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
import time
from collections import Counter
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
    "PriorityBoard",
    "RunCap",
    "Slot",
    "declared_windows",
    "scope_windows",
]

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
YIELD_TO_HIGHER = 0.02
"""Seconds a job waits while a more urgent job of its scope is waiting for a permit."""


@dataclass
class PriorityBoard:
    """Who is waiting for a permit, per scope, in this process (higher priorities go first)."""

    waiting: dict[str, Counter[int]] = field(default_factory=dict)

    def more_urgent_waiting(self, scope: str, rank: int) -> bool:
        counts = self.waiting.get(scope)
        return counts is not None and any(n for r, n in counts.items() if r < rank)

    def enter(self, scope: str, rank: int) -> None:
        self.waiting.setdefault(scope, Counter())[rank] += 1

    def leave(self, scope: str, rank: int) -> None:
        self.waiting[scope][rank] -= 1


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
    board: PriorityBoard
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
        rank = PRIORITIES[self.priority]
        spend_reserve = self.priority == "high"
        while True:
            if self.board.more_urgent_waiting(self.scope, rank):
                await self._sleep(YIELD_TO_HIGHER, rank)
                continue
            now = time.time()
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
            await self._sleep(wait, rank)

    async def _sleep(self, seconds: float, rank: int) -> None:
        self.board.enter(self.scope, rank)
        try:
            if self.slot is None:
                await asyncio.sleep(seconds)
            else:
                async with self.slot.lent():
                    await asyncio.sleep(seconds)
        finally:
            self.board.leave(self.scope, rank)
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
