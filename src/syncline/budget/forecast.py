"""``syncline sync --plan``: what a run would cost, against what is left, before spending a call.

Why a forecast and not a dry run: a dry run would spend the very calls it
means to count. The estimate comes from the store alone: what the last
complete pass of each (stream, partition) cost, or, for one never finished,
its stored rows over its page size. Jobs take their turn by priority, as they
would in the run, so low-priority work is shown eating what high-priority
work leaves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from syncline.budget.permits import PRIORITIES, declared_windows, scope_windows
from syncline.config import Config
from syncline.plan import Job, plan_jobs
from syncline.stores import State, Store, WindowSpec

__all__ = ["PlannedJob", "estimate_calls", "forecast"]


@dataclass(frozen=True, slots=True)
class PlannedJob:
    source: str
    stream: str
    partition: str
    priority: str
    scope: str
    calls: int | None
    """Estimated requests (``None``: nothing to estimate from yet)."""
    basis: str
    left: int | None
    """Calls the tightest window still allows this job when its turn comes (``None``: no limit)."""
    verdict: str
    """``runs``, ``throttled`` (waits for windows within the run), ``pauses`` (a window
    longer than ``max_wait`` runs out: paused until ``until``) or ``waits`` (paused or
    deferred by an earlier run until ``until``)."""
    until: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_calls(job: Job, state: State | None, rows: int | None) -> tuple[int | None, str]:
    """The requests the next pass of ``job`` should cost, and what the guess rests on."""
    if state is not None and state.last_pass_requests is not None:
        if state.position is not None:  # a pass is open: only its rest is left
            rest = max(1, state.last_pass_requests - state.pass_requests)
            return rest, "the last pass, minus what the open one already spent"
        return max(1, state.last_pass_requests), "the last complete pass"
    size = job.stream.paginate.size
    if rows and size:
        return math.ceil(rows / size) + 1, "stored rows / page size"
    return None, "never synced"


@dataclass
class _Window:
    """One window of one scope as the forecast spends it."""

    spec: WindowSpec
    used: int
    frees_at: float | None

    def left(self, priority: str) -> int:
        reserve = 0 if priority == "high" else self.spec.reserve
        return max(0, self.spec.calls - reserve - self.used)


def forecast(
    config: Config, store: Store, streams: Sequence[str] = (), partitions: Sequence[str] = ()
) -> list[PlannedJob]:
    now = time.time()
    jobs = sorted(
        plan_jobs(config, streams, partitions), key=lambda j: PRIORITIES[j.stream.priority]
    )
    ledger: dict[tuple[str, str], _Window] = {}
    planned = []
    for job in jobs:
        scopes = scope_windows(job.source_name, job.partition_label, declared_windows(job.source))
        windows = []
        for scope, specs in scopes:
            for spec in specs:
                if (scope, spec.key) not in ledger:
                    used, frees_at = store.window_usage(scope, spec)
                    ledger[scope, spec.key] = _Window(spec, used, frees_at)
                windows.append(ledger[scope, spec.key])
        server = [
            w
            for w in store.server_windows(scopes[0][0])
            if w["reset_at"] is not None and w["reset_at"] > now
        ]
        state = store.load_state(job.state_key)
        rows = store.count_rows(job.table.name, dict(job.partition))
        planned.append(_plan_one(job, scopes[0][0], state, rows, windows, server, now))
    return planned


def _plan_one(
    job: Job,
    scope: str,
    state: State | None,
    rows: int | None,
    windows: list[_Window],
    server: list[dict[str, Any]],
    now: float,
) -> PlannedJob:
    calls, basis = estimate_calls(job, state, rows)
    need = calls or 1
    priority = job.stream.priority
    left = min([w.left(priority) for w in windows] + [w["remaining"] for w in server], default=None)
    runs = PlannedJob(
        job.source_name, job.stream_name, job.partition_label, priority, scope, calls, basis,
        left, verdict="runs",
    )  # fmt: skip
    if state is not None and state.not_before is not None and state.not_before > _stamp(now):
        return replace(runs, verdict="waits", until=state.not_before, detail=state.error or "")
    max_wait = job.source.retry.max_wait
    verdict = runs
    throttle = 0.0
    for window in windows:
        short = need - window.left(priority)
        if short <= 0:
            pass
        elif window.spec.per > max_wait:
            until = window.frees_at if window.used and window.frees_at else now + window.spec.per
            detail = f"window {window.spec.key} runs out about {short} calls short"
            verdict = replace(runs, verdict="pauses", until=_stamp(until), detail=detail)
        elif verdict.verdict == "runs":
            throttle = max(throttle, math.ceil(short / window.spec.calls) * window.spec.per)
            detail = f"waits about {throttle:.0f}s for its windows"
            verdict = replace(runs, verdict="throttled", detail=detail)
        window.used += need  # jobs after this one find the window as this one leaves it
    for reported in server:
        if verdict.verdict != "pauses" and need > reported["remaining"]:
            if reported["reset_at"] - now > max_wait:
                detail = f"the server's {reported['name']} window has {reported['remaining']} left"
                verdict = replace(
                    runs, verdict="pauses", until=_stamp(reported["reset_at"]), detail=detail
                )
            elif verdict.verdict == "runs":
                verdict = replace(runs, verdict="throttled", detail="waits for the server's reset")
    return verdict


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
