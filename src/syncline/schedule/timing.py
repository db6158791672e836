"""When a (stream, partition) is due: its schedule, its last run, and what the API allows.

One set of rules serves the scheduler (after each run), its start-up (from the
stored checkpoints) and ``syncline status`` (next due times), so what status
shows is what the scheduler does:

- never synced, or a pass left unfinished (a crash, a time slice, a shutdown):
  due now;
- paused because the call budget is spent: due when the window resets;
  deferred by the server (a long Retry-After): due at its ``not_before``;
- otherwise the schedule's next tick after the last run ended. A tick missed
  while nothing ran (the machine was off) makes the job due once, now, and the
  next tick is counted from that run: missed runs never pile up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from syncline.config import ScheduleConfig
from syncline.engine import JobResult
from syncline.plan import Job
from syncline.stores import State
from syncline.timestamps import parse_iso

__all__ = [
    "BUSY_RETRY",
    "Due",
    "comes_back",
    "due_after_run",
    "due_from_state",
    "next_tick",
    "schedule_of",
]

BUSY_RETRY = timedelta(seconds=30)
"""How soon to try again a job another process holds (its lease tells when it ends)."""


@dataclass(frozen=True, slots=True)
class Due:
    """When a job should run next, and why (shown by ``syncline status`` and the log)."""

    at: datetime
    reason: str


def schedule_of(job: Job) -> ScheduleConfig | None:
    """The stream's own schedule, else its source's (``None``: not scheduled)."""
    return job.stream.schedule or job.source.schedule


def next_tick(schedule: ScheduleConfig, after: datetime) -> datetime:
    """The schedule's first moment strictly after ``after`` (UTC)."""
    if schedule.every is not None:
        return after + timedelta(seconds=schedule.every)
    assert schedule.cron is not None
    local = after.astimezone(ZoneInfo(schedule.timezone))
    tick: datetime = croniter(schedule.cron, local).get_next(datetime)
    return tick.astimezone(UTC)


def due_from_state(schedule: ScheduleConfig, state: State | None, now: datetime) -> Due:
    """When a job is due, from its stored checkpoint alone (start-up, ``syncline status``)."""
    if state is None or state.status is None:
        return Due(now, "never synced")
    not_before = _moment(state.not_before)
    if state.status in ("paused", "deferred") and not_before is not None and not_before > now:
        return Due(not_before, _WAIT_REASONS[state.status])
    if state.position is not None and state.status != "failed":
        return Due(now, "continues its unfinished pass")
    last = _moment(state.updated_at) or now
    tick = next_tick(schedule, last)
    if state.status == "failed":
        return Due(max(tick, now), "failed; tries again at its next run")
    if tick <= now:
        return Due(now, f"missed its run at {_text(tick)}; runs once now")
    return Due(tick, schedule.describe())


def due_after_run(schedule: ScheduleConfig, result: JobResult, ended: datetime) -> Due:
    """When a job is due after a run of it that ended at ``ended``."""
    back = comes_back(result, ended)
    if back is not None:
        return back
    if result.status == "failed":
        return Due(next_tick(schedule, ended), "failed; tries again at its next run")
    return Due(next_tick(schedule, ended), schedule.describe())


def comes_back(result: JobResult, ended: datetime) -> Due | None:
    """When a run that left work behind must be taken up again, whatever the schedule:
    the rest of its pass at once, after a spent budget's reset, after the server's wait,
    or once another process lets go of it (``None``: nothing left behind)."""
    not_before = _moment(result.not_before)
    if result.status in ("paused", "deferred") and not_before is not None:
        return Due(max(not_before, ended), _WAIT_REASONS[result.status])
    if result.status == "busy":
        return Due(ended + BUSY_RETRY, "another process is syncing it")
    if result.status == "ok" and result.unfinished:
        return Due(ended, "continues its pass")
    return None


_WAIT_REASONS = {
    "paused": "its call budget resets",
    "deferred": "the server asked us to wait",
}


def _moment(text: str | None) -> datetime | None:
    return None if text is None else parse_iso(text)


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
