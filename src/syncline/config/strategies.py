"""Configuration of the pluggable parts of a stream: paginator, incremental mode, auth.

Each is a tagged union on ``type`` so a typo in a key is caught by name
(``extra="forbid"``) instead of being silently ignored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

from syncline.durations import parse_duration
from syncline.jpath import check_expression

__all__ = [
    "ApiKeyAuth",
    "AuthConfig",
    "BasicAuth",
    "BearerAuth",
    "CursorIncremental",
    "CursorPaginate",
    "IncrementalConfig",
    "LinkHeaderPaginate",
    "NextLinkPaginate",
    "NoIncremental",
    "NoPaginate",
    "OffsetPaginate",
    "PageNumberPaginate",
    "PaginateConfig",
    "RelayPaginate",
    "WatermarkIncremental",
]


class _Frozen(BaseModel):
    """Config values never change after loading: frozen, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# --- paginators ---------------------------------------------------------------------------


_PATH_FIELDS: tuple[str, ...] = ("last_page", "total_pages", "total", "has_more")
_PATH_FIELDS += ("cursor_path", "page_info", "next_url_path")


class _PaginateBase(_Frozen):
    size_param: str | None = None
    size: Annotated[int, Field(gt=0)] | None = None
    max_pages: Annotated[int, Field(gt=0)] | None = None

    @field_validator(*_PATH_FIELDS, mode="after", check_fields=False)
    @classmethod
    def _paths_compile(cls, value: str | None) -> str | None:
        """Fail at load time, not on page 3,000, when a JMESPath does not compile."""
        return check_expression(value)


class PageNumberPaginate(_PaginateBase):
    type: Literal["page_number", "page"]
    page_param: str = "page"
    first_page: Literal[0, 1] = 1
    last_page: str | None = None
    total_pages: str | None = None
    total: str | None = None
    has_more: str | None = None
    stop_on_short_page: bool = True


class OffsetPaginate(_PaginateBase):
    type: Literal["offset"]
    offset_param: str = "offset"
    size_param: str | None = Field(
        default="limit", validation_alias=AliasChoices("size_param", "limit_param")
    )
    total: str | None = None
    has_more: str | None = None
    stop_on_short_page: bool = True


class CursorPaginate(_PaginateBase):
    type: Literal["cursor"]
    cursor_path: str
    cursor_param: str = "cursor"
    has_more: str | None = None


class RelayPaginate(_PaginateBase):
    type: Literal["relay"]
    page_info: str
    has_next_page: str = "hasNextPage"
    end_cursor: str = "endCursor"
    after_param: str = Field(
        default="after", validation_alias=AliasChoices("after_param", "after_variable", "after")
    )
    size_param: str | None = "first"


class NextLinkPaginate(_PaginateBase):
    type: Literal["next_link", "next_url"]
    next_url_path: str = Field(validation_alias=AliasChoices("next_url_path", "next_path", "path"))


class LinkHeaderPaginate(_PaginateBase):
    type: Literal["link_header"]
    rel: str = "next"


class NoPaginate(_PaginateBase):
    type: Literal["none", "single"]


PaginateConfig = Annotated[
    PageNumberPaginate
    | OffsetPaginate
    | CursorPaginate
    | RelayPaginate
    | NextLinkPaginate
    | LinkHeaderPaginate
    | NoPaginate,
    Field(discriminator="type"),
]


# --- incremental modes --------------------------------------------------------------------


class NoIncremental(_Frozen):
    type: Literal["none", "full"] = "none"


class WatermarkIncremental(_Frozen):
    """Send the highest committed modification value (minus ``lookback``) as a filter."""

    type: Literal["watermark", "updated_since"]
    param: str
    initial: str | int | None = None
    lookback: timedelta = timedelta(0)
    format: Literal["iso8601", "epoch", "epoch_ms", "raw"] = "iso8601"

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)


class CursorIncremental(_Frozen):
    """Keep the paginator's last cursor across runs and continue from it next time."""

    type: Literal["cursor"]


IncrementalConfig = Annotated[
    NoIncremental | WatermarkIncremental | CursorIncremental, Field(discriminator="type")
]


# --- auth ---------------------------------------------------------------------------------


class BearerAuth(_Frozen):
    type: Literal["bearer"]
    token: SecretStr


class ApiKeyAuth(_Frozen):
    type: Literal["api_key"]
    name: str = "X-API-Key"
    value: SecretStr = Field(validation_alias=AliasChoices("value", "key", "token"))
    location: Literal["header", "query"] = Field(
        default="header", validation_alias=AliasChoices("location", "in")
    )


class BasicAuth(_Frozen):
    type: Literal["basic"]
    username: str
    password: SecretStr


AuthConfig = Annotated[BearerAuth | ApiKeyAuth | BasicAuth, Field(discriminator="type")]

UNION_FIELDS = frozenset({"paginate", "incremental", "auth"})
"""Keys whose value is one of the tagged unions above (their tag is dropped from error paths)."""
