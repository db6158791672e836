"""Fault injection, observed the way a client would: httpx over a real socket."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import pytest

from syncline.sandbox import SandboxProcess
from syncline.sandbox.server import READY_PREFIX

GRAPHQL_QUERY = """
query Items($first: Int, $after: String) {
  items(first: $first, after: $after) {
    nodes { id name }
    pageInfo { hasNextPage endCursor }
  }
}
"""


@pytest.fixture
def faulty(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The shared sandbox (reset, so fault-free); faults are cleared again afterwards."""
    assert sandbox.faults()["config"] is None
    yield sandbox
    sandbox.clear_faults()


@pytest.fixture
def client(faulty: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=faulty.base_url, timeout=5.0, trust_env=False) as http:
        yield http


def _graphql(client: httpx.Client, after: str | None = None) -> httpx.Response:
    variables = {"first": 3, "after": after}
    return client.post("/graphql", json={"query": GRAPHQL_QUERY, "variables": variables})


def test_no_faults_by_default(faulty: SandboxProcess, client: httpx.Client) -> None:
    assert faulty.faults() == {"config": None, "injected": {}, "data_requests": 0}
    assert client.get("/page/items").status_code == 200
    assert "faults" not in faulty.stats()
    assert faulty.faults()["data_requests"] == 0  # nothing is counted while off


STATUS_CASES = [
    ("429", 429, {}),
    ("429_retry_after", 429, {"retry-after": "1"}),
    ("403_retry_after", 403, {"retry-after": "1"}),
    ("403_remaining_zero", 403, {"x-ratelimit-remaining": "0"}),
    ("500", 500, {}),
    ("502", 502, {}),
    ("503", 503, {}),
    ("504", 504, {}),
]


@pytest.mark.parametrize(("kind", "status", "headers"), STATUS_CASES)
def test_status_faults(
    faulty: SandboxProcess,
    client: httpx.Client,
    kind: str,
    status: int,
    headers: dict[str, str],
) -> None:
    faulty.set_faults(schedule=[{"at": 1, "kind": kind}])
    response = client.get("/page/items", params={"per_page": 5})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}
    for name, value in headers.items():
        assert response.headers[name] == value
    if "retry-after" not in headers:
        assert "retry-after" not in response.headers
    # Only the scheduled request fails; the counters say what happened.
    assert client.get("/page/items", params={"per_page": 5}).status_code == 200
    assert faulty.faults()["injected"] == {kind: 1}
    assert faulty.faults()["data_requests"] == 2
    assert faulty.stats()["faults"] == {kind: 1}


