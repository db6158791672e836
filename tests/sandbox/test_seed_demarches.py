"""The démarches-simplifiées emulation: GraphQL over a real socket, as the sync guides do it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from syncline.sandbox import SandboxProcess

API = "demarches"
TOKEN = {"Authorization": "Bearer ds-token"}
MAX_PAGES = 50
QUERY = """
query getDemarche(
  $demarcheNumber: Int!, $first: Int, $after: String, $updatedSince: ISO8601DateTime
) {
  demarche(number: $demarcheNumber) {
    id
    number
    title
    dossiers(first: $first, after: $after, updatedSince: $updatedSince) {
      pageInfo { hasNextPage hasPreviousPage endCursor }
      nodes {
        ...DossierFragment
      }
    }
  }
}

fragment DossierFragment on Dossier {
  id
  number
  state
  dateDepot
  dateDerniereModification
  usager { email }
  demandeur { __typename ... on PersonnePhysique { nom prenom } }
  champs { id __typename label stringValue ... on DateChamp { date } }
}
"""
DELETED_QUERY = """
query deleted($demarcheNumber: Int!) {
  demarche(number: $demarcheNumber) {
    deletedDossiers { nodes { number reason dateSupression } pageInfo { hasNextPage } }
  }
}
"""


@pytest.fixture
def ds(sandbox_server: SandboxProcess) -> Iterator[SandboxProcess]:
    sandbox_server.seed_reset(API)
    yield sandbox_server
    sandbox_server.seed_reset(API)


@pytest.fixture
def client(ds: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=ds.seed_url(API), headers=TOKEN, timeout=5.0, trust_env=False
    ) as http:
        yield http


def post(client: httpx.Client, query: str = QUERY, **variables: Any) -> dict[str, Any]:
    body = {"query": query, "operationName": "getDemarche", "variables": variables}
    if query is not QUERY:
        del body["operationName"]
    response = client.post("/api/v2/graphql", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def page(client: httpx.Client, **variables: Any) -> dict[str, Any]:
    result = post(client, demarcheNumber=1001, **variables)
    assert "errors" not in result, result
    dossiers: dict[str, Any] = result["data"]["demarche"]["dossiers"]
    return dossiers


def walk(client: httpx.Client, **variables: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    for _ in range(MAX_PAGES):
        dossiers = page(client, after=after, **variables)
        nodes += dossiers["nodes"]
        if not dossiers["pageInfo"]["hasNextPage"]:
            return nodes
        after = dossiers["pageInfo"]["endCursor"]
    raise AssertionError("walk did not end")


def test_get_demarche_shape(client: httpx.Client) -> None:
    result = post(client, demarcheNumber=1001, first=3)
    demarche = result["data"]["demarche"]
    assert demarche["number"] == 1001
    dossiers = demarche["dossiers"]
    assert set(dossiers["pageInfo"]) == {"hasNextPage", "hasPreviousPage", "endCursor"}
    assert dossiers["pageInfo"]["hasNextPage"] is True
    assert dossiers["pageInfo"]["hasPreviousPage"] is False
    assert len(dossiers["nodes"]) == 3
    node = dossiers["nodes"][0]
    assert isinstance(node["number"], int)
    assert node["state"] in {"en_construction", "en_instruction", "accepte", "refuse", "sans_suite"}
    assert node["dateDerniereModification"] >= node["dateDepot"]
    assert "@" in node["usager"]["email"]
    assert node["demandeur"]["__typename"] == "PersonnePhysique"
    types = {champ["__typename"] for champ in node["champs"]}
    assert {"TextChamp", "DateChamp"} <= types
    assert all({"id", "label", "stringValue"} <= set(champ) for champ in node["champs"])


def test_walk_without_updated_since_yields_every_dossier_once_by_deposit_date(
    ds: SandboxProcess, client: httpx.Client
) -> None:
    nodes = walk(client, first=40)
    numbers = [node["number"] for node in nodes]
    assert sorted(numbers) == sorted(d["number"] for d in ds.seed_records(API, "1001"))
    assert len(numbers) == len(set(numbers)) == 180
    deposits = [node["dateDepot"] for node in nodes]
    assert deposits == sorted(deposits)


def test_page_size_defaults_to_and_is_capped_at_100(client: httpx.Client) -> None:
    assert len(page(client)["nodes"]) == 100
    assert len(page(client, first=500)["nodes"]) == 100


def test_updated_since_orders_by_modification_and_sees_changes(
    ds: SandboxProcess, client: httpx.Client
) -> None:
    nodes = walk(client, first=50, updatedSince="2020-01-01")
    stamps = [node["dateDerniereModification"] for node in nodes]
    assert stamps == sorted(stamps)
    assert len(nodes) == 180
    latest = stamps[-1]
    touched = ds.seed_mutate(API, "1001", update=3, insert=1)
    changed = walk(client, first=50, updatedSince=latest)
    numbers = [node["number"] for node in changed]
    # >= semantics: the newest dossier of the previous run comes back too (idempotence).
    assert set(numbers) == {nodes[-1]["number"], *touched["updated"], *touched["inserted"]}
    assert numbers[0] == nodes[-1]["number"]
    assert [n["dateDerniereModification"] for n in changed] == sorted(
        n["dateDerniereModification"] for n in changed
    )


def test_polling_from_the_persisted_cursor_repeats_the_last_page(
    ds: SandboxProcess, client: httpx.Client
) -> None:
    """The 004 guide's loop: persist endCursor only while hasNextPage is true."""
    since = "2020-02-22"

    def run(persisted: str | None) -> tuple[list[int], str | None]:
        numbers: list[int] = []
        for _ in range(MAX_PAGES):
            dossiers = page(client, first=50, after=persisted, updatedSince=since)
            numbers += [node["number"] for node in dossiers["nodes"]]
            info = dossiers["pageInfo"]
            if info["endCursor"] and info["hasNextPage"]:
                persisted = info["endCursor"]
            else:
                return numbers, persisted
        raise AssertionError("sync did not end")

    everything, cursor = run(None)
    assert len(everything) == 180
    last_page = everything[150:]
    again, same_cursor = run(cursor)
    assert (again, same_cursor) == (last_page, cursor)  # the same dossiers, once more
    assert run(cursor)[0] == last_page
    touched = ds.seed_mutate(API, "1001", update_ids=[everything[0]])
    fresh, _ = run(cursor)
    assert fresh == [*last_page, *touched["updated"]]


