"""The permit line: who may ask the ledger first when a shared window frees."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from syncline.budget.permits import DUE_WITHIN, PRIORITIES, JobBudget, PermitLine, Place
from syncline.stores import WindowSpec

NORMAL, HIGH, LOW = PRIORITIES["normal"], PRIORITIES["high"], PRIORITIES["low"]


def test_a_newcomer_gives_way_to_a_waiter_whose_permit_is_due() -> None:
    line = PermitLine()
    line.wait(["shop"], job=1, place=Place(NORMAL, 10.0), due_at=100.0)
    newcomer = Place(NORMAL, math.inf)
    assert line.someone_ahead_is_due(["shop"], newcomer, now=100.0)
    assert line.someone_ahead_is_due(["shop"], newcomer, now=100.0 - DUE_WITHIN / 2)


def test_a_waiter_due_later_holds_no_one_up() -> None:
    line = PermitLine()
    line.wait(["shop"], job=1, place=Place(NORMAL, 10.0), due_at=160.0)  # a daily reset, say
    assert not line.someone_ahead_is_due(["shop"], Place(NORMAL, math.inf), now=100.0)


def test_the_longest_waiting_goes_first_among_equals() -> None:
    line = PermitLine()
    first, second = Place(NORMAL, 10.0), Place(NORMAL, 11.0)
    line.wait(["shop"], job=1, place=first, due_at=100.0)
    line.wait(["shop"], job=2, place=second, due_at=100.0)
    assert line.someone_ahead_is_due(["shop"], second, now=100.0)
    assert not line.someone_ahead_is_due(["shop"], first, now=100.0)


def test_higher_priority_goes_first_whatever_it_waited() -> None:
    line = PermitLine()
    line.wait(["shop"], job=1, place=Place(LOW, 1.0), due_at=100.0)
    assert not line.someone_ahead_is_due(["shop"], Place(HIGH, math.inf), now=100.0)
    line.wait(["shop"], job=2, place=Place(HIGH, 50.0), due_at=100.0)
    assert line.someone_ahead_is_due(["shop"], Place(LOW, 1.0), now=100.0)


def test_only_shared_scopes_count_and_leaving_clears_the_place() -> None:
    line = PermitLine()
    line.wait(["shop[tenant=a]", "shop"], job=1, place=Place(NORMAL, 1.0), due_at=100.0)
    newcomer = Place(NORMAL, math.inf)
    assert not line.someone_ahead_is_due(["other"], newcomer, now=100.0)
    assert line.someone_ahead_is_due(["shop[tenant=b]", "shop"], newcomer, now=100.0)
    line.leave(["shop[tenant=a]", "shop"], job=1)
    assert not line.someone_ahead_is_due(["shop[tenant=b]", "shop"], newcomer, now=100.0)
    assert line.waiting == {}


class OnePermitAt:
    """A ledger stub: one permit frees at each of ``times`` (monotonic clock), no more."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spacing: float, count: int) -> None:
        start = loop.time()
        self.loop = loop
        self.frees = [start + spacing * (i + 1) for i in range(count)]
        self.taken_by: list[str] = []
        self.asking: str = ""

    def server_windows(self, scope: str) -> list[Any]:
        return []

    def take_permit(
        self,
        scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
        weight: int,
        spend_reserve: bool,
        now: float,
    ) -> float:
        moment = self.loop.time()
        if self.frees and self.frees[0] <= moment:
            self.frees.pop(0)
            self.taken_by.append(scopes[0][0])
            return 0.0
        return (self.frees[0] - moment) if self.frees else 3600.0


async def test_a_job_that_waited_gets_the_freed_permit_before_one_that_just_asked() -> None:
    """The starvation case: ``greedy`` asks the moment it has a permit, again and again;
    ``patient`` has been sleeping until the window frees. Turns alternate."""
    store = OnePermitAt(asyncio.get_running_loop(), spacing=0.05, count=6)
    line = PermitLine()
    windows = [WindowSpec("1/s", 1, 1.0, 0)]

    def budget(tenant: str) -> JobBudget:
        return JobBudget(
            store=store,  # type: ignore[arg-type]
            scopes=[(tenant, []), ("shop", windows)],
            priority="normal",
            weight=1,
            max_wait=60,
            line=line,
        )

    async def take(tenant: str, times: int) -> None:
        job = budget(tenant)
        for _ in range(times):
            await job.acquire()

    await asyncio.wait_for(asyncio.gather(take("greedy", 4), take("patient", 2)), timeout=10)
    assert store.taken_by[:4] == ["greedy", "patient", "greedy", "patient"]