def test_retry_after_value_is_configurable(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(schedule=[{"at": 1, "kind": "429_retry_after", "count": 3}], retry_after=0.25)
    assert client.get("/offset/items").headers["retry-after"] == "0.25"
    faulty.set_faults(schedule=[{"at": 1, "kind": "403_retry_after"}], retry_after="7")
    assert client.get("/offset/items").headers["retry-after"] == "7"


def test_retry_after_as_http_date_agrees_with_a_single_date_header(
    faulty: SandboxProcess, client: httpx.Client
) -> None:
    faulty.set_faults(schedule=[{"at": 1, "kind": "429_retry_after_date"}], retry_after=2)
    before = time.time()
    response = client.get("/cursor/items")
    assert response.status_code == 429
    assert len(response.headers.get_list("date")) == 1
    date = parsedate_to_datetime(response.headers["date"]).timestamp()
    retry_at = parsedate_to_datetime(response.headers["retry-after"]).timestamp()
    assert retry_at - date == 2
    assert before - 1 <= date <= time.time()
    # Normal responses still carry exactly one Date header.
    assert len(client.get("/cursor/items").headers.get_list("date")) == 1


def test_truncated_body_is_a_protocol_error(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(schedule=[{"at": 1, "kind": "truncated"}])
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        client.get("/page/items", params={"per_page": 50})
    ok = client.get("/page/items", params={"per_page": 50})  # a fresh connection works
    assert ok.status_code == 200
    assert len(ok.json()["data"]) == 50
    assert faulty.faults()["injected"] == {"truncated": 1}


def test_reset_drops_the_connection_mid_response(
    faulty: SandboxProcess, client: httpx.Client
) -> None:
    faulty.set_faults(schedule=[{"at": 1, "kind": "reset"}])
    with pytest.raises(httpx.TransportError):
        client.get("/none/items")
    assert client.get("/none/items").status_code == 200
    assert faulty.faults()["injected"] == {"reset": 1}


def test_html_login_page_with_status_200(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(schedule=[{"at": 1, "kind": "html"}])
    response = client.get("/page/items")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<form" in response.text
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_malformed_json_is_the_real_body_cut_in_half(
    faulty: SandboxProcess, client: httpx.Client
) -> None:
    faulty.set_faults(schedule=[{"at": 2, "kind": "malformed_json"}])
    real = client.get("/offset/items", params={"limit": 7}).content
    broken = client.get("/offset/items", params={"limit": 7})
    assert broken.status_code == 200
    assert broken.headers["content-type"] == "application/json"
    assert broken.content == real[: len(real) // 2]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(broken.content)


def test_repeat_cursor(faulty: SandboxProcess, client: httpx.Client) -> None:
    # The first /cursor/items page has no cursor to repeat: not injected.
    faulty.set_faults(schedule=[{"at": 1, "kind": "repeat_cursor", "count": 2}])
    first = client.get("/cursor/items", params={"limit": 5}).json()
    assert faulty.faults()["injected"] == {}
    cursor = first["next_cursor"]
    again = client.get("/cursor/items", params={"limit": 5, "cursor": cursor}).json()
    assert again["next_cursor"] == cursor
    assert again["has_more"] is True
    assert again["items"][0]["id"] == 6  # the page itself is real

    faulty.set_faults(schedule=[{"at": 1, "kind": "repeat_cursor"}])
    page = client.get("/next/items", params={"limit": 5})
    assert page.json()["_links"]["next"]["href"] == str(page.url)
    assert faulty.faults()["injected"] == {"repeat_cursor": 1}


def test_cyclic_link(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(schedule=[{"at": 2, "kind": "cyclic_link", "count": 3}])
    first = client.get("/next/items", params={"limit": 5})
    second = client.get(first.json()["_links"]["next"]["href"])
    assert second.json()["_embedded"]["items"][0]["id"] == 6
    assert second.json()["_links"]["next"]["href"] == str(first.url)

    page = client.get("/link/items", params={"page": 3, "per_page": 4})
    assert [item["id"] for item in page.json()] == [9, 10, 11, 12]
    assert page.links["next"]["url"] == "/link/items?page=1&per_page=4"
    assert page.links["last"]["url"] == "/link/items?page=587&per_page=4"
    # On the last page there was no next link; the cycle adds one.
    last = client.get("/link/items", params={"page": 587, "per_page": 4})
    assert last.links["next"]["url"] == "/link/items?page=1&per_page=4"
    assert faulty.faults()["injected"] == {"cyclic_link": 3}


def test_cross_origin_link(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(schedule=[{"at": 1, "kind": "cross_origin_link", "count": 2}])
    href = client.get("/next/items", params={"limit": 5}).json()["_links"]["next"]["href"]
    assert href.startswith("http://169.254.169.254/next/items?after=")
    assert href.endswith("&limit=5")
    link = client.get("/link/items", params={"per_page": 4}).links["next"]["url"]
    assert link == "https://evil.example/link/items?page=2&per_page=4"
    assert faulty.faults()["injected"] == {"cross_origin_link": 2}


def test_graphql_faults(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(
        schedule=[
            {"at": 1, "kind": "graphql_errors"},
            {"at": 2, "kind": "graphql_throttled"},
        ]
    )
    partial = _graphql(client)
    assert partial.status_code == 200
    body = partial.json()
    assert [node["id"] for node in body["data"]["items"]["nodes"]] == [1, 2, 3]
    assert body["errors"] == [{"message": "partial failure", "path": ["items"]}]
    throttled = _graphql(client)
    assert throttled.status_code == 200
    assert throttled.json() == {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "throttleStatus": {
                    "maximumAvailable": 1000,
                    "currentlyAvailable": 0,
                    "restoreRate": 50,
                }
            }
        },
    }
    assert faulty.faults()["injected"] == {"graphql_errors": 1, "graphql_throttled": 1}


def test_kinds_that_do_not_apply_are_not_injected(
    faulty: SandboxProcess, client: httpx.Client
) -> None:
    faulty.set_faults(rate=1.0, kinds=["cyclic_link", "graphql_throttled", "repeat_cursor"])
    for _ in range(5):
        response = client.get("/page/items", params={"per_page": 2})
        assert response.status_code == 200
        assert response.json()["has_more"] is True
    assert faulty.faults() | {"config": None} == {
        "config": None,
        "injected": {},
        "data_requests": 5,
    }


def _statuses(client: httpx.Client, n: int) -> list[int]:
    paths = ["/page/items", "/offset/items", "/cursor/items", "/changes"]
    return [client.get(paths[i % len(paths)], params={"limit": 1}).status_code for i in range(n)]


def test_random_faults_are_deterministic_per_seed(
    faulty: SandboxProcess, client: httpx.Client
) -> None:
    config: dict[str, Any] = {"rate": 0.4, "kinds": ["500", "503", "429"]}
    faulty.set_faults(seed=11, **config)
    first = _statuses(client, 60)
    injected = faulty.faults()["injected"]
    faulty.set_faults(seed=11, **config)  # replacing the config restarts the dice and counters
    assert _statuses(client, 60) == first
    assert faulty.faults()["injected"] == injected
    assert sum(injected.values()) == sum(status != 200 for status in first)
    assert set(injected) == {"500", "503", "429"}
    assert 10 <= sum(injected.values()) <= 40  # rate 0.4 of 60
    faulty.set_faults(seed=12, **config)
    assert _statuses(client, 60) != first


def test_schedule_wins_over_rate_and_filters_by_path(
    faulty: SandboxProcess, client: httpx.Client
) -> None:
    faulty.set_faults(
        rate=1.0,
        kinds=["503"],
        schedule=[
            {"at": 1, "kind": "500"},
            {"at": 2, "kind": "502", "count": 2, "path": "/offset/items"},
        ],
    )
    got = [
        client.get("/page/items").status_code,  # request 1: schedule "at 1"
        client.get("/offset/items").status_code,  # offset request 1: rate
        client.get("/page/items").status_code,  # rate
        client.get("/offset/items").status_code,  # offset request 2: schedule
        client.get("/offset/items").status_code,  # offset request 3: schedule
        client.get("/offset/items").status_code,  # rate again
    ]
    assert got == [500, 503, 503, 502, 502, 503]
    assert faulty.faults()["injected"] == {"500": 1, "502": 2, "503": 3}
    assert faulty.faults()["data_requests"] == 6


def test_latency_delays_data_requests_only(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(latency_ms=200)
    started = time.perf_counter()
    assert client.get("/page/items", params={"per_page": 1}).status_code == 200
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    faulty.stats()
    assert time.perf_counter() - started < 0.2


def test_unauthorized_after(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(unauthorized_after=2)
    assert [client.get("/page/items").status_code for _ in range(2)] == [200, 200]
    for _ in range(2):
        response = client.get("/page/items")
        assert response.status_code == 401
        assert response.json() == {"error": "token expired"}
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert faulty.faults()["injected"] == {"unauthorized": 2}
    faulty.clear_faults()
    assert client.get("/page/items").status_code == 200


def test_missing_keys(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(missing_key_rate=1.0)
    items = client.get("/offset/items", params={"limit": 20}).json()["items"]
    assert len(items) == 20
    assert all("id" not in item and "sku" in item for item in items)

    faulty.set_faults(missing_key_rate=0.5, seed=3)
    pages = [client.get("/page/items", params={"page": p}).json()["data"] for p in (1, 2)]
    missing = sum("id" not in item for page in pages for item in page)
    assert 50 <= missing <= 150
    assert faulty.faults()["injected"] == {"missing_key": missing}
    faulty.set_faults(missing_key_rate=0.5, seed=3)
    again = [client.get("/page/items", params={"page": p}).json()["data"] for p in (1, 2)]
    assert again == pages


def test_duplicate_across_pages(faulty: SandboxProcess, client: httpx.Client) -> None:
    faulty.set_faults(duplicate_across_pages=True)
    pages = [
        client.get("/page/items", params={"page": p, "per_page": 10}).json()["data"]
        for p in (1, 2, 3)
    ]
    assert [len(page) for page in pages] == [10, 11, 11]
    assert pages[1][0] == pages[0][-1]
    assert pages[2][0] == pages[1][-1]
    assert [item["id"] for item in pages[2]] == [20, *range(21, 31)]
    # GraphQL: the copy has the same (projected) fields as the original node.
    first = _graphql(client).json()["data"]["items"]
    second = _graphql(client, first["pageInfo"]["endCursor"]).json()["data"]["items"]
    assert second["nodes"][0] == first["nodes"][-1] == {"id": 3, "name": first["nodes"][-1]["name"]}
    assert faulty.faults()["injected"] == {"duplicate_across_pages": 3}


def test_admin_validation_and_clearing(faulty: SandboxProcess, client: httpx.Client) -> None:
    bad_bodies: list[dict[str, Any]] = [
        {"kinds": ["418"]},
        {"rate": 0.5},
        {"rate": 1.5, "kinds": ["500"]},
        {"latency": 5},
        {"schedule": [{"kind": "500"}]},
        {"schedule": [{"at": 0, "kind": "500"}]},
        {"schedule": [{"at": 1, "kind": "500", "path": "/_admin/stats"}]},
        {"schedule": [{"at": 1, "kind": "429_retry_after_date"}], "retry_after": "soon"},
        {"duplicate_across_pages": "yes"},
    ]
    for body in bad_bodies:
        response = client.post("/_admin/faults", json=body)
        assert response.status_code == 400, body
        assert "error" in response.json()
    with pytest.raises(httpx.HTTPStatusError):
        faulty.set_faults(kinds=["nope"])

    snapshot = faulty.set_faults(rate=1.0, kinds=["500"], seed=5)
    assert snapshot["config"]["kinds"] == ["500"]
    assert snapshot["injected"] == {}
    assert client.get("/page/items").status_code == 500
    # Faults never touch the admin API.
    assert client.get("/_admin/records").status_code == 200
    assert faulty.stats()["faults"] == {"500": 1}

    assert client.post("/_admin/faults", json={}).json()["config"] is None
    assert client.get("/page/items").status_code == 200
    faulty.set_faults(rate=1.0, kinds=["500"])
    assert client.delete("/_admin/faults").json() == {
        "config": None,
        "injected": {},
        "data_requests": 0,
    }
    faulty.set_faults(rate=1.0, kinds=["500"])
    faulty.admin_reset()
    assert faulty.faults()["config"] is None
    assert client.get("/page/items").status_code == 200


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "syncline.sandbox", "--port", "0", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    line = lines.get(timeout=20)
    assert line.startswith(READY_PREFIX), line
    return proc, line[len(READY_PREFIX) :].strip()


def test_cli_starts_with_faults_configured() -> None:
    args = ["--records", "10", "--fault-rate", "1", "--fault-kinds", "503,504"]
    proc, base_url = _start([*args, "--fault-seed", "4", "--latency-ms", "1"])
    try:
        with httpx.Client(base_url=base_url, timeout=5.0, trust_env=False) as http:
            statuses = {http.get("/page/items").status_code for _ in range(20)}
            assert statuses == {503, 504}
            config = http.get("/_admin/faults").json()["config"]
            assert config["kinds"] == ["503", "504"]
            assert (config["rate"], config["seed"], config["latency_ms"]) == (1.0, 4, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_cli_rejects_bad_fault_flags() -> None:
    command = [sys.executable, "-m", "syncline.sandbox", "--port", "0"]
    result = subprocess.run(
        [*command, "--fault-rate", "0.5", "--fault-kinds", "500,teapot"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert "teapot" in result.stderr
