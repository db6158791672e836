"""Plumbing shared by the sandbox's endpoint modules.

Kept apart so that the REST, GraphQL and admin modules stay small and agree on
the details clients depend on: page-size capping, 400 error bodies, and the
orjson response (the stdlib ``json`` encoder would dominate a 1,000-record
page).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response

from syncline.sandbox.dataset import Dataset
from syncline.sandbox.overlap import OverlapTracker

if TYPE_CHECKING:
    # Type-only: both modules import this one, and neither is needed at runtime here.
    from syncline.sandbox.faults import FaultController
    from syncline.sandbox.limiter import RateLimiter
    from syncline.sandbox.oauth import OAuthServer

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
"""Larger page sizes are served as this many, the way real APIs clamp."""

DATA_PATHS: Final = frozenset(
    {
        "/page/items",
        "/page0/items",
        "/offset/items",
        "/cursor/items",
        "/changes",
        "/link/items",
        "/next/items",
        "/graphql",
        "/none/items",
    }
)
"""Endpoints that serve data: they need the token (if any), are counted and get faults."""

AUTH_SCOPE_KEY: Final = "syncline.sandbox.auth"
"""ASGI scope key the data gate sets to ``"oauth"`` for issued OAuth access tokens."""


@dataclass
class SandboxState:
    """Everything the app mutates; ``/_admin/reset`` swaps ``dataset`` in place."""

    dataset: Dataset
    default_records: int
    default_seed: int
    stats: Counter[str] = field(default_factory=Counter)
    faults: FaultController = field(kw_only=True)
    oauth: OAuthServer | None = field(default=None, kw_only=True)
    """``None`` unless the app was created with OAuth settings."""
    limits: RateLimiter = field(kw_only=True)
    overlaps: OverlapTracker = field(default_factory=OverlapTracker, kw_only=True)
    """Fed only while limits name a tenant; see :mod:`.overlap_middleware`."""


class BadRequestError(Exception):
    """Raised by handlers for malformed input; rendered as a 400 JSON body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body; an empty body counts as ``{}``."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object")
    return body


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )


async def bad_request_handler(_request: Request, exc: Exception) -> Response:
    message = exc.message if isinstance(exc, BadRequestError) else str(exc)
    return json_response({"error": message}, status=400)


def sandbox_state(request: Request) -> SandboxState:
    state = request.app.state.sandbox
    assert isinstance(state, SandboxState)
    return state


def int_param(request: Request, name: str, default: int, minimum: int = 0) -> int:
    """Integer query parameter; absent or empty means ``default``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise BadRequestError(f"{name} must be >= {minimum}, got {value}")
    return value


def page_size(request: Request, name: str) -> int:
    """Requested page size, at least 1 and silently capped at ``MAX_PAGE_SIZE``."""
    return min(int_param(request, name, DEFAULT_PAGE_SIZE, minimum=1), MAX_PAGE_SIZE)


def clamp_size(value: int | None) -> int:
    """Same capping for sizes that arrive outside the query string (GraphQL)."""
    if value is None:
        return DEFAULT_PAGE_SIZE
    if value < 0:
        raise BadRequestError(f"page size must be >= 0, got {value}")
    return min(value, MAX_PAGE_SIZE)


def listing_start(dataset: Dataset, updated_since: str | None) -> int:
    """Listing position for an ``updated_since`` filter, 400 if unparseable."""
    try:
        return dataset.start_for(updated_since)
    except ValueError:
        message = f"updated_since is not an ISO-8601 instant: {updated_since!r}"
        raise BadRequestError(message) from None
