"""The Fatture in Cloud emulation, driven over a real socket like a polling client would."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncline.sandbox import SandboxProcess
from syncline.sandbox.seeds.fattureincloud import BASIC_FIELDS, DETAILED_FIELDS

API = "fattureincloud"
TOKEN = {"Authorization": "Bearer fic-token"}
MAX_PAGES = 50  # every page walk below is bounded by this


@pytest.fixture
def fic(sandbox_server: SandboxProcess) -> Iterator[SandboxProcess]:
    sandbox_server.seed_reset(API)
    yield sandbox_server
    sandbox_server.seed_reset(API)


@pytest.fixture
def client(fic: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fic.seed_url(API), headers=TOKEN, timeout=5.0, trust_env=False
    ) as http:
        yield http


def products(client: httpx.Client, company: int, **params: Any) -> httpx.Response:
    return client.get(f"/c/{company}/products", params=params)


def walk(client: httpx.Client, company: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
    """The guide's loop: page 1, then pages 2..last_page from the first response."""
    first = products(client, company, page=1, per_page=per_page, fieldset="detailed").json()
    data = list(first["data"])
    assert first["last_page"] <= MAX_PAGES
    for page in range(2, first["last_page"] + 1):
        body = products(client, company, page=page, per_page=per_page, fieldset="detailed").json()
        assert body["current_page"] == page
        data += body["data"]
    return data, first["last_page"]


