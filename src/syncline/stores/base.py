"""The contract every store keeps: page rows and the checkpoint after them, in one transaction.

That single rule is what makes a crash lose nothing and double nothing: on
restart the engine resumes from the stored position, and the rows that
position covers are exactly the rows that were committed with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from syncline.budget.headers import ServerWindow

__all__ = [
    "COLUMN_TYPES",
    "LEDGER_BUCKETS",
    "OUTBOX_OPEN",
    "OUTBOX_STATUSES",
    "Change",
    "Column",
    "Lease",
    "OutboxItem",
    "PageChanges",
    "PushPlan",
    "Reject",
    "Row",
    "RunRecord",
    "State",
    "StateKey",
    "Store",
    "Sweep",
    "TableSpec",
    "WindowSpec",
]

LEDGER_BUCKETS = 60
"""A call window is counted in this many buckets (see :mod:`syncline.stores.sqlite_quota`)."""

Row = tuple[Any, ...]
"""Partition values, primary-key values, then ``_data`` (JSON text) and ``_updated_at``."""


COLUMN_TYPES = ("text", "integer", "numeric", "real", "boolean", "timestamp", "date", "json")
"""What a typed column may hold; each store maps them to its own SQL types."""


@dataclass(frozen=True, slots=True)
class Column:
    """A typed column next to ``_data``, filled from the record on every write.

    Its value is derived (``path`` into ``_data``), never the truth: a store may
    drop and refill it whenever its declaration changes.
    """

    name: str
    path: str
    """JMESPath into the record."""
    type: str = "text"
    """One of :data:`COLUMN_TYPES`."""
    index: bool = False


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    partition_columns: tuple[str, ...]
    key_columns: tuple[str, ...]
    on_delete: str = "soft"
    """``soft``: a deleted record's row stays, with ``_deleted_at`` set; ``hard``: it goes."""
    columns: tuple[Column, ...] = ()
    """Typed columns (see :mod:`syncline.stores.columns`)."""
    mode: str = "merge"
    """``merge``: rows are upserted in place; ``snapshot`` (a full-refresh stream): the
    destination holds exactly the last complete pass (a file store rewrites and swaps)."""

    @property
    def identity_columns(self) -> tuple[str, ...]:
        return self.partition_columns + self.key_columns


@dataclass(frozen=True, slots=True)
class StateKey:
    source: str
    stream: str
    partition: str
    """Canonical JSON of the partition values (``{}`` for an unpartitioned stream)."""


@dataclass(slots=True)
class State:
    """One checkpoint: what the last complete pass left, and where the current pass is."""

    key: StateKey
    watermark: dict[str, Any] | None = None
    """``{"value": normalised, "raw": as the API sent it}`` of the newest record synced."""
    cursor: Any = None
    """The cursor a ``cursor``-incremental stream continues from."""
    position: dict[str, Any] | None = None
    """The paginator position of the next page of an unfinished pass (``None``: no pass open)."""
    pass_filter: Any = None
    """The filter value the open pass sends on every page, fixed when the pass starts."""
    pass_max: dict[str, Any] | None = None
    """Newest modification seen on the committed pages of the open pass."""
    pass_restarts: int = 0
    """How many times the open pass was restarted because the listing shifted under it."""
    not_before: str | None = None
    """UTC time before which the job must not call the API again (a long Retry-After)."""
    pass_started: str | None = None
    """When the open pass started (our clock), to recognise rows it already stored."""
    pass_drift: bool = False
    """Records moved in the listing during the open pass: it must be read again."""
    pass_requests: int = 0
    """Requests the open pass has sent so far (across runs)."""
    last_pass_requests: int | None = None
    """Requests the last complete pass cost: what ``sync --plan`` expects the next to cost."""
    run_id: str | None = None
    status: str | None = None
    error: str | None = None
    records: int = 0
    pages: int = 0
    requests: int = 0
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to write one (stream, partition), proved by a fencing token at every commit.

    A holder that stalls past ``expires_at`` may be replaced; its next commit then
    fails because its token is no longer the current one (a zombie cannot write).
    """

    key: StateKey
    holder: str
    token: int
    expires_at: float
    ttl: float


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A declared call window as the ledger counts it (see :mod:`syncline.budget`)."""

    key: str
    calls: int
    per: float
    reserve: int = 0

    def bucket(self, moment: float) -> int:
        """The ledger bucket a call made at ``moment`` (epoch seconds) counts in."""
        return math.floor(moment / (self.per / LEDGER_BUCKETS))

    def wait(
        self, buckets: Sequence[tuple[int, int]], weight: int, spend_reserve: bool, now: float
    ) -> float:
        """Seconds until ``weight`` more calls fit, given the window's live ``(bucket, used)``
        counts oldest first (0: now). Conservative: a bucket frees only once all of it has
        left the window."""
        width = self.per / LEDGER_BUCKETS
        allowed = self.calls - (0 if spend_reserve else self.reserve)
        used = sum(count for _, count in buckets)
        if used + weight <= allowed:
            return 0.0
        if weight > allowed:
            return self.per  # never possible at this priority: come back after a whole window
        freed = 0
        for bucket, count in buckets:
            freed += count
            if used - freed + weight <= allowed:
                return max(float((bucket + 1) * width + self.per - now), width / 10)
        return self.per


