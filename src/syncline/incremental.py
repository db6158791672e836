"""Incremental modes as pure functions on a checkpoint.

A pass starts with a fixed filter (``pass_filter``) that every page of the
pass sends, so a resumed pass asks exactly what the interrupted one asked.
The watermark only advances when the pass completes, to the newest value on
its committed pages, and never moves backwards.
"""

from __future__ import annotations

from typing import Any

from syncline.config import StreamConfig
from syncline.config.strategies import CursorIncremental, WatermarkIncremental
from syncline.paginate import Page, Paginator
from syncline.stores.base import State
from syncline.timestamps import Comparable, format_filter_value, normalize

__all__ = ["finish_pass", "merge_newest", "start_pass"]


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
            state.pass_filter = _filter_value(mode, state.watermark)
        elif isinstance(mode, CursorIncremental):
            resume_cursor = state.cursor
    state.position = paginator.start(resume_cursor)


def _filter_value(mode: WatermarkIncremental, watermark: dict[str, Any] | None) -> Any:
    if watermark is not None:
        return format_filter_value(watermark["value"], watermark["raw"], mode.format, mode.lookback)
    if mode.initial is None:
        return None
    normalized = normalize(mode.initial)
    if normalized is None:
        return mode.initial
    return format_filter_value(normalized, mode.initial, mode.format, type(mode.lookback)(0))


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
    if isinstance(stream.incremental, CursorIncremental):
        state.cursor = paginator.final_cursor(position, page)
    if state.pass_max is not None:
        state.watermark = merge_newest(
            state.watermark, (state.pass_max["value"], state.pass_max["raw"])
        )
    state.position = None
    state.pass_filter = None
    state.pass_max = None
