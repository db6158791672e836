"""The Exact Online emulation: OData pages, the sync API, PUT and per-division rate limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncline.sandbox import SandboxProcess

API = "exact"
TOKEN = {"Authorization": "Bearer exact-token"}
ACCOUNTS = "/api/v1/3001/crm/Accounts"
SYNC = "/api/v1/3001/sync/CRM/Accounts"
MAX_PAGES = 40
RATE_HEADERS = (
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-minutely-limit",
    "x-ratelimit-minutely-remaining",
    "x-ratelimit-minutely-reset",
)


@pytest.fixture
def exact(sandbox_server: SandboxProcess) -> Iterator[SandboxProcess]:
    sandbox_server.seed_reset(API)
    yield sandbox_server
    sandbox_server.seed_reset(API)


@pytest.fixture
def client(exact: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=exact.seed_url(API), headers=TOKEN, timeout=5.0, trust_env=False
    ) as http:
        yield http


def odata(client: httpx.Client, url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, params=params) if params else client.get(url)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["d"]
    return body


def walk(client: httpx.Client, url: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow ``__next`` (a full URL) until it is absent: (results, requests)."""
    body = odata(client, url, **params)
    results = list(body["results"])
    for requests in range(1, MAX_PAGES + 1):
        if "__next" not in body:
            return results, requests
        body = odata(client, body["__next"])
        results += body["results"]
    raise AssertionError("walk did not end")


def test_accounts_page_shape_and_next_link(exact: SandboxProcess, client: httpx.Client) -> None:
    response = client.get(ACCOUNTS)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["d"]
    page = body["d"]
    assert len(page["results"]) == 60
    assert page["__next"].startswith(f"{exact.seed_url(API)}{ACCOUNTS}?$skiptoken=guid'")
    account = page["results"][0]
    assert account["__metadata"]["uri"].endswith(f"(guid'{account['ID']}')")
    assert {"ID", "Code", "Name", "Status", "InvoiceAttachmentType", "City", "Email"} <= set(
        account
    )
    assert account["Status"] in {"A", "S", "P", "C"}
    assert account["InvoiceAttachmentType"] in {1, 2, 3}
    assert account["Modified"].startswith("/Date(")
    assert account["Modified"].endswith(")/")
    assert account["Division"] == 3001
    assert len(account["Code"]) == 18
    assert "Timestamp" not in account  # only the sync API has the rowversion


def test_walking_next_links_yields_every_account_once(
    exact: SandboxProcess, client: httpx.Client
) -> None:
    results, requests = walk(client, ACCOUNTS)
    assert requests == 10  # 600 / 60
    ids = [account["ID"] for account in results]
    assert len(ids) == len(set(ids)) == 600
    assert sorted(ids) == [record["ID"] for record in exact.seed_records(API, "3001")]
    other = walk(client, "/api/v1/3002/crm/Accounts", **{"$select": "ID"})[0]
    assert not set(ids) & {account["ID"] for account in other}