@dataclass(frozen=True, slots=True)
class PageChanges:
    """What one committed page changed in its table (as recorded in the change feed)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    """Records read again exactly as stored (a full poll's re-reads): no change."""


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: a record inserted, updated or deleted by a run."""

    id: int
    run_id: str | None
    source: str
    stream: str
    partition: str
    """Canonical JSON of the partition values (``{}`` when unpartitioned)."""
    key: Any
    """The record's primary key (a list when it has several fields)."""
    kind: str
    """``insert``, ``update`` or ``delete``."""
    changed_at: str


@dataclass(frozen=True, slots=True)
class Sweep:
    """After a complete full pass: the partition's live rows it did not see were deleted."""

    partition: tuple[Any, ...]
    """The partition's values, in ``TableSpec.partition_columns`` order."""
    seen_since: str
    """When the pass started: rows synced before it were not seen by it."""


@dataclass(frozen=True, slots=True)
class Reject:
    """A record quarantined instead of stored, with the reason a user can act on."""

    reason: str
    record: str
    """The record as JSON text (or its repr when it cannot be encoded)."""


OUTBOX_STATUSES = ("pending", "unknown", "applied", "failed", "conflict", "skipped")
"""An outbox item's life: ``pending`` until sent; ``unknown`` from just before the call until
its answer is known (a crash or a lost answer leaves it so, and it is verified by reading the
record back before any new send); then ``applied``, ``failed`` (the API refused it),
``conflict`` (changed on the server since the mirror read it) or ``skipped`` (the mirror row no
longer matches the plan's condition, or is gone)."""
OUTBOX_OPEN = ("pending", "unknown")
"""Statuses of items a push still has to settle."""


@dataclass(frozen=True, slots=True)
class PushPlan:
    """One ``syncline push``: what it sets, on which rows, written before its first call."""

    id: str
    fingerprint: str
    """The same statement on the same stream gives the same fingerprint: its next run
    continues this plan instead of selecting the rows again."""
    source: str
    stream: str
    statement: str
    """The push as SQL, for people: ``UPDATE accounts SET … WHERE … ORDER BY … LIMIT n``."""
    priority: str
    created_at: str


@dataclass(slots=True)
class OutboxItem:
    """One record's change in a plan; its status is settled in the same transaction as the
    mirror row it changes."""

    plan_id: str
    seq: int
    """The item's place in the plan (the plan's order)."""
    partition: str
    """Canonical JSON of the partition values (``{}`` when unpartitioned)."""
    key: tuple[Any, ...]
    """The record's primary-key values."""
    patch: dict[str, Any]
    """Field (dotted for nested) -> new value."""
    before: dict[str, Any]
    """Field -> value in the mirror when the plan was made."""
    status: str = "pending"
    attempts: int = 0
    error: str | None = None
    updated_at: str | None = None


@dataclass(slots=True)
class RunRecord:
    id: str
    started_at: str
    ended_at: str | None = None
    status: str = "running"
    records: int = 0
    requests: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class Store(Protocol):
    def ensure_table(self, table: TableSpec) -> None: ...

    def load_state(self, key: StateKey) -> State | None: ...

    def commit_page(
        self,
        table: TableSpec,
        rows: Sequence[Row],
        state: State,
        *,
        lease: Lease | None = None,
        rejects: Sequence[Reject] = (),
        deletes: Sequence[Row] = (),
        sweep: Sweep | None = None,
    ) -> PageChanges:
        """Upsert ``rows`` (newest wins), apply the tombstones ``deletes`` and the ``sweep``,
        quarantine ``rejects``, record every change in the change feed and save ``state``,
        atomically.

        With ``lease``, the commit first proves the lease is still ours and extends
        it; otherwise it raises :class:`~syncline.errors.LeaseLost` and writes nothing.
        """
        ...

    def count_moved(self, table: TableSpec, rows: Sequence[Row], since: str) -> int:
        """How many of ``rows`` this pass already stored with an older modification value."""
        ...

    def take_permit(
        self,
        scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
        weight: int,
        spend_reserve: bool,
        *,
        now: float | None = None,
    ) -> float:
        """Record one permit of ``weight`` calls in every scope and return 0, or the seconds
        until one is free in all of them.

        Atomic across processes sharing the store; also honours what the server
        last reported for ``scope`` (a spent window waits for its reset). ``now``:
        the caller's wall clock, so it can :meth:`settle_permit` the same permit.
        """
        ...

    def settle_permit(
        self,
        scopes: Sequence[tuple[str, Sequence[WindowSpec]]],
        weight: int,
        taken_at: float,
    ) -> None:
        """Count a permit taken at ``taken_at`` from now on instead (its answer came back now).

        The server counts a call when it arrives, which is after we took the
        permit; counting it from when the answer came back keeps a sliding
        window on our side never ahead of the server's, whatever the latency.
        """
        ...

    def observe_server(self, scope: str, windows: Sequence[ServerWindow]) -> None: ...

    def window_used(self, scope: str, window: WindowSpec) -> int: ...

    def window_usage(self, scope: str, window: WindowSpec) -> tuple[int, float | None]:
        """Calls counting against ``window`` now, and when (epoch seconds) the oldest of
        them stops counting (``None``: none counts)."""
        ...

    def server_windows(self, scope: str | None = None) -> list[dict[str, Any]]: ...

    def acquire_lease(
        self, key: StateKey, holder: str, ttl: float, *, take_over: str | None = None
    ) -> Lease:
        """Take the lease on ``key`` or raise :class:`~syncline.errors.LeaseHeld`.

        ``take_over``: a holder known to be dead whose unexpired lease may be taken.
        """
        ...

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend a lease still held, or raise :class:`~syncline.errors.LeaseLost`."""
        ...

    def release_lease(self, lease: Lease) -> None: ...

    def count_rejects(self, key: StateKey, run_id: str | None = None) -> int: ...

    def save_state(self, state: State) -> None: ...

    def delete_state(self, source: str, stream: str, partition: str | None = None) -> int: ...

    def all_states(self) -> list[State]: ...

    def count_rows(self, table: str, partition_columns: dict[str, Any]) -> int | None:
        """Live rows (not deleted) of one partition; ``None`` when the table does not exist."""
        ...

    def changes(
        self,
        *,
        after_id: int = 0,
        since: str | None = None,
        run_id: str | None = None,
        streams: Sequence[tuple[str, str]] = (),
    ) -> Iterator[Change]:
        """The change feed in commit order: entries after ``after_id``, changed at or after
        ``since``, of one run, of some (source, stream) pairs."""
        ...

    def last_change_of(self, run_id: str) -> int | None:
        """The id of the last change ``run_id`` recorded (``None``: it recorded none)."""
        ...

    def prune_changes(self, before: str) -> int:
        """Drop feed entries changed before ``before`` (retention); returns how many."""
        ...

    def fetch_rows(
        self, table: TableSpec, identities: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], str]:
        """The stored ``_data`` of each identity (partition values + key) that is live."""
        ...

    def iter_rows(
        self, table: TableSpec, partition: Sequence[Any]
    ) -> Iterator[tuple[tuple[Any, ...], str]]:
        """Every live row of one partition (its values in ``partition_columns`` order):
        ``(identity, _data)``, in chunks, so a large table never sits in memory at once."""
        ...

    def add_push_plan(self, plan: PushPlan, items: Sequence[OutboxItem]) -> None:
        """Write a plan and all its items (status ``pending``) in one transaction."""
        ...

    def push_plans(self, source: str | None = None, stream: str | None = None) -> list[PushPlan]:
        """Plans, oldest first."""
        ...

    def outbox_items(
        self, plan_id: str, *, statuses: Sequence[str] = (), partition: str | None = None
    ) -> list[OutboxItem]:
        """A plan's items in plan order, of some statuses, of one partition."""
        ...

    def outbox_counts(self, plan_id: str | None = None) -> list[tuple[str, str, str, int]]:
        """``(plan_id, partition, status, count)`` for every plan (or one)."""
        ...

    def open_outbox_keys(self, source: str, stream: str) -> set[tuple[str, str]]:
        """``(partition, key as JSON)`` of every item still open in any plan of the stream."""
        ...

    def settle_outbox(
        self,
        table: TableSpec,
        items: Sequence[OutboxItem],
        rows: Sequence[Row] = (),
        *,
        key: StateKey | None = None,
        run_id: str | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Save the items' status, attempts and error, and upsert ``rows`` into the mirror
        (newest wins, changes recorded in the feed under ``run_id`` for ``key``), atomically.

        With ``lease``, prove it first (:class:`~syncline.errors.LeaseLost`: nothing written).
        """
        ...

    def start_run(self, run: RunRecord) -> None: ...

    def finish_run(self, run: RunRecord) -> None: ...

    def last_runs(self, limit: int = 10) -> list[RunRecord]: ...

    def close(self) -> None: ...
