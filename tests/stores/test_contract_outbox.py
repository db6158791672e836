"""The push outbox's contract, every store: the same scenarios against each backend of
``BACKENDS``.

``syncline push`` reads the mirror with ``iter_rows``, writes its plan and items before its
first call, and settles each item together with the mirror row the API sent back. What
must hold everywhere: ``iter_rows`` yields exactly the live rows of one partition, each
once, keys with their JSON types; an item comes back exactly as written; and a settle is
all or nothing (a lost lease or a crash writes neither the item nor the row, and never a
checkpoint).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from syncline.errors import LeaseLost
from syncline.stores import OutboxItem, PushPlan, Row, State, StateKey, Store, Sweep, TableSpec
from syncline.stores.outbox_sql import key_text
from tests.stores.backends import Backend
from tests.stores.test_contract import Clock

TABLE = TableSpec("accounts", ("org",), ("id",))
KEY = StateKey("src", "accounts", '{"org":1}')
ORG1, ORG2 = '{"org":1}', '{"org":2}'
DAY1, DAY2 = "2024-01-01T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z"


def row(key: Any, value: Any, updated: Any = DAY1, org: int = 1) -> Row:
    return (org, key, json.dumps({"v": value}), updated)


def plan(
    plan_id: str = "p1", source: str = "src", stream: str = "accounts", created_at: str = DAY1
) -> PushPlan:
    return PushPlan(plan_id, f"fp-{plan_id}", source, stream,
                    "UPDATE accounts SET v = 'new'", "normal", created_at)  # fmt: skip


def item(
    seq: int,
    key: tuple[Any, ...],
    partition: str = ORG1,
    *,
    plan_id: str = "p1",
    patch: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
) -> OutboxItem:
    return OutboxItem(plan_id, seq, partition, key, patch or {"v": "new"}, before or {"v": "old"})


def exact(value: Any) -> str:
    """JSON text that tells ``1``, ``1.0``, ``True`` and ``"1"`` apart (``==`` does not)."""
    return json.dumps(value, sort_keys=True)


@dataclass
class Opened:
    backend: Backend
    url: str
    store: Store

    def value(self, key: Any) -> tuple[Any, Any, bool] | None:
        """``(v, _updated_at, deleted)`` of a row of ``TABLE`` as the store holds it raw."""
        for identity, data, updated, deleted in self.backend.raw_rows(self.url, TABLE):
            if exact(identity) == exact([1, key]):
                return data["v"], updated, deleted
        return None

    def statuses(self, plan_id: str = "p1") -> list[tuple[int, str, int, str | None]]:
        return [(i.seq, i.status, i.attempts, i.error) for i in self.store.outbox_items(plan_id)]


@pytest.fixture
def opened(backend: Backend) -> Iterator[Opened]:
    url = backend.url()
    store = backend.open(url)
    store.ensure_table(TABLE)
    yield Opened(backend, url, store)
    store.close()


@pytest.fixture
def clock(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(backend.module, "lease_now", fake)
    return fake


def typed(identities: list[tuple[Any, ...]]) -> list[str]:
    """Identities as exact JSON, sorted: each value's type shows."""
    return sorted(exact(list(identity)) for identity in identities)


# --- iter_rows ----------------------------------------------------------------------------


@pytest.mark.parametrize("on_delete", ["soft", "hard"])
def test_iter_rows_yields_the_live_rows_of_one_partition(backend: Backend, on_delete: str) -> None:
    table = TableSpec("live", ("org",), ("id",), on_delete=on_delete)
    store = backend.open()
    try:
        store.ensure_table(table)
        page = [row(1, "one"), row("1", "text one"), row(2, "two"), row(3, "three")]
        store.commit_page(table, page, State(KEY))
        store.commit_page(table, [row(1, "elsewhere", org=2)], State(KEY))
        store.commit_page(table, [], State(KEY), deletes=[row(3, None, DAY2)])
        found = list(store.iter_rows(table, (1,)))
        assert typed([identity for identity, _ in found]) == typed([(1, 1), (1, 2), (1, "1")])
        assert {exact(list(i)): json.loads(data)["v"] for i, data in found} == {
            exact([1, 1]): "one",
            exact([1, "1"]): "text one",
            exact([1, 2]): "two",
        }
        assert [json.loads(d)["v"] for _, d in store.iter_rows(table, (2,))] == ["elsewhere"]
        assert list(store.iter_rows(table, (3,))) == []
    finally:
        store.close()


