"""Running jobs on schedules: cron or intervals, around quotas, one at a time per partition."""

from syncline.schedule.clock import Clock, SystemClock
from syncline.schedule.scheduler import JobRun, Report, Scheduler
from syncline.schedule.timetable import Entry, Timetable, job_key
from syncline.schedule.timing import Due, due_after_run, due_from_state, next_tick, schedule_of

__all__ = [
    "Clock",
    "Due",
    "Entry",
    "JobRun",
    "Report",
    "Scheduler",
    "SystemClock",
    "Timetable",
    "due_after_run",
    "due_from_state",
    "job_key",
    "next_tick",
    "schedule_of",
]
