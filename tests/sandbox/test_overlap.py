"""Overlapping data requests per tenant, as ``/_admin/stats`` reports them.

The middleware is driven in process first, with a downstream app that holds
every request until the test releases it, so "in flight" is exact and nothing
depends on timing.  The real sandbox is then checked over a socket: injected
latency keeps the first request in flight, and the stats' request counter
tells when it has arrived, so the second one is sent only after that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from syncline.sandbox import SandboxProcess
from syncline.sandbox.common import SandboxState
from syncline.sandbox.dataset import Dataset
from syncline.sandbox.faults import FaultController
from syncline.sandbox.limit_config import parse_limits_config
from syncline.sandbox.limiter import RateLimiter
from syncline.sandbox.overlap_middleware import OverlapRecorder

DATA = "/page/items"
WINDOWS = [{"calls": 1000, "per": 60}]
TIMEOUT = 5.0
LATENCY_MS = 800
"""Long enough for the test to see the first request arrive and send the second."""


def _state(**limits: Any) -> SandboxState:
    config = parse_limits_config(limits) if limits else None
    return SandboxState(Dataset(0), 0, 7, faults=FaultController(), limits=RateLimiter(config))


class HeldApp:
    """Downstream app that keeps each request in flight until ``release`` is set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = asyncio.Event()
        self.calls = 0
        self._arrived = asyncio.Condition()
        self._error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._arrived:
            self.calls += 1
            self._arrived.notify_all()
        await self.release.wait()
        if self._error is not None:
            raise self._error
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def arrived(self, count: int) -> None:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: self.calls >= count), TIMEOUT)


async def _call(app: OverlapRecorder, tenant: str | None = None, path: str = DATA) -> None:
    query = b"" if tenant is None else f"tenant={tenant}".encode()
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Message) -> None:
        pass

    await app(scope, receive, send)


def _counters(overlaps: int, max_in_flight: int) -> dict[str, int]:
    return {"overlaps": overlaps, "max_in_flight": max_in_flight}


# -- the middleware, in process ------------------------------------------------


async def test_sequential_requests_never_overlap() -> None:
    state = _state(tenant_param="tenant", windows=WINDOWS)
    held = HeldApp()
    held.release.set()
    app = OverlapRecorder(held, state)
    for tenant in ("a", "a", "a", "b"):
        await _call(app, tenant)
    assert state.overlaps.counters() == {"a": _counters(0, 1), "b": _counters(0, 1)}


async def test_concurrent_requests_of_one_tenant_overlap() -> None:
    state = _state(tenant_param="tenant", windows=WINDOWS)
    held = HeldApp()
    app = OverlapRecorder(held, state)
    tasks = [asyncio.create_task(_call(app, "a")) for _ in range(3)]
    await held.arrived(3)
    # The first found none in flight; the second and third found one and two.
    assert state.overlaps.counters() == {"a": _counters(2, 3)}
    held.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert state.overlaps.in_flight("a") == 0
    await _call(app, "a")
    assert state.overlaps.counters() == {"a": _counters(2, 3)}


async def test_concurrent_requests_of_different_tenants_do_not_overlap() -> None:
    state = _state(tenant_param="tenant", windows=WINDOWS)
    held = HeldApp()
    app = OverlapRecorder(held, state)
    tasks = [asyncio.create_task(_call(app, tenant)) for tenant in ("a", "b", None)]
    await held.arrived(3)
    held.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    # No tenant parameter is the shared tenant "", as for the rate limits.
    one_each = {tenant: _counters(0, 1) for tenant in ("", "a", "b")}
    assert state.overlaps.counters() == one_each


@pytest.mark.parametrize(
    ("limits", "path"),
    [
        ({}, DATA),
        ({"windows": WINDOWS}, DATA),  # limits, but they name no tenant
        ({"tenant_param": "tenant", "windows": WINDOWS}, "/_admin/stats"),
    ],
    ids=["no-limits", "no-tenant", "not-data"],
)
async def test_untracked_requests(limits: dict[str, Any], path: str) -> None:
    state = _state(**limits)
    held = HeldApp()
    app = OverlapRecorder(held, state)
    tasks = [asyncio.create_task(_call(app, "a", path)) for _ in range(2)]
    await held.arrived(2)
    assert state.overlaps.in_flight("a") == 0
    held.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert state.overlaps.counters() == {}


async def test_downstream_error_still_ends_the_request() -> None:
    state = _state(tenant_param="tenant", windows=WINDOWS)
    held = HeldApp(error=RuntimeError("handler crashed"))
    held.release.set()
    app = OverlapRecorder(held, state)
    with pytest.raises(RuntimeError, match="handler crashed"):
        await _call(app, "a")
    assert state.overlaps.in_flight("a") == 0
    with pytest.raises(RuntimeError):
        await _call(app, "a")
    assert state.overlaps.counters() == {"a": _counters(0, 1)}