def test_iter_rows_reads_composite_keys_in_chunks(backend: Backend) -> None:
    """2,500 rows: more than one chunk of every store; unicode partition and key values."""
    table = TableSpec("pairs", ("region",), ("a", "b"))
    store = backend.open()
    try:
        store.ensure_table(table)
        for region, count in (("eü", 2500), ("us", 30)):
            key = StateKey("src", "pairs", json.dumps({"region": region}))
            rows = [(region, n // 100, f"k{n}✓", json.dumps({"n": n}), None) for n in range(count)]
            for start in range(0, count, 500):
                store.commit_page(table, rows[start : start + 500], State(key))
        found = list(store.iter_rows(table, ("eü",)))
        assert len(found) == 2500
        assert {identity: json.loads(data)["n"] for identity, data in found} == {
            ("eü", n // 100, f"k{n}✓"): n for n in range(2500)
        }
        assert {tuple(type(value) for value in identity) for identity, _ in found} == {
            (str, int, str)
        }
    finally:
        store.close()


def test_iter_rows_reads_each_row_once_while_rows_are_written(opened: Opened) -> None:
    """Pages committed between two chunks (every row rewritten, new ones added) never make
    a row come twice nor one that was there all along go missing."""
    store = opened.store
    store.commit_page(TABLE, [row(n, "a") for n in range(2500)], State(KEY))
    rows = store.iter_rows(TABLE, (1,))
    first = list(itertools.islice(rows, 1200))
    store.commit_page(TABLE, [row(n, "b", DAY2) for n in range(2500)], State(KEY))
    store.commit_page(TABLE, [row(n, "new") for n in range(2500, 2600)], State(KEY))
    keys = [identity[1] for identity, _ in itertools.chain(first, rows)]
    assert len(keys) == len(set(keys))
    assert set(range(2500)) <= set(keys) <= set(range(2600))


def test_iter_rows_sees_an_open_snapshot_pass_as_fetch_rows_does(backend: Backend) -> None:
    table = TableSpec("snap", ("org",), ("id",), mode="snapshot")
    store = backend.open()
    try:
        store.ensure_table(table)
        since = "2000-01-01T00:00:00.000000Z"
        store.commit_page(
            table, [row(n, "a") for n in (1, 2, 3)], State(KEY), sweep=Sweep((1,), since)
        )
        store.commit_page(table, [row(1, "b", DAY2), row(4, "b")], State(KEY))  # a pass is open
        found = dict(store.iter_rows(table, (1,)))
        assert found == store.fetch_rows(table, [(1, n) for n in (1, 2, 3, 4)])
        assert {i[1]: json.loads(d)["v"] for i, d in found.items()} == {
            1: "b", 2: "a", 3: "a", 4: "b"
        }  # fmt: skip
    finally:
        store.close()


# --- plans and items ----------------------------------------------------------------------


def test_a_plan_and_its_items_come_back_as_written(opened: Opened) -> None:
    store = opened.store
    tier = {"level": 2, "tags": ["a", 1, None]}
    items = [
        item(3, (1,), patch={"name": "Zoë ✓ 名前", "meta.tier": tier},
             before={"name": "Zoe", "meta.tier": None}),
        item(1, ("1",), patch={"count": 1, "code": "1", "ok": True, "ratio": 0.5, "big": 2**53},
             before={"count": "1", "code": 1, "ok": False, "ratio": 1.0, "big": None}),
        item(2, (7, "x"), ORG2, patch={"nested": {"deep": {"list": [{"k": "v"}]}}}, before={}),
    ]  # fmt: skip
    store.add_push_plan(plan(), items)
    assert store.push_plans() == [plan()]
    found = store.outbox_items("p1")
    assert [i.seq for i in found] == [1, 2, 3]
    for written, read in zip(sorted(items, key=lambda i: i.seq), found, strict=True):
        assert (read.plan_id, read.partition) == ("p1", written.partition)
        assert exact(read.key) == exact(list(written.key))
        assert isinstance(read.key, tuple)
        assert exact(read.patch) == exact(written.patch)
        assert exact(read.before) == exact(written.before)
        assert (read.status, read.attempts, read.error) == ("pending", 0, None)
        assert read.updated_at is not None
    assert store.outbox_items("other") == []


def test_outbox_items_filter_by_status_and_partition(opened: Opened) -> None:
    store = opened.store
    store.add_push_plan(plan(), [item(1, (1,)), item(2, (2,), ORG2), item(3, (3,)),
                                 item(4, (4,), ORG2)])  # fmt: skip
    applied, failed = item(2, (2,), ORG2), item(3, (3,))
    applied.status, failed.status = "applied", "failed"
    store.settle_outbox(TABLE, [applied, failed])

    def seqs(statuses: tuple[str, ...] = (), partition: str | None = None) -> list[int]:
        return [i.seq for i in store.outbox_items("p1", statuses=statuses, partition=partition)]

    assert seqs() == [1, 2, 3, 4]
    assert seqs(("pending",)) == [1, 4]
    assert seqs(("applied", "failed")) == [2, 3]
    assert seqs(partition=ORG2) == [2, 4]
    assert seqs(("pending",), ORG2) == [4]
    assert seqs(("conflict",)) == []


def test_outbox_counts_by_plan_partition_and_status(opened: Opened) -> None:
    store = opened.store
    store.add_push_plan(plan("p1"), [item(1, (1,)), item(2, (2,)), item(3, (3,), ORG2)])
    store.add_push_plan(plan("p2"), [item(1, (1,), plan_id="p2"), item(2, (2,), plan_id="p2")])
    done = item(1, (1,))
    done.status = "applied"
    store.settle_outbox(TABLE, [done])
    assert store.outbox_counts() == [
        ("p1", ORG1, "applied", 1),
        ("p1", ORG1, "pending", 1),
        ("p1", ORG2, "pending", 1),
        ("p2", ORG1, "pending", 2),
    ]
    assert store.outbox_counts("p2") == [("p2", ORG1, "pending", 2)]
    assert store.outbox_counts("none") == []


def test_open_outbox_keys_are_the_unsettled_items_of_one_stream(opened: Opened) -> None:
    store = opened.store
    keys: list[tuple[Any, ...]] = [(1,), ("1",), (2,), (3,), (4,), (5,)]
    items = [item(seq, key) for seq, key in enumerate(keys, 1)]
    store.add_push_plan(plan("p1"), items)
    for settled, status in zip(items, ("pending", "unknown", "applied", "failed", "conflict",
                                       "skipped"), strict=True):  # fmt: skip
        settled.status = status
    store.settle_outbox(TABLE, items)
    store.add_push_plan(plan("p2"), [item(1, (6,), ORG2, plan_id="p2")])
    store.add_push_plan(plan("p3", stream="other"), [item(1, (7,), plan_id="p3")])
    store.add_push_plan(plan("p4", source="crm"), [item(1, (8,), plan_id="p4")])
    assert store.open_outbox_keys("src", "accounts") == {
        (ORG1, key_text((1,))),
        (ORG1, key_text(("1",))),
        (ORG2, key_text((6,))),
    }
    assert key_text((1,)) != key_text(("1",))
    assert store.open_outbox_keys("src", "none") == set()


def test_push_plans_filter_and_order(opened: Opened) -> None:
    """Oldest first, then by id byte by byte (``"B"`` before ``"a"``, as SQLite orders)."""
    store = opened.store
    for made in (plan("b-2", created_at=DAY2), plan("a"), plan("B", stream="other"),
                 plan("c", source="crm")):  # fmt: skip
        store.add_push_plan(made, [])
    assert [p.id for p in store.push_plans()] == ["B", "a", "c", "b-2"]
    assert [p.id for p in store.push_plans(source="src")] == ["B", "a", "b-2"]
    assert [p.id for p in store.push_plans(stream="accounts")] == ["a", "c", "b-2"]
    assert [p.id for p in store.push_plans("src", "accounts")] == ["a", "b-2"]
    assert store.push_plans("nobody") == []


# --- settling -----------------------------------------------------------------------------


def test_settling_updates_the_row_and_the_item_together(opened: Opened) -> None:
    store = opened.store
    store.commit_page(TABLE, [row(1, "old"), row(2, "kept")],
                      State(KEY, run_id="sync-1", position={"page": 2}))  # fmt: skip
    store.add_push_plan(plan(), [item(1, (1,))])
    (settled,) = store.outbox_items("p1")
    settled.status, settled.attempts = "applied", 1
    store.settle_outbox(TABLE, [settled], [row(1, "new", DAY2)], key=KEY, run_id="push-1")
    assert store.fetch_rows(TABLE, [(1, 1), (1, 2)]) == {
        (1, 1): json.dumps({"v": "new"}),
        (1, 2): json.dumps({"v": "kept"}),
    }
    assert opened.value(1) == ("new", DAY2, False)  # as a reader of the store sees it
    assert opened.statuses() == [(1, "applied", 1, None)]
    assert [(c.key, c.kind, c.source, c.partition) for c in store.changes(run_id="push-1")] == [
        (1, "update", "src", ORG1)
    ]
    state = store.load_state(KEY)  # settling writes no checkpoint
    assert state is not None
    assert (state.run_id, state.position) == ("sync-1", {"page": 2})


def test_settling_a_row_as_stored_records_no_change(opened: Opened) -> None:
    store = opened.store
    store.commit_page(TABLE, [row(1, "same")], State(KEY, run_id="sync-1"))
    store.add_push_plan(plan(), [item(1, (1,))])
    (settled,) = store.outbox_items("p1")
    settled.status = "skipped"
    store.settle_outbox(TABLE, [settled], [row(1, "same")], key=KEY, run_id="push-1")
    assert list(store.changes(run_id="push-1")) == []
    assert opened.value(1) == ("same", DAY1, False)
    assert opened.statuses() == [(1, "skipped", 0, None)]


def test_settling_without_rows_only_saves_the_items(opened: Opened) -> None:
    store = opened.store
    store.commit_page(TABLE, [row(1, "old")], State(KEY))
    store.add_push_plan(plan(), [item(1, (1,)), item(2, (2,))])
    failed, unknown = store.outbox_items("p1")
    failed.status, failed.attempts, failed.error = "failed", 2, "HTTP 422: «name» is taken"
    unknown.status, unknown.attempts = "unknown", 1
    store.settle_outbox(TABLE, [failed, unknown], run_id="push-1")
    assert opened.statuses() == [
        (1, "failed", 2, "HTTP 422: «name» is taken"),
        (2, "unknown", 1, None),
    ]
    assert opened.value(1) == ("old", DAY1, False)
    assert list(store.changes(run_id="push-1")) == []
    store.settle_outbox(TABLE, [])  # nothing to save: nothing happens


def test_settling_rows_needs_the_key_of_their_partition(opened: Opened) -> None:
    store = opened.store
    store.add_push_plan(plan(), [item(1, (1,))])
    (settled,) = store.outbox_items("p1")
    settled.status = "applied"
    with pytest.raises(ValueError, match="key"):
        store.settle_outbox(TABLE, [settled], [row(1, "new")], run_id="push-1")
    assert opened.statuses() == [(1, "pending", 0, None)]
    assert opened.value(1) is None


def test_a_settle_with_a_lost_lease_writes_nothing(opened: Opened, clock: Clock) -> None:
    zombie_store, live_store = opened.store, opened.backend.open(opened.url)
    live_store.ensure_table(TABLE)
    try:
        zombie_store.commit_page(TABLE, [row(1, "old")], State(KEY))
        zombie_store.add_push_plan(plan(), [item(1, (1,))])
        zombie = zombie_store.acquire_lease(KEY, "zombie", ttl=10)
        clock.now += 11
        live = live_store.acquire_lease(KEY, "live", ttl=30)
        (settled,) = zombie_store.outbox_items("p1")
        settled.status, settled.attempts = "applied", 1
        with pytest.raises(LeaseLost):
            zombie_store.settle_outbox(TABLE, [settled], [row(1, "zombie", DAY2)], key=KEY,
                                       run_id="push-z", lease=zombie)  # fmt: skip
        with pytest.raises(LeaseLost):
            zombie_store.settle_outbox(TABLE, [settled], key=KEY, run_id="push-z", lease=zombie)
        assert opened.statuses() == [(1, "pending", 0, None)]
        assert opened.value(1) == ("old", DAY1, False)
        assert list(zombie_store.changes(run_id="push-z")) == []

        live_store.settle_outbox(TABLE, [settled], [row(1, "live", DAY2)], key=KEY,
                                 run_id="push-l", lease=live)  # fmt: skip
        assert opened.statuses() == [(1, "applied", 1, None)]
        assert opened.value(1) == ("live", DAY2, False)
    finally:
        live_store.close()


def test_a_crash_before_the_commit_settles_nothing(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened.store
    store.commit_page(TABLE, [row(1, "old")], State(KEY))
    store.add_push_plan(plan(), [item(1, (1,))])
    (settled,) = store.outbox_items("p1")
    settled.status = "applied"

    def crash(name: str) -> None:
        if name == "store.outbox_settled":
            raise RuntimeError("crash before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(opened.backend.module, "failpoint", crash)
        with pytest.raises(RuntimeError, match="crash"):
            store.settle_outbox(TABLE, [settled], [row(1, "new", DAY2)], key=KEY, run_id="push-1")
    assert opened.statuses() == [(1, "pending", 0, None)]
    assert opened.value(1) == ("old", DAY1, False)
    assert list(store.changes(run_id="push-1")) == []
    store.settle_outbox(TABLE, [settled], [row(1, "new", DAY2)], key=KEY, run_id="push-1")
    assert opened.value(1) == ("new", DAY2, False)
    assert [c.kind for c in store.changes(run_id="push-1")] == ["update"]


BEFORE_OUTBOX = {"postgresql": "1", "duckdb": "1"}
"""The schema version without the outbox, in the stores that version their schema (SQLite
and the JSON lines sidecar create what is missing at every open)."""


def test_a_store_from_before_the_outbox_gains_it(backend: Backend) -> None:
    url = backend.url()
    backend.open(url).close()
    for table in ("_syncline_outbox", "_syncline_push_plans"):
        backend.execute(url, f"DROP TABLE {table}")
    if backend.name in BEFORE_OUTBOX:
        backend.execute(
            url,
            f"UPDATE _syncline_meta SET value = '{BEFORE_OUTBOX[backend.name]}' "
            "WHERE key = 'schema_version'",
        )
    store = backend.open(url)
    try:
        store.add_push_plan(plan(), [item(1, (1,))])
        assert [i.seq for i in store.outbox_items("p1", statuses=("pending",))] == [1]
    finally:
        store.close()
