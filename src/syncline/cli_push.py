"""``syncline push``, ``syncline sql`` and ``syncline outbox``: write-back from the command line.

A push without ``--apply`` is a dry run: it shows what would change and what
it would cost, and changes nothing (not even the outbox).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from syncline.cli_common import (
    EXIT_BY_OUTCOME,
    EXIT_FAILED,
    EXIT_USAGE,
    add_text_row,
    config_option,
)
from syncline.cli_common import fail as _fail
from syncline.cli_common import load as _load
from syncline.cli_common import opened as _opened
from syncline.errors import ConfigError, SynclineError
from syncline.push.planning import PushRequest
from syncline.push.query import QueryError
from syncline.push.session import PushOutcome, push
from syncline.signals import Interrupted, run_until_signalled
from syncline.stores import OUTBOX_STATUSES, Store

__all__ = ["outbox_command", "push_command", "sql_command"]

SAMPLE = 5


def _apply_options(command: Any) -> Any:
    """The options ``push`` and ``sql`` share: how far a run may go, and how to report."""
    for option in reversed(
        [
            config_option,
            click.option("--partition", "partitions", multiple=True,
                         help="Only partitions with key=value (default: all, in parallel)."),
            click.option("--priority", type=click.Choice(["high", "normal", "low"]),
                         default=None,
                         help="Who gets call permits first; only high may spend a reserve."),
            click.option("--apply", "apply", is_flag=True,
                         help="Write the plan to the outbox and send it (else: a dry run)."),
            click.option("--max-calls", type=click.IntRange(1), default=None,
                         help="Send at most this many requests in this run, then pause."),
            click.option("--max-errors", type=click.IntRange(1), default=None,
                         help="Stop after this many failed or conflicting items "
                              "(default: write.max_errors)."),
            click.option("--concurrency", default=4, show_default=True,
                         type=click.IntRange(1, 64), help="Partitions worked on at once."),
            click.option("--wait-lock", default=0.0, show_default=True,
                         type=click.FloatRange(0),
                         help="Seconds to wait for a partition a sync is holding."),
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
        ]
    ):  # fmt: skip
        command = option(command)
    return command


@click.command(name="push")
@click.argument("stream")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="A field to change; VALUE is JSON (1, true, \"x\") or else text.")  # fmt: skip
@click.option("--where", default=None, help="SQL condition on the mirror's rows.")
@click.option("--order", default=None, help="SQL ORDER BY terms: who goes first.")
@click.option("--limit", type=click.IntRange(0), default=None, help="At most N items this run.")
@click.option("--resume", is_flag=True, help="Continue the stream's unfinished plans.")
@_apply_options
def push_command(
    stream: str,
    sets: Sequence[str],
    where: str | None,
    order: str | None,
    limit: int | None,
    resume: bool,
    **options: Any,
) -> None:
    """Change fields of STREAM's records in the API: the rows --where selects in the mirror.

    Bounded by --limit and the call budgets, resumable, each item applied once.
    """
    try:
        request = PushRequest.of_parts(
            stream, sets, where=where, order=order, limit=limit,
            priority=options["priority"], partitions=options["partitions"],
        )  # fmt: skip
    except QueryError as exc:
        _fail(str(exc), EXIT_USAGE)
    if resume and sets:
        _fail("--resume continues the unfinished plans; it takes no --set", EXIT_USAGE)
    _run(request, resume=resume, **options)


@click.command(name="sql")
@click.argument("statement")
@_apply_options
def sql_command(statement: str, **options: Any) -> None:
    """Run one UPDATE statement as a push: UPDATE t SET a = 1 WHERE … [ORDER BY …] [LIMIT n]."""
    try:
        request = PushRequest.of_statement(
            statement, priority=options["priority"], partitions=options["partitions"]
        )
    except QueryError as exc:
        _fail(str(exc), EXIT_USAGE)
    _run(request, resume=False, **options)


def _run(
    request: PushRequest,
    *,
    resume: bool,
    config_path: Path,
    apply: bool,
    max_calls: int | None,
    max_errors: int | None,
    concurrency: int,
    wait_lock: float,
    as_json: bool,
    **_: Any,
) -> None:
    config = _load(config_path)

    def go() -> Coroutine[Any, Any, PushOutcome]:
        return push(
            config,
            request,
            apply=apply,
            resume=resume,
            max_calls=max_calls,
            max_errors=max_errors,
            concurrency=concurrency,
            lock_wait=wait_lock,
        )

    try:
        outcome = run_until_signalled(go)
    except Interrupted as stop:
        click.echo(
            f"{stop.signal_name}: interrupted; every settled item is kept, and an item whose "
            "answer did not come is verified before it is sent again",
            err=True,
        )
        sys.exit(stop.exit_code)
    except SynclineError as exc:
        _fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), default=str))
    else:
        _print_outcome(outcome, request)
    sys.exit(EXIT_BY_OUTCOME[outcome.outcome])


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _print_outcome(outcome: PushOutcome, request: PushRequest) -> None:
    console = Console()
    name = f"{outcome.target.source_name}.{outcome.target.stream_name}"
    draft = outcome.draft
    if draft is None and not outcome.continued:
        click.echo(f"{name}: no unfinished push plan to continue (`syncline outbox` lists them)")
        return
    for plan in outcome.continued:
        click.echo(f"continuing plan {plan.id[:8]} ({plan.priority}): {plan.statement}")
    if outcome.continued:
        pending = ", ".join(f"{p or '-'}: {n}" for p, n in sorted(outcome.pending.items()))
        click.echo(f"  open items: {sum(outcome.pending.values())} ({pending or 'none'})")
    if draft is not None:
        click.echo(f"plan for {name} ({draft.plan.priority}): {draft.plan.statement}")
        click.echo(
            f"  {len(draft.items)} items; {draft.matched} rows match, {draft.unchanged} "
            f"already hold the new values, {draft.held} are in another unfinished plan"
        )
        if draft.unseen_names:
            click.echo(f"  warning: no stored record has {', '.join(draft.unseen_names)}")
    if not outcome.applied:
        _print_dry(console, outcome)
        return
    for summary in outcome.summaries:
        table = Table("partition", *OUTBOX_STATUSES[2:], "open", "calls", "outcome")
        for part in summary.partitions:
            add_text_row(
                table,
                part.partition,
                *(str(part.settled.get(s, 0)) for s in OUTBOX_STATUSES[2:]),
                str(part.open),
                str(part.calls),
                part.outcome + (f": {part.message}" if part.message else ""),
            )
        console.print(table)
        click.echo(
            f"plan {summary.plan.id[:8]}: {summary.total('applied')} applied, "
            f"{summary.open} open, {summary.calls} calls in {summary.seconds:.1f}s"
        )
        if summary.open:
            click.echo(
                f"  continue with: syncline push {request.stream} --resume --apply "
                "(items already applied are never sent again)"
            )


def _print_dry(console: Console, outcome: PushOutcome) -> None:
    draft = outcome.draft
    write = outcome.target.stream.write
    assert write is not None
    per_partition = draft.per_partition() if draft else outcome.pending
    budgets: dict[str, list[str]] = defaultdict(list)
    for line in outcome.budgets:
        kept = f" (+{line.reserve} reserve kept)" if line.reserve else ""
        origin = " as the API said" if line.origin == "server" else ""
        budgets[line.partition].append(f"{line.window}: {line.remaining} left{kept}{origin}")
    reads = " + up to 1 read each" if write.read_back else ""
    table = Table("partition", "items", f"write calls{reads}", "write budget")
    for partition, count in sorted(per_partition.items()):
        label = _label(partition)
        add_text_row(
            table,
            label,
            str(count),
            str(count * write.weight),
            "; ".join(budgets[label]) or "no limits",
        )
    console.print(table)
    if draft is not None and draft.items:
        click.echo("sample (before → after):")
        for item in draft.items[:SAMPLE]:
            change = ", ".join(
                f"{f}: {_value(item.before.get(f))} → {_value(v)}" for f, v in item.patch.items()
            )
            click.echo(f"  {_label(item.partition)} {list(item.key)}: {change}")
    total = sum(per_partition.values())
    click.echo(f"dry run: nothing was sent or written; add --apply to push {total} items")


def _label(partition: str) -> str:
    values = json.loads(partition) if partition.startswith("{") else {}
    return ",".join(f"{k}={v}" for k, v in values.items()) or "-"


@click.command(name="outbox")
@config_option
@click.option("--plan", "plan_id", default=None, help="One plan (an id or its first letters).")
@click.option("--items", "show_items", is_flag=True, help="List the plan's items too.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(OUTBOX_STATUSES),
              help="Only items with this status (with --items).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def outbox_command(
    config_path: Path,
    plan_id: str | None,
    show_items: bool,
    statuses: Sequence[str],
    as_json: bool,
) -> None:
    """Push plans and their progress: items per status and partition."""
    config = _load(config_path)
    with _opened(config) as store:
        report = _outbox_report(store, plan_id, show_items, statuses)
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    if not report:
        click.echo("no push plans")
        return
    console = Console()
    table = Table("plan", "created", "stream", "priority", *OUTBOX_STATUSES, "statement")
    for plan in report:
        add_text_row(
            table,
            plan["plan"][:8], plan["created_at"][:19], plan["stream"], plan["priority"],
            *(str(plan["counts"].get(s, 0)) for s in OUTBOX_STATUSES), plan["statement"],
        )  # fmt: skip
    console.print(table)
    for plan in report:
        for item in plan.get("items", []):
            error = f"  {item['error']}" if item["error"] else ""
            click.echo(
                f"{plan['plan'][:8]} #{item['seq']} {_label(item['partition'])} {item['key']} "
                f"{item['status']} (attempts {item['attempts']}){error}"
            )


def _outbox_report(
    store: Store, plan_id: str | None, show_items: bool, statuses: Sequence[str]
) -> list[dict[str, Any]]:
    plans = store.push_plans()
    if plan_id is not None:
        plans = [p for p in plans if p.id.startswith(plan_id)]
        if not plans:
            _fail(f"no push plan {plan_id!r} (see `syncline outbox`)", EXIT_USAGE)
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for pid, partition, status, count in store.outbox_counts():
        counts.setdefault(pid, {}).setdefault(partition, {})[status] = count
    report = []
    for plan in plans:
        by_partition = counts.get(plan.id, {})
        totals: dict[str, int] = defaultdict(int)
        for per_status in by_partition.values():
            for status, count in per_status.items():
                totals[status] += count
        entry: dict[str, Any] = {
            "plan": plan.id,
            "created_at": plan.created_at,
            "stream": f"{plan.source}.{plan.stream}",
            "priority": plan.priority,
            "statement": plan.statement,
            "counts": dict(totals),
            "partitions": {_label(p): c for p, c in by_partition.items()},
        }
        if show_items:
            entry["items"] = [
                {"seq": i.seq, "partition": i.partition, "key": list(i.key), "patch": i.patch,
                 "before": i.before, "status": i.status, "attempts": i.attempts,
                 "error": i.error, "updated_at": i.updated_at}
                for i in store.outbox_items(plan.id, statuses=statuses)
            ]  # fmt: skip
        report.append(entry)
    return report
