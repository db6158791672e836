"""The sandbox's mutable, deterministic dataset of "items".

Why this shape: the benchmark needs 1,000,000 records while the sandbox stays
well under 100 MB, and the tests need byte-for-byte reproducible data.  So the
dataset keeps only two parallel ``array('q')`` columns (ids and ``updated_at``
seconds, in listing order) plus small dicts for records that were touched by
``mutate``; record bodies are generated on demand by :mod:`.records`.

Invariants the endpoints rely on:

* every live record has a distinct ``updated_at`` (base records sit one second
  apart and each mutation advances a virtual clock by one second per touched
  record), so the listing order ``(updated_at, id)`` is simply the order of the
  ``updated_at`` column and every keyset lookup is a ``bisect``;
* every insert/update/delete takes the next value of a global change sequence
  (base record ``id`` has ``seq == id``), which drives the changes feed.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from datetime import UTC, datetime
from typing import NamedTuple

from syncline.sandbox.records import EPOCH, Record, build_record, format_ts, mix

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Touched(NamedTuple):
    """State of a record that differs from its generated base."""

    version: int
    created_ts: int
    updated_ts: int
    seq: int


class _Tombstone(NamedTuple):
    seq: int
    deleted_ts: int


def parse_instant(value: str) -> int:
    """Parse an ISO-8601 instant and round *up* to whole Unix seconds.

    Rounding up keeps ``updated_at >= value`` exact for fractional input, since
    stored timestamps are whole seconds.  Offsets are honoured; a value without
    one is taken as UTC.  Raises ``ValueError`` on anything unparseable.
    """
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _UNIX_EPOCH
    whole = delta.days * 86_400 + delta.seconds
    return whole + 1 if delta.microseconds else whole


def _without_positions(column: array[int], positions: list[int]) -> array[int]:
    """Copy ``column`` minus the sorted ``positions`` using C-speed slices."""
    kept: array[int] = array("q")
    previous = 0
    for position in positions:
        kept += column[previous:position]
        previous = position + 1
    kept += column[previous:]
    return kept


class Dataset:
    """Deterministic items: same ``records``/``seed`` and calls, same data."""

    def __init__(self, records: int = 2345, seed: int = 7) -> None:
        if records < 0:
            raise ValueError("records must be >= 0")
        self.base_records = records
        self.seed = seed
        self._salt = mix(seed & 0xFFFF_FFFF_FFFF_FFFF)
        self._ids: array[int] = array("q", range(1, records + 1))
        self._ts: array[int] = array("q", range(EPOCH + 1, EPOCH + records + 1))
        self._touched: dict[int, _Touched] = {}
        self._tombstones: dict[int, _Tombstone] = {}
        self._seq_log: array[int] = array("q")  # id per seq, for seq > base_records
        self._next_id = records + 1
        self._clock = EPOCH + records
        self._mutations = 0

    # -- sizes and positions ------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def last_seq(self) -> int:
        """Highest change sequence number handed out so far."""
        return self.base_records + len(self._seq_log)

    def start_for(self, updated_since: str | None) -> int:
        """First listing position with ``updated_at >= updated_since``."""
        if updated_since is None or updated_since == "":
            return 0
        return bisect_left(self._ts, parse_instant(updated_since))

    def position_after(self, updated_ts: int, rid: int) -> int:
        """First listing position whose ``(updated_at, id)`` is after the key.

        This is the keyset seek behind cursors: it stays correct when records
        before or after the key were updated, inserted or deleted meanwhile.
        """
        position = bisect_left(self._ts, updated_ts)
        # Timestamps are unique, so at most one record shares the key's.
        if (
            position < len(self._ts)
            and self._ts[position] == updated_ts
            and self._ids[position] <= rid
        ):
            position += 1
        return position

    def key_at(self, position: int) -> tuple[int, int]:
        """``(updated_at seconds, id)`` of the record at a listing position."""
        return self._ts[position], self._ids[position]

    # -- record bodies --------------------------------------------------------

    def records_between(self, start: int, stop: int) -> list[Record]:
        """Records at listing positions ``[start, stop)`` (clamped)."""
        start = max(start, 0)
        stop = min(stop, len(self._ids))
        salt, touched = self._salt, self._touched
        page: list[Record] = []
        append = page.append
        for rid, updated_ts in zip(self._ids[start:stop], self._ts[start:stop], strict=True):
            state = touched.get(rid)
            if state is None:
                append(build_record(salt, rid, 1, EPOCH + rid, updated_ts))
            else:
                append(build_record(salt, rid, state.version, state.created_ts, updated_ts))
        return page

    def record(self, rid: int) -> Record | None:
        """The current body of ``rid``, or ``None`` if it does not exist (now)."""
        state = self._touched.get(rid)
        if state is not None:
            return build_record(self._salt, rid, state.version, state.created_ts, state.updated_ts)
        if 1 <= rid <= self.base_records and rid not in self._tombstones:
            return build_record(self._salt, rid, 1, EPOCH + rid, EPOCH + rid)
        return None

    def all_records(self) -> list[Record]:
        """Every live record sorted by id (for test assertions, not hot paths)."""
        ids = sorted(self._ids)
        return [record for rid in ids if (record := self.record(rid)) is not None]

    # -- changes feed -----------------------------------------------------------

    def changes(self, since: int, limit: int) -> tuple[list[Record], int]:
        """Up to ``limit`` changes with ``seq > since``, ordered by seq.

        Like CouchDB, each id appears once, at its latest seq; deleted ids come
        back as tombstones.  Returns ``(results, last_seq)`` where ``last_seq``
        is the seq of the last result, or ``since`` when there is nothing new.
        """
        results: list[Record] = []
        last_seq = since
        base, log, top = self.base_records, self._seq_log, self.last_seq
        seq = max(since, 0)
        while seq < top and len(results) < limit:
            seq += 1
            entry: Record | None = None
            if seq <= base:
                if seq not in self._touched and seq not in self._tombstones:
                    entry = build_record(self._salt, seq, 1, EPOCH + seq, EPOCH + seq)
            else:
                rid = log[seq - base - 1]
                state = self._touched.get(rid)
                tomb = self._tombstones.get(rid)
                if state is not None and state.seq == seq:
                    entry = self.record(rid)
                elif tomb is not None and tomb.seq == seq:
                    entry = {"id": rid, "deleted": True, "updated_at": format_ts(tomb.deleted_ts)}
            if entry is not None:
                entry["seq"] = seq
                results.append(entry)
                last_seq = seq
        return results, last_seq

    # -- mutation -----------------------------------------------------------

    def _tick(self, rid: int) -> tuple[int, int]:
        """Advance the virtual clock and the change sequence for ``rid``."""
        self._clock += 1
        self._seq_log.append(rid)
        return self._clock, self.last_seq

    def mutate(self, update: int = 0, insert: int = 0, delete: int = 0) -> dict[str, list[int]]:
        """Update, insert and hard-delete records, deterministically.

        Which ids get updated/deleted is drawn from a RNG seeded with the
        dataset seed and the number of previous ``mutate`` calls, never from
        global state.  Touched records move to the end of the listing with
        fresh, one-second-apart ``updated_at`` values (deletes, then updates,
        then inserts); deletes are remembered as tombstones for ``changes``.
        """
        if min(update, insert, delete) < 0:
            raise ValueError("update, insert and delete must be >= 0")
        if update + delete > len(self._ids):
            raise ValueError(f"cannot touch {update + delete} of {len(self._ids)} records")
        rng = random.Random(self.seed * 1_000_003 + self._mutations)
        self._mutations += 1
        positions = sorted(rng.sample(range(len(self._ids)), update + delete))
        chosen = [self._ids[position] for position in positions]
        rng.shuffle(chosen)
        updated, deleted = sorted(chosen[:update]), sorted(chosen[update:])
        self._ids = _without_positions(self._ids, positions)
        self._ts = _without_positions(self._ts, positions)
        for rid in deleted:
            self._touched.pop(rid, None)
            clock, seq = self._tick(rid)
            self._tombstones[rid] = _Tombstone(seq, clock)
        for rid in updated:
            previous = self._touched.get(rid)
            if previous is None:
                self._append(rid, 2, EPOCH + rid)
            else:
                self._append(rid, previous.version + 1, previous.created_ts)
        inserted = list(range(self._next_id, self._next_id + insert))
        self._next_id += insert
        for rid in inserted:
            self._append(rid, 1, None)
        return {"updated": updated, "inserted": inserted, "deleted": deleted}

    def _append(self, rid: int, version: int, created_ts: int | None) -> None:
        clock, seq = self._tick(rid)
        created = clock if created_ts is None else created_ts
        self._touched[rid] = _Touched(version, created, clock, seq)
        self._ids.append(rid)
        self._ts.append(clock)