def test_after_the_final_cursor_is_empty_unless_configured_to_repeat(
    ds: SandboxProcess, client: httpx.Client
) -> None:
    final = page(client, first=100, after=page(client, first=100)["pageInfo"]["endCursor"])
    assert final["pageInfo"]["hasNextPage"] is False
    end = final["pageInfo"]["endCursor"]
    empty = page(client, first=100, after=end)
    assert empty["nodes"] == []
    assert empty["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True, "endCursor": None}

    ds.seed_config(API, repeat_last_page=True)
    repeated = page(client, first=100, after=end)
    assert repeated == final  # the very same last page, cursor included
    assert page(client, first=100, after=end) == final
    inserted = ds.seed_mutate(API, "1001", insert=1)["inserted"]
    news = page(client, first=100, after=end)  # until something new arrives
    assert [n["number"] for n in news["nodes"]] == inserted


def test_graphql_errors(client: httpx.Client) -> None:
    missing = post(client, demarcheNumber=4242)
    assert missing["data"] is None
    assert missing["errors"][0]["message"] == "Demarche not found"
    assert missing["errors"][0]["extensions"] == {"code": "not_found"}

    anonymous = httpx.post(
        f"{client.base_url}api/v2/graphql",
        json={"query": QUERY, "variables": {"demarcheNumber": 1001}},
        trust_env=False,
    )
    assert anonymous.status_code == 200
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "unauthorized"

    invalid = post(client, "query { demarche(number: 1001) { nope } }")
    assert "data" not in invalid
    assert "nope" in invalid["errors"][0]["message"]

    broken = client.post("/api/v2/graphql", content=b"{not json")
    assert broken.status_code == 400
    assert broken.json()["data"] is None
    assert broken.json()["errors"][0]["message"]


def test_variables_may_be_a_json_string_and_numbers_literal(
    ds: SandboxProcess, client: httpx.Client
) -> None:
    as_string = client.post(
        "/api/v2/graphql",
        json={"query": QUERY, "variables": orjson.dumps({"demarcheNumber": 1002}).decode()},
    ).json()
    assert as_string["data"]["demarche"]["number"] == 1002
    literal = post(client, "{ demarche(number: 1003) { number dossiers { nodes { number } } } }")
    assert literal["data"]["demarche"] == {"number": 1003, "dossiers": {"nodes": []}}
    tenants = ds.seed_stats(API)["tenants"]
    assert tenants["1002"]["requests"] == tenants["1003"]["requests"] == 1


def test_deleted_dossiers_and_stats(ds: SandboxProcess, client: httpx.Client) -> None:
    touched = ds.seed_mutate(API, "1002", delete=2)
    result = post(client, DELETED_QUERY, demarcheNumber=1002)
    deleted = result["data"]["demarche"]["deletedDossiers"]["nodes"]
    assert sorted(node["number"] for node in deleted) == touched["deleted"]
    nodes = post(client, demarcheNumber=1002)["data"]["demarche"]["dossiers"]["nodes"]
    listed = [node["number"] for node in nodes]
    assert not set(listed) & set(touched["deleted"])
    assert len(listed) == 43
    stats = ds.seed_stats(API)
    assert stats["tenants"]["1002"] == {"requests": 2, "rate_limited": 0, "statuses": {"200": 2}}


def test_optional_rate_limit_answers_like_rack_attack(
    ds: SandboxProcess, client: httpx.Client
) -> None:
    ds.seed_config(API, rate_limit=2)
    statuses = [
        client.post("/api/v2/graphql", json={"query": QUERY, "variables": {"demarcheNumber": 1001}})
        for _ in range(3)
    ]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[-1].text == "Retry later\n"
    assert statuses[-1].headers["content-type"].startswith("text/plain")
    assert ds.seed_stats(API)["tenants"]["1001"]["rate_limited"] == 1


def test_data_is_deterministic(ds: SandboxProcess) -> None:
    first = ds.seed_records(API, "1002")
    ds.seed_reset(API)
    assert ds.seed_records(API, "1002") == first
    ds.seed_reset(API, seed=99)
    assert ds.seed_records(API, "1002") != first
