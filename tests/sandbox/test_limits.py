"""Per-tenant rate limits, observed the way a client would: httpx over a real socket.

Windows are short (0.5-0.6 s) so waiting one out keeps every test under ~2 s;
the exact boundaries are pinned down on a fake clock in ``test_limiter.py``.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncline.sandbox import SandboxProcess
from syncline.sandbox.server import READY_PREFIX

DATA = "/page/items"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "ratelimit", "ratelimit-policy")


@pytest.fixture
def limited(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The shared sandbox (reset, so without limits); limits are removed again afterwards."""
    assert sandbox.limits()["config"] is None
    yield sandbox
    sandbox.clear_limits()


@pytest.fixture
def client(limited: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited.base_url, timeout=5.0, trust_env=False) as http:
        yield http


def _get(client: httpx.Client, tenant: str | None = None, path: str = DATA) -> httpx.Response:
    params: dict[str, str | int] = {"per_page": 1, "limit": 1}
    if tenant is not None:
        params["tenant"] = tenant
    return client.get(path, params=params)


def _statuses(client: httpx.Client, n: int, tenant: str | None = None) -> list[int]:
    return [_get(client, tenant).status_code for _ in range(n)]


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def test_no_limits_by_default(limited: SandboxProcess, client: httpx.Client) -> None:
    assert limited.limits() == {"config": None, "tenants": {}, "usage": {}}
    response = _get(client)
    assert response.status_code == 200
    assert not set(RATE_HEADERS) & set(response.headers)
    assert "limits" not in limited.stats()


def test_sliding_window_rejects_then_allows_after_waiting(
    limited: SandboxProcess, client: httpx.Client
) -> None:
    limited.set_limits(windows=[{"calls": 2, "per": 0.6}])
    assert _statuses(client, 1) == [200]
    first_done = time.monotonic()
    time.sleep(0.3)
    assert _statuses(client, 1) == [200]
    rejected = _get(client)
    assert rejected.status_code == 429
    assert rejected.json() == {"error": "rate limit exceeded", "window": "2/0.6s"}
    assert rejected.headers["retry-after"] == "1"  # ceil of < 0.6 s
    # Once the first request left the window there is room for one, not two:
    # the second one (0.3 s later) still counts. A fixed window would allow both.
    _sleep_until(first_done + 0.62)
    assert _statuses(client, 2) == [200, 429]
    assert limited.limits()["tenants"] == {"": {"allowed": 3, "rejected": 2}}


def test_fixed_window_resets_at_the_boundary(limited: SandboxProcess, client: httpx.Client) -> None:
    limited.set_limits(windows=[{"calls": 2, "per": 0.6, "kind": "fixed", "name": "burst"}])
    assert _statuses(client, 2) == [200, 200]
    rejected = _get(client)
    assert (rejected.status_code, rejected.json()["window"]) == (429, "burst")
    assert rejected.headers["retry-after"] == "1"
    reset = limited.limits()["usage"][""]["burst"]["reset"]
    assert 0 < reset <= 0.6
    _sleep_until(time.monotonic() + reset + 0.03)
    # A new window: full quota again, though the last requests were < 0.6 s ago.
    assert _statuses(client, 3) == [200, 200, 429]


def test_rejected_requests_do_not_consume(limited: SandboxProcess, client: httpx.Client) -> None:
    limited.set_limits(windows=[{"calls": 2, "per": 0.5}])
    assert _statuses(client, 2) == [200, 200]
    done = time.monotonic()
    assert _statuses(client, 5) == [429] * 5  # hammering while limited ...
    _sleep_until(done + 0.52)
    assert _statuses(client, 3) == [200, 200, 429]  # ... costs nothing afterwards
    assert limited.limits()["tenants"] == {"": {"allowed": 4, "rejected": 6}}


def test_tenants_are_independent(limited: SandboxProcess, client: httpx.Client) -> None:
    limited.set_limits(tenant_param="tenant", windows=[{"calls": 2, "per": 60}])
    assert _statuses(client, 3, "a") == [200, 200, 429]
    assert _statuses(client, 1, "b") == [200]
    assert _statuses(client, 3) == [200, 200, 429]  # no tenant: the shared tenant ""
    assert _statuses(client, 1, "") == [429]  # an empty value is that same tenant
    counters = {
        "": {"allowed": 2, "rejected": 2},
        "a": {"allowed": 2, "rejected": 1},
        "b": {"allowed": 1, "rejected": 0},
    }
    assert limited.limits()["tenants"] == counters
    stats = limited.stats()
    assert stats["limits"] == counters
    assert stats["requests"] == {DATA: 8}  # rate-limited requests were still served


def test_tenant_from_a_path_segment(limited: SandboxProcess, client: httpx.Client) -> None:
    limited.set_limits(tenant_path_segment=0, windows=[{"calls": 1, "per": 60}])
    assert [_get(client, path=path).status_code for path in (DATA, DATA, "/offset/items")] == [
        200,
        429,
        200,
    ]
    assert limited.limits()["tenants"] == {
        "offset": {"allowed": 1, "rejected": 0},
        "page": {"allowed": 1, "rejected": 1},
    }