async def test_cancelled_request_still_ends() -> None:
    state = _state(tenant_param="tenant", windows=WINDOWS)
    held = HeldApp()
    app = OverlapRecorder(held, state)
    task = asyncio.create_task(_call(app, "a"))
    await held.arrived(1)
    assert state.overlaps.in_flight("a") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT)
    assert state.overlaps.in_flight("a") == 0


async def test_reset_and_reconfiguring_keep_requests_in_flight() -> None:
    state = _state(tenant_param="tenant", windows=WINDOWS)
    held = HeldApp()
    app = OverlapRecorder(held, state)
    first = asyncio.create_task(_call(app, "a"))
    await held.arrived(1)
    state.overlaps.reset()
    assert state.overlaps.counters() == {}
    second = asyncio.create_task(_call(app, "a"))
    await held.arrived(2)
    # The request from before the reset is still in flight, so this one overlaps.
    assert state.overlaps.counters() == {"a": _counters(1, 2)}
    state.limits.configure(None)  # both still leave under the tenant they entered with
    held.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    assert state.overlaps.in_flight("a") == 0


# -- the real sandbox, over a socket ---------------------------------------------


@pytest.fixture
def tenants(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The shared sandbox with a tenant per ``tenant`` parameter; cleaned up afterwards."""
    sandbox.set_limits(tenant_param="tenant", windows=WINDOWS)
    yield sandbox
    sandbox.clear_faults()
    sandbox.clear_limits()


@pytest.fixture
def client(tenants: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tenants.base_url, timeout=10.0, trust_env=False) as http:
        yield http


def _get(client: httpx.Client, tenant: str) -> int:
    return client.get(DATA, params={"per_page": 1, "tenant": tenant}).status_code


def _wait_for_requests(sandbox: SandboxProcess, total: int) -> None:
    """Poll until the sandbox has counted ``total`` data requests (bounded in count and time)."""
    deadline = time.monotonic() + TIMEOUT
    for _ in range(1000):
        if sandbox.stats()["total"] >= total:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    pytest.fail(f"the sandbox did not count {total} data request(s) within {TIMEOUT} s")


def _one_while_other_in_flight(
    sandbox: SandboxProcess, client: httpx.Client, first: str, second: str
) -> tuple[int, int]:
    """Statuses of a slow request for ``first`` and one for ``second`` sent while it runs."""
    sandbox.set_faults(latency_ms=LATENCY_MS)
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(_get, client, first)
        _wait_for_requests(sandbox, 1)
        status = _get(client, second)
        return slow.result(timeout=TIMEOUT), status


def test_sandbox_reports_no_overlaps_for_sequential_requests(
    tenants: SandboxProcess, client: httpx.Client
) -> None:
    assert tenants.stats()["overlaps"] == {}
    assert [_get(client, tenant) for tenant in ("a", "a", "b")] == [200] * 3
    assert tenants.stats()["overlaps"] == {"a": _counters(0, 1), "b": _counters(0, 1)}


def test_sandbox_reports_overlap_of_one_tenant(
    tenants: SandboxProcess, client: httpx.Client
) -> None:
    assert _one_while_other_in_flight(tenants, client, "a", "a") == (200, 200)
    assert tenants.stats()["overlaps"] == {"a": _counters(1, 2)}


def test_sandbox_reports_no_overlap_across_tenants(
    tenants: SandboxProcess, client: httpx.Client
) -> None:
    assert _one_while_other_in_flight(tenants, client, "a", "b") == (200, 200)
    assert tenants.stats()["overlaps"] == {"a": _counters(0, 1), "b": _counters(0, 1)}


def test_rate_limited_request_counts_as_in_flight(
    tenants: SandboxProcess, client: httpx.Client
) -> None:
    tenants.set_limits(tenant_param="tenant", windows=[{"calls": 1, "per": 60}])
    assert _one_while_other_in_flight(tenants, client, "a", "a") == (200, 429)
    stats = tenants.stats()
    assert stats["limits"] == {"a": {"allowed": 1, "rejected": 1}}
    assert stats["overlaps"] == {"a": _counters(1, 2)}


def test_reset_stats_clears_overlaps(tenants: SandboxProcess, client: httpx.Client) -> None:
    _one_while_other_in_flight(tenants, client, "a", "a")
    assert tenants.stats()["overlaps"] == {"a": _counters(1, 2)}
    tenants.reset_stats()
    assert tenants.stats()["overlaps"] == {}
    tenants.clear_faults()
    assert _get(client, "a") == 200
    assert tenants.stats()["overlaps"] == {"a": _counters(0, 1)}


def test_no_overlaps_without_limits(tenants: SandboxProcess, client: httpx.Client) -> None:
    tenants.clear_limits()
    assert _get(client, "a") == 200
    assert "overlaps" not in tenants.stats()
