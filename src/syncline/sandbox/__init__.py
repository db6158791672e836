"""A deterministic fake paginated API, served over real HTTP on loopback.

Why it exists: syncline's job is to walk real-world pagination schemes
correctly, resume incrementally and survive data changing underneath it.
Testing that against public APIs is slow, flaky and needs tokens; mocking the
HTTP layer hides exactly the bugs we care about.  The sandbox instead serves
one reproducible dataset through one endpoint per pagination style (pages,
0-based pages, offset, cursor, changes feed, ``Link`` header, HAL next link,
GraphQL Relay, unpaginated) on a real uvicorn server, with admin endpoints so
that tests can mutate data mid-sync and count requests.  It is also what the
benchmarks (up to 1,000,000 generated records) and the demo run against.

For reliability tests it can also misbehave on purpose (``/_admin/faults``:
rate limits, 5xx, truncated bodies, dropped connections, broken pagination
links, GraphQL errors) and act as an OAuth2 token endpoint with expiring access
tokens and rotating refresh tokens (``/oauth/token``).  To test and benchmark a
client's call budgeting it can also enforce real per-tenant rate limits
(``/_admin/limits``: sliding and fixed windows, 429 + ``Retry-After``, and
``X-RateLimit-*``, Exact Online or IETF ``RateLimit`` headers).

It also mounts faithful emulations of four real APIs (Fatture in Cloud,
démarches-simplifiées, Inxmail, Exact Online) under their own prefixes, so a
client config written for the real service can be tested by changing only its
``base_url`` (see :mod:`.seeds` and ``docs/sandbox-seeds.md``).
"""

from syncline.sandbox.app import create_app
from syncline.sandbox.dataset import Dataset
from syncline.sandbox.faults import FaultConfig, parse_fault_config
from syncline.sandbox.limit_config import LimitsConfig, parse_limits_config
from syncline.sandbox.oauth import OAuthSettings
from syncline.sandbox.server import SandboxProcess, main, serve

__all__ = [
    "Dataset",
    "FaultConfig",
    "LimitsConfig",
    "OAuthSettings",
    "SandboxProcess",
    "create_app",
    "main",
    "parse_fault_config",
    "parse_limits_config",
    "serve",
]
