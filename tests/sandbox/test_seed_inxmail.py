"""The Inxmail emulation: HAL pages, sync tokens and a live, modificationDate-ordered view."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from syncline.sandbox import SandboxProcess

API = "inxmail"
PATH = "/integrations/inxmail-professional/mailing-synchronizations"
EMBEDDED = "inx:mailing-synchronizations"
UPCOMING = "inx:upcoming-modifications"
AUTH = ("globex", "inx-secret")
MAX_PAGES = 60


@pytest.fixture
def inx(sandbox_server: SandboxProcess) -> Iterator[SandboxProcess]:
    sandbox_server.seed_reset(API)
    yield sandbox_server
    sandbox_server.seed_reset(API)


@pytest.fixture
def client(inx: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=inx.seed_url(API), auth=AUTH, timeout=5.0, trust_env=False) as http:
        yield http


def get(client: httpx.Client, url: str, **params: Any) -> dict[str, Any]:
    # httpx would replace a link's own query string with params, so append them.
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/hal+json;charset=UTF-8"
    body: dict[str, Any] = response.json()
    return body


def items(body: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = body.get("_embedded", {}).get(EMBEDDED, [])
    return result


def sync(client: httpx.Client, url: str, **params: Any) -> tuple[list[dict[str, Any]], str, int]:
    """Follow ``next`` links to the end: (every entry, the upcoming link, pages)."""
    body = get(client, url, **params)
    entries = items(body)
    for pages in range(1, MAX_PAGES + 1):
        links = body["_links"]
        if "next" not in links:
            upcoming: str = links[UPCOMING]["href"]
            return entries, upcoming, pages
        assert UPCOMING not in links
        body = get(client, links["next"]["href"])
        entries += items(body)
    raise AssertionError("sync did not end")


def test_full_sync_pages_and_ends_with_an_upcoming_link(
    inx: SandboxProcess, client: httpx.Client
) -> None:
    first = get(client, PATH, syncModifications="true", pageSize=10)
    assert set(first) == {"_embedded", "_links"}
    assert len(items(first)) == 10
    next_href = first["_links"]["next"]["href"]
    assert next_href.startswith(f"{inx.seed_url(API)}{PATH}?cursor=")
    assert set(parse_qs(urlsplit(next_href).query)) == {"cursor"}
    record = items(first)[0]
    assert {"id", "creationDate", "modificationDate", "mailingId", "mailingName"} <= set(record)
    assert {"customer", "listId", "listName"} == set(record["target"])
    assert record["_links"]["self"]["href"].endswith(f"{PATH}/{record['id']}")

    entries, upcoming, pages = sync(client, PATH, syncModifications="true", pageSize=10)
    assert pages == 4
    ids = [entry["id"] for entry in entries]
    assert len(ids) == len(set(ids)) == 35
    assert sorted(ids) == [record["id"] for record in inx.seed_records(API, "globex")]
    stamps = [entry["modificationDate"] for entry in entries]
    assert stamps == sorted(stamps)
    query = parse_qs(urlsplit(upcoming).query)
    assert query["syncModifications"] == ["true"]
    assert query["syncToken"][0]
    assert urlsplit(upcoming).path.endswith(PATH)


def test_trailing_slash_and_single_resource(client: httpx.Client) -> None:
    listing = get(client, f"{PATH}/", syncModifications="true")
    assert len(items(listing)) == 35
    assert "next" not in listing["_links"]
    first = items(listing)[0]
    assert get(client, f"{PATH}/{first['id']}") == first
    assert client.get(f"{PATH}/no-such-id").status_code == 404


def test_a_record_changed_mid_sync_reappears_with_a_newer_modification_date(
    inx: SandboxProcess, client: httpx.Client
) -> None:
    first = get(client, PATH, syncModifications="true", pageSize=10)
    changed = items(first)[0]
    inx.seed_mutate(API, "globex", update_ids=[changed["id"]])
    entries, _, _ = sync(client, first["_links"]["next"]["href"])
    entries = items(first) + entries
    seen = [entry for entry in entries if entry["id"] == changed["id"]]
    assert len(seen) == 2
    assert seen[1]["modificationDate"] > seen[0]["modificationDate"]
    assert seen[1]["mailingName"] != seen[0]["mailingName"]
    assert entries[-1]["id"] == changed["id"]
    assert len(entries) == 36
    assert len({entry["id"] for entry in entries}) == 35


def test_a_record_deleted_mid_sync_arrives_as_a_tombstone(
    inx: SandboxProcess, client: httpx.Client
) -> None:
    first = get(client, PATH, syncModifications="true", pageSize=10)
    gone = items(first)[3]["id"]
    inx.seed_mutate(API, "globex", delete_ids=[gone])
    rest, _, _ = sync(client, first["_links"]["next"]["href"])
    assert rest[-1]["id"] == gone
    assert rest[-1]["deleted"] is True
    assert set(rest[-1]) == {"id", "modificationDate", "deleted", "_links"}


def test_the_sync_token_returns_only_what_changed(
    inx: SandboxProcess, client: httpx.Client
) -> None:
    _, upcoming, _ = sync(client, PATH, syncModifications="true", pageSize=50)
    quiet = get(client, upcoming)
    assert "_embedded" not in quiet  # Spring HATEOAS leaves out an empty _embedded
    assert UPCOMING in quiet["_links"]

    touched = inx.seed_mutate(API, "globex", update=2, insert=1, delete=1)
    changes, again, pages = sync(client, upcoming, pageSize=2)
    assert pages == 2
    by_id = {entry["id"]: entry for entry in changes}
    assert set(by_id) == {*touched["updated"], *touched["inserted"], *touched["deleted"]}
    assert [by_id[key].get("deleted") for key in touched["deleted"]] == [True]
    assert all("deleted" not in by_id[key] for key in touched["updated"])
    stamps = [entry["modificationDate"] for entry in changes]
    assert stamps == sorted(stamps)
    assert items(get(client, again)) == []
    # The older token still works (retry "from the most recent link" is allowed).
    assert len(sync(client, upcoming)[0]) == 4


def test_expired_or_unknown_tokens_are_gone(inx: SandboxProcess, client: httpx.Client) -> None:
    _, upcoming, _ = sync(client, PATH, syncModifications="true")
    assert inx.seed_expire_tokens() == 1
    gone = client.get(upcoming)
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["status"] == 410
    assert (
        client.get(PATH, params={"syncToken": "bogus", "syncModifications": "true"}).status_code
        == 410
    )

    inx.seed_config(API, token_ttl=0.2)
    _, upcoming, _ = sync(client, PATH, syncModifications="true")
    assert client.get(upcoming).status_code == 200
    time.sleep(0.3)
    assert client.get(upcoming).status_code == 410


def test_auth_tenants_and_bad_requests(inx: SandboxProcess, client: httpx.Client) -> None:
    assert httpx.get(f"{client.base_url}{PATH[1:]}", trust_env=False).status_code == 401
    wrong = client.get(PATH, auth=("globex", "nope"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Basic")
    assert client.get(PATH, auth=("initech", "inx-secret")).status_code == 401

    params: dict[str, str | int] = {"syncModifications": "true", "pageSize": 5}
    acme = client.get(PATH, params=params, auth=("acme", "inx-secret")).json()
    globex_ids = {record["id"] for record in inx.seed_records(API, "globex")}
    assert not {record["id"] for record in items(acme)} & globex_ids
    foreign = client.get(acme["_links"]["next"]["href"])  # a cursor of another space
    assert foreign.status_code == 400

    mixed = client.get(PATH, params={"syncModifications": "true", "readyForSending": "true"})
    assert mixed.status_code == 400
    assert client.get(PATH, params={"cursor": "garbage"}).status_code == 400


def test_plain_listing_filters_and_sorts(client: httpx.Client) -> None:
    ready = items(get(client, PATH, readyForSending="true"))
    assert ready
    assert all(record["readyForSending"] for record in ready)
    by_name = items(get(client, PATH, sortBy="mailingName", order="desc"))
    names = [record["mailingName"] for record in by_name]
    assert names == sorted(names, reverse=True)


def test_stats_determinism_and_rate_limit(inx: SandboxProcess, client: httpx.Client) -> None:
    first = inx.seed_records(API, "acme")
    inx.seed_reset(API)
    assert inx.seed_records(API, "acme") == first

    inx.seed_config(API, rate_limit=2)
    statuses = [client.get(PATH).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    stats = inx.seed_stats(API)
    assert stats["tenants"]["globex"] == {
        "requests": 3,
        "rate_limited": 1,
        "statuses": {"200": 2, "429": 1},
    }
