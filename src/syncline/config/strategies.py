"""Configuration of the pluggable parts of a stream: paginator, incremental mode, auth.

Each is a tagged union on ``type`` so a typo in a key is caught by name
(``extra="forbid"``) instead of being silently ignored.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

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
    "OAuth2Auth",
    "OffsetPaginate",
    "PageNumberPaginate",
    "PaginateConfig",
    "RelayPaginate",
    "WatermarkIncremental",
]


def check_template(value: str | None) -> str | None:
    """A filter template must say where the value goes, and only there."""
    if value is not None and value.count(VALUE_SLOT) != 1:
        raise ValueError(
            f"a template holds {VALUE_SLOT} exactly once, e.g. 'Timestamp gt {{value}}'"
        )
    return value


def fill_template(template: str | None, value: object) -> object:
    """The parameter sent: the bare value, or the template with the value in its slot."""
    return value if template is None else template.replace(VALUE_SLOT, str(value))


VALUE_SLOT = "{value}"


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
    """Read everything every time (the API offers no change filter)."""

    type: Literal["none", "full"] = "none"
    detect_deletes: bool = False
    """Rows a complete pass did not see are marked deleted (never after an incomplete one)."""


class WatermarkIncremental(_Frozen):
    """Send the highest committed modification value (minus ``lookback``) as a filter."""

    type: Literal["watermark", "updated_since"]
    param: str
    initial: str | int | None = None
    lookback: timedelta = timedelta(0)
    format: Literal["iso8601", "epoch", "epoch_ms", "raw"] = "iso8601"
    template: str | None = None
    """The whole parameter around the value, for filter languages: ``Timestamp gt {value}``."""

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    _template = field_validator("template")(check_template)


class CursorIncremental(_Frozen):
    """Keep the paginator's last cursor across runs and continue from it next time."""

    type: Literal["cursor"]


class SyncTokenIncremental(_Frozen):
    """A server-issued token or link, found on the last page, that asks for what changed since.

    Inxmail's ``inx:upcoming-modifications`` link, OData ``@odata.deltaLink``,
    CouchDB's ``last_seq``. Stored only once every page of the pass is
    committed; an expired one (``expired_statuses``) means a full resync.
    """

    type: Literal["sync_token"]
    link_path: str | None = None
    """Where the last page holds a whole URL to request next time."""
    token_path: str | None = None
    """Where the last page holds a token to send back as ``param``."""
    param: str | None = None
    """The query parameter (or GraphQL variable) the token goes back in."""
    template: str | None = None
    """The whole parameter around the token, e.g. ``Timestamp gt {value}``."""
    expired_statuses: list[int] = Field(default_factory=lambda: [410])
    expired_when: str | None = None
    """A JMESPath predicate on an error answer's body that also means "token expired"
    (for APIs that say so with a 400 and an error code)."""

    _paths = field_validator("link_path", "token_path", "expired_when")(check_expression)
    _template = field_validator("template")(check_template)

    @model_validator(mode="after")
    def _one_way_back(self) -> SyncTokenIncremental:
        if (self.link_path is None) == (self.token_path is None):
            raise ValueError("give exactly one of link_path (a URL) or token_path (a token)")
        if self.token_path is not None and not self.param:
            raise ValueError("token_path needs param: the parameter the token is sent back in")
        return self


IncrementalConfig = Annotated[
    NoIncremental | WatermarkIncremental | CursorIncremental | SyncTokenIncremental,
    Field(discriminator="type"),
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


_OAUTH2_RESERVED = frozenset({"grant_type", "refresh_token", "client_id", "client_secret", "scope"})


class OAuth2Auth(_Frozen):
    """OAuth2 access tokens from ``token_url`` (see :mod:`syncline.oauth2`).

    ``token_file`` keeps the newest refresh token when the vendor rotates it; a
    relative path is resolved against the config file's directory by the caller.
    """

    type: Literal["oauth2"]
    grant: Literal["client_credentials", "refresh_token"]
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    scope: str | None = None
    client_auth: Literal["body", "basic"] = "body"
    token_file: Path | None = None
    min_refresh_interval: timedelta = timedelta(0)
    extra_params: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("client_secret", "refresh_token")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("is empty (an unset ${VAR:-} default?); set it or remove the key")
        return value

    @field_validator("min_refresh_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("extra_params")
    @classmethod
    def _not_reserved(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        clash = sorted(_OAUTH2_RESERVED & value.keys())
        if clash:
            names = ", ".join(repr(name) for name in clash)
            raise ValueError(f"cannot set {names}: syncline sends them from the auth keys")
        return value

    @model_validator(mode="after")
    def _grant_needs(self) -> OAuth2Auth:
        if self.grant == "refresh_token" and self.refresh_token is None and not self.token_file:
            raise ValueError("grant 'refresh_token' needs 'refresh_token' or 'token_file'")
        if self.grant == "client_credentials":
            if self.client_secret is None:
                raise ValueError("grant 'client_credentials' needs 'client_secret'")
            unused = [key for key in ("refresh_token", "token_file") if getattr(self, key)]
            if unused:
                raise ValueError(f"{unused} only apply to grant 'refresh_token'")
        if self.client_auth == "basic" and self.client_secret is None:
            raise ValueError("client_auth 'basic' needs 'client_secret'")
        return self


AuthConfig = Annotated[
    BearerAuth | ApiKeyAuth | BasicAuth | OAuth2Auth, Field(discriminator="type")
]

UNION_FIELDS = frozenset({"paginate", "incremental", "auth"})
"""Keys whose value is one of the tagged unions above (their tag is dropped from error paths)."""
