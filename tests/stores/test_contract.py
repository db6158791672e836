"""One contract, every store: the same scenarios against each backend of ``BACKENDS``.

Store-level scenarios call the :class:`~syncline.stores.base.Store` methods
directly (newest wins, atomicity, deletions, the change feed, the call ledger,
leases, hostile names); the end-to-end ones (full, incremental, deletions,
kill -9, identical exports across stores) are in ``test_contract_sync.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from syncline.budget.headers import ServerWindow
from syncline.errors import LeaseHeld, LeaseLost, StoreError
from syncline.stores import State, StateKey, Store, Sweep, TableSpec, WindowSpec
from tests.stores.backends import Backend

TABLE = TableSpec("items", ("company_id",), ("id",))
KEY = StateKey("src", "items", '{"company_id":1}')
DAY1, DAY2, DAY3, DAY4 = (f"2024-01-0{d}T00:00:00.000000Z" for d in (1, 2, 3, 4))


def row(key: Any, data: Any, updated: Any) -> tuple[Any, ...]:
    return (1, key, json.dumps({"v": data}), updated)


@dataclass
class Opened:
    backend: Backend
    url: str
    store: Store

    def rows(self, table: TableSpec = TABLE) -> dict[Any, tuple[Any, Any, bool]]:
        """``{key: (value, _updated_at, deleted)}``."""
        return {
            identity[-1]: (data.get("v") if isinstance(data, dict) else data, updated, deleted)
            for identity, data, updated, deleted in self.backend.raw_rows(self.url, table)
        }


@pytest.fixture
def opened(backend: Backend) -> Iterator[Opened]:
    url = backend.url()
    store = backend.open(url)
    store.ensure_table(TABLE)
    yield Opened(backend, url, store)
    store.close()


# --- newest wins ------------------------------------------------------------------------


def test_newest_wins_and_ties_go_to_the_later_arrival(opened: Opened) -> None:
    store = opened.store
    store.commit_page(TABLE, [row(1, "new", DAY2)], State(KEY))
    store.commit_page(TABLE, [row(1, "old", DAY1)], State(KEY))
    assert opened.rows()[1][0] == "new"
    store.commit_page(TABLE, [row(1, "tie", DAY2)], State(KEY))
    assert opened.rows()[1][0] == "tie"


def test_same_key_twice_in_one_page_keeps_the_newest(opened: Opened) -> None:
    page = [row(7, "b", DAY2), row(7, "a", DAY1), row(7, "c", DAY2), row(8, "x", None)]
    changes = opened.store.commit_page(TABLE, page, State(KEY))
    assert opened.rows() == {7: ("c", DAY2, False), 8: ("x", None, False)}
    assert (changes.inserted, changes.updated) == (2, 1)


def test_modification_values_order_as_sqlite_orders_them(opened: Opened) -> None:
    """Numbers numerically, text byte by byte (not by a collation, where "a" < "B"), and
    every number before every text."""
    sequences = {
        1: [("B", "B"), ("a", "a"), ("B", "B")],  # byte order: "a" (0x61) > "B" (0x42)
        2: [("n", 10), ("t", DAY1), ("n2", 99999)],  # text after any number
        3: [("9", 9), ("10", 10), ("9b", 9)],  # numerically, not as text
        4: [("f", 2.5), ("i", 2), ("big", 2**40)],  # floats and ints
        5: [("z", "ä"), ("e", "é"), ("y", "z")],  # UTF-8 bytes: "é" > "ä" > "z"
    }
    for step in range(3):
        page = [row(key, steps[step][0], steps[step][1]) for key, steps in sequences.items()]
        opened.store.commit_page(TABLE, page, State(KEY))
    assert {k: v[:2] for k, v in opened.rows().items()} == {
        1: ("a", "a"),
        2: ("t", DAY1),
        3: ("10", 10),
        4: ("big", 2**40),
        5: ("e", "é"),
    }


def test_count_moved_compares_like_the_upsert(opened: Opened) -> None:
    store = opened.store
    since = "2000-01-01T00:00:00.000000Z"
    store.commit_page(TABLE, [row(1, "a", "B"), row(2, "a", 5), row(3, "a", DAY2)], State(KEY))
    later = [row(1, "b", "a"), row(2, "b", DAY1), row(3, "b", DAY1), row(4, "b", DAY3)]
    assert store.count_moved(TABLE, later, since) == 2  # 1: "a" > "B"; 2: text > number
    assert store.count_moved(TABLE, later, "2999-01-01T00:00:00.000000Z") == 0


# --- atomicity and checkpoints ------------------------------------------------------------


def test_page_and_checkpoint_roll_back_together(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened.store
    store.commit_page(TABLE, [row(1, "a", None)], State(KEY, position={"page": 2}))

    def crash(name: str) -> None:
        if name == "store.rows_written":
            raise RuntimeError("crash between the rows and the checkpoint")

    monkeypatch.setattr(opened.backend.module, "failpoint", crash)
    with pytest.raises(RuntimeError, match="crash"):
        store.commit_page(TABLE, [row(2, "b", None)], State(KEY, position={"page": 3}))
    assert set(opened.rows()) == {1}
    loaded = store.load_state(KEY)
    assert loaded is not None
    assert loaded.position == {"page": 2}
    assert [c.key for c in store.changes()] == [1]


def test_state_round_trip(opened: Opened) -> None:
    store = opened.store
    state = State(
        KEY,
        watermark={"value": DAY1, "raw": "2024-01-01T00:00:00Z"},
        cursor={"seq": "12-abc", "n": [1, 2**70]},
        position=None,
        pass_drift=True,
        error="boom \x00 in a body",
        records=5,
    )
    store.save_state(state)
    loaded = store.load_state(KEY)
    assert loaded is not None
    assert (loaded.watermark, loaded.cursor, loaded.position, loaded.records) == (
        state.watermark,
        state.cursor,
        None,
        5,
    )
    assert loaded.pass_drift is True
    assert [s.key for s in store.all_states()] == [KEY]
    assert store.delete_state("src", "items") == 1
    assert store.load_state(KEY) is None


def test_corrupt_checkpoint_is_reported_not_ignored(opened: Opened) -> None:
    opened.store.save_state(State(KEY, position={"page": 2}))
    opened.backend.execute(opened.url, "UPDATE _syncline_state SET position = '{half'")
    with pytest.raises(StoreError, match="corrupt; run `syncline reset`"):
        opened.store.load_state(KEY)


# --- deletions and the change feed ----------------------------------------------------------


def test_a_deletion_wins_over_older_copies_seen_later(opened: Opened) -> None:
    store = opened.store
    store.commit_page(TABLE, [row(1, "a", DAY1)], State(KEY))
    gone = store.commit_page(TABLE, [], State(KEY), deletes=[row(1, "gone", DAY3)])
    assert gone.deleted == 1
    late = store.commit_page(TABLE, [row(1, "b", DAY2)], State(KEY))
    assert (late.inserted, late.updated) == (0, 0)  # an older copy does not bring it back
    assert opened.rows() == {1: ("a", DAY3, True)}  # soft: the last record, the tombstone's time
    assert store.count_rows("items", {"company_id": 1}) == 0
    back = store.commit_page(TABLE, [row(1, "c", DAY4)], State(KEY))
    assert back.inserted == 1  # re-created after its deletion: a new insert
    assert opened.rows() == {1: ("c", DAY4, False)}


@pytest.mark.parametrize("on_delete", ["soft", "hard"])
def test_a_sweep_deletes_what_the_complete_pass_did_not_see(
    backend: Backend, on_delete: str
) -> None:
    table = TableSpec("swept", ("company_id",), ("id",), on_delete=on_delete)
    url = backend.url()
    store = backend.open(url)
    store.ensure_table(table)
    store.commit_page(table, [row(k, "a", DAY1) for k in (1, 2, 3)], State(KEY))
    other = StateKey("src", "items", '{"company_id":2}')
    store.commit_page(table, [(2, 9, "{}", DAY1)], State(other))  # another partition: untouched
    since = "2999-01-01T00:00:00.000000Z"  # a pass "started" after every row was synced
    done = store.commit_page(
        table, [], State(KEY), deletes=[row(3, "x", DAY2)], sweep=Sweep((1,), since)
    )
    assert done.deleted == 3
    assert store.count_rows("swept", {"company_id": 1}) == 0
    assert store.count_rows("swept", {"company_id": 2}) == 1
    deleted = sorted(c.key for c in store.changes() if c.kind == "delete")
    assert deleted == [1, 2, 3]  # the tombstone once, the sweep for the rest
    rows = backend.raw_rows(url, table)
    assert len(rows) == (4 if on_delete == "soft" else 1)
    store.close()


def test_the_feed_records_real_changes_only(opened: Opened) -> None:
    store = opened.store
    page = [row(1, "a", DAY1), row(2, "b", DAY1)]
    store.commit_page(TABLE, page, State(KEY, run_id="r1"))
    again = store.commit_page(TABLE, page, State(KEY, run_id="r2"))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    store.commit_page(TABLE, [row(2, "b2", DAY2)], State(KEY, run_id="r3"))
    changes = list(store.changes())
    assert [(c.run_id, c.key, c.kind) for c in changes] == [
        ("r1", 1, "insert"),
        ("r1", 2, "insert"),
        ("r3", 2, "update"),
    ]
    assert [c.key for c in store.changes(run_id="r3")] == [2]
    assert [c.key for c in store.changes(after_id=changes[0].id)] == [2]
    assert list(store.changes(streams=[("src", "other")])) == []
    assert list(store.changes(since="2999-01-01T00:00:00.000000Z")) == []
    assert store.last_change_of("r3") == changes[-1].id
    assert store.last_change_of("r2") is None
    assert store.fetch_rows(TABLE, [(1, 1), (1, 2), (1, 9)]) == {
        (1, 1): json.dumps({"v": "a"}),
        (1, 2): json.dumps({"v": "b2"}),
    }
    assert store.prune_changes("2999-01-01T00:00:00.000000Z") == 2
    assert list(store.changes()) == []


def test_runs_and_rejects(opened: Opened) -> None:
    from syncline.stores import Reject, RunRecord

    store = opened.store
    for number in (1, 2):
        run = RunRecord(id=f"run{number}", started_at=f"2024-01-0{number}T00:00:00.000000Z")
        store.start_run(run)
        run.status, run.records, run.errors = "ok", number, [{"stream": "items"}]
        store.finish_run(run)
    assert [(r.id, r.status, r.records, r.errors) for r in store.last_runs()] == [
        ("run2", "ok", 2, [{"stream": "items"}]),
        ("run1", "ok", 1, [{"stream": "items"}]),
    ]
    store.commit_page(TABLE, [], State(KEY, run_id="run2"), rejects=[Reject("no key", "{}")])
    assert store.count_rejects(KEY) == 1
    assert store.count_rejects(KEY, "run1") == 0


# --- the call ledger ------------------------------------------------------------------------

MINUTE = WindowSpec("60/60s", calls=5, per=60.0)
DAILY = WindowSpec("daily", calls=10, per=86400.0, reserve=3)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(backend.module, "lease_now", fake)
    return fake


def take(store: Store, *windows: WindowSpec, scope: str = "s", high: bool = False) -> float:
    return store.take_permit([(scope, list(windows))], 1, high)


def test_the_ledger_grants_waits_reserves_and_slides(opened: Opened, clock: Clock) -> None:
    store = opened.store
    assert [take(store, MINUTE) for _ in range(5)] == [0.0] * 5
    wait = take(store, MINUTE)
    assert 60.0 <= wait <= 61.0
    clock.now += wait
    assert take(store, MINUTE) == 0.0
    assert [take(store, DAILY, scope="d") for _ in range(7)] == [0.0] * 7
    assert take(store, DAILY, scope="d") > 0  # normal priority stops at calls - reserve
    assert [take(store, DAILY, scope="d", high=True) for _ in range(3)] == [0.0] * 3
    assert take(store, DAILY, scope="d", high=True) > 0


def test_a_permit_is_all_scopes_or_none(opened: Opened, clock: Clock) -> None:
    store = opened.store
    shared = WindowSpec("shared", calls=2, per=60.0)
    both = [("tenant", [MINUTE]), ("source", [shared])]
    assert store.take_permit(both, 1, False) == 0.0
    assert store.take_permit(both, 1, False) == 0.0
    assert store.take_permit(both, 1, False) > 0
    assert store.window_used("tenant", MINUTE) == 2
    used, frees_at = store.window_usage("tenant", MINUTE)
    assert used == 2
    assert frees_at == pytest.approx(clock.now + 61.0, abs=1.0)


def test_settling_and_what_the_server_says(opened: Opened, clock: Clock) -> None:
    store = opened.store
    scopes = [("sb", [MINUTE])]
    taken_at = clock.now
    for _ in range(5):
        assert store.take_permit(scopes, 1, False, now=taken_at) == 0.0
    clock.now += 10.0
    store.settle_permit(scopes, 1, taken_at)
    clock.now = taken_at + 61.0
    assert store.window_used("sb", MINUTE) == 1  # the settled one counts from its answer

    store.observe_server("gh", [ServerWindow("server", 5000, 1, 300.0)])
    assert take(store, scope="gh") == 0.0
    assert take(store, scope="gh") == pytest.approx(300.0)
    (reported,) = store.server_windows("gh")
    assert (reported["remaining"], reported["limit"]) == (0, 5000)
    clock.now += 301
    assert take(store, scope="gh") == 0.0


def test_the_ledger_survives_a_restart(opened: Opened, clock: Clock) -> None:
    for _ in range(5):
        take(opened.store, MINUTE)
    again = opened.backend.open(opened.url)
    try:
        assert take(again, MINUTE) > 0
        assert again.window_used("s", MINUTE) == 5
    finally:
        again.close()


def test_stores_sharing_a_ledger_never_overspend(opened: Opened) -> None:
    """Separate store objects (connections), as separate processes have: 4 x 30 tries at a
    50-call window grant exactly 50; and of 6 racing for one last call, exactly one wins."""
    window = WindowSpec("w", calls=50, per=3600.0)
    stores = [opened.backend.open(opened.url) for _ in range(6)]
    try:
        granted: list[int] = []

        def worker(store: Store) -> None:
            for _ in range(30):
                if store.take_permit([("s", [window])], 1, False) == 0.0:
                    granted.append(1)

        _together(worker, stores[:4])
        assert len(granted) == 50

        last = WindowSpec("last", calls=1, per=3600.0)
        start = threading.Barrier(len(stores))
        winners: list[int] = []

        def racer(store: Store) -> None:
            start.wait(timeout=30)
            if store.take_permit([("race", [last])], 1, False) == 0.0:
                winners.append(1)

        _together(racer, stores)
        assert len(winners) == 1
    finally:
        for store in stores:
            store.close()


def _together(target: Any, stores: list[Store]) -> None:
    threads = [threading.Thread(target=target, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


# --- leases ---------------------------------------------------------------------------------


def test_leases_fence_a_zombie_out(opened: Opened, clock: Clock) -> None:
    zombie_store, live_store = opened.store, opened.backend.open(opened.url)
    live_store.ensure_table(TABLE)
    try:
        zombie = zombie_store.acquire_lease(KEY, "zombie", ttl=10)
        with pytest.raises(LeaseHeld) as held:
            live_store.acquire_lease(KEY, "live", ttl=30)
        assert held.value.holder == "zombie"
        clock.now += 11
        live = live_store.acquire_lease(KEY, "live", ttl=30)
        assert live.token == zombie.token + 1

        with pytest.raises(LeaseLost):
            zombie_store.commit_page(
                TABLE, [row(1, "z", None)], State(KEY, position={"p": 9}), lease=zombie
            )
        with pytest.raises(LeaseLost):
            zombie_store.renew_lease(zombie, 10)
        live_store.commit_page(
            TABLE, [row(1, "l", None)], State(KEY, position={"p": 2}), lease=live
        )
        assert opened.rows() == {1: ("l", None, False)}
        loaded = live_store.load_state(KEY)
        assert loaded is not None
        assert loaded.position == {"p": 2}
        renewed = live_store.renew_lease(live, 60)
        assert renewed.expires_at == pytest.approx(clock.now + 60)
        live_store.release_lease(live)
        assert live_store.acquire_lease(KEY, "third", ttl=1).token == live.token + 1
        taken = live_store.acquire_lease(KEY, "fourth", ttl=1, take_over="third")
        assert taken.token == live.token + 2
    finally:
        live_store.close()


# --- hostile names --------------------------------------------------------------------------

HOSTILE = [
    '"; DROP TABLE items;--',
    'a"b',
    "select",
    "50%s off %(x)s",
    "x" * 100,
    "ünï cödé 🚀" * 8,
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_quoted(backend: Backend, name: str) -> None:
    url = backend.url()
    store = backend.open(url)
    try:
        table = TableSpec(name, (name + "_p",), (name + "_key",))
        store.ensure_table(table)
        state = State(StateKey("src", name, '{"p":1}'), run_id="r")
        store.commit_page(table, [(1, "k1", '{"v": 1}', None)], state)
        assert store.count_rows(name, {name + "_p": 1}) == 1
        assert store.fetch_rows(table, [(1, "k1")]) == {(1, "k1"): '{"v": 1}'}
        assert [c.key for c in store.changes()] == ["k1"]
        assert backend.raw_rows(url, table) == [([1, "k1"], {"v": 1}, None, False)]
        store.ensure_table(TABLE)  # the bookkeeping and other tables are still there
        assert store.count_rows("items", {"company_id": 1}) == 0
    finally:
        store.close()


def test_long_names_sharing_a_prefix_stay_apart(backend: Backend) -> None:
    """PostgreSQL cuts identifiers at 63 bytes: names sharing their first 99 characters must
    still be two tables and two columns."""
    long_a, long_b = "t" * 99 + "a", "t" * 99 + "b"
    _distinct_tables(
        backend, [TableSpec(long_a, (), (long_a, long_b)), TableSpec(long_b, (), ("id",))]
    )


def test_names_differing_by_case(backend: Backend) -> None:
    """Distinct where the store's identifiers are case-sensitive; a clear error where not."""
    if not backend.case_sensitive:
        store = backend.open()
        with pytest.raises(StoreError):
            store.ensure_table(TableSpec("Items", (), ("Id", "id")))
        store.close()
        return
    _distinct_tables(
        backend, [TableSpec("Items", (), ("Id", "id")), TableSpec("items", (), ("ID",))]
    )


def _distinct_tables(backend: Backend, tables: list[TableSpec]) -> None:
    url = backend.url()
    store = backend.open(url)
    try:
        for number, table in enumerate(tables):
            store.ensure_table(table)
            values = tuple(range(number, number + len(table.key_columns)))
            store.commit_page(table, [(*values, json.dumps({"n": number}), None)], State(KEY))
        for number, table in enumerate(tables):
            values = list(range(number, number + len(table.key_columns)))
            assert backend.raw_rows(url, table) == [(values, {"n": number}, None, False)]
    finally:
        store.close()


def test_colliding_and_nul_names_are_refused(backend: Backend) -> None:
    store = backend.open()
    try:
        with pytest.raises(StoreError, match="collide"):
            store.ensure_table(TableSpec("bad", (), ("_data",)))
        with pytest.raises(StoreError, match="NUL"):
            store.ensure_table(TableSpec("bad\x00name", (), ("id",)))
    finally:
        store.close()
