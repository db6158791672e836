"""One ``syncline push``: plan, show, and (with ``apply``) write the outbox and carry it out.

Which plan a run works on: ``resume`` continues every unfinished plan of the
stream; otherwise a plan with the same statement that is still unfinished is
continued (so re-running yesterday's paused push picks up where it stopped);
otherwise the mirror is scanned for a new selection.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from syncline.budget.permits import declared_windows, scope_windows
from syncline.config import Config
from syncline.errors import ConfigError
from syncline.plan import Job, plan_jobs
from syncline.push.apply import PushSummary, apply_plan
from syncline.push.planning import (
    Draft,
    PushRequest,
    WritableStream,
    draft_plan,
    fingerprint,
    unfinished,
    writable_stream,
)
from syncline.stores import OutboxItem, PushPlan, Store, open_store

__all__ = ["BudgetLine", "PushOutcome", "budget_lines", "push"]


@dataclass(frozen=True)
class BudgetLine:
    """What a partition's writes may still spend in one window, as a dry run shows it."""

    partition: str
    scope: str
    window: str
    remaining: int | None
    """Calls left for this push's priority (the reserve excluded unless ``high``)."""
    reserve: int
    origin: str
    """``declared`` (our ledger) or ``server`` (what the API last reported)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "scope": self.scope,
            "window": self.window,
            "remaining": self.remaining,
            "reserve": self.reserve,
            "origin": self.origin,
        }


@dataclass
class PushOutcome:
    target: WritableStream
    draft: Draft | None = None
    """The new selection (a dry run, or the plan this run wrote)."""
    continued: list[PushPlan] = field(default_factory=list)
    """Unfinished plans this run continues (or, dry, would continue)."""
    pending: Counter[str] = field(default_factory=Counter)
    """Open items of the continued plans, by partition."""
    summaries: list[PushSummary] = field(default_factory=list)
    budgets: list[BudgetLine] = field(default_factory=list)
    applied: bool = False

    @property
    def outcome(self) -> str:
        for worst in ("failed", "busy", "deferred", "paused"):
            if any(s.outcome == worst for s in self.summaries):
                return worst
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        draft = self.draft
        return {
            "stream": f"{self.target.source_name}.{self.target.stream_name}",
            "apply": self.applied,
            "outcome": self.outcome,
            "new_plan": None
            if draft is None
            else {
                "plan": draft.plan.id,
                "statement": draft.plan.statement,
                "priority": draft.plan.priority,
                "items": len(draft.items),
                "matched": draft.matched,
                "unchanged": draft.unchanged,
                "held_by_other_plans": draft.held,
                "per_partition": dict(draft.per_partition()),
                "unseen_fields": draft.unseen_names,
                "sample": [_sample(i) for i in draft.items[:10]],
            },
            "continued": [
                {"plan": p.id, "statement": p.statement, "priority": p.priority}
                for p in self.continued
            ],
            "pending": dict(self.pending),
            "budgets": [b.as_dict() for b in self.budgets],
            "runs": [s.as_dict() for s in self.summaries],
        }


def _sample(item: OutboxItem) -> dict[str, Any]:
    return {
        "partition": item.partition,
        "key": list(item.key),
        "before": item.before,
        "after": item.patch,
    }


def budget_lines(store: Store, jobs: list[Job], priority: str) -> list[BudgetLine]:
    """Every write window of every partition: calls left for ``priority``."""
    lines: list[BudgetLine] = []
    spend_reserve = priority == "high"
    for job in jobs:
        label = job.partition_label or "-"
        windows = declared_windows(job.source, "write")
        for scope, specs in scope_windows(job.source_name, job.partition_label, windows):
            for spec in specs:
                used, _ = store.window_usage(scope, spec)
                reserve = 0 if spend_reserve else spec.reserve
                left = max(0, spec.calls - reserve - used)
                lines.append(BudgetLine(label, scope, spec.key, left, spec.reserve, "declared"))
        scope = scope_windows(job.source_name, job.partition_label, windows)[0][0]
        for server in store.server_windows(scope):
            lines.append(BudgetLine(label, scope, server["name"], server["remaining"], 0, "server"))
    return lines


async def push(
    config: Config,
    request: PushRequest,
    *,
    apply: bool = False,
    resume: bool = False,
    store: Store | None = None,
    max_calls: int | None = None,
    max_errors: int | None = None,
    concurrency: int = 4,
    lock_wait: float = 0.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PushOutcome:
    """Plan a push and, with ``apply``, carry it out (see the module docstring)."""
    own_store = store is None
    store = store or open_store(config.store)
    try:
        return await _push(
            config, store, request, apply=apply, resume=resume, max_calls=max_calls,
            max_errors=max_errors, concurrency=concurrency, lock_wait=lock_wait,
            transport=transport,
        )  # fmt: skip
    finally:
        if own_store:
            store.close()


async def _push(
    config: Config,
    store: Store,
    request: PushRequest,
    *,
    apply: bool,
    resume: bool,
    max_calls: int | None,
    max_errors: int | None,
    concurrency: int,
    lock_wait: float,
    transport: httpx.AsyncBaseTransport | None,
) -> PushOutcome:
    target = writable_stream(config, request.stream)
    jobs = plan_jobs(config, [f"{target.source_name}.{target.stream_name}"], request.partitions)
    for job in jobs:
        store.ensure_table(job.table)
    outcome = PushOutcome(target, applied=apply)
    open_plans = unfinished(store, target)
    if resume:
        outcome.continued = [plan for plan, _ in open_plans]
    elif not request.assignments:
        raise ConfigError("give at least one --set Field=value (or use --resume)")
    else:
        print_ = fingerprint(target, request)
        outcome.continued = [plan for plan, _ in open_plans if plan.fingerprint == print_][:1]
        if not outcome.continued:
            outcome.draft = draft_plan(config, store, request)
    wanted = {job.partition_key for job in jobs}
    continued = {plan.id for plan in outcome.continued}
    for plan, open_items in open_plans:
        if plan.id in continued:
            outcome.pending.update({p: n for p, n in open_items.items() if p in wanted})
    drafted = outcome.draft is not None and bool(outcome.draft.items)
    plans = [*outcome.continued, *([outcome.draft.plan] if outcome.draft and drafted else [])]
    shown = plans or ([outcome.draft.plan] if outcome.draft else [])
    priority = shown[0].priority if shown else request.priority or "normal"
    outcome.budgets = budget_lines(store, jobs, priority)
    if not apply:
        return outcome
    if outcome.draft is not None and drafted:
        store.add_push_plan(outcome.draft.plan, outcome.draft.items)
    limit = request.limit if resume or outcome.continued else None
    for plan in plans:
        summary = await apply_plan(
            config, store, target, plan, jobs, limit=limit, max_calls=max_calls,
            max_errors=max_errors, concurrency=concurrency, lock_wait=lock_wait,
            transport=transport,
        )  # fmt: skip
        outcome.summaries.append(summary)
        if limit is not None:
            limit = max(0, limit - summary.calls)
        if summary.outcome in ("failed", "busy"):
            break
    return outcome
