"""The ``syncline`` command: a thin layer over the library (see :mod:`syncline.api`).

Exit codes: 0 all succeeded (or paused on a spent call budget); 1 some (stream,
partition) failed; 2 config or usage error; 3 some jobs deferred (rate limited,
nothing failed); 4 some jobs busy in another process; 130 interrupted (SIGINT);
143 terminated (SIGTERM).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from syncline.budget.forecast import forecast
from syncline.budget.report import quota_report
from syncline.changes import iter_changes
from syncline.cli_common import (
    EXIT_BY_OUTCOME,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_text_row,
    config_option,
)
from syncline.cli_common import fail as _fail
from syncline.cli_common import load as _load
from syncline.cli_common import opened as _opened
from syncline.cli_push import outbox_command, push_command, sql_command
from syncline.cli_queue import enqueue_command, worker_command, workers_command
from syncline.cli_run import run_command
from syncline.config import Config, render_config
from syncline.engine import ProgressListener, SyncSummary, run_sync
from syncline.errors import ConfigError, StoreError, SynclineError
from syncline.http import secrets_of
from syncline.logs import configure_logging
from syncline.plan import Job, plan_jobs
from syncline.progress import BarsListener, LogLinesListener
from syncline.schedule import due_from_state, job_key, schedule_of
from syncline.signals import Interrupted, run_until_signalled
from syncline.stores import State, Store

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="syncline")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    envvar="SYNCLINE_LOG_LEVEL",
    help="How much to log on stderr (debug shows every request, secrets masked).",
)
def cli(log_level: str) -> None:
    """Keep a local store in sync with HTTP APIs you can only poll."""
    configure_logging(log_level)


@cli.command()
@config_option
@click.option("--stream", "streams", multiple=True, help="Only this stream (NAME or SOURCE.NAME).")
@click.option("--partition", "partitions", multiple=True, help="Only partitions with key=value.")
@click.option("--full-refresh", is_flag=True, help="Ignore watermarks and cursors: read all.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option(
    "--wait-lock",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds to wait for a stream another process is syncing before reporting it busy.",
)
@click.option(
    "--ignore-deferral",
    is_flag=True,
    help="Call APIs that asked us to wait (Retry-After) before their time is up.",
)
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Send nothing: estimate each job's calls against the budgets left and show the plan.",
)
@click.option(
    "--changes",
    "changes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append this run's changes (insert/update/delete, with the record) as JSON lines.",
)
@click.option(
    "--max-calls",
    type=click.IntRange(1),
    default=None,
    help="Send at most this many requests in this run; jobs then pause at their checkpoint.",
)
def sync(
    config_path: Path,
    streams: Sequence[str],
    partitions: Sequence[str],
    full_refresh: bool,
    concurrency: int,
    as_json: bool,
    wait_lock: float,
    ignore_deferral: bool,
    max_calls: int | None,
    plan_only: bool,
    changes_file: Path | None,
) -> None:
    """Copy the selected streams into the store; only what changed when incremental."""
    config = _load(config_path)
    try:
        plan_jobs(config, streams, partitions)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    if plan_only:
        _print_plan(config, streams, partitions, as_json)
        return
    err = Console(stderr=True)
    bars = err.is_terminal and not as_json
    listener: ProgressListener = BarsListener(err) if bars else LogLinesListener(err)

    def go() -> Coroutine[Any, Any, SyncSummary]:
        return run_sync(
            config,
            streams=streams,
            partitions=partitions,
            full_refresh=full_refresh,
            concurrency=concurrency,
            listener=listener,
            lock_wait=wait_lock,
            ignore_not_before=ignore_deferral,
            max_calls=max_calls,
        )

    try:
        if isinstance(listener, BarsListener):
            with listener:
                summary = run_until_signalled(go)
        else:
            summary = run_until_signalled(go)
    except Interrupted as stop:
        click.echo(
            f"{stop.signal_name}: interrupted; every committed page and its checkpoint are kept",
            err=True,
        )
        sys.exit(stop.exit_code)
    except SynclineError as exc:
        _fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    if changes_file is not None:
        _append_changes(config, changes_file, summary.run_id)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        _print_summary(summary)
    sys.exit(EXIT_BY_OUTCOME[summary.outcome])


def _append_changes(config: Config, path: Path, run_id: str) -> None:
    """Append one run's changes as JSON lines, flushed and fsynced (downstream reads them)."""
    with _opened(config) as store:
        try:
            with path.open("a", encoding="utf-8") as out:
                for entry in iter_changes(config, store, run_id=run_id):
                    out.write(json.dumps(entry, ensure_ascii=False) + "\n")
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            _fail(f"cannot write the changes to {path}: {exc.strerror}", EXIT_FAILED)


