"""``syncline run``: the long-running scheduler (in-process, or feeding distributed workers)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from syncline.cli_common import EXIT_FAILED, EXIT_USAGE, config_option, fail, load, opened
from syncline.config import Config
from syncline.durations import parse_duration
from syncline.engine import JobResult
from syncline.errors import ConfigError, SynclineError
from syncline.plan import Job, plan_jobs
from syncline.runner import JobRunner
from syncline.schedule import Entry, Scheduler, Timetable, schedule_of
from syncline.signals import run_until_signalled
from syncline.stores import Store

__all__ = ["run_command", "scheduled_jobs"]


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(name="run")
@config_option
@click.option("--stream", "streams", multiple=True, help="Only this stream (NAME or SOURCE.NAME).")
@click.option("--partition", "partitions", multiple=True, help="Only partitions with key=value.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    help="Jobs at once (default: run.concurrency, 8).",
)
@click.option(
    "--slice",
    "slice_text",
    default=None,
    callback=_duration,
    help="A job yields its place after this long, at a page boundary (default: run.slice, 5m; "
    "0: never).",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Queue due jobs for `syncline worker` processes (PostgreSQL store) instead of "
    "running them here.",
)
def run_command(
    config_path: Path,
    streams: Sequence[str],
    partitions: Sequence[str],
    concurrency: int | None,
    slice_text: float | None,
    distributed: bool,
) -> None:
    """Run scheduled jobs for ever: each (stream, partition) when its schedule says, around
    its call budget; SIGTERM stops after the pages in flight."""
    config = load(config_path)
    jobs = scheduled_jobs(config, streams, partitions)
    if distributed:
        _run_distributed(config, jobs)
        return
    slice_seconds = (slice_text if slice_text is not None else config.run.slice) or None
    with opened(config) as store:
        timetable = _timetable(store, jobs)
        click.echo(
            f"syncline run: {len(jobs)} scheduled job(s), {concurrency or config.run.concurrency} "
            "at once; SIGTERM or Ctrl-C stops after the pages in flight",
            err=True,
        )

        async def main(started: list[Scheduler]) -> None:
            async with JobRunner(
                config, store, connections=concurrency or config.run.concurrency
            ) as runner:
                scheduler = Scheduler(
                    timetable,
                    runner.run,
                    concurrency=concurrency or config.run.concurrency,
                    slice_seconds=slice_seconds,
                    report=print_run,
                )
                started.append(scheduler)
                await scheduler.run()

        _until_signalled(main)
    click.echo("syncline run: stopped; every committed page and its checkpoint are kept", err=True)


def _run_distributed(config: Config, jobs: list[Job]) -> None:
    """The scheduler, queueing due jobs for the workers and waiting for them to finish."""
    try:
        from syncline.distributed.feeder import QueueFeeder
        from syncline.distributed.queue import install_queue, open_app, queue_target

        target = queue_target(config, "syncline run --distributed")
    except ImportError:
        fail(DISTRIBUTED_MISSING, EXIT_USAGE)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    with opened(config) as store:
        for job in jobs:
            store.ensure_table(job.table)
        install_queue(target)
        timetable = _timetable(store, jobs)
        click.echo(
            f"syncline run --distributed: {len(jobs)} scheduled job(s) queued for the workers "
            f"of queue {config.run.queue!r} when due; SIGTERM or Ctrl-C stops queueing",
            err=True,
        )

        async def main(started: list[Scheduler]) -> None:
            async with open_app(target).open_async() as app:
                feeder = QueueFeeder(app, config.run.queue, store)
                scheduler = Scheduler(
                    timetable, feeder.run, concurrency=len(jobs), report=print_run
                )
                started.append(scheduler)
                await scheduler.run()

        _until_signalled(main)
    click.echo("syncline run --distributed: stopped; queued jobs stay for the workers", err=True)


def _until_signalled(main: Callable[[list[Scheduler]], Coroutine[Any, Any, None]]) -> None:
    """Run the scheduler ``main`` starts until SIGTERM/SIGINT asks it to wind down."""
    started: list[Scheduler] = []

    def on_signal(_signum: int) -> None:
        for scheduler in started:
            scheduler.stop()

    try:
        run_until_signalled(lambda: main(started), on_first=on_signal)
    except SynclineError as exc:
        fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)


DISTRIBUTED_MISSING = (
    "the distributed commands need procrastinate: pip install 'syncline[distributed]'"
)


def scheduled_jobs(config: Config, streams: Sequence[str], partitions: Sequence[str]) -> list[Job]:
    """The selected jobs that have a schedule; none at all is a config error (exit 2)."""
    try:
        jobs = plan_jobs(config, streams, partitions)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    scheduled = [job for job in jobs if schedule_of(job) is not None]
    if not scheduled:
        fail(
            f"{config.file or 'the config'}: no selected stream has a schedule; add "
            "'schedule: \"*/15 * * * *\"' or 'schedule: {every: 15m}' to a source or stream",
            EXIT_USAGE,
        )
    unscheduled = sorted(
        {job.label.split(" [")[0] for job in jobs} - {job.label.split(" [")[0] for job in scheduled}
    )
    if unscheduled:
        click.echo(f"not scheduled (no schedule:): {', '.join(unscheduled)}", err=True)
    return scheduled


def _timetable(store: Store, jobs: list[Job]) -> Timetable:
    """Every job, due as its stored checkpoint says (one read of all checkpoints)."""
    states = {state.key: state for state in store.all_states()}
    timetable = Timetable()
    now = datetime.now(UTC)
    for job in jobs:
        schedule = schedule_of(job)
        assert schedule is not None
        timetable.add(job, schedule, states.get(job.state_key), now)
    return timetable


def print_run(entry: Entry, result: JobResult, started: datetime, ended: datetime) -> None:
    """One line per finished job, as a log line: when, what, how it went, when next."""
    seconds = (ended - started).total_seconds()
    outcome = result.status + (" (pass continues)" if result.unfinished else "")
    line = (
        f"{_clock(ended)} {entry.job.label}: {outcome}, {result.records} records, "
        f"{result.requests} calls, {seconds:.1f}s; next {_clock(entry.due.at)} "
        f"({entry.due.reason})"
    )
    if result.error and result.status != "ok":
        line += f": {result.error}"
    click.echo(line)
    sys.stdout.flush()


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
