"""Config loading: the issue's example, ${VAR} interpolation, and errors that name the key."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from syncline.config import Config, config_from_dict, load_config
from syncline.config.strategies import (
    BearerAuth,
    NoIncremental,
    PageNumberPaginate,
    RelayPaginate,
    WatermarkIncremental,
)
from syncline.errors import ConfigError

EXAMPLE = (Path(__file__).parent / "issue_example_config.yaml").read_text(encoding="utf-8")

TOKEN = "tok-s3cr3t-9f8e7d"
ENV = {"SHOP_TOKEN": TOKEN}


def example() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE)
    return raw


def load(
    raw: dict[str, Any], env: dict[str, str] | None = None, base: Path | None = None
) -> Config:
    return config_from_dict(
        raw,
        base_dir=base or Path("/etc/syncline"),
        file="/etc/syncline/shop.yaml",
        environ=ENV if env is None else env,
    )


def products(raw: dict[str, Any]) -> dict[str, Any]:
    stream: dict[str, Any] = raw["sources"]["shop"]["streams"]["products"]
    return stream


def config_error(raw: dict[str, Any], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(raw, env)
    return info.value


# --- the issue's example --------------------------------------------------------------------


def test_issue_example_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    config = load_config(path, environ=ENV)

    assert config.store == f"sqlite:///{(tmp_path / 'shop.db').resolve()}"
    assert config.file == path
    source = config.sources["shop"]
    assert source.base_url == "http://127.0.0.1:38001"
    assert source.headers == {"Accept": "application/json"}
    assert source.partitions == {"company_id": [1, 2, 3]}
    assert isinstance(source.auth, BearerAuth)
    assert source.auth.token.get_secret_value() == TOKEN

    stream = source.streams["products"]
    assert stream.http_method == "GET"
    assert stream.primary_keys == ("id",)
    assert stream.paginate == PageNumberPaginate(
        type="page_number", page_param="page", size_param="per_page", size=100, first_page=1,
        last_page="last_page",
    )  # fmt: skip
    assert isinstance(stream.incremental, WatermarkIncremental)
    assert stream.incremental.lookback == timedelta(minutes=5)
    assert stream.incremental.initial == "2020-01-01T00:00:00Z"

    dossiers = source.streams["dossiers"]
    assert dossiers.http_method == "POST"
    assert dossiers.graphql is not None
    assert dossiers.graphql.operation == "getDemarche"
    assert dossiers.graphql.variables == {"demarcheNumber": 42, "first": 100}
    assert dossiers.graphql.query is not None
    assert dossiers.graphql.query.startswith("query getDemarche(")
    assert isinstance(dossiers.paginate, RelayPaginate)
    assert dossiers.paginate.after_param == "after"
    assert dossiers.paginate.size_param == "first"


def test_secrets_never_show_in_repr_or_str() -> None:
    config = load(example())
    for text in (repr(config), str(config), repr(config.sources["shop"].auth)):
        assert TOKEN not in text
    assert isinstance(config.sources["shop"].auth.token, SecretStr)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"type": "api_key", "name": "X-Key", "value": TOKEN}, "value"),
        ({"type": "api_key", "in": "query", "key": TOKEN}, "value"),
        ({"type": "basic", "username": "bob", "password": TOKEN}, "password"),
    ],
)
def test_every_auth_secret_is_a_secret_str(auth: dict[str, Any], field: str) -> None:
    raw = example()
    raw["sources"]["shop"]["auth"] = auth
    config = load(raw)
    secret = getattr(config.sources["shop"].auth, field)
    assert isinstance(secret, SecretStr)
    assert secret.get_secret_value() == TOKEN
    assert TOKEN not in repr(config)


# --- interpolation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "env", "expected"),
    [
        ("${HOST}", {"HOST": "http://a.test"}, "http://a.test"),
        ("${env:HOST}", {"HOST": "http://a.test"}, "http://a.test"),
        ("${HOST:-http://default.test}", {}, "http://default.test"),
        ("${HOST:-http://default.test}", {"HOST": "http://set.test"}, "http://set.test"),
        ("http://${H}:${P:-8080}", {"H": "h.test"}, "http://h.test:8080"),
        ("http://${H}${SUFFIX:-}", {"H": "h.test"}, "http://h.test"),
        ("http://x.test${EMPTY}", {"EMPTY": ""}, "http://x.test"),
    ],
)
def test_interpolation(template: str, env: dict[str, str], expected: str) -> None:
    raw = example()
    raw["sources"]["shop"]["base_url"] = template
    assert load(raw, {**ENV, **env}).sources["shop"].base_url == expected


def test_interpolation_inside_lists_and_nested_values() -> None:
    raw = example()
    raw["sources"]["shop"]["partitions"] = {"company_id": ["${A}", "${B:-b}"]}
    raw["sources"]["shop"]["headers"] = {"X-Tenant": "t-${A}"}
    source = load(raw, {**ENV, "A": "a"}).sources["shop"]
    assert source.partitions == {"company_id": ["a", "b"]}
    assert source.headers == {"X-Tenant": "t-a"}


def test_text_without_placeholders_is_untouched() -> None:
    raw = example()
    products(raw)["params"] = {"q": "$HOME {x} $"}
    assert load(raw).sources["shop"].streams["products"].params == {"q": "$HOME {x} $"}


def test_missing_env_var_names_file_key_and_variable() -> None:
    error = config_error(example(), env={})
    message = str(error)
    assert "/etc/syncline/shop.yaml" in message
    assert "sources.shop.auth.token" in message
    assert "SHOP_TOKEN" in message
    assert error.key == "sources.shop.auth.token"
    assert error.file == "/etc/syncline/shop.yaml"


def test_missing_env_var_in_a_list_names_the_index() -> None:
    raw = example()
    raw["sources"]["shop"]["partitions"] = {"company_id": [1, "${NOPE}"]}
    assert config_error(raw).key == "sources.shop.partitions.company_id.1"


def test_missing_env_var_in_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\.shop\.auth\.token") as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)


# --- unknown keys and types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (
            lambda r: products(r)["paginate"].update(page_parm="p"),
            "sources.shop.streams.products.paginate.page_parm",
        ),
        (
            lambda r: products(r)["incremental"].update(paramm="x"),
            "sources.shop.streams.products.incremental.paramm",
        ),
        (
            lambda r: products(r).update(primary_keys="id"),
            "sources.shop.streams.products.primary_keys",
        ),
        (lambda r: r["sources"]["shop"]["auth"].update(tokn="x"), "sources.shop.auth.tokn"),
        (lambda r: r["sources"]["shop"].update(base_ulr="x"), "sources.shop.base_ulr"),
        (lambda r: r.update(stores="x"), "stores"),
        (
            lambda r: r["sources"]["shop"]["streams"]["dossiers"]["graphql"].update(
                operationName="x"
            ),
            "sources.shop.streams.dossiers.graphql.operationName",
        ),
    ],
)
def test_unknown_key_names_its_full_path(mutate: Any, path: str) -> None:
    raw = example()
    mutate(raw)
    message = str(config_error(raw))
    assert f"{path}: unknown key" in message
    assert "/etc/syncline/shop.yaml" in message


@pytest.mark.parametrize(
    ("block", "value"),
    [
        ("paginate", {"type": "pagenumber"}),
        ("incremental", {"type": "updated_after", "param": "x"}),
    ],
)
def test_unknown_strategy_type_names_the_bad_type(block: str, value: dict[str, Any]) -> None:
    raw = example()
    products(raw)[block] = value
    message = str(config_error(raw))
    assert f"sources.shop.streams.products.{block}" in message
    assert repr(value["type"]) in message
    assert "unknown type" in message


def test_unknown_auth_type_names_the_bad_type() -> None:
    raw = example()
    raw["sources"]["shop"]["auth"] = {"type": "oauth3", "token": "x"}
    message = str(config_error(raw))
    assert "sources.shop.auth" in message
    assert "'oauth3'" in message


def test_missing_required_key_is_named() -> None:
    raw = example()
    del products(raw)["primary_key"]
    assert "sources.shop.streams.products.primary_key: required key is missing" in str(
        config_error(raw)
    )


# --- JMESPath checked at load time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("records", "data[["),
        ("updated_at", "updated_at]"),
        ("primary_key", "id[["),
        ("primary_key", ["id", "sku[["]),
    ],
)
def test_invalid_jmespath_is_rejected_at_load(key: str, value: Any) -> None:
    raw = example()
    products(raw)[key] = value
    message = str(config_error(raw))
    assert f"sources.shop.streams.products.{key}" in message
    assert "JMESPath" in message


@pytest.mark.parametrize(
    "paginate",
    [
        {"type": "page_number", "last_page": "meta[["},
        {"type": "page_number", "total_pages": "meta[["},
        {"type": "page_number", "total": "meta[["},
        {"type": "page_number", "has_more": "meta[["},
        {"type": "offset", "total": "meta[["},
        {"type": "cursor", "cursor_path": "next[["},
        {"type": "next_link", "next_url_path": "links[["},
    ],
)
def test_invalid_jmespath_in_paginator_is_rejected_at_load(paginate: dict[str, Any]) -> None:
    raw = example()
    products(raw)["paginate"] = paginate
    (key,) = set(paginate) - {"type"}
    with pytest.raises(ConfigError, match=rf"sources\.shop\.streams\.products\.paginate\.{key}"):
        load(raw)


def test_invalid_jmespath_in_relay_page_info_is_rejected_at_load() -> None:
    raw = example()
    raw["sources"]["shop"]["streams"]["dossiers"]["paginate"]["page_info"] = "data[["
    with pytest.raises(ConfigError, match=r"dossiers\.paginate\.page_info"):
        load(raw)


# --- files next to the config --------------------------------------------------------------


def write_query_config(directory: Path, graphql: dict[str, Any]) -> Path:
    raw = example()
    raw["sources"]["shop"]["streams"]["dossiers"]["graphql"] = graphql
    path = directory / "conf" / "shop.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_query_file_is_read_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "queries").mkdir(parents=True)
    (tmp_path / "conf" / "queries" / "dossiers.graphql").write_text(
        "query q { x }", encoding="utf-8"
    )
    path = write_query_config(tmp_path, {"query_file": "queries/dossiers.graphql"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    graphql = load_config(path, environ=ENV).sources["shop"].streams["dossiers"].graphql
    assert graphql is not None
    assert graphql.query == "query q { x }"


def test_missing_query_file_names_the_key(tmp_path: Path) -> None:
    path = write_query_config(tmp_path, {"query_file": "nope.graphql"})
    with pytest.raises(ConfigError, match=r"sources\.shop\.streams\.dossiers\.graphql\.query_file"):
        load_config(path, environ=ENV)


def test_query_and_query_file_together_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "q.graphql").write_text("query q { x }", encoding="utf-8")
    path = write_query_config(tmp_path, {"query": "query q { y }", "query_file": "q.graphql"})
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(path, environ=ENV)


def test_graphql_without_any_query_is_rejected() -> None:
    raw = example()
    raw["sources"]["shop"]["streams"]["dossiers"]["graphql"] = {"variables": {}}
    assert "exactly one" in str(config_error(raw))


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("sqlite:///rel.db", "sqlite:///{base}/rel.db"),
        ("sqlite:///data/rel.db", "sqlite:///{base}/data/rel.db"),
        ("sqlite:///../up.db", "sqlite:///{parent}/up.db"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("jsonl:///out", "jsonl:///{base}/out"),
    ],
)
def test_relative_store_paths_resolve_next_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str, expected: str
) -> None:
    base = (tmp_path / "conf").resolve()
    base.mkdir()
    raw = example()
    raw["store"] = store
    path = base / "shop.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_config(path, environ=ENV).store == expected.format(base=base, parent=base.parent)


def test_default_store_also_resolves_next_to_the_config() -> None:
    raw = example()
    del raw["store"]
    assert load(raw, base=Path("/srv/sync")).store == "sqlite:////srv/sync/syncline.db"


# --- cross-field rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "source_partitions", "message"),
    [
        ({"path": "/c/{company}/products"}, {"company_id": [1]}, "['company']"),
        ({"path": "/c/{company_id}/{region}"}, {"company_id": [1]}, "['region']"),
        (
            {"path": "/c/{company_id}", "partitions": {"region": ["eu"]}},
            {"company_id": [1]},
            "['company_id']",
        ),
        ({"path": "/x/{x}"}, {}, "nothing"),
    ],
)
def test_path_placeholders_must_be_partition_keys(
    stream: dict[str, Any], source_partitions: dict[str, Any], message: str
) -> None:
    raw = example()
    raw["sources"]["shop"]["partitions"] = source_partitions
    products(raw).update(stream)
    text = str(config_error(raw))
    assert "sources.shop" in text
    assert "'products'" in text
    assert message in text


def test_stream_partitions_define_placeholders() -> None:
    raw = example()
    raw["sources"]["shop"]["partitions"] = {}
    products(raw)["partitions"] = {"company_id": [5, 6]}
    stream = load(raw).sources["shop"].streams["products"]
    assert stream.partitions == {"company_id": [5, 6]}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["sources"]["shop"]["streams"]["dossiers"].update(table="products"),
        lambda r: r["sources"]["shop"]["streams"]["dossiers"].update(table="PRODUCTS"),
        lambda r: r["sources"].update(
            other={"base_url": "http://o.test", "streams": {"products": {"primary_key": "id"}}}
        ),
    ],
)
def test_two_streams_writing_the_same_table_are_rejected(mutate: Any) -> None:
    raw = example()
    mutate(raw)
    message = str(config_error(raw))
    assert "products" in message
    assert "table" in message


def test_same_stream_name_in_two_sources_with_distinct_tables_is_fine() -> None:
    raw = example()
    raw["sources"]["other"] = {
        "base_url": "http://o.test",
        "streams": {"products": {"primary_key": "id", "table": "other_products"}},
    }
    assert set(load(raw).sources) == {"shop", "other"}


def test_reserved_table_prefix_is_rejected() -> None:
    raw = example()
    products(raw)["table"] = "_syncline_state"
    assert "reserved" in str(config_error(raw))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda r: products(r).pop("updated_at"), "updated_at"),
        (lambda r: products(r).update(paginate={"type": "relay", "page_info": "p"}), "graphql"),
        (lambda r: products(r).update(incremental={"type": "cursor"}), "cursor"),
        (lambda r: r["sources"]["shop"].update(base_url="ftp://x.test"), "http"),
        (lambda r: r["sources"]["shop"].update(streams={}), "at least one stream"),
        (lambda r: products(r).update(primary_key=[]), "primary key"),
        (lambda r: products(r)["incremental"].update(lookback="soon"), "lookback"),
    ],
)
def test_incoherent_streams_are_rejected(mutate: Any, fragment: str) -> None:
    raw = example()
    mutate(raw)
    assert fragment in str(config_error(raw))


def test_no_incremental_by_default() -> None:
    raw = example()
    del products(raw)["incremental"]
    assert isinstance(load(raw).sources["shop"].streams["products"].incremental, NoIncremental)


def test_config_from_dict_does_not_mutate_its_input() -> None:
    raw = example()
    before = copy.deepcopy(raw)
    load(raw)
    assert raw == before


def test_interpolated_numeric_lookback_is_seconds() -> None:
    raw = example()
    products(raw)["incremental"]["lookback"] = "${LOOKBACK:-300}"
    incremental = load(raw).sources["shop"].streams["products"].incremental
    assert isinstance(incremental, WatermarkIncremental)
    assert incremental.lookback == timedelta(seconds=300)


def test_out_of_range_lookback_is_a_config_error() -> None:
    raw = example()
    products(raw)["incremental"]["lookback"] = "9999999999d"
    with pytest.raises(ConfigError, match="lookback"):
        load(raw)


# --- load_config file errors ---------------------------------------------------------------


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(info.value)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources:\n  shop: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


# --- typed columns and mode ----------------------------------------------------------------


def test_columns_take_a_path_or_a_full_declaration() -> None:
    raw = example()
    products(raw)["columns"] = {
        "name": "name",
        "price": {"path": "price", "type": "numeric", "index": True},
        "city": "address.city",
    }
    table = load(raw).sources["shop"].streams["products"].columns
    assert {n: (c.path, c.type, c.index) for n, c in table.items()} == {
        "name": ("name", "text", False),
        "price": ("price", "numeric", True),
        "city": ("address.city", "text", False),
    }


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [
        ({"price": {"path": "price", "type": "money"}}, "columns.price.type"),
        ({"price": {"path": "price[", "type": "numeric"}}, "JMESPath"),
        ({"price": {"type": "numeric"}}, "columns.price.path"),
        ({"_data": "x"}, "syncline's own"),
        ({"Name": "a", "name": "b"}, "differ only by case"),
        ({"ID": "id"}, "primary-key column"),
        ({"company_id": "company"}, "partition"),
    ],
)
def test_bad_columns_name_the_key(columns: dict[str, Any], fragment: str) -> None:
    raw = example()
    products(raw)["columns"] = columns
    message = str(config_error(raw))
    assert fragment in message
    assert "products" in message


def test_snapshot_mode_needs_a_full_refresh_stream() -> None:
    raw = example()
    products(raw)["mode"] = "snapshot"
    assert "full-refresh" in str(config_error(raw))
    products(raw)["incremental"] = {"type": "none"}
    stream = load(raw).sources["shop"].streams["products"]
    assert stream.mode == "snapshot"
