"""``syncline quota``: every budget as users want to see it (Invantive's SystemPartitions view).

Declared windows show what this store's ledger has spent in the current
sliding window; server windows show what the API itself last reported,
which includes calls other programs made on the same account.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from syncline.budget.permits import declared_windows, scope_windows
from syncline.config import Config
from syncline.plan import plan_jobs
from syncline.stores import Store

__all__ = ["quota_report"]


def quota_report(config: Config, store: Store) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for job in plan_jobs(config):
        windows = declared_windows(job.source, operation=None)
        for scope, specs in scope_windows(job.source_name, job.partition_label, windows):
            for spec in specs:
                if (scope, spec.key) in seen:
                    continue
                seen.add((scope, spec.key))
                used, frees_at = store.window_usage(scope, spec)
                rows.append(
                    _row(scope, spec.key, spec.calls, used, spec.calls - used, spec.reserve,
                         frees_at)
                )  # fmt: skip
    for server in store.server_windows():
        rows.append(
            _row(
                server["scope"],
                server["name"],
                server["limit"],
                None if server["limit"] is None else server["limit"] - server["remaining"],
                server["remaining"],
                None,
                server["reset_at"],
                origin="server",
            )
        )
    return rows


def _row(
    scope: str,
    window: str,
    limit: int | None,
    used: int | None,
    remaining: int | None,
    reserve: int | None,
    reset_at: float | None,
    origin: str = "declared",
) -> dict[str, Any]:
    moment = None if reset_at is None else datetime.fromtimestamp(reset_at, UTC)
    return {
        "scope": scope,
        "window": window,
        "origin": origin,
        "limit": limit,
        "used": used,
        "remaining": None if remaining is None else max(0, remaining),
        "reserve": reserve,
        "reset_at": None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reset_at_local": None
        if moment is None
        else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