def _print_plan(
    config: Config, streams: Sequence[str], partitions: Sequence[str], as_json: bool
) -> None:
    with _opened(config) as store:
        planned = forecast(config, store, streams, partitions)
    if as_json:
        click.echo(json.dumps([job.as_dict() for job in planned]))
        return
    table = Table("stream", "partition", "priority", "est. calls", "budget left", "plan", "why")
    for job in planned:
        calls = "?" if job.calls is None else str(job.calls)
        verdict = job.verdict if job.until is None else f"{job.verdict} until {job.until[:19]}Z"
        add_text_row(
            table,
            f"{job.source}.{job.stream}",
            job.partition,
            job.priority,
            calls,
            _text(job.left) or "unlimited",
            verdict,
            job.detail or job.basis,
        )
    Console().print(table)
    total = sum(job.calls or 1 for job in planned if job.verdict != "waits")
    click.echo(f"about {total} calls; nothing was sent (run without --plan to sync)")


def _print_summary(summary: SyncSummary) -> None:
    others = [r for r in summary.streams if r.status != "ok"]
    passed = len(summary.streams) - len(others)
    rejected = f", {summary.rejected} rejected" if summary.rejected else ""
    click.echo(
        f"{passed}/{len(summary.streams)} ok: {summary.records} records{rejected}, "
        f"{summary.requests} requests in {summary.seconds:.1f}s (run {summary.run_id[:8]})"
    )
    for result in others:
        where = f" [{result.partition}]" if result.partition else ""
        click.echo(
            f"  {result.status.upper()} {result.source}.{result.stream}{where}: {result.error}"
        )
    if summary.rejected:
        click.echo("  rejected records are in the _syncline_rejects table, with the reason")
    changed = summary.changed()
    if any(changed.values()):
        click.echo(
            "  changes: "
            + ", ".join(f"{count} {kind}" for kind, count in changed.items())
            + " (`syncline changes` lists them)"
        )
    for scope, spent in summary.scopes().items():
        if spent["rate_limited"] or spent["waited"]:
            click.echo(
                f"  budget {scope}: {spent['calls']:.0f} calls, {spent['rate_limited']:.0f} "
                f"rate-limited answers, {spent['waited']:.1f}s waiting for permits"
            )


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(config_path: Path, as_json: bool) -> None:
    """Show each (source, stream, partition): rows, watermark/cursor, last run and outcome."""
    config = _load(config_path)
    now = datetime.now(UTC)
    jobs = plan_jobs(config)
    with _opened(config) as store:
        rows = [_status_row(store, job, now) for job in jobs]
    queued = _queue_view(config)
    for row, job in zip(rows, jobs, strict=True):
        found = queued.get(job_key(job))
        row["queue"] = None if found is None else found.status
        row["queue_detail"] = None if found is None else found.describe(now)
    if as_json:
        click.echo(json.dumps(rows))
        return
    scheduled = any(row["next_due"] for row in rows)
    table = Table(
        "source", "stream", "partition", "rows", "watermark / cursor", "last run", "outcome",
        *(["next due"] if scheduled else []), *(["queue"] if queued else []),
    )  # fmt: skip
    for row in rows:
        mark = row["watermark"] if row["watermark"] is not None else row["cursor"]
        outcome = row["status"] or "never run"
        if row["in_progress"]:
            outcome += " (pass in progress)"
        if row["not_before"] and row["status"] == "deferred":
            outcome += f" until {row['not_before']}"
        if row["error"]:
            outcome += f": {row['error']}"
        add_text_row(
            table,
            row["source"],
            row["stream"],
            row["partition"],
            "" if row["rows"] is None else str(row["rows"]),
            "" if mark is None else str(mark),
            row["last_run_at"] or "",
            outcome,
            *([_due_text(row, now)] if scheduled else []),
            *([row["queue_detail"] or ""] if queued else []),
        )
    Console().print(table)


def _queue_view(config: Config) -> dict[str, Any]:
    """The distributed queue's waiting and running jobs (none without PostgreSQL or
    procrastinate, or before the queue was ever used)."""
    if not config.store.startswith(("postgresql://", "postgres://")):
        return {}
    try:
        from syncline.distributed.view import queued_jobs
        from syncline.stores.postgres_connect import parse_url
    except ImportError:
        return {}
    try:
        return dict(queued_jobs(parse_url(config.store), config.run.queue))
    except StoreError as exc:
        _fail(str(exc), EXIT_FAILED)


def _due_text(row: dict[str, Any], now: datetime) -> str:
    if row["next_due"] is None:
        return "not scheduled"
    due = datetime.fromisoformat(row["next_due"])
    when = "now" if due <= now else due.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{when} ({row['due_reason']})"