def test_x_ratelimit_headers_describe_the_strictest_window(
    limited: SandboxProcess, client: httpx.Client
) -> None:
    limited.set_limits(
        windows=[{"calls": 3, "per": 30, "kind": "fixed", "name": "long"}, {"calls": 5, "per": 1}],
        headers="x-ratelimit",
    )
    for remaining in (2, 1, 0):
        response = _get(client)
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "3"
        assert response.headers["x-ratelimit-remaining"] == str(remaining)
        assert 1 <= int(response.headers["x-ratelimit-reset"]) <= 30  # a delta, not epoch
    rejected = _get(client)
    assert rejected.status_code == 429
    assert rejected.headers["x-ratelimit-remaining"] == "0"
    assert rejected.headers["retry-after"] == rejected.headers["x-ratelimit-reset"]


def test_exact_online_headers(limited: SandboxProcess, client: httpx.Client) -> None:
    limited.set_limits(
        windows=[
            {"calls": 3, "per": 60, "name": "minutely"},
            {"calls": 100, "per": 86400, "kind": "fixed", "name": "daily"},
        ],
        headers="exact",
    )
    for step in (1, 2):
        before_ms = time.time() * 1000
        headers = _get(client).headers
        assert headers["x-ratelimit-limit"] == "100"
        assert headers["x-ratelimit-remaining"] == str(100 - step)
        assert headers["x-ratelimit-minutely-limit"] == "3"
        assert headers["x-ratelimit-minutely-remaining"] == str(3 - step)
        daily_reset = int(headers["x-ratelimit-reset"])  # epoch milliseconds
        minutely_reset = int(headers["x-ratelimit-minutely-reset"])
        assert before_ms < minutely_reset <= before_ms + 60_000 + 1000
        assert before_ms + 86_000_000 < daily_reset <= before_ms + 86_400_000 + 1000


def test_exact_headers_fall_back_to_the_longest_and_shortest_window(
    limited: SandboxProcess, client: httpx.Client
) -> None:
    limited.set_limits(
        windows=[{"calls": 50, "per": 3600}, {"calls": 5, "per": 10}], headers="exact"
    )
    headers = _get(client).headers
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("50", "49")
    minutely = (headers["x-ratelimit-minutely-limit"], headers["x-ratelimit-minutely-remaining"])
    assert minutely == ("5", "4")


def test_ietf_headers(limited: SandboxProcess, client: httpx.Client) -> None:
    limited.set_limits(
        windows=[
            {"calls": 2, "per": 0.5},
            {"calls": 100, "per": 86400, "kind": "fixed", "name": "daily"},
        ],
        headers="ietf",
    )
    policy = '"2/0.5s";q=2;w=0.5, "daily";q=100;w=86400'
    responses = [_get(client) for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 429]
    assert [response.headers["ratelimit-policy"] for response in responses] == [policy] * 3
    assert [response.headers["ratelimit"] for response in responses] == [
        '"2/0.5s";r=1;t=1',
        '"2/0.5s";r=0;t=1',
        '"2/0.5s";r=0;t=1',
    ]


def test_no_headers_no_retry_after_and_403(limited: SandboxProcess, client: httpx.Client) -> None:
    limited.set_limits(
        windows=[{"calls": 1, "per": 60}], headers="none", retry_after=False, status=403
    )
    assert limited.limits()["config"]["headers"] is None
    assert _get(client).status_code == 200
    rejected = _get(client)
    assert rejected.status_code == 403
    assert rejected.json() == {"error": "rate limit exceeded", "window": "1/60s"}
    assert not {*RATE_HEADERS, "retry-after"} & set(rejected.headers)


def test_limits_come_before_faults(limited: SandboxProcess, client: httpx.Client) -> None:
    limited.set_faults(schedule=[{"at": 1, "kind": "500"}, {"at": 2, "kind": "503"}])
    try:
        limited.set_limits(windows=[{"calls": 1, "per": 60}], headers="x-ratelimit")
        faulted = _get(client)  # allowed, so it may still get a fault ...
        assert faulted.status_code == 500
        assert faulted.headers["x-ratelimit-remaining"] == "0"  # ... and still has the headers
        assert _get(client).status_code == 429  # rejected: no fault, not even counted
        assert limited.faults()["data_requests"] == 1
        limited.clear_limits()
        assert _get(client).status_code == 503  # the fault schedule's request 2
    finally:
        limited.clear_faults()


def test_reset_windows_is_the_next_day(limited: SandboxProcess, client: httpx.Client) -> None:
    snapshot = limited.set_limits(
        windows=[{"calls": 2, "per": 86400, "kind": "fixed", "name": "daily"}]
    )
    assert _statuses(client, 3) == [200, 200, 429]
    limited.reset_limit_windows()
    after = limited.limits()
    assert after["config"] == snapshot["config"]
    assert after["usage"][""]["daily"]["used"] == 0
    assert after["tenants"] == {"": {"allowed": 2, "rejected": 1}}  # counters are kept
    assert _statuses(client, 3) == [200, 200, 429]


