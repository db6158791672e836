"""plan_jobs and Job.base_request: which jobs run, and the first request each one sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncline.config import Config, config_from_dict
from syncline.errors import ConfigError
from syncline.plan import Job, plan_jobs

QUERY = "query q($n: Int!, $first: Int, $after: String) { x }"


def build(
    partitions: dict[str, list[Any]] | None = None,
    streams: dict[str, dict[str, Any]] | None = None,
    extra_sources: dict[str, Any] | None = None,
) -> Config:
    raw = {
        "store": "sqlite:///:memory:",
        "sources": {
            "shop": {
                "base_url": "https://api.test/v2/",
                "partitions": {"company_id": [1, 2, 3]} if partitions is None else partitions,
                "streams": streams
                or {
                    "products": {
                        "path": "/c/{company_id}/products",
                        "params": {"fieldset": "detailed"},
                        "primary_key": "id",
                    },
                    "orders": {"path": "orders", "primary_key": "id"},
                },
            },
            **(extra_sources or {}),
        },
    }
    return config_from_dict(raw, base_dir=Path("/tmp"), environ={})


def labels(jobs: list[Job]) -> list[str]:
    return [job.label for job in jobs]


def test_one_job_per_stream_and_partition_value() -> None:
    assert labels(plan_jobs(build())) == [
        "shop.products [company_id=1]",
        "shop.products [company_id=2]",
        "shop.products [company_id=3]",
        "shop.orders [company_id=1]",
        "shop.orders [company_id=2]",
        "shop.orders [company_id=3]",
    ]


def test_partitions_are_the_cartesian_product_in_declaration_order() -> None:
    config = build(
        partitions={"company_id": [1, 2], "region": ["eu", "us", "ap"]},
        streams={"items": {"path": "/c/{company_id}/{region}/items", "primary_key": "id"}},
    )
    jobs = plan_jobs(config)
    assert [dict(job.partition) for job in jobs] == [
        {"company_id": c, "region": r} for c in (1, 2) for r in ("eu", "us", "ap")
    ]
    assert len({job.state_key for job in jobs}) == 6
    assert jobs[0].partition_key == '{"company_id":1,"region":"eu"}'
    assert jobs[0].table.partition_columns == ("company_id", "region")
    assert jobs[0].table.identity_columns == ("company_id", "region", "id")


def test_stream_partitions_replace_the_source_ones() -> None:
    config = build(
        streams={
            "a": {"path": "/a/{shard}", "primary_key": "id", "partitions": {"shard": ["x", "y"]}},
            "b": {"path": "/b", "primary_key": "id", "partitions": {}},
        }
    )
    assert labels(plan_jobs(config)) == ["shop.a [shard=x]", "shop.a [shard=y]", "shop.b"]


def test_unpartitioned_stream_is_one_job() -> None:
    (job,) = plan_jobs(build(partitions={}, streams={"all": {"path": "/all", "primary_key": "id"}}))
    assert job.partition == {}
    assert job.partition_key == "{}"
    assert job.label == "shop.all"


@pytest.mark.parametrize(
    ("selected", "expected"),
    [
        (["products"], {"shop.products"}),
        (["shop.products"], {"shop.products"}),
        (["orders", "shop.products"], {"shop.products", "shop.orders"}),
        (["products", "shop.products"], {"shop.products"}),
        ([], {"shop.products", "shop.orders"}),
    ],
)
def test_stream_selection_by_name_or_source_dot_name(
    selected: list[str], expected: set[str]
) -> None:
    jobs = plan_jobs(build(), streams=selected)
    assert {f"{job.source_name}.{job.stream_name}" for job in jobs} == expected


def test_a_bare_name_selects_it_in_every_source() -> None:
    other = {
        "base_url": "https://other.test",
        "streams": {"products": {"path": "/p", "primary_key": "id", "table": "other_products"}},
    }
    config = build(extra_sources={"other": other})
    assert {job.source_name for job in plan_jobs(config, streams=["products"])} == {"shop", "other"}
    assert {job.source_name for job in plan_jobs(config, streams=["other.products"])} == {"other"}


@pytest.mark.parametrize(
    ("selected", "named"),
    [
        (["prodcts"], "prodcts"),
        (["products", "nope"], "nope"),
        (["other.products"], "other.products"),
    ],
)
def test_unknown_stream_is_a_config_error_naming_it(selected: list[str], named: str) -> None:
    with pytest.raises(ConfigError, match=f"no stream named {named}"):
        plan_jobs(build(), streams=selected)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["company_id=2"], [2]),
        (["company_id=1", "company_id=3"], [1, 3]),
        (["company_id = 3"], [3]),
        (["company_id=9"], []),
    ],
)
def test_partition_filters(filters: list[str], expected: list[int]) -> None:
    jobs = plan_jobs(build(), streams=["products"], partitions=filters)
    assert [job.partition["company_id"] for job in jobs] == expected


def test_partition_filter_on_several_keys_must_all_match() -> None:
    config = build(
        partitions={"company_id": [1, 2], "region": ["eu", "us"]},
        streams={"items": {"path": "/c/{company_id}/{region}", "primary_key": "id"}},
    )
    jobs = plan_jobs(config, partitions=["company_id=2", "region=us"])
    assert [dict(job.partition) for job in jobs] == [{"company_id": 2, "region": "us"}]


def test_partition_filter_skips_streams_without_that_key() -> None:
    config = build(
        streams={
            "a": {"path": "/a/{company_id}", "primary_key": "id"},
            "b": {"path": "/b", "primary_key": "id", "partitions": {}},
        }
    )
    assert labels(plan_jobs(config, partitions=["company_id=1"])) == ["shop.a [company_id=1]"]


@pytest.mark.parametrize("bad", ["company_id", "=2", ""])
def test_malformed_partition_filter_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        plan_jobs(build(), partitions=[bad])


def test_key_column_colliding_with_a_partition_key_is_rejected() -> None:
    config = build(streams={"p": {"path": "/c/{company_id}", "primary_key": "company_id"}})
    with pytest.raises(ConfigError, match="collide"):
        plan_jobs(config)


def test_key_column_with_a_reserved_name_is_rejected() -> None:
    config = build(partitions={}, streams={"p": {"path": "/p", "primary_key": "_data"}})
    with pytest.raises(ConfigError, match="reserved"):
        plan_jobs(config)


# --- base_request --------------------------------------------------------------------------


def test_base_request_fills_the_path_and_keeps_params() -> None:
    jobs = plan_jobs(build(), streams=["products"], partitions=["company_id=2"])
    request = jobs[0].base_request()
    assert request.method == "GET"
    assert request.url == "https://api.test/v2/c/2/products"
    assert request.params == {"fieldset": "detailed"}
    assert request.json is None
    assert not request.graphql
    assert not request.follows_link


def test_path_without_leading_slash_joins_with_one() -> None:
    jobs = plan_jobs(build(), streams=["orders"])
    assert jobs[0].base_request().url == "https://api.test/v2/orders"


@pytest.mark.parametrize(
    ("value", "segment"),
    [("a/b", "a%2Fb"), ("x y", "x%20y"), ("?&#", "%3F%26%23"), ("é", "%C3%A9"), (7, "7")],
)
def test_partition_values_are_url_quoted_in_the_path(value: Any, segment: str) -> None:
    config = build(
        partitions={"company_id": [value]},
        streams={"p": {"path": "/c/{company_id}/items", "primary_key": "id"}},
    )
    (job,) = plan_jobs(config)
    assert job.base_request().url == f"https://api.test/v2/c/{segment}/items"


def test_placeholders_in_params_headers_and_body() -> None:
    config = build(
        partitions={"company_id": [42], "region": ["eu"]},
        streams={
            "p": {
                "path": "/search",
                "method": "POST",
                "primary_key": "id",
                "params": {"company": "{company_id}", "tag": "c-{company_id}-{region}", "n": 5},
                "headers": {"X-Company": "{company_id}", "X-Other": "{unknown}"},
                "body": {"filter": {"company": "{company_id}", "regions": ["{region}"]}},
            }
        },
    )
    (job,) = plan_jobs(config)
    request = job.base_request()
    assert request.method == "POST"
    assert request.params == {"company": 42, "tag": "c-42-eu", "n": 5}
    assert request.headers == {"X-Company": "42", "X-Other": "{unknown}"}
    assert request.json == {"filter": {"company": 42, "regions": ["eu"]}}


def test_graphql_request_keeps_the_type_of_a_lone_placeholder() -> None:
    config = build(
        partitions={"demarche": [42, 43]},
        streams={
            "dossiers": {
                "path": "/graphql",
                "primary_key": "number",
                "records": "data.x.nodes",
                "graphql": {
                    "query": QUERY,
                    "operation": "q",
                    "variables": {"n": "{demarche}", "label": "d-{demarche}", "first": 100},
                },
                "paginate": {"type": "relay", "page_info": "data.x.pageInfo"},
            }
        },
    )
    first, second = (job.base_request() for job in plan_jobs(config))
    assert first.method == "POST"
    assert first.url == "https://api.test/v2/graphql"
    assert first.graphql
    assert first.json == {
        "query": QUERY,
        "operationName": "q",
        "variables": {"n": 42, "label": "d-42", "first": 100},
    }
    assert second.json is not None
    assert second.json["variables"]["n"] == 43


def test_graphql_without_operation_sends_no_operation_name() -> None:
    config = build(
        partitions={},
        streams={"g": {"path": "/graphql", "primary_key": "id", "graphql": {"query": QUERY}}},
    )
    (job,) = plan_jobs(config)
    assert job.base_request().json == {"query": QUERY, "variables": {}}


def test_base_request_does_not_share_state_between_calls() -> None:
    (job, *_) = plan_jobs(build())
    first = job.base_request()
    first.params["page"] = 2
    assert "page" not in job.base_request().params