def test_filter_select_top(exact: SandboxProcess, client: httpx.Client) -> None:
    records = exact.seed_records(API, "3001")
    wanted = [r for r in records if r["Status"] == "C" and r["InvoiceAttachmentType"] == 3]
    select = "ID,Name,Status,InvoiceAttachmentType"
    results, _ = walk(
        client,
        ACCOUNTS,
        **{"$filter": "InvoiceAttachmentType eq 3 and Status eq 'C'", "$select": select},
    )
    assert sorted(r["ID"] for r in results) == sorted(r["ID"] for r in wanted)
    assert all(list(r) == ["__metadata", *select.split(",")] for r in results)

    one = records[17]
    by_guid = odata(client, ACCOUNTS, **{"$filter": f"ID eq guid'{one['ID'].upper()}'"})
    assert [r["ID"] for r in by_guid["results"]] == [one["ID"]]
    name = odata(client, ACCOUNTS, **{"$filter": f"Name eq '{one['Name']}' and Division ge 3001"})
    assert one["ID"] in {r["ID"] for r in name["results"]}

    modified = sorted(int(r["Modified"][6:-2]) for r in records)
    middle = modified[300]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle / 1000))
    newer = walk(client, ACCOUNTS, **{"$filter": f"Modified gt datetime'{iso}'", "$select": "ID"})
    assert len(newer[0]) == sum(1 for m in modified if m > middle)
    older = walk(client, ACCOUNTS, **{"$filter": f"Modified lt datetime'{iso}'", "$select": "ID"})
    assert len(older[0]) == sum(1 for m in modified if m < middle)

    top = odata(client, ACCOUNTS, **{"$top": "5", "$select": "ID"})
    assert len(top["results"]) == 5
    assert "__next" not in top
    seventy, requests = walk(client, ACCOUNTS, **{"$top": "70", "$select": "ID"})
    assert (len(seventy), requests) == (70, 2)
    counted = odata(client, ACCOUNTS, **{"$filter": "Status eq 'C'", "$inlinecount": "allpages"})
    assert counted["__count"] == str(sum(1 for r in records if r["Status"] == "C"))


def test_bad_queries_are_odata_errors(client: httpx.Client) -> None:
    for params in (
        {"$filter": "Status eq 3"},  # type mismatch
        {"$filter": "Nope eq 'x'"},
        {"$filter": "Status eq 'C' and"},
        {"$select": "ID,Nope"},
        {"$orderby": "Name"},
    ):
        response = client.get(ACCOUNTS, params=params)
        assert response.status_code == 400, params
        error = response.json()["error"]
        assert set(error) == {"code", "message"}
        assert error["message"]["value"]
        assert "x-ratelimit-remaining" in response.headers  # it still was a call


def test_sync_api_orders_by_timestamp_and_pages(
    exact: SandboxProcess, client: httpx.Client
) -> None:
    first = odata(client, SYNC, **{"$filter": "Timestamp gt 1L", "$select": "Timestamp,ID,Name"})
    stamps = [r["Timestamp"] for r in first["results"]]
    assert len(stamps) == 600
    assert stamps == sorted(stamps)
    assert "__next" not in first

    exact.seed_config(API, sync_page_size=250)
    results, requests = walk(
        client, SYNC, **{"$filter": "Timestamp gt 1", "$select": "Timestamp,ID"}
    )
    assert requests == 3
    assert [r["Timestamp"] for r in results] == stamps
    cut = stamps[99]
    rest = odata(client, SYNC, **{"$filter": f"Timestamp gt {cut}L", "$select": "Timestamp"})
    assert [r["Timestamp"] for r in rest["results"]] == stamps[100:350]


def test_put_bumps_timestamp_and_modified(exact: SandboxProcess, client: httpx.Client) -> None:
    everything = odata(client, SYNC, **{"$filter": "Timestamp gt 1L"})["results"]
    high_water = everything[-1]["Timestamp"]
    target = next(r for r in everything if r["InvoiceAttachmentType"] == 3)
    url = f"{ACCOUNTS}(guid'{target['ID']}')"
    response = client.put(url, json={"InvoiceAttachmentType": 1, "City": "Leiden"})
    assert (response.status_code, response.content) == (204, b"")
    changed = odata(client, SYNC, **{"$filter": f"Timestamp gt {high_water}L"})["results"]
    assert [r["ID"] for r in changed] == [target["ID"]]
    assert changed[0]["Timestamp"] > high_water
    assert int(changed[0]["Modified"][6:-2]) > int(target["Modified"][6:-2])
    assert (changed[0]["InvoiceAttachmentType"], changed[0]["City"]) == (1, "Leiden")
    single = odata(client, url)
    assert single["City"] == "Leiden"
    assert client.put(url, json={"Timestamp": 5}).status_code == 400
    assert client.put(url, json={"Status": "X"}).status_code == 400
    missing = client.put(f"{ACCOUNTS}(guid'00000000-0000-4000-8000-000000000000')", json={})
    assert missing.status_code == 404


