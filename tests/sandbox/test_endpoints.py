"""Real-socket tests: a sandbox child process, walked with httpx like a client would."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from syncline.sandbox import SandboxProcess, serve

RECORDS = 2345
SIZES = [1, 7, 100, 1000]
MAX_REQUESTS = 5000  # every walk below is bounded by this many requests
GRAPHQL_QUERY = """
query Items($first: Int, $after: String, $since: String) {
  items(first: $first, after: $after, updatedSince: $since) {
    nodes { id sku name tags attributes { color size weight } updated_at version }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""

Walk = tuple[list[dict[str, Any]], int]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(records=RECORDS, seed=7) as process:
        yield process


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    sandbox.admin_reset()
    with httpx.Client(base_url=sandbox.base_url, timeout=10.0, trust_env=False) as http:
        yield http


def _get(client: httpx.Client, url: str, **params: Any) -> httpx.Response:
    # Only pass params when there are some: httpx would drop a URL's own query.
    query = {k: v for k, v in params.items() if v is not None}
    response = client.get(url, params=query) if query else client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response


def walk_page(client: httpx.Client, size: int, since: str | None = None) -> Walk:
    items: list[dict[str, Any]] = []
    for page in range(1, MAX_REQUESTS + 1):
        body = _get(client, "/page/items", page=page, per_page=size, updated_since=since).json()
        items += body["data"]
        if not body["has_more"]:
            return items, page
    raise AssertionError("walk did not end")


def walk_page0(client: httpx.Client, size: int, since: str | None = None) -> Walk:
    items: list[dict[str, Any]] = []
    for page in range(MAX_REQUESTS):
        body = _get(client, "/page0/items", page=page, size=size, updated_since=since).json()
        items += body["content"]
        if body["number"] + 1 >= body["total_pages"]:
            return items, page + 1
    raise AssertionError("walk did not end")


def walk_offset(client: httpx.Client, size: int, since: str | None = None) -> Walk:
    items: list[dict[str, Any]] = []
    for request in range(1, MAX_REQUESTS + 1):
        body = _get(client, "/offset/items", offset=len(items), limit=size, updated_since=since)
        items += body.json()["items"]
        if len(items) >= body.json()["total"]:
            return items, request
    raise AssertionError("walk did not end")


def walk_cursor(client: httpx.Client, size: int, since: str | None = None) -> Walk:
    items: list[dict[str, Any]] = []
    cursor = None
    for request in range(1, MAX_REQUESTS + 1):
        body = _get(client, "/cursor/items", cursor=cursor, limit=size, updated_since=since).json()
        items += body["items"]
        cursor = body["next_cursor"]
        assert body["has_more"] is (cursor is not None)
        if cursor is None:
            return items, request
    raise AssertionError("walk did not end")


def walk_link(client: httpx.Client, size: int, since: str | None = None) -> Walk:
    items: list[dict[str, Any]] = []
    response = _get(client, "/link/items", per_page=size, updated_since=since)
    for request in range(1, MAX_REQUESTS + 1):
        items += response.json()
        match = re.search(r'<([^>]+)>; rel="next"', response.headers["link"])
        if match is None:
            return items, request
        assert match.group(1).startswith("/link/items?")
        response = _get(client, match.group(1))
    raise AssertionError("walk did not end")


def walk_next(client: httpx.Client, size: int, since: str | None = None) -> Walk:
    items: list[dict[str, Any]] = []
    response = _get(client, "/next/items", limit=size, updated_since=since)
    for request in range(1, MAX_REQUESTS + 1):
        body = response.json()
        items += body["_embedded"]["items"]
        if "next" not in body["_links"]:
            return items, request
        href = body["_links"]["next"]["href"]
        assert href.startswith(str(client.base_url).rstrip("/") + "/next/items?")
        response = _get(client, href)
    raise AssertionError("walk did not end")


def walk_graphql(client: httpx.Client, size: int, since: str | None = None) -> Walk:
    items: list[dict[str, Any]] = []
    variables: dict[str, Any] = {"first": size, "after": None, "since": since}
    for request in range(1, MAX_REQUESTS + 1):
        response = client.post("/graphql", json={"query": GRAPHQL_QUERY, "variables": variables})
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body, body
        connection = body["data"]["items"]
        items += connection["nodes"]
        if not connection["pageInfo"]["hasNextPage"]:
            return items, request
        variables["after"] = connection["pageInfo"]["endCursor"]
    raise AssertionError("walk did not end")


def walk_none(client: httpx.Client, _size: int, since: str | None = None) -> Walk:
    return _get(client, "/none/items", updated_since=since).json()["items"], 1


WALKERS: dict[str, tuple[str, Callable[..., Walk]]] = {
    "page": ("/page/items", walk_page),
    "page0": ("/page0/items", walk_page0),
    "offset": ("/offset/items", walk_offset),
    "cursor": ("/cursor/items", walk_cursor),
    "link": ("/link/items", walk_link),
    "next": ("/next/items", walk_next),
    "graphql": ("/graphql", walk_graphql),
    "none": ("/none/items", walk_none),
}


WALK_CASES = [(style, size) for style in sorted(WALKERS) if style != "none" for size in SIZES]


@pytest.mark.parametrize(("style", "size"), [*WALK_CASES, ("none", 0)])
def test_walk_yields_every_id_once(
    client: httpx.Client, sandbox: SandboxProcess, style: str, size: int
) -> None:
    path, walker = WALKERS[style]
    items, requests = walker(client, size)
    assert [item["id"] for item in items] == list(range(1, RECORDS + 1))
    expected = 1 if style == "none" else math.ceil(RECORDS / size)
    assert requests == expected
    assert sandbox.stats() == {"requests": {path: expected}, "total": expected}


@pytest.mark.parametrize("size", SIZES)
def test_changes_feed_walk_ends_with_an_empty_page(client: httpx.Client, size: int) -> None:
    seqs: list[int] = []
    since = 0
    for request in range(1, MAX_REQUESTS + 1):  # noqa: B007 - checked after the loop
        body = _get(client, "/changes", since=since, limit=size).json()
        if not body["results"]:
            assert body["last_seq"] == since
            break
        seqs += [entry["seq"] for entry in body["results"]]
        assert body["last_seq"] == seqs[-1]
        since = body["last_seq"]
    assert seqs == list(range(1, RECORDS + 1))
    assert request == math.ceil(RECORDS / size) + 1


def test_changes_feed_reports_updates_inserts_and_tombstones(
    client: httpx.Client, sandbox: SandboxProcess
) -> None:
    change = sandbox.mutate(update=5, insert=2, delete=3)
    body = _get(client, "/changes", since=RECORDS, limit=1000).json()
    results = body["results"]
    assert [entry["seq"] for entry in results] == list(range(RECORDS + 1, RECORDS + 11))
    assert [e["id"] for e in results if e.get("deleted")] == change["deleted"]
    live = [e["id"] for e in results if not e.get("deleted")]
    assert live == change["updated"] + change["inserted"]
    assert all(e["updated_at"].endswith("Z") for e in results)
    assert _get(client, "/changes", since=body["last_seq"]).json() == {
        "results": [],
        "last_seq": body["last_seq"],
    }


@pytest.mark.parametrize("style", sorted(WALKERS))
def test_updated_since_returns_only_changed_records(
    client: httpx.Client, sandbox: SandboxProcess, style: str
) -> None:
    change = sandbox.mutate(update=37, insert=5, delete=3)
    since = "2024-01-01T00:39:06Z"  # base records end at 00:39:05 (id 2345)
    items, _ = WALKERS[style][1](client, 7, since)
    assert [item["id"] for item in items] == change["updated"] + change["inserted"]
    assert all(item["updated_at"] >= since for item in items)
    same_instant = "2024-01-01T02:39:06+02:00"
    assert WALKERS[style][1](client, 100, same_instant)[0] == items


def test_invalid_updated_since_is_a_400(client: httpx.Client) -> None:
    response = client.get("/page/items", params={"updated_since": "last tuesday"})
    assert response.status_code == 400
    assert "updated_since" in response.json()["error"]


def _keyset_page(
    client: httpx.Client, style: str, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of 100 from a keyset endpoint, and the token for the next one."""
    if style == "cursor":
        body = _get(client, "/cursor/items", cursor=cursor, limit=100).json()
        return body["items"], body["next_cursor"]
    if style == "next":
        body = _get(client, cursor or "/next/items?limit=100").json()
        return body["_embedded"]["items"], body["_links"].get("next", {}).get("href")
    variables = {"first": 100, "after": cursor}
    body = client.post("/graphql", json={"query": GRAPHQL_QUERY, "variables": variables}).json()
    connection = body["data"]["items"]
    has_next = connection["pageInfo"]["hasNextPage"]
    return connection["nodes"], connection["pageInfo"]["endCursor"] if has_next else None


@pytest.mark.parametrize("style", ["cursor", "next", "graphql"])
def test_keyset_walk_is_stable_across_a_mutation(
    client: httpx.Client, sandbox: SandboxProcess, style: str
) -> None:
    """Changes mid-walk: nothing unchanged is skipped or repeated."""
    cursor: str | None = None
    seen: list[dict[str, Any]] = []
    for _ in range(5):
        page, cursor = _keyset_page(client, style, cursor)
        seen += page
    last_key = (seen[-1]["updated_at"], seen[-1]["id"])
    change = sandbox.mutate(update=50, insert=10, delete=20)
    current = sorted(sandbox.records(), key=lambda record: (record["updated_at"], record["id"]))
    rest: list[int] = []
    for _ in range(MAX_REQUESTS):
        if cursor is None:
            break
        page, cursor = _keyset_page(client, style, cursor)
        rest += [item["id"] for item in page]
    assert rest == [r["id"] for r in current if (r["updated_at"], r["id"]) > last_key]
    unchanged = set(range(1, RECORDS + 1)) - set(change["updated"]) - set(change["deleted"])
    walked = [item["id"] for item in seen] + rest
    assert all(walked.count(rid) == 1 for rid in unchanged)
    assert set(change["updated"]) | set(change["inserted"]) <= set(rest)
    assert not set(change["deleted"]) & set(rest)


def test_garbled_cursor_is_a_400(client: httpx.Client) -> None:
    for url in ("/cursor/items?cursor=not-a-cursor", "/next/items?after=%%%"):
        response = client.get(url)
        assert response.status_code == 400
        assert "cursor" in response.json()["error"]


def test_page_sizes_are_capped_and_pages_past_the_end_are_empty(client: httpx.Client) -> None:
    body = _get(client, "/page/items", per_page=5000).json()
    assert (len(body["data"]), body["per_page"], body["last_page"]) == (1000, 1000, 3)
    assert _get(client, "/page/items", page=99, per_page=1000).json()["data"] == []
    assert len(_get(client, "/offset/items", limit=10**9).json()["items"]) == 1000
    body = _get(client, "/page0/items", page=3, size=1000).json()
    assert (body["content"], body["total_pages"], body["total_elements"]) == ([], 3, RECORDS)
    assert client.get("/page/items", params={"per_page": 0}).status_code == 400
    assert client.get("/offset/items", params={"offset": "x"}).status_code == 400


def test_link_header_preserves_updated_since(client: httpx.Client) -> None:
    since = "2024-01-01T00:20:00Z"
    response = _get(client, "/link/items", per_page=500, updated_since=since)
    link = response.headers["link"]
    encoded = "updated_since=2024-01-01T00%3A20%3A00Z"
    assert f'</link/items?page=2&per_page=500&{encoded}>; rel="next"' in link
    assert f'</link/items?page=3&per_page=500&{encoded}>; rel="last"' in link
    last = _get(client, "/link/items", page=3, per_page=500, updated_since=since)
    assert 'rel="next"' not in last.headers["link"]


def test_graphql_relay_details_and_errors(client: httpx.Client) -> None:
    query = "{ items(first: 5000) { nodes { id } pageInfo { hasNextPage endCursor } totalCount } }"
    body = client.post("/graphql", json={"query": query}).json()
    connection = body["data"]["items"]
    assert len(connection["nodes"]) == 1000
    assert connection["totalCount"] == RECORDS
    assert connection["pageInfo"]["hasNextPage"] is True

    invalid = client.post("/graphql", json={"query": "{ items { nope } }"})
    assert invalid.status_code == 200
    assert "data" not in invalid.json()
    assert "nope" in invalid.json()["errors"][0]["message"]

    bad_cursor = client.post(
        "/graphql", json={"query": GRAPHQL_QUERY, "variables": {"after": "garbage"}}
    )
    assert bad_cursor.status_code == 200
    assert bad_cursor.json()["data"] is None
    assert bad_cursor.json()["errors"][0]["path"] == ["items"]

    assert client.post("/graphql", content=b"{not json").status_code == 400
    empty = '{ items(updatedSince: "2030-01-01T00:00Z") { nodes { id } pageInfo { endCursor } } }'
    connection = client.post("/graphql", json={"query": empty}).json()["data"]["items"]
    assert connection == {"nodes": [], "pageInfo": {"endCursor": None}}


def test_admin_records_and_stats(client: httpx.Client, sandbox: SandboxProcess) -> None:
    records = sandbox.records()
    assert [record["id"] for record in records] == list(range(1, RECORDS + 1))
    assert records == _get(client, "/none/items").json()["items"]
    _get(client, "/page/items")
    client.post("/graphql", json={"query": "{ items { totalCount } }"})
    assert sandbox.stats() == {
        "requests": {"/graphql": 1, "/none/items": 1, "/page/items": 1},
        "total": 3,
    }
    sandbox.reset_stats()
    assert sandbox.stats() == {"requests": {}, "total": 0}
    assert sandbox.admin_reset(records=10, seed=1) == {"records": 10, "seed": 1}
    assert _get(client, "/offset/items").json()["total"] == 10
    assert sandbox.admin_reset() == {"records": RECORDS, "seed": 7}
    assert client.post("/_admin/mutate", json={"delete": 10**6}).status_code == 400


def test_token_is_required_on_data_endpoints_only() -> None:
    with (
        SandboxProcess(records=10, token="s3cret") as guarded,
        httpx.Client(base_url=guarded.base_url, timeout=10.0, trust_env=False) as http,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = http.get("/page/items", headers=headers)
            assert response.status_code == 401
            assert response.json() == {"error": "unauthorized"}
        assert http.post("/graphql", json={"query": "{ items { totalCount } }"}).status_code == 401
        ok = http.get("/page/items", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert ok.json()["total"] == 10
        assert len(guarded.records()) == 10  # admin needs no token
        assert guarded.stats() == {"requests": {"/page/items": 1}, "total": 1}


def test_startup_failure_is_reported_with_the_child_stderr() -> None:
    broken = SandboxProcess(records=-1, startup_timeout=20.0)
    with pytest.raises(RuntimeError, match="records must be >= 0"):
        broken.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = broken.base_url


def test_serve_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve(host="0.0.0.0", port=0)