def test_admin_api_validation_and_clearing(limited: SandboxProcess, client: httpx.Client) -> None:
    bad_bodies: list[tuple[Any, str]] = [
        ({"windows": [{"calls": 0, "per": 1}]}, "windows[0].calls must be an integer >= 1, got 0"),
        ({"windows": [{"calls": 1, "per": "1s"}]}, "windows[0].per must be a number of seconds"),
        ({"windows": [{"calls": 1, "per": 1, "kind": "bucket"}]}, "windows[0].kind must be one of"),
        ({"windows": [{"calls": 1, "per": 1}], "headers": "github"}, "headers must be one of"),
        ({"windows": [{"calls": 1, "per": 1}], "status": 418}, "status must be one of [429, 403]"),
        (
            {"windows": [{"calls": 1, "per": 1}], "tenant_param": "t", "tenant_path_segment": 0},
            "only one of tenant_param and tenant_path_segment may be set",
        ),
        ({"tenant_param": "t"}, "limits need 'windows'"),
        ([{"calls": 1, "per": 1}], "body must be a JSON object"),
    ]
    for body, message in bad_bodies:
        response = client.post("/_admin/limits", json=body)
        assert response.status_code == 400, body
        assert message in response.json()["error"], body
    assert limited.limits()["config"] is None  # a bad config never replaces the running one
    with pytest.raises(httpx.HTTPStatusError):
        limited.set_limits(windows=[])

    snapshot = limited.set_limits(windows=[{"calls": 1, "per": 60}])
    assert snapshot == {
        "config": {
            "tenant_param": None,
            "tenant_path_segment": None,
            "windows": [{"calls": 1, "per": 60, "kind": "sliding", "name": "1/60s"}],
            "headers": None,
            "retry_after": True,
            "status": 429,
        },
        "tenants": {},
        "usage": {},
    }
    assert _statuses(client, 2) == [200, 429]
    # Admin endpoints are never limited (nor counted).
    assert all(client.get("/_admin/records").status_code == 200 for _ in range(3))
    assert limited.limits()["tenants"] == {"": {"allowed": 1, "rejected": 1}}

    assert client.delete("/_admin/limits").json() == {"config": None, "tenants": {}, "usage": {}}
    assert _statuses(client, 2) == [200, 200]
    limited.set_limits(windows=[{"calls": 1, "per": 60}])
    assert client.post("/_admin/limits", json={}).json()["config"] is None
    limited.set_limits(windows=[{"calls": 1, "per": 60}])
    limited.admin_reset()
    assert limited.limits()["config"] is None
    assert _statuses(client, 2) == [200, 200]


def test_oauth_token_endpoint_and_refused_requests_are_not_limited() -> None:
    with SandboxProcess(records=5, oauth_client=("id", "secret")) as server:
        server.set_limits(windows=[{"calls": 1, "per": 60}])
        with httpx.Client(base_url=server.base_url, timeout=5.0, trust_env=False) as http:
            form = {"grant_type": "client_credentials"}
            tokens = [http.post("/oauth/token", data=form, auth=("id", "secret")) for _ in range(3)]
            assert [response.status_code for response in tokens] == [200, 200, 200]
            assert http.get(DATA).status_code == 401  # refused by the gate: costs nothing
            auth = {"Authorization": f"Bearer {tokens[0].json()['access_token']}"}
            assert [http.get(DATA, headers=auth).status_code for _ in range(2)] == [200, 429]
        assert server.limits()["tenants"] == {"": {"allowed": 1, "rejected": 1}}


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "syncline.sandbox", "--port", "0", "--records", "10", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    line = lines.get(timeout=20)
    assert line.startswith(READY_PREFIX), line
    return proc, line[len(READY_PREFIX) :].strip()


def test_cli_starts_with_limits_configured() -> None:
    limit_args = ["--limit", "2/60", "--limit", "100/86400:fixed", "--limit-tenant-param", "t"]
    proc, base_url = _start([*limit_args, "--limit-headers", "ietf"])
    try:
        with httpx.Client(base_url=base_url, timeout=5.0, trust_env=False) as http:
            assert [http.get(DATA, params={"t": "x"}).status_code for _ in range(3)] == [
                200,
                200,
                429,
            ]
            assert http.get(DATA, params={"t": "y"}).headers["ratelimit"] == '"2/60s";r=1;t=60'
            config = http.get("/_admin/limits").json()["config"]
            assert config["tenant_param"] == "t"
            assert config["headers"] == "ietf"
            assert [(w["calls"], w["per"], w["kind"]) for w in config["windows"]] == [
                (2, 60, "sliding"),
                (100, 86400, "fixed"),
            ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "2/x"], "--limit must be CALLS/SECONDS"),
        (["--limit", "2/1:leaky"], "--limit must be CALLS/SECONDS"),
        (["--limit", "0/1"], "calls must be an integer >= 1"),
        (["--limit-headers", "ietf"], "need --limit"),
    ],
)
def test_cli_rejects_bad_limit_flags(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syncline.sandbox", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