def test_deletions_show_up_in_sync_deleted(exact: SandboxProcess, client: httpx.Client) -> None:
    touched = exact.seed_mutate(API, "3002", update=2, insert=3, delete=2)
    deleted = odata(client, "/api/v1/3002/sync/Deleted", **{"$filter": "Timestamp gt 1L"})
    assert sorted(r["EntityKey"] for r in deleted["results"]) == touched["deleted"]
    assert {r["EntityType"] for r in deleted["results"]} == {2}
    ids = {r["ID"] for r in walk(client, "/api/v1/3002/crm/Accounts", **{"$select": "ID"})[0]}
    assert len(ids) == 601
    assert set(touched["inserted"]) <= ids
    assert not set(touched["deleted"]) & ids
    accepted = client.delete(f"/api/v1/3002/crm/Accounts(guid'{touched['inserted'][0]}')")
    assert accepted.status_code == 204


def test_rate_limit_headers_and_minutely_429(exact: SandboxProcess, client: httpx.Client) -> None:
    exact.seed_config(API, minutely_limit=5, daily_limit=100)
    before = time.time() * 1000
    responses = [client.get(ACCOUNTS, params={"$top": "1"}) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    first = responses[0].headers
    assert all(name in first for name in RATE_HEADERS)
    assert (first["x-ratelimit-limit"], first["x-ratelimit-remaining"]) == ("100", "99")
    assert first["x-ratelimit-minutely-limit"] == "5"
    assert [r.headers["x-ratelimit-minutely-remaining"] for r in responses] == [
        "4",
        "3",
        "2",
        "1",
        "0",
        "0",
    ]
    reset = int(first["x-ratelimit-minutely-reset"])
    assert before + 55_000 < reset < before + 65_000  # epoch milliseconds, a minute ahead
    assert int(first["x-ratelimit-reset"]) > reset
    limited = responses[-1]
    assert all(name in limited.headers for name in RATE_HEADERS)
    assert limited.json()["error"]["message"]["value"]
    assert client.get("/api/v1/3003/crm/Accounts").status_code == 200  # per division

    stats = exact.seed_stats(API)
    assert stats["tenants"]["3001"] == {
        "requests": 6,
        "rate_limited": 1,
        "statuses": {"200": 5, "429": 1},
    }
    assert stats["tenants"]["3003"]["rate_limited"] == 0


def test_daily_limit_and_short_windows(exact: SandboxProcess, client: httpx.Client) -> None:
    exact.seed_config(API, daily_limit=2, minutely_window=0.3)
    assert [client.get(ACCOUNTS).status_code for _ in range(3)] == [200, 200, 429]
    exact.seed_config(API, daily_limit=5000, minutely_limit=1, minutely_window=0.3)
    assert [client.get(ACCOUNTS).status_code for _ in range(2)] == [200, 429]
    time.sleep(0.35)
    assert client.get(ACCOUNTS).status_code == 200


def test_auth_divisions_and_me(client: httpx.Client) -> None:
    assert (
        httpx.get(f"{client.base_url}api/v1/3001/crm/Accounts", trust_env=False).status_code == 401
    )
    assert client.get("/api/v1/9999/crm/Accounts").status_code == 403
    assert client.get("/api/v1/3001/crm/Nope").status_code == 404
    me = odata(client, "/api/v1/current/Me")["results"][0]
    assert me["CurrentDivision"] == 3001


def test_determinism_and_global_middlewares_do_not_apply(
    sandbox: SandboxProcess, client: httpx.Client
) -> None:
    first = sandbox.seed_records(API, "3003")
    sandbox.seed_reset(API)
    assert sandbox.seed_records(API, "3003") == first
    sandbox.seed_reset(API, seed=1)
    assert sandbox.seed_records(API, "3003") != first
    # The sandbox-wide limits and faults only guard the generic data endpoints.
    sandbox.set_limits(windows=[{"calls": 1, "per": 60}])
    sandbox.set_faults(rate=1.0, kinds=["500"])
    try:
        assert [client.get(ACCOUNTS).status_code for _ in range(3)] == [200, 200, 200]
        assert sandbox.stats()["total"] == 0
    finally:
        sandbox.clear_limits()
        sandbox.clear_faults()


# -- write-back surface: write counts, etags, write limits, slow/failed writes ----------


def writes(client: httpx.Client, tenant: str | None = "3001") -> dict[str, Any]:
    """The ``__writes`` body (admin: the bearer header is ignored there)."""
    response = client.get("/__writes", params={"tenant": tenant} if tenant else None)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def account_url(record: dict[str, Any], division: str = "3001") -> str:
    return f"/api/v1/{division}/crm/Accounts(guid'{record['ID']}')"


def test_write_counts_per_account_and_reset(exact: SandboxProcess, client: httpx.Client) -> None:
    first, second, third = exact.seed_records(API, "3001")[:3]
    assert writes(client) == {"tenant": "3001", "writes": {}, "total": 0}
    assert client.put(account_url(first), json={"City": "Leiden"}).status_code == 204
    assert client.put(account_url(first), json={"City": "Delft"}).status_code == 204
    assert client.patch(account_url(second), json={"Blocked": True}).status_code == 204
    assert client.delete(account_url(third)).status_code == 204
    # Rejected writes are not applied, so they do not count.
    assert client.put(account_url(second), json={"Status": "X"}).status_code == 400
    assert client.put(account_url(third), json={"City": "Ede"}).status_code == 404
    other = exact.seed_records(API, "3002")[0]
    assert client.put(account_url(other, "3002"), json={"City": "Ede"}).status_code == 204

    expected = {first["ID"]: 2, second["ID"]: 1, third["ID"]: 1}
    assert writes(client) == {"tenant": "3001", "writes": expected, "total": 4}
    assert writes(client, None) == {
        "writes": {"3001": expected, "3002": {other["ID"]: 1}, "3003": {}},
        "total": 5,
    }
    assert client.get("/__writes", params={"tenant": "9999"}).status_code == 400

    exact.seed_reset(API)
    assert writes(client, None)["total"] == 0
    assert client.put(account_url(first), json={"City": "Leiden"}).status_code == 204
    exact.seed_config(API, seed=8)  # a data rebuild forgets the counts too
    assert writes(client) == {"tenant": "3001", "writes": {}, "total": 0}


def test_etags_are_emitted_only_when_on(exact: SandboxProcess, client: httpx.Client) -> None:
    record = exact.seed_records(API, "3001")[0]
    assert "__metadata" not in record
    listed = odata(client, ACCOUNTS, **{"$top": "1"})["results"][0]
    assert "etag" not in listed["__metadata"]
    single = client.get(account_url(record))
    assert "etag" not in single.headers
    assert "etag" not in single.json()["d"]["__metadata"]

    exact.seed_config(API, etags=True)
    record = exact.seed_records(API, "3001")[0]
    etag = f'W/"{record["Timestamp"]}"'
    assert record["__metadata"] == {"etag": etag}
    listed = odata(client, ACCOUNTS, **{"$top": "1", "$select": "ID"})["results"][0]
    assert listed["ID"] == record["ID"]
    assert listed["__metadata"]["etag"] == etag
    bulk = odata(client, "/api/v1/3001/bulk/CRM/Accounts", **{"$top": "1"})["results"][0]
    assert bulk["__metadata"]["etag"] == etag
    single = client.get(account_url(record))
    assert single.headers["etag"] == single.json()["d"]["__metadata"]["etag"] == etag
    synced = odata(client, SYNC, **{"$filter": "Timestamp gt 1L", "$top": "3"})["results"]
    assert all(r["__metadata"]["etag"] == f'W/"{r["Timestamp"]}"' for r in synced)


def test_if_match_guards_writes_when_etags_are_on(
    exact: SandboxProcess, client: httpx.Client
) -> None:
    exact.seed_config(API, etags=True)
    record = exact.seed_records(API, "3001")[0]
    url = account_url(record)
    stale = client.get(url).headers["etag"]

    applied = client.put(url, json={"City": "Leiden"}, headers={"If-Match": stale})
    assert applied.status_code == 204
    current = applied.headers["etag"]
    assert current != stale
    assert client.get(url).headers["etag"] == current

    rejected = client.put(url, json={"City": "Delft"}, headers={"If-Match": stale})
    assert rejected.status_code == 412
    assert "ETag mismatch" in rejected.json()["error"]["message"]["value"]
    assert "x-ratelimit-remaining" in rejected.headers
    assert client.patch(url, json={"City": "Delft"}, headers={"If-Match": stale}).status_code == 412
    assert client.delete(url, headers={"If-Match": stale}).status_code == 412
    assert odata(client, url)["City"] == "Leiden"
    assert writes(client)["writes"] == {record["ID"]: 1}

    assert client.put(url, json={"City": "Ede"}, headers={"If-Match": "*"}).status_code == 204
    assert client.put(url, json={"City": "Epe"}).status_code == 204  # no If-Match: applied
    assert writes(client)["writes"] == {record["ID"]: 3}

    exact.seed_config(API, etags=False)  # off: If-Match is ignored, nothing etag-like is sent
    ignored = client.put(url, json={"City": "Zeist"}, headers={"If-Match": stale})
    assert ignored.status_code == 204
    assert "etag" not in ignored.headers
    assert odata(client, url)["City"] == "Zeist"


def test_write_limit_rejects_writes_but_not_reads(
    exact: SandboxProcess, client: httpx.Client
) -> None:
    first, second = exact.seed_records(API, "3001")[:2]
    exact.seed_config(API, write_minutely_limit=2)
    responses = [
        client.put(account_url(first), json={"City": "Leiden"}),
        client.patch(account_url(second), json={"City": "Delft"}),
        client.delete(account_url(first)),
    ]
    assert [r.status_code for r in responses] == [204, 204, 429]
    remaining = [r.headers["x-ratelimit-write-minutely-remaining"] for r in responses]
    assert remaining == ["1", "0", "0"]
    limited = responses[-1]
    assert limited.headers["x-ratelimit-write-minutely-limit"] == "2"
    assert int(limited.headers["x-ratelimit-write-minutely-reset"]) > time.time() * 1000
    assert "x-ratelimit-write-limit" not in limited.headers  # no daily write window set
    assert all(name in limited.headers for name in RATE_HEADERS)  # the general ones too
    assert limited.headers["x-ratelimit-minutely-remaining"] == "57"  # it was still a call
    assert "write" in limited.json()["error"]["message"]["value"]

    read = client.get(account_url(first))
    assert read.status_code == 200  # reads never touch the write budget
    assert not any(name.startswith("x-ratelimit-write") for name in read.headers)
    assert writes(client)["total"] == 2
    assert exact.seed_stats(API)["tenants"]["3001"]["rate_limited"] == 1
    other = exact.seed_records(API, "3002")[0]
    assert client.put(account_url(other, "3002"), json={"City": "Ede"}).status_code == 204

    exact.seed_config(API, write_minutely_limit=None, write_daily_limit=1, write_daily_window=0.3)
    assert [client.put(account_url(first), json={"City": "Ede"}).status_code for _ in range(2)] == [
        204,
        429,
    ]
    time.sleep(0.35)
    again = client.put(account_url(first), json={"City": "Epe"})
    assert again.status_code == 204
    assert (
        again.headers["x-ratelimit-write-limit"],
        again.headers["x-ratelimit-write-remaining"],
    ) == (
        "1",
        "0",
    )
    assert "x-ratelimit-write-minutely-limit" not in again.headers


def test_slow_write_is_applied_before_the_client_times_out(
    exact: SandboxProcess, client: httpx.Client
) -> None:
    record = exact.seed_records(API, "3001")[0]
    url = account_url(record)
    exact.seed_config(API, slow_writes=1, slow_write_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        client.put(url, json={"City": "Leiden"}, timeout=0.2)
    assert time.monotonic() - started < 0.45
    # The server applied the write although the client never saw an answer.
    assert writes(client)["writes"] == {record["ID"]: 1}
    assert odata(client, url)["City"] == "Leiden"
    assert exact.seed_config(API)["slow_writes"] == 0

    fast = client.put(url, json={"City": "Delft"}, timeout=0.2)  # only the next N are slow
    assert fast.status_code == 204
    assert writes(client)["writes"] == {record["ID"]: 2}

    # The slow request still ends in a 204; wait for it so no later test sees it land.
    deadline = time.monotonic() + 2.0
    while exact.seed_stats(API)["tenants"]["3001"]["statuses"].get("204") != 2:
        assert time.monotonic() < deadline, "the slow write never finished"
        time.sleep(0.05)


def test_failed_writes_answer_500_without_applying(
    exact: SandboxProcess, client: httpx.Client
) -> None:
    record = exact.seed_records(API, "3001")[0]
    url = account_url(record)
    exact.seed_config(API, failed_writes=1)
    failed = client.put(url, json={"City": "Leiden"})
    assert failed.status_code == 500
    assert failed.json()["error"]["message"]["value"]
    assert "x-ratelimit-remaining" in failed.headers
    assert odata(client, url)["City"] == record["City"]
    assert writes(client)["total"] == 0
    assert exact.seed_config(API)["failed_writes"] == 0
    assert client.put(url, json={"City": "Leiden"}).status_code == 204
    assert odata(client, url)["City"] == "Leiden"
    assert writes(client)["writes"] == {record["ID"]: 1}


def test_prefer_return_representation(exact: SandboxProcess, client: httpx.Client) -> None:
    exact.seed_config(API, etags=True)
    record = exact.seed_records(API, "3001")[0]
    url = account_url(record)
    response = client.put(
        url,
        json={"InvoiceAttachmentType": 1, "City": "Leiden"},
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 200
    assert response.headers["preference-applied"] == "return=representation"
    body = response.json()["d"]
    assert (body["ID"], body["InvoiceAttachmentType"], body["City"]) == (record["ID"], 1, "Leiden")
    assert body == client.get(url).json()["d"]  # exactly as a single GET renders it
    assert response.headers["etag"] == body["__metadata"]["etag"] != record["__metadata"]["etag"]
    plain = client.put(url, json={"City": "Delft"})
    assert (plain.status_code, plain.content) == (204, b"")


def test_patch_updates_like_put(exact: SandboxProcess, client: httpx.Client) -> None:
    record = exact.seed_records(API, "3001")[0]
    response = client.patch(account_url(record), json={"Name": "Nieuwe Naam B.V."})
    assert (response.status_code, response.content) == (204, b"")
    after = next(r for r in exact.seed_records(API, "3001") if r["ID"] == record["ID"])
    assert after["Name"] == "Nieuwe Naam B.V."
    assert after["City"] == record["City"]  # untouched fields stay
    assert after["Timestamp"] > record["Timestamp"]
    assert int(after["Modified"][6:-2]) > int(record["Modified"][6:-2])
    assert writes(client)["writes"] == {record["ID"]: 1}
    assert client.patch(account_url(record), json={"Nope": 1}).status_code == 400
    assert client.patch(ACCOUNTS, json={"City": "Ede"}).status_code == 405