def test_page_envelope_and_fieldsets(client: httpx.Client) -> None:
    response = products(client, 1001, page=2, per_page=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == [
        "current_page",
        "data",
        "first_page_url",
        "from",
        "last_page",
        "last_page_url",
        "next_page_url",
        "path",
        "per_page",
        "prev_page_url",
        "to",
        "total",
    ]
    assert body["current_page"] == 2
    assert (body["per_page"], body["total"], body["last_page"]) == (5, 237, math.ceil(237 / 5))
    assert (body["from"], body["to"]) == (6, 10)
    assert body["first_page_url"] == "page=1"
    assert (body["prev_page_url"], body["next_page_url"]) == ("page=1", "page=3")
    assert body["last_page_url"] == f"page={body['last_page']}"
    assert len(body["data"]) == 5
    assert all(tuple(product) == BASIC_FIELDS for product in body["data"])

    detailed = products(client, 1001, page=2, per_page=5, fieldset="detailed").json()["data"]
    assert all(tuple(product) == DETAILED_FIELDS for product in detailed)
    assert len(DETAILED_FIELDS) > len(BASIC_FIELDS)
    assert [p["id"] for p in detailed] == [p["id"] for p in body["data"]]
    product = detailed[0]
    assert isinstance(product["id"], int)
    assert product["gross_price"] >= product["net_price"] > 0
    assert set(product["default_vat"]) >= {"id", "value", "description"}

    chosen = products(client, 1001, fields="id,name,net_price").json()["data"]
    assert all(list(product) == ["id", "name", "net_price"] for product in chosen)


def test_default_and_maximum_page_size(client: httpx.Client) -> None:
    default = products(client, 1001).json()
    assert (default["per_page"], len(default["data"])) == (50, 50)
    capped = products(client, 1001, per_page=500).json()
    assert (capped["per_page"], len(capped["data"]), capped["last_page"]) == (100, 100, 3)


def test_walking_every_page_yields_every_product_exactly_once(
    fic: SandboxProcess, client: httpx.Client
) -> None:
    expected = fic.seed_records(API, "1001")
    data, last_page = walk(client, 1001, per_page=40)
    assert last_page == math.ceil(len(expected) / 40) == 6
    assert [p["id"] for p in data] == sorted(p["id"] for p in expected)
    assert data == expected  # detailed fieldset == the full record
    # Pages are 1-based and nothing lies past last_page.
    past = products(client, 1001, page=last_page + 1, per_page=40).json()
    assert past["data"] == []
    assert (past["from"], past["to"], past["next_page_url"]) == (None, None, None)
    zero = products(client, 1001, page=0)
    assert zero.status_code == 422
    assert "page" in zero.json()["error"]["validation_result"]


def test_companies_hold_distinct_data_and_unknown_ones_are_forbidden(client: httpx.Client) -> None:
    first = {p["id"] for p in walk(client, 1001, per_page=100)[0]}
    second = products(client, 1002, per_page=100).json()
    assert second["total"] == 58
    assert not first & {p["id"] for p in second["data"]}
    empty = products(client, 1003).json()
    assert (empty["total"], empty["last_page"], empty["data"]) == (0, 1, [])

    unknown = products(client, 999)
    assert unknown.status_code == 403
    assert set(unknown.json()["error"]) == {"message", "code"}

    anonymous = httpx.get(f"{client.base_url}c/1001/products", trust_env=False)
    assert anonymous.status_code == 401
    assert "message" in anonymous.json()["error"]


def test_sort_parameter(client: httpx.Client) -> None:
    data = products(client, 1002, per_page=100, sort="-net_price,id").json()["data"]
    prices = [p["net_price"] for p in data]
    assert prices == sorted(prices, reverse=True)
    assert products(client, 1002, sort="nope").status_code == 422


def test_hourly_quota_is_a_403_with_retry_after_and_can_be_a_429(
    fic: SandboxProcess, client: httpx.Client
) -> None:
    fic.seed_config(API, hourly_limit=3)
    assert [products(client, 1001).status_code for _ in range(3)] == [200, 200, 200]
    spent = products(client, 1001)
    assert spent.status_code == 403
    assert int(spent.headers["retry-after"]) >= 1
    assert spent.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert products(client, 1002).status_code == 200  # quotas are per company

    fic.seed_config(API, hourly_status=429)  # a config change starts fresh windows
    assert [products(client, 1001).status_code for _ in range(4)] == [200, 200, 200, 429]

    stats = fic.seed_stats(API)
    assert stats["tenants"]["1001"]["rate_limited"] == 2
    assert stats["tenants"]["1001"]["statuses"] == {"200": 6, "403": 1, "429": 1}
    assert stats["tenants"]["1002"] == {"requests": 1, "rate_limited": 0, "statuses": {"200": 1}}
    assert (stats["total"], stats["rate_limited"]) == (9, 2)


def test_short_term_limit_is_a_429(fic: SandboxProcess, client: httpx.Client) -> None:
    fic.seed_config(API, short_term_limit=2)
    statuses = [products(client, 1002).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert int(products(client, 1002).headers["retry-after"]) >= 1
    fic.seed_reset_stats(API)
    assert fic.seed_stats(API) == {"tenants": {}, "total": 0, "rate_limited": 0}


def test_data_is_deterministic_per_seed(fic: SandboxProcess) -> None:
    first = fic.seed_records(API, "1002")
    fic.seed_reset(API)
    assert fic.seed_records(API, "1002") == first
    fic.seed_reset(API, seed=8)
    assert fic.seed_records(API, "1002") != first
    fic.seed_reset(API, tenants={"42": 3})
    assert [len(fic.seed_records(API, "42"))] == [3]


def test_mutate_changes_the_full_listing_deterministically(
    fic: SandboxProcess, client: httpx.Client
) -> None:
    before = {p["id"]: p for p in walk(client, 1002, per_page=100)[0]}
    result = fic.seed_mutate(API, "1002", update=3, insert=2, delete=1)
    assert (len(result["updated"]), len(result["inserted"]), len(result["deleted"])) == (3, 2, 1)
    after = {p["id"]: p for p in walk(client, 1002, per_page=100)[0]}
    assert set(after) == (set(before) - set(result["deleted"])) | set(result["inserted"])
    for pid in result["updated"]:
        assert after[pid]["net_price"] != before[pid]["net_price"]
        assert after[pid]["updated_at"] > before[pid]["updated_at"]
        assert after[pid]["created_at"] == before[pid]["created_at"]
    unchanged = set(before) - set(result["updated"]) - set(result["deleted"])
    assert all(after[pid] == before[pid] for pid in unchanged)

    fic.seed_reset(API)
    assert fic.seed_mutate(API, "1002", update=3, insert=2, delete=1) == result
    targeted = fic.seed_mutate(API, "1002", update_ids=[result["inserted"][0]])
    assert targeted["updated"] == [result["inserted"][0]]
