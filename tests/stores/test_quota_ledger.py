"""The call ledger in a real SQLite file: sliding windows, reserve, scopes, server reports."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from syncline.budget.headers import ServerWindow
from syncline.stores import SQLiteStore, WindowSpec
from syncline.stores import sqlite as sqlite_module

MINUTE = WindowSpec("60/60s", calls=5, per=60.0)
DAILY = WindowSpec("daily", calls=10, per=86400.0, reserve=3)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sqlite_module, "lease_now", fake)
    return fake


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "store.db")


def take(store: SQLiteStore, *windows: WindowSpec, scope: str = "exact[division=1]",
         high: bool = False) -> float:  # fmt: skip
    return store.take_permit([(scope, list(windows))], 1, high)


def test_a_window_grants_its_calls_then_says_how_long_to_wait(
    store: SQLiteStore, clock: Clock
) -> None:
    assert [take(store, MINUTE) for _ in range(5)] == [0.0] * 5
    wait = take(store, MINUTE)
    assert 60.0 <= wait <= 61.0  # the first call's bucket must leave the window
    clock.now += wait
    assert take(store, MINUTE) == 0.0


def test_the_window_slides_no_interval_holds_more_than_the_limit(
    store: SQLiteStore, clock: Clock
) -> None:
    granted: list[float] = []
    for _ in range(400):  # bounded: 400 ticks of 1 s
        if take(store, MINUTE) == 0.0:
            granted.append(clock.now)
        clock.now += 1.0
    for index, start in enumerate(granted):
        inside = [t for t in granted[index:] if t < start + 60.0]
        assert len(inside) <= 5
    assert len(granted) >= 5 * (400 // 61)


def test_the_reserve_is_only_for_high_priority(store: SQLiteStore, clock: Clock) -> None:
    assert [take(store, DAILY) for _ in range(7)] == [0.0] * 7
    assert take(store, DAILY) > 0  # normal priority stops at calls - reserve
    assert [take(store, DAILY, high=True) for _ in range(3)] == [0.0] * 3
    assert take(store, DAILY, high=True) > 0


def test_a_permit_is_all_scopes_or_none(store: SQLiteStore, clock: Clock) -> None:
    shared = WindowSpec("shared", calls=2, per=60.0)
    both = [("exact[division=1]", [MINUTE]), ("exact", [shared])]
    assert store.take_permit(both, 1, False) == 0.0
    assert store.take_permit(both, 1, False) == 0.0
    assert store.take_permit(both, 1, False) > 0  # the source-wide window is full
    assert store.window_used("exact[division=1]", MINUTE) == 2  # nothing recorded for the refusal


def test_scopes_are_independent(store: SQLiteStore, clock: Clock) -> None:
    for _ in range(5):
        take(store, MINUTE, scope="a")
    assert take(store, MINUTE, scope="a") > 0
    assert take(store, MINUTE, scope="b") == 0.0


def test_the_ledger_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    first = SQLiteStore(tmp_path / "s.db")
    for _ in range(5):
        take(first, MINUTE)
    first.close()
    again = SQLiteStore(tmp_path / "s.db")
    assert take(again, MINUTE) > 0
    assert again.window_used("exact[division=1]", MINUTE) == 5


def test_processes_sharing_a_store_never_overspend(tmp_path: Path) -> None:
    window = WindowSpec("w", calls=50, per=3600.0)
    stores = [SQLiteStore(tmp_path / "shared.db") for _ in range(4)]
    granted: list[int] = []

    def worker(store: SQLiteStore) -> None:
        for _ in range(30):
            if store.take_permit([("s", [window])], 1, False) == 0.0:
                granted.append(1)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(granted) == 50


def test_a_server_reporting_zero_remaining_blocks_until_its_reset(
    store: SQLiteStore, clock: Clock
) -> None:
    store.observe_server("gh", [ServerWindow("server", 5000, 0, 120.0)])
    assert take(store, scope="gh") == pytest.approx(120.0)
    clock.now += 121
    assert take(store, scope="gh") == 0.0


def test_server_remaining_counts_down_with_our_calls(store: SQLiteStore, clock: Clock) -> None:
    store.observe_server("gh", [ServerWindow("server", 5000, 2, 300.0)])
    assert take(store, scope="gh") == 0.0
    assert take(store, scope="gh") == 0.0
    assert take(store, scope="gh") == pytest.approx(300.0)
    (row,) = store.server_windows("gh")
    assert row["remaining"] == 0
    assert row["limit"] == 5000


def test_a_settled_permit_counts_from_when_its_answer_came_back(
    store: SQLiteStore, clock: Clock
) -> None:
    """A slow call: the server counted it on arrival, later than our permit; so do we."""
    scopes = [("sb", [MINUTE])]
    taken_at = clock.now
    for _ in range(5):
        assert store.take_permit(scopes, 1, False, now=taken_at) == 0.0
    clock.now += 10.0  # the first answer took 10 s to come back
    store.settle_permit(scopes, 1, taken_at)
    assert store.window_used("sb", MINUTE) == 5  # moved, not lost or doubled
    clock.now = taken_at + 61.0  # the four others have left the window; the slow one has not
    assert store.window_used("sb", MINUTE) == 1
    assert store.take_permit(scopes, 1, False) == 0.0


def test_settling_a_permit_that_left_the_window_changes_nothing(
    store: SQLiteStore, clock: Clock
) -> None:
    scopes = [("sb", [MINUTE])]
    taken_at = clock.now
    assert store.take_permit(scopes, 1, False, now=taken_at) == 0.0
    clock.now += 120.0
    assert store.take_permit(scopes, 1, False) == 0.0  # prunes the old bucket
    store.settle_permit(scopes, 1, taken_at)
    assert store.window_used("sb", MINUTE) == 1