def _status_row(store: Store, job: Job, now: datetime) -> dict[str, Any]:
    loaded = store.load_state(job.state_key)
    state = loaded or State(job.state_key)
    schedule = schedule_of(job)
    due = None if schedule is None else due_from_state(schedule, loaded, now)
    return {
        "source": job.source_name,
        "stream": job.stream_name,
        "partition": job.partition_label,
        "rows": store.count_rows(job.table.name, dict(job.partition)),
        "watermark": state.watermark["raw"] if state.watermark else None,
        "cursor": state.cursor,
        "in_progress": state.position is not None,
        "last_run_at": state.updated_at,
        "status": state.status,
        "error": state.error,
        "not_before": state.not_before,
        "records_total": state.records,
        "requests_total": state.requests,
        "schedule": None if schedule is None else schedule.describe(),
        "next_due": None if due is None else due.at.isoformat(),
        "due_reason": None if due is None else due.reason,
    }


@cli.command()
@config_option
@click.option("--stream", required=True, help="The stream whose checkpoint to forget.")
@click.option("--partition", "partitions", multiple=True, help="Only partitions with key=value.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(config_path: Path, stream: str, partitions: Sequence[str], yes: bool) -> None:
    """Forget checkpoints so the next sync reads the stream from the start (rows are kept)."""
    config = _load(config_path)
    try:
        jobs = plan_jobs(config, [stream], partitions)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    if not jobs:
        _fail(f"no partition of {stream} matches {list(partitions)}", EXIT_USAGE)
    labels = "\n  ".join(job.label for job in jobs)
    if not yes and not click.confirm(f"Forget the checkpoint of:\n  {labels}\n?", err=True):
        sys.exit(EXIT_FAILED)
    with _opened(config) as store:
        removed = sum(
            store.delete_state(job.source_name, job.stream_name, job.partition_key) for job in jobs
        )
    click.echo(f"forgot {removed} checkpoint(s); the next sync starts those from the beginning")


@cli.command()
@config_option
@click.option("--stream", "streams", multiple=True, help="Only this stream (NAME or SOURCE.NAME).")
def compact(config_path: Path, streams: Sequence[str]) -> None:
    """Rewrite a JSON lines store's files to one line per record (newest wins)."""
    config = _load(config_path)
    try:
        tables = {job.table.name: job.table for job in plan_jobs(config, streams)}
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    with _opened(config) as store:
        from syncline.stores.jsonl import JsonlStore

        if not isinstance(store, JsonlStore):
            kind = config.store.split(":", 1)[0]
            click.echo(f"nothing to compact: the {kind} store keeps one row per key")
            return
        try:
            done = store.compact(list(tables.values()), everything=not streams)
        except StoreError as exc:
            _fail(str(exc), EXIT_FAILED)
    for item in done:
        name = item.file or item.table
        if item.skipped:
            click.echo(f"{name}: left as it is ({item.skipped})")
        else:
            click.echo(
                f"{name}: {item.lines_before:,} -> {item.lines_after:,} lines, "
                f"{item.bytes_before:,} -> {item.bytes_after:,} bytes"
            )


@cli.command()
@config_option
def check(config_path: Path) -> None:
    """Validate the config without calling any API."""
    config = _load(config_path)
    try:
        jobs = plan_jobs(config)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    streams = sum(len(source.streams) for source in config.sources.values())
    click.echo(
        f"ok: {config_path}: {len(config.sources)} source(s), {streams} stream(s), "
        f"{len(jobs)} (stream, partition) job(s); store {config.store}"
    )


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def quota(config_path: Path, as_json: bool) -> None:
    """Show each call budget: declared windows (used, remaining, reserve) and server reports."""
    config = _load(config_path)
    with _opened(config) as store:
        rows = quota_report(config, store)
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Table("scope", "window", "limit", "used", "remaining", "reserve", "resets", "source")
    for row in rows:
        resets = row["reset_at"] or ""
        if row["reset_at_local"]:
            resets += f" ({row['reset_at_local']})"
        add_text_row(
            table,
            row["scope"],
            row["window"],
            _text(row["limit"]),
            _text(row["used"]),
            _text(row["remaining"]),
            _text(row["reserve"]),
            resets,
            row["origin"],
        )
    Console().print(table)


def _text(value: object) -> str:
    return "" if value is None else str(value)


@cli.command(name="changes")
@config_option
@click.option("--since", default=None, help="A run id (what came after it) or an ISO time.")
@click.option("--stream", "streams", multiple=True, help="Only this stream (NAME or SOURCE.NAME).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "table"]),
    default="jsonl",
    show_default=True,
)
@click.option("--no-records", is_flag=True, help="Leave the records out (keys and kinds only).")
def changes_command(
    config_path: Path,
    since: str | None,
    streams: Sequence[str],
    output_format: str,
    no_records: bool,
) -> None:
    """Print the change feed: every insert, update and delete the syncs recorded."""
    config = _load(config_path)
    with _opened(config) as store:
        try:
            _print_changes(
                iter_changes(config, store, since=since, streams=streams, records=not no_records),
                output_format,
            )
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)


