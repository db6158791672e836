"""What a page changes in its table, decided in plain Python from what is stored.

Every store runs the same three steps inside the page's transaction: look up
the stored hash, modification value and deletion mark of the page's
identities (SQL), :func:`plan_page` (this module, no I/O), then write what the
plan says (SQL). Keeping the middle step here, shared, is what makes
newest-wins, the content hash, tombstones and the sweep mean exactly the same
in SQLite and PostgreSQL: only the lookups and writes are per dialect.

Why a content hash: an API that can only be polled in full sends every record
again on every run. Comparing a hash of the stored JSON with the new one tells
a real update from a re-read, so a poll that changed nothing records nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncline.stores.base import PageChanges, Row
from syncline.timestamps import Comparable

__all__ = ["PagePlan", "Stored", "content_hash", "older", "plan_page"]

Identity = tuple[Any, ...]


def content_hash(data: str) -> str:
    return hashlib.blake2b(data.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


@dataclass(slots=True)
class Stored:
    """What a lookup found for one identity."""

    hash: str | None
    updated_at: Any
    deleted: bool


def older(candidate: Any, stored: Any) -> bool:
    """Newest wins: is ``candidate`` strictly older than what is stored (as SQL compares)?

    Numbers compare as numbers, text as bytes, and every number sorts before
    every text (SQLite's order; the PostgreSQL store reproduces it in SQL).
    """
    if candidate is None or stored is None:
        return False
    try:
        return bool(candidate < stored)
    except TypeError:
        return isinstance(candidate, int | float)


@dataclass(slots=True)
class PagePlan:
    """The writes one page needs, and the change-feed entries they make."""

    stored: dict[Identity, Stored]
    writes: list[tuple[Row, str]] = field(default_factory=list)
    """Rows to upsert (newest wins in SQL too), each with its content hash, in page order."""
    touched: list[Identity] = field(default_factory=list)
    """Identities seen again only in an older copy: the stored row stays, seen now."""
    gone: list[tuple[Comparable | None, Identity]] = field(default_factory=list)
    """Rows deleted, with the tombstone's modification value (``None`` for the sweep)."""
    feed: dict[str, list[Identity]] = field(
        default_factory=lambda: {"insert": [], "update": [], "delete": []}
    )
    unchanged: int = 0

    def sweep(self, unseen: Iterable[Identity]) -> None:
        """Add the live rows a complete full pass did not see (a tombstone may have gone first)."""
        for identity in unseen:
            before = self.stored.get(identity)
            if before is None or not before.deleted:
                self.gone.append((None, identity))
                self.feed["delete"].append(identity)

    def last_writes(self, width: int) -> list[tuple[Row, str]]:
        """One write per identity, the page's last: what running every write in order leaves.

        Each write of an identity is at least as new as the one before it (an older
        copy becomes a ``touched`` entry instead), so the last one is what stays.
        A single bulk statement must not touch one row twice, hence this.
        """
        last: dict[Identity, tuple[Row, str]] = {}
        for write in self.writes:
            identity = write[0][:width]
            last.pop(identity, None)  # keep page order of the final versions
            last[identity] = write
        return list(last.values())

    def changes(self) -> PageChanges:
        return PageChanges(
            inserted=len(self.feed["insert"]),
            updated=len(self.feed["update"]),
            deleted=len(self.gone),
            unchanged=self.unchanged,
        )


def plan_page(
    width: int, rows: Sequence[Row], deletes: Sequence[Row], stored: dict[Identity, Stored]
) -> PagePlan:
    """Classify ``rows`` (insert, update, unchanged, older copy) and ``deletes`` against
    ``stored``, in page order, as if each were applied before the next one is looked at."""
    plan = PagePlan(stored)
    feed = plan.feed
    for row in rows:
        identity, data, updated = row[:width], row[width], row[width + 1]
        digest = content_hash(data)
        before = stored.get(identity)
        if before is not None and older(updated, before.updated_at):
            # Seen, but an older copy (of a live row, or of one deleted since): keep ours.
            plan.touched.append(identity)
            continue
        if before is None or before.deleted:
            feed["insert"].append(identity)
        elif before.hash == digest:
            plan.unchanged += 1
        else:
            feed["update"].append(identity)
        plan.writes.append((row, digest))
        stored[identity] = Stored(digest, updated, False)
    for row in deletes:
        identity, updated = row[:width], row[width + 1]
        before = stored.get(identity)
        if before is None or before.deleted or older(updated, before.updated_at):
            continue
        plan.gone.append((updated, identity))
        feed["delete"].append(identity)
        stored[identity] = Stored(before.hash, updated, True)
    return plan
