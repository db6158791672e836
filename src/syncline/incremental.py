"""Incremental modes as pure functions on a checkpoint.

A pass starts with a fixed filter (``pass_filter``) that every page of the
pass sends, so a resumed pass asks exactly what the interrupted one asked.
The watermark only advances when the pass completes, to the newest value on
its committed pages, and never moves backwards.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from syncline.config import StreamConfig
from syncline.config.strategies import (
    CursorIncremental,
    SyncTokenIncremental,
    WatermarkIncremental,
    fill_template,
)
from syncline.jpath import compile_path
from syncline.paginate import Page, Paginator
from syncline.request import RequestSpec
from syncline.stores.base import State
from syncline.timestamps import Comparable, format_filter_value, normalize

log = logging.getLogger("syncline")

__all__ = [
    "finish_pass",
    "full_pass_proves_deletes",
    "merge_newest",
    "opening",
    "start_pass",
    "token_refused",
]

FULL_PASS = {"full": True}
"""``pass_filter`` of a sync-token stream's pass that started without a token: it reads
everything, so what it does not see was deleted."""


def start_pass(
    stream: StreamConfig, paginator: Paginator, state: State, *, full_refresh: bool
) -> None:
    """Open a new pass on ``state``: its first position and the filter it will send."""
    mode = stream.incremental
    state.pass_max = None
    state.pass_filter = None
    resume_cursor = None
    if not full_refresh:
        if isinstance(mode, WatermarkIncremental):
            value = _filter_value(mode, state.watermark)
            state.pass_filter = None if value is None else fill_template(mode.template, value)
        elif isinstance(mode, CursorIncremental):
            resume_cursor = state.cursor
    if isinstance(mode, SyncTokenIncremental):
        use_token = not full_refresh and state.cursor is not None
        state.pass_filter = {"from": state.cursor} if use_token else dict(FULL_PASS)
    state.position = paginator.start(resume_cursor)


def opening(stream: StreamConfig, pass_filter: Any) -> Callable[[RequestSpec], RequestSpec] | None:
    """How the first request of a sync-token pass asks for "what changed since the token"."""
    mode = stream.incremental
    if not isinstance(mode, SyncTokenIncremental) or not isinstance(pass_filter, dict):
        return None
    token = pass_filter.get("from")
    if token is None:
        return None
    if mode.link_path is not None:
        return lambda request: request.with_link(str(token))
    name = mode.param
    assert name is not None  # checked by the config
    sent = fill_template(mode.template, token)
    return lambda request: request.with_value(name, sent)


def token_refused(stream: StreamConfig, status: int | None, answer: bytes) -> bool:
    """The server's error says the sync token is expired or unknown: by status, or by
    the stream's ``expired_when`` predicate on the error body (an API's own error code)."""
    mode = stream.incremental
    if not isinstance(mode, SyncTokenIncremental):
        return False
    if status in mode.expired_statuses:
        return True
    if mode.expired_when is None or not answer:
        return False
    try:
        body = json.loads(answer)
    except ValueError:
        return False
    return bool(compile_path(mode.expired_when)(body))


def full_pass_proves_deletes(stream: StreamConfig, pass_filter: Any) -> bool:
    """A sync-token stream's full pass (first run, reset, expired token) saw every record."""
    return isinstance(stream.incremental, SyncTokenIncremental) and pass_filter == FULL_PASS


def _filter_value(mode: WatermarkIncremental, watermark: dict[str, Any] | None) -> Any:
    if watermark is not None:
        return format_filter_value(watermark["value"], watermark["raw"], mode.format, mode.lookback)
    if mode.initial is None:
        return None
    normalized = normalize(mode.initial)
    if normalized is None:
        return mode.initial
    return format_filter_value(normalized, mode.initial, mode.format, type(mode.lookback)(0))


def _token_on(mode: SyncTokenIncremental, page: Page) -> Any:
    if mode.link_path is not None:
        link = compile_path(mode.link_path)(page.body)
        if not isinstance(link, str) or not link.strip():
            return None
        return urljoin(page.url, link.strip())
    assert mode.token_path is not None
    token = compile_path(mode.token_path)(page.body)
    return None if token in (None, "") else token


def merge_newest(
    current: dict[str, Any] | None, page_newest: tuple[Comparable, Any] | None
) -> dict[str, Any] | None:
    if page_newest is None:
        return current
    value, raw = page_newest
    if current is None:
        return {"value": value, "raw": raw}
    try:
        newer = value >= current["value"]
    except TypeError:
        newer = False
    return {"value": value, "raw": raw} if newer else current


def finish_pass(
    stream: StreamConfig, paginator: Paginator, state: State, position: dict[str, Any], page: Page
) -> None:
    """Close the pass: advance watermark and cursor, clear the in-progress marker."""
    mode = stream.incremental
    if isinstance(mode, CursorIncremental):
        state.cursor = paginator.final_cursor(position, page)
    elif isinstance(mode, SyncTokenIncremental):
        token = _token_on(mode, page)
        if token is None:
            # Feeds whose token is computed from the records (max(Timestamp)) have none on an
            # empty last page: nothing changed, and the previous token is still right.
            log.log(
                logging.WARNING if page.record_count else logging.DEBUG,
                "the last page has no sync token at %r; the next run starts from the previous one",
                mode.link_path or mode.token_path,
            )
        else:
            state.cursor = token
    if state.pass_max is not None:
        state.watermark = merge_newest(
            state.watermark, (state.pass_max["value"], state.pass_max["raw"])
        )
    state.position = None
    state.pass_filter = None
    state.pass_max = None
