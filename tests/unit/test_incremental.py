"""Incremental modes as pure functions: what a pass sends, and what ends it."""

from __future__ import annotations

from typing import Any

import orjson

from syncline.config import StreamConfig
from syncline.incremental import finish_pass, opening, start_pass, token_refused
from syncline.paginate import Page, make_paginator
from syncline.request import RequestSpec
from syncline.stores import State, StateKey


def stream(**incremental: Any) -> StreamConfig:
    return StreamConfig.model_validate(
        {
            "primary_key": "id",
            "updated_at": "Timestamp",
            "records": "value",
            "paginate": {"type": "next_link", "next_url_path": '"@odata.nextLink"'},
            "incremental": incremental,
        }
    )


def page(body: Any, url: str = "https://api.example.com/v1/items?$top=100") -> Page:
    return Page(body, {}, (), url, 0)


def test_an_odata_delta_link_is_kept_as_a_whole_url() -> None:
    delta = stream(type="sync_token", link_path='"@odata.deltaLink"')
    paginator = make_paginator(delta.paginate)
    state = State(StateKey("s", "items", ""))
    start_pass(delta, paginator, state, full_refresh=False)
    assert state.pass_filter == {"full": True}
    last = page({"value": [], "@odata.deltaLink": "/v1/items/delta?token=abc"})
    finish_pass(delta, paginator, state, state.position or {}, last)
    assert state.cursor == "https://api.example.com/v1/items/delta?token=abc"

    start_pass(delta, paginator, state, full_refresh=False)
    assert state.pass_filter == {"from": state.cursor}
    rewrite = opening(delta, state.pass_filter)
    assert rewrite is not None
    first = rewrite(RequestSpec("GET", "https://api.example.com/v1/items", params={"$top": 100}))
    assert first.url == "https://api.example.com/v1/items/delta?token=abc"


def test_a_token_goes_back_inside_its_template() -> None:
    feed = stream(type="sync_token", token_path="max(value[].Timestamp)", param="$filter",
                  template="Timestamp gt {value}")  # fmt: skip
    paginator = make_paginator(feed.paginate)
    state = State(StateKey("s", "items", ""), cursor=41)
    start_pass(feed, paginator, state, full_refresh=False)
    rewrite = opening(feed, state.pass_filter)
    assert rewrite is not None
    sent = rewrite(RequestSpec("GET", "https://api.example.com/sync"))
    assert sent.params["$filter"] == "Timestamp gt 41"


def test_an_empty_last_page_keeps_the_previous_token() -> None:
    feed = stream(type="sync_token", token_path="last_seq", param="since")
    paginator = make_paginator(feed.paginate)
    state = State(StateKey("s", "items", ""), cursor="7-abc")
    start_pass(feed, paginator, state, full_refresh=False)
    finish_pass(feed, paginator, state, state.position or {}, page({"value": []}))
    assert state.cursor == "7-abc"
    assert state.position is None


def test_a_watermark_inside_a_filter_expression() -> None:
    exact = stream(type="watermark", param="$filter", template="Timestamp gt {value}",
                   format="raw", initial=1)  # fmt: skip
    paginator = make_paginator(exact.paginate)
    state = State(StateKey("s", "items", ""))
    start_pass(exact, paginator, state, full_refresh=False)
    assert state.pass_filter == "Timestamp gt 1"
    state.watermark = {"value": 123456, "raw": 123456}
    start_pass(exact, paginator, state, full_refresh=False)
    assert state.pass_filter == "Timestamp gt 123456"


def test_token_refusals_by_status_or_by_the_error_body() -> None:
    by_status = stream(type="sync_token", token_path="t", param="since")
    assert token_refused(by_status, 410, b"")
    assert not token_refused(by_status, 400, b"")
    by_code = stream(type="sync_token", token_path="t", param="since", expired_statuses=[],
                     expired_when="error.code == 'SYNC_TOKEN_EXPIRED'")  # fmt: skip
    body = orjson.dumps({"error": {"code": "SYNC_TOKEN_EXPIRED"}})
    assert token_refused(by_code, 400, body)
    assert not token_refused(by_code, 400, orjson.dumps({"error": {"code": "BAD_FILTER"}}))
    assert not token_refused(by_code, 400, b"<html>Bad Request</html>")
    assert not token_refused(stream(type="none"), 410, b"")