def _print_changes(entries: Iterator[dict[str, Any]], output_format: str) -> None:
    if output_format == "jsonl":
        for entry in entries:
            click.echo(json.dumps(entry, ensure_ascii=False))
        return
    table = Table("id", "run", "stream", "partition", "key", "kind", "changed at")
    for entry in entries:
        partition = ",".join(f"{k}={v}" for k, v in entry["partition"].items())
        add_text_row(
            table,
            str(entry["id"]),
            (entry["run_id"] or "")[:8],
            f"{entry['source']}.{entry['stream']}",
            partition,
            json.dumps(entry["key"]),
            entry["kind"],
            entry["changed_at"],
        )
    Console().print(table)


@cli.group(name="config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command(name="show")
@config_option
def config_show(config_path: Path) -> None:
    """Print the config as syncline reads it (defaults filled in, every secret masked)."""
    config = _load(config_path)
    secrets = [s for source in config.sources.values() for s in secrets_of(source)]
    click.echo(render_config(config, secrets), nl=False)


@cli.command()
@click.option("--port", default=38001, show_default=True, type=click.IntRange(0, 65535))
@click.option("--records", default=2345, show_default=True, type=click.IntRange(0))
@click.option("--seed", default=7, show_default=True)
@click.option("--token", default=None, help="Require this bearer token on data endpoints.")
def sandbox(port: int, records: int, seed: int, token: str | None) -> None:
    """Serve the local test API on 127.0.0.1 (every paginator style, GraphQL, change switches)."""
    from syncline.sandbox import serve

    serve(port=port, records=records, seed=seed, token=token)


@cli.command(name="presets")
def presets_command() -> None:
    """List the ready configs for real APIs (write one with `syncline init --preset NAME`)."""
    from syncline.presets import all_presets

    found = all_presets()
    width = max(len(preset.name) for preset in found) + 2
    for preset in found:
        click.echo(f"{preset.name:<{width}}{preset.description}")
    click.echo("\nwrite one with: syncline init --preset NAME [--out syncline.yaml]")


@cli.command()
@click.option("--preset", "preset_name", required=True, help="A name `syncline presets` lists.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="syncline.yaml",
    show_default=True,
    help="Where to write the config.",
)
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
def init(preset_name: str, out: Path, force: bool) -> None:
    """Write a preset's commented config for the real API, to fill in and run."""
    from syncline.presets import PresetError, get_preset, write_preset

    try:
        path = write_preset(preset_name, out, force=force)
    except PresetError as exc:
        _fail(str(exc), EXIT_USAGE)
    preset = get_preset(preset_name)
    click.echo(f"wrote {path}: {preset.description}")
    click.echo("fill in what its header names", nl=False)
    needed = preset.required_env()
    click.echo(f"; the environment needs {', '.join(needed)}" if needed else "")
    click.echo(f"then: syncline check -c {path} && syncline sync -c {path}")


@cli.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default="syncline-demo.db",
    show_default=True,
    help="The demo's SQLite store (replaced on each run; its config goes next to it as .yaml).",
)
@click.option("--quick", is_flag=True, help="The emulations' default sizes: a few seconds.")
def demo(db: Path, quick: bool) -> None:
    """Sync the four presets from the local sandbox, change the data, sync again, compare."""
    from syncline.demo import DemoError, run_demo

    try:
        ok = run_demo(db, quick=quick)
    except DemoError as exc:
        _fail(str(exc), EXIT_USAGE)
    except SynclineError as exc:
        _fail(str(exc), EXIT_FAILED)
    except RuntimeError as exc:  # the sandbox child process did not start
        _fail(f"the demo could not start the sandbox: {exc}", EXIT_FAILED)
    except Interrupted as stop:
        click.echo(f"{stop.signal_name}: demo interrupted", err=True)
        sys.exit(stop.exit_code)
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


cli.add_command(push_command)
cli.add_command(sql_command)
cli.add_command(outbox_command)
cli.add_command(run_command)
cli.add_command(worker_command)
cli.add_command(enqueue_command)
cli.add_command(workers_command)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_INTERRUPTED
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
