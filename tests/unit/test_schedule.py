"""Schedules: cron and interval ticks, due times from checkpoints, and the scheduler's loop
driven by an injected clock (a day of ticks in milliseconds, no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from syncline.config import ScheduleConfig, config_from_dict
from syncline.engine import JobResult
from syncline.plan import Job, plan_jobs
from syncline.schedule import (
    Scheduler,
    Timetable,
    due_after_run,
    due_from_state,
    next_tick,
    schedule_of,
)
from syncline.stores import State, StateKey

T0 = datetime(2026, 11, 24, 10, 7, tzinfo=UTC)
KEY = StateKey("src", "items", "{}")


def cron(expr: str, zone: str = "UTC") -> ScheduleConfig:
    return ScheduleConfig(cron=expr, timezone=zone)


def every(text: str) -> ScheduleConfig:
    return ScheduleConfig.model_validate({"every": text})


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def state(**fields: Any) -> State:
    return State(KEY, **fields)


# --- ticks ---------------------------------------------------------------------------------


def test_cron_ticks_are_on_the_grid_strictly_after() -> None:
    quarter = cron("*/15 * * * *")
    assert next_tick(quarter, T0) == T0.replace(minute=15)
    assert next_tick(quarter, T0.replace(minute=15)) == T0.replace(minute=30)


def test_cron_is_read_in_its_time_zone_across_daylight_saving() -> None:
    six = cron("0 6 * * *", "Europe/Rome")
    # Winter: 06:00 in Rome is 05:00 UTC; summer (after 29 March 2026): 04:00 UTC.
    assert next_tick(six, datetime(2026, 3, 27, 12, tzinfo=UTC)) == datetime(
        2026, 3, 28, 5, tzinfo=UTC
    )
    assert next_tick(six, datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(
        2026, 3, 29, 4, tzinfo=UTC
    )


def test_interval_counts_from_the_end_of_the_last_run() -> None:
    assert next_tick(every("15m"), T0) == T0 + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("61 * * * *", "not a cron expression"),
        ({"cron": "* * * * *", "every": "5m"}, "exactly one of 'cron' or 'every'"),
        ({"every": "5m", "timezone": "Europe/Rome"}, "applies to 'cron' only"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"every": 0}, "greater than 0"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ScheduleConfig.model_validate(raw)


def test_a_stream_schedule_overrides_its_source() -> None:
    config = config_from_dict(
        {
            "sources": {
                "src": {
                    "base_url": "http://127.0.0.1:1",
                    "schedule": "*/15 * * * *",
                    "streams": {
                        "a": {"path": "/a", "primary_key": "id"},
                        "b": {"path": "/b", "primary_key": "id", "schedule": {"every": "1h"}},
                    },
                }
            }
        }
    )
    by_name = {job.stream_name: schedule_of(job) for job in plan_jobs(config)}
    assert by_name["a"] == cron("*/15 * * * *")
    assert by_name["b"] == every("1h")


# --- due times -----------------------------------------------------------------------------


def test_a_job_never_synced_is_due_now() -> None:
    assert due_from_state(every("1h"), None, T0).at == T0


def test_a_finished_job_is_due_at_the_next_tick_after_its_run() -> None:
    done = state(status="ok", updated_at=stamp(T0 - timedelta(minutes=2)))
    due = due_from_state(cron("*/15 * * * *"), done, T0)
    assert due.at == T0.replace(minute=15)


def test_missed_ticks_make_the_job_due_once_now() -> None:
    # Last run three hours ago: twelve ticks were missed; one run now, not twelve.
    stale = state(status="ok", updated_at=stamp(T0 - timedelta(hours=3)))
    due = due_from_state(cron("*/15 * * * *"), stale, T0)
    assert due.at == T0
    assert "missed" in due.reason


def test_a_paused_job_is_due_when_its_budget_resets_not_at_its_tick() -> None:
    reset = T0 + timedelta(minutes=40)
    paused = state(status="paused", position={"page": 3}, not_before=stamp(reset))
    due = due_from_state(cron("*/15 * * * *"), paused, T0)
    assert (due.at, due.reason) == (reset, "its call budget resets")


def test_a_deferred_job_is_due_at_its_not_before() -> None:
    later = T0 + timedelta(minutes=5)
    deferred = state(status="deferred", position={"page": 1}, not_before=stamp(later))
    assert due_from_state(every("1h"), deferred, T0).at == later


def test_an_unfinished_pass_is_continued_at_once() -> None:
    crashed = state(status="running", position={"page": 7}, updated_at=stamp(T0))
    assert due_from_state(every("1h"), crashed, T0).at == T0


def test_a_failed_job_waits_for_its_next_tick_even_mid_pass() -> None:
    failed = state(status="failed", position={"page": 2}, updated_at=stamp(T0))
    assert due_from_state(every("1h"), failed, T0).at == T0 + timedelta(hours=1)


def test_due_after_a_run_follows_its_outcome() -> None:
    quarter = cron("*/15 * * * *")
    ok = JobResult("s", "t", "")
    assert due_after_run(quarter, ok, T0).at == T0.replace(minute=15)
    sliced = JobResult("s", "t", "", unfinished=True)
    assert due_after_run(quarter, sliced, T0).at == T0
    paused = JobResult("s", "t", "", status="paused", not_before=stamp(T0 + timedelta(hours=1)))
    assert due_after_run(quarter, paused, T0).at == T0 + timedelta(hours=1)
    busy = JobResult("s", "t", "", status="busy")
    assert T0 < due_after_run(quarter, busy, T0).at < T0 + timedelta(minutes=5)


# --- the loop, on an injected clock --------------------------------------------------------


class FakeClock:
    """Virtual time: sleeping jumps straight to the deadline once every runnable task ran.

    Asked to sleep past ``horizon``, it stops the scheduler instead.
    """

    def __init__(self, start: datetime, horizon: datetime) -> None:
        self.current = start
        self.horizon = horizon
        self.scheduler: Scheduler | None = None

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta

    async def sleep_until(self, moment: datetime | None, wake: asyncio.Event) -> None:
        assert self.scheduler is not None
        if self.current >= self.horizon:
            self.scheduler.stop()
            return
        for _ in range(50):  # let the jobs just started run as far as they can
            if wake.is_set():
                return
            await asyncio.sleep(0)
        assert moment is not None, "nothing is due and no job is running: the loop would hang"
        if moment >= self.horizon:
            self.scheduler.stop()
            return
        self.current = max(self.current, moment)


def jobs_of(streams: dict[str, dict[str, Any]], partitions: dict[str, list[Any]]) -> list[Job]:
    config = config_from_dict(
        {
            "sources": {
                "src": {
                    "base_url": "http://127.0.0.1:1",
                    "partitions": partitions,
                    "streams": {
                        name: {"path": f"/{name}", "primary_key": "id", **extra}
                        for name, extra in streams.items()
                    },
                }
            }
        }
    )
    return plan_jobs(config)


Outcome = Callable[[Job, datetime, int], JobResult]
"""What the fake job returns, from the job, the time it starts and how often it ran."""


def drive(
    jobs: list[Job],
    outcome: Outcome,
    *,
    start: datetime = T0,
    hours: float = 2,
    duration: timedelta = timedelta(minutes=1),
    states: dict[str, State] | None = None,
    concurrency: int = 4,
) -> list[tuple[str, datetime]]:
    """Run the scheduler on virtual time; the (job label, start time) of every run."""
    clock = FakeClock(start, start + timedelta(hours=hours))
    timetable = Timetable()
    for job in jobs:
        schedule = schedule_of(job)
        assert schedule is not None
        timetable.add(job, schedule, (states or {}).get(job.stream_name), start)
    runs: list[tuple[str, datetime]] = []
    counts: dict[str, int] = {}

    async def run(job: Job, stop: Callable[[], bool]) -> JobResult:
        began = clock.now()
        runs.append((job.label, began))
        counts[job.label] = counts.get(job.label, 0) + 1
        clock.advance(duration)
        return outcome(job, began, counts[job.label])

    scheduler = Scheduler(timetable, run, clock=clock, concurrency=concurrency)
    clock.scheduler = scheduler
    asyncio.run(asyncio.wait_for(scheduler.run(), timeout=10))
    return runs


def ok(job: Job, began: datetime, count: int) -> JobResult:
    return JobResult(job.source_name, job.stream_name, job.partition_label)


def at(hour: int, minute: int) -> datetime:
    return T0.replace(hour=hour, minute=minute)


def test_cron_runs_at_once_then_on_every_tick() -> None:
    jobs = jobs_of({"items": {"schedule": "*/15 * * * *"}}, {})
    runs = drive(jobs, ok, hours=1)
    assert [moment for _, moment in runs] == [
        at(10, 7), at(10, 15), at(10, 30), at(10, 45), at(11, 0)
    ]  # fmt: skip


def test_interval_runs_leave_the_interval_between_end_and_start() -> None:
    jobs = jobs_of({"items": {"schedule": {"every": "20m"}}}, {})
    runs = drive(jobs, ok, hours=1, duration=timedelta(minutes=5))
    # 10:07 runs until 10:12, then 20 minutes: 10:32 (until 10:37), then 10:57.
    assert [moment for _, moment in runs] == [at(10, 7), at(10, 32), at(10, 57)]


def test_a_run_longer_than_its_interval_skips_the_missed_ticks() -> None:
    jobs = jobs_of({"items": {"schedule": "*/15 * * * *"}}, {})
    runs = drive(jobs, ok, hours=2, duration=timedelta(minutes=50))
    # 10:07-10:57 missed 10:15, 10:30 and 10:45: the next run is 11:00, not three at once.
    assert [moment for _, moment in runs] == [at(10, 7), at(11, 0), at(12, 0)]


def test_a_missed_run_from_before_the_start_runs_once() -> None:
    jobs = jobs_of({"items": {"schedule": "*/15 * * * *"}}, {})
    stale = {"items": state(status="ok", updated_at=stamp(T0 - timedelta(hours=5)))}
    runs = drive(jobs, ok, hours=0.5, states=stale)
    assert [moment for _, moment in runs] == [at(10, 7), at(10, 15), at(10, 30)]


def test_a_paused_job_comes_back_when_its_budget_resets() -> None:
    jobs = jobs_of({"items": {"schedule": "0 * * * *"}}, {})
    reset = at(10, 41)

    def budget_spent_once(job: Job, began: datetime, count: int) -> JobResult:
        result = ok(job, began, count)
        if count == 1:
            result.status, result.not_before = "paused", stamp(reset)
        return result

    runs = drive(jobs, budget_spent_once, hours=2)
    # Paused at 10:07 until the window resets at 10:41 (not the 11:00 tick), then hourly.
    assert [moment for _, moment in runs] == [at(10, 7), reset, at(11, 0), at(12, 0)]


def test_a_deferred_job_comes_back_at_its_not_before() -> None:
    jobs = jobs_of({"items": {"schedule": {"every": "1h"}}}, {})

    def deferred_once(job: Job, began: datetime, count: int) -> JobResult:
        result = ok(job, began, count)
        if count == 1:
            result.status, result.not_before = "deferred", stamp(at(10, 20))
        return result

    runs = drive(jobs, deferred_once, hours=1.5)
    assert [moment for _, moment in runs] == [at(10, 7), at(10, 20), at(11, 21)]


def test_a_sliced_pass_goes_behind_the_jobs_already_waiting() -> None:
    jobs = jobs_of({"items": {"schedule": {"every": "1h"}}}, {"tenant": ["huge", "a", "b", "c"]})

    def huge_takes_slices(job: Job, began: datetime, count: int) -> JobResult:
        result = ok(job, began, count)
        result.unfinished = job.partition["tenant"] == "huge" and count < 3
        return result

    runs = drive(jobs, huge_takes_slices, hours=0.5, concurrency=1)
    order = [label.split("=")[1].rstrip("]") for label, _ in runs]
    # One place only: the huge tenant's slices alternate with the others, never hog it.
    assert order == ["huge", "a", "b", "c", "huge", "huge"]


def test_a_job_still_running_is_never_started_again() -> None:
    jobs = jobs_of(
        {"slow": {"schedule": {"every": "1m"}}, "fast": {"schedule": {"every": "1m"}}}, {}
    )
    clock = FakeClock(T0, T0 + timedelta(minutes=30))
    timetable = Timetable()
    for job in jobs:
        schedule = schedule_of(job)
        assert schedule is not None
        timetable.add(job, schedule, None, T0)
    release = asyncio.Event()
    starts: dict[str, int] = {"slow": 0, "fast": 0}
    slow_running: list[bool] = []
    fast_runs_before: list[int] = []

    async def run(job: Job, stop: Callable[[], bool]) -> JobResult:
        starts[job.stream_name] += 1
        if job.stream_name == "slow":
            assert not slow_running, "started while its previous run was still going"
            slow_running.append(True)
            fast_runs_before.append(starts["fast"])
            if starts["slow"] == 1:
                await release.wait()  # runs while the fast one goes through ten of its ticks
            slow_running.clear()
        else:
            clock.advance(timedelta(seconds=30))
            if starts["fast"] == 10:
                release.set()
        return ok(job, clock.now(), 0)

    scheduler = Scheduler(timetable, run, clock=clock, concurrency=4)
    clock.scheduler = scheduler
    asyncio.run(asyncio.wait_for(scheduler.run(), timeout=10))
    # Due every minute, but not started again while its first run lasted (ten fast runs).
    assert fast_runs_before[0] <= 1
    assert fast_runs_before[1] >= 10


def test_stop_lets_running_jobs_end_at_their_page_boundary() -> None:
    jobs = jobs_of({"items": {"schedule": {"every": "1m"}}}, {})
    clock = FakeClock(T0, T0 + timedelta(hours=1))
    timetable = Timetable()
    timetable.add(jobs[0], every("1m"), None, T0)
    pages: list[int] = []

    async def run(job: Job, stop: Callable[[], bool]) -> JobResult:
        result = ok(job, clock.now(), 0)
        for page in range(100):
            pages.append(page)
            if page == 2:
                scheduler.stop()  # SIGTERM arrives while page 2 commits
            await asyncio.sleep(0)
            if stop():
                result.unfinished = True
                break
        return result

    scheduler = Scheduler(timetable, run, clock=clock)
    clock.scheduler = scheduler
    asyncio.run(asyncio.wait_for(scheduler.run(), timeout=10))
    assert pages == [0, 1, 2]
    assert timetable.entries[next(iter(timetable.entries))].due.reason.startswith("continues")


def test_a_time_slice_stops_a_job_at_the_page_after_its_deadline() -> None:
    jobs = jobs_of({"items": {"schedule": {"every": "1h"}}}, {})
    clock = FakeClock(T0, T0 + timedelta(minutes=30))
    timetable = Timetable()
    timetable.add(jobs[0], every("1h"), None, T0)
    pages_per_run: list[int] = []

    async def run(job: Job, stop: Callable[[], bool]) -> JobResult:
        result = ok(job, clock.now(), 0)
        pages = 0
        while pages < 25:
            pages += 1
            clock.advance(timedelta(seconds=10))
            if stop():
                result.unfinished = pages < 25
                break
        pages_per_run.append(pages)
        return result

    scheduler = Scheduler(timetable, run, clock=clock, slice_seconds=60)
    clock.scheduler = scheduler
    asyncio.run(asyncio.wait_for(scheduler.run(), timeout=10))
    # 10 s pages, 60 s slices: six pages a slice, and the pass continues each time.
    assert pages_per_run[:4] == [6, 6, 6, 6]
