"""The scheduler's bookkeeping: every scheduled job, when it is due, and which are running.

Kept apart from the loop so the policy (who goes next) is plain data and rules:
a job is never started twice at once; among due jobs the one due longest goes
first, then the more urgent priority, then the one that ran least recently, so
a tenant whose job keeps coming back (time slices of a huge pass) queues behind
the others instead of starving them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncline.budget.permits import PRIORITIES
from syncline.config import ScheduleConfig
from syncline.engine import JobResult
from syncline.plan import Job
from syncline.schedule.timing import Due, due_after_run, due_from_state
from syncline.stores import State

__all__ = ["Entry", "Timetable"]


@dataclass(slots=True)
class Entry:
    job: Job
    schedule: ScheduleConfig
    due: Due
    running: bool = False
    last_started: datetime | None = None

    @property
    def key(self) -> str:
        return job_key(self.job)


def job_key(job: Job) -> str:
    """One name per (source, stream, partition): the queue's lock and the timetable's key."""
    return f"{job.source_name}.{job.stream_name}:{job.partition_key}"


class Timetable:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def add(self, job: Job, schedule: ScheduleConfig, state: State | None, now: datetime) -> Entry:
        entry = Entry(job, schedule, due_from_state(schedule, state, now))
        self.entries[entry.key] = entry
        return entry

    def ready(self, now: datetime, room: int) -> list[Entry]:
        """Up to ``room`` due jobs not running, best first (see the module docstring)."""
        due = [e for e in self.entries.values() if not e.running and e.due.at <= now]
        due.sort(key=_precedence)
        return due[: max(0, room)]

    def started(self, entry: Entry, now: datetime) -> None:
        entry.running, entry.last_started = True, now

    def finished(self, entry: Entry, result: JobResult, ended: datetime) -> Due:
        entry.running = False
        entry.due = due_after_run(entry.schedule, result, ended)
        return entry.due

    def next_wake(self) -> datetime | None:
        """The earliest due time of a job not running (``None``: all are running)."""
        return min((e.due.at for e in self.entries.values() if not e.running), default=None)

    @property
    def running(self) -> int:
        return sum(1 for entry in self.entries.values() if entry.running)


def _precedence(entry: Entry) -> tuple[datetime, int, float]:
    last = entry.last_started.timestamp() if entry.last_started is not None else float("-inf")
    return entry.due.at, PRIORITIES[entry.job.stream.priority], last
