"""Plumbing shared by the seed emulations: config validation, tenant tables, stats, admin.

Why one shared layer: the four emulations differ in their wire format (REST
pages, GraphQL Relay, HAL sync tokens, OData) but each needs exactly the same
test surface: data that is a pure function of a seed, a deterministic way to
mutate it between runs, per-tenant request and rate-limit counters, and a
strict config endpoint.  Keeping that here means every emulation module is
only its API's own behaviour, and every admin endpoint answers the same way.

Time is virtual: every change advances a per-tenant clock (and a change
sequence) instead of reading the wall clock, so the same seed and the same
sequence of mutations always produce byte-identical records.  Rate limits are
the exception: they use the shared :class:`~syncline.sandbox.limiter.RateLimiter`
on real (monotonic) time, exactly like the sandbox's global limits.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import random
import uuid
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Generic, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from syncline.sandbox.common import BadRequestError, json_body, json_response
from syncline.sandbox.limit_config import LimitsConfig, Window
from syncline.sandbox.limiter import RateLimiter

Key = int | str
Body = dict[str, Any]
Endpoint = Callable[[Request], Awaitable[Response]]

EPOCH_MS: Final = 1_704_067_200_000
"""2024-01-01T00:00:00Z in Unix milliseconds: where every virtual clock starts."""

TENANT_STATE: Final = "seed_tenant"
LIMITED_STATE: Final = "seed_rate_limited"


class SeedError(Exception):
    """An API-shaped error response, raised from emulation handlers.

    ``body`` is JSON-encoded unless it is already ``bytes`` (plain-text bodies
    such as Rack::Attack's ``Retry later``).
    """

    def __init__(
        self,
        status: int,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        media_type: str = "application/json",
    ) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.media_type = media_type

    def response(self) -> Response:
        content = self.body if isinstance(self.body, bytes) else orjson.dumps(self.body)
        return Response(
            content, status_code=self.status, headers=self.headers, media_type=self.media_type
        )


async def _seed_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SeedError)
    return exc.response()


async def _bad_request_handler(_request: Request, exc: Exception) -> Response:
    message = exc.message if isinstance(exc, BadRequestError) else str(exc)
    return json_response({"error": message}, status=400)


# -- small helpers ---------------------------------------------------------------


def seeded_rng(*parts: object) -> random.Random:
    """A RNG seeded from ``parts`` joined as text (stable across processes, unlike ``hash``)."""
    return random.Random(":".join(str(part) for part in parts))


def seeded_uuid(rng: random.Random) -> str:
    """A random-looking, deterministic UUID4 string drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso_ms(ms: int) -> str:
    """``2024-01-01T00:00:00.000Z`` for Unix milliseconds."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso_ms(value: str) -> int:
    """Unix milliseconds of an ISO-8601 date or instant (naive means UTC); ``ValueError`` if bad."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def b64_encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def b64_decode(token: str) -> str | None:
    """Inverse of :func:`b64_encode`; ``None`` for anything that is not one of ours."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def authorization(request: Request) -> str:
    return request.headers.get("authorization", "")


def bearer_token(request: Request) -> str | None:
    scheme, _, token = authorization(request).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = authorization(request).partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def mount_base(request: Request) -> str:
    """Absolute URL of the emulation's mount point, e.g. ``http://127.0.0.1:PORT/exact``."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}"


def set_tenant(request: Request, tenant: str) -> None:
    """Attribute the request to ``tenant`` in the stats (see :func:`counted`)."""
    setattr(request.state, TENANT_STATE, tenant)


def mark_rate_limited(request: Request) -> None:
    setattr(request.state, LIMITED_STATE, True)


def make_limiter(*windows: Window) -> RateLimiter:
    """The sandbox's own rate limiter, configured with ``windows`` (tenant chosen per call)."""
    return RateLimiter(LimitsConfig(windows=windows))


# -- strict config validation ----------------------------------------------------

Validator = Callable[[Any, str], Any]
C = TypeVar("C")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def v_int(minimum: int = 0) -> Validator:
    def check(value: Any, name: str) -> int:
        if not _is_int(value) or value < minimum:
            raise BadRequestError(f"{name} must be an integer >= {minimum}, got {value!r}")
        result: int = value
        return result

    return check


def v_opt_int(minimum: int = 0) -> Validator:
    inner = v_int(minimum)
    return lambda value, name: None if value is None else inner(value, name)


def v_number(minimum: float) -> Validator:
    def check(value: Any, name: str) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or value < minimum:
            raise BadRequestError(f"{name} must be a number >= {minimum}, got {value!r}")
        return float(value)

    return check


def v_opt_number(minimum: float) -> Validator:
    inner = v_number(minimum)
    return lambda value, name: None if value is None else inner(value, name)


def v_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequestError(f"{name} must be a boolean, got {value!r}")
    return value


def v_opt_str(value: Any, name: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise BadRequestError(f"{name} must be a non-empty string or null, got {value!r}")
    return value


def v_choice(*choices: object) -> Validator:
    def check(value: Any, name: str) -> Any:
        if value not in choices or isinstance(value, bool):
            raise BadRequestError(f"{name} must be one of {list(choices)}, got {value!r}")
        return value

    return check


def v_sizes(*, numeric_keys: bool) -> Validator:
    """``{"tenant": record_count}`` (tenant ids as strings; all-digit when ``numeric_keys``)."""

    def check(value: Any, name: str) -> dict[str, int]:
        if not isinstance(value, dict) or not value:
            raise BadRequestError(f"{name} must be a non-empty object of tenant -> record count")
        sizes: dict[str, int] = {}
        for key, count in value.items():
            if numeric_keys and not (isinstance(key, str) and key.isdigit() and key[0] != "0"):
                raise BadRequestError(f"{name}: tenant ids must be positive integers, got {key!r}")
            if not numeric_keys and not (isinstance(key, str) and key.isascii() and key.strip()):
                raise BadRequestError(f"{name}: tenant ids must be ASCII names, got {key!r}")
            sizes[key] = v_int(0)(count, f"{name}[{key!r}]")
        return sizes

    return check


def merge_config(current: C, body: Mapping[str, Any], validators: Mapping[str, Validator]) -> C:
    """``current`` with the fields of ``body`` validated and replaced; unknown fields are a 400."""
    extra = sorted(set(body) - set(validators))
    if extra:
        raise BadRequestError(f"unknown config field(s) {extra}; known: {sorted(validators)}")
    changes = {name: validators[name](value, name) for name, value in body.items()}
    return dataclasses.replace(current, **changes)  # type: ignore[type-var]


def config_json(config: object) -> dict[str, Any]:
    assert dataclasses.is_dataclass(config)
    assert not isinstance(config, type)
    return dataclasses.asdict(config)


# -- per-tenant data ---------------------------------------------------------------


@dataclass
class Row:
    """A live record: its body plus the bookkeeping every emulation orders by."""

    key: Key
    body: Body
    seq: int
    """Change sequence: strictly increasing per tenant with every insert/update/delete."""
    created: int
    """Virtual Unix milliseconds."""
    modified: int
    version: int = 1


@dataclass(frozen=True)
class Tombstone:
    key: Key
    seq: int
    deleted: int
    """Virtual Unix milliseconds of the deletion."""
    body: Body
    """The record's last body (some APIs report parts of it with the deletion)."""


Change = Row | Tombstone


class Table:
    """One tenant's records, in change order and in key order.

    Every change takes the next value of the tenant's change sequence and a
    later virtual time, so "ordered by modification date" and "ordered by
    sequence" are the same order, and both are served from an append-only log
    with a ``bisect`` (stale log entries of re-changed records are skipped).
    ``seq_gap`` > 1 makes the sequence jump by 1..gap per change, like a
    database-wide rowversion seen from one tenant.
    """

    def __init__(self, rng: random.Random, *, seq_start: int = 0, seq_gap: int = 1) -> None:
        self.rows: dict[Key, Row] = {}
        self.tombstones: dict[Key, Tombstone] = {}
        self.clock = EPOCH_MS
        self.seq = seq_start
        self.mutations = 0
        self._rng = rng
        self._gap = seq_gap
        self._log_seqs: list[int] = []
        self._log_keys: list[Key] = []
        self._sorted: list[Key] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def _tick(self, step_ms: int) -> tuple[int, int]:
        self.seq += self._rng.randint(1, self._gap) if self._gap > 1 else 1
        self.clock += step_ms
        return self.seq, self.clock

    def put(self, key: Key, body: Body, *, step_ms: int = 1000, created: int | None = None) -> Row:
        """Insert or replace ``key``: a new seq and a virtual time ``step_ms`` later."""
        seq, now = self._tick(step_ms)
        previous = self.rows.get(key)
        if previous is None:
            self._sorted = None
            self.tombstones.pop(key, None)
            row = Row(key, body, seq, now if created is None else created, now)
        else:
            row = Row(key, body, seq, previous.created, now, previous.version + 1)
        self.rows[key] = row
        self._log_seqs.append(seq)
        self._log_keys.append(key)
        return row

    def delete(self, key: Key, *, step_ms: int = 1000) -> Tombstone:
        row = self.rows.pop(key)
        self._sorted = None
        seq, now = self._tick(step_ms)
        tomb = Tombstone(key, seq, now, row.body)
        self.tombstones[key] = tomb
        self._log_seqs.append(seq)
        self._log_keys.append(key)
        return tomb

    def changes_after(self, seq: int, *, tombstones: bool = True) -> Iterator[Change]:
        """Current state of every record changed after ``seq``, in sequence order."""
        index = bisect_right(self._log_seqs, seq)
        for entry_seq, key in zip(self._log_seqs[index:], self._log_keys[index:], strict=True):
            row = self.rows.get(key)
            if row is not None:
                if row.seq == entry_seq:
                    yield row
                continue
            tomb = self.tombstones.get(key)
            if tombstones and tomb is not None and tomb.seq == entry_seq:
                yield tomb

    def sorted_keys(self) -> list[Key]:
        """Live keys in ascending order (cached until the key set changes)."""
        if self._sorted is None:
            self._sorted = sorted(self.rows, key=_key_order)
        return self._sorted


def _key_order(key: Key) -> tuple[int, int, str]:
    return (0, key, "") if isinstance(key, int) else (1, 0, key)


# -- stats -------------------------------------------------------------------------


@dataclass
class TenantStats:
    """Per-tenant request counters of one emulation (admin requests are never counted)."""

    requests: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, tenant: str, status: int, *, rate_limited: bool) -> None:
        self.requests[tenant] += 1
        if rate_limited:
            self.rate_limited[tenant] += 1
        self.statuses.setdefault(tenant, Counter())[str(status)] += 1

    def reset(self) -> None:
        self.requests.clear()
        self.rate_limited.clear()
        self.statuses.clear()

    def snapshot(self) -> dict[str, Any]:
        tenants = {
            tenant: {
                "requests": self.requests[tenant],
                "rate_limited": self.rate_limited[tenant],
                "statuses": dict(sorted(self.statuses.get(tenant, Counter()).items())),
            }
            for tenant in sorted(self.requests)
        }
        return {
            "tenants": tenants,
            "total": sum(self.requests.values()),
            "rate_limited": sum(self.rate_limited.values()),
        }


# -- the emulation base class -------------------------------------------------------

CfgT = TypeVar("CfgT")


class SeedApi(ABC, Generic[CfgT]):
    """One emulated API: its config, per-tenant tables, stats, and a mountable app.

    Subclasses set the class attributes and implement the ``_``-hooks; the
    base class provides the admin surface under the mount point::

        GET  __stats            per-tenant request / rate-limit / status counters
        POST __stats/reset      zero them
        GET  __config           the running config
        POST __config           change some fields (validated; unknown fields are a 400)
        POST __reset            launch config, fresh data, zero stats (body: config overrides)
        POST __mutate           {"tenant", "update", "insert", "delete", "update_ids", "delete_ids"}
        GET  __records?tenant=  every live record of a tenant, sorted by key
    """

    name: ClassVar[str]
    prefix: ClassVar[str]
    numeric_keys: ClassVar[bool]
    """Whether record keys (and so ``update_ids``/``delete_ids``) are integers."""

    def __init__(self, launch: Mapping[str, Any] | None = None) -> None:
        self.stats = TenantStats()
        self.tables: dict[str, Table] = {}
        self.launch = self._merge(self._default_config(), launch or {})
        self.config = self.launch
        self._apply(rebuild=True)

    # -- hooks ----------------------------------------------------------------

    @abstractmethod
    def _default_config(self) -> CfgT:
        """The emulation's launch defaults (data sizes, credentials, limits)."""

    @abstractmethod
    def _validators(self) -> Mapping[str, Validator]:
        """One validator per config field ``__config`` accepts."""

    def _data_fields(self) -> frozenset[str]:
        """Config fields whose change regenerates the data."""
        return frozenset({"seed", "tenants"})

    @abstractmethod
    def _build(self) -> None:
        """Regenerate ``self.tables`` from ``self.config``."""

    def _configured(self) -> None:
        """React to a (possibly) new config: reset limiters, tokens, ..."""

    @abstractmethod
    def _new_record(self, tenant: str, table: Table, rng: random.Random) -> None:
        """Insert one new record into ``table`` (mutate's ``insert``)."""

    @abstractmethod
    def _update_record(self, tenant: str, table: Table, row: Row, rng: random.Random) -> None:
        """Change ``row`` visibly and ``table.put`` it (mutate's ``update``)."""

    def _delete_record(self, tenant: str, table: Table, key: Key) -> None:
        table.delete(key)

    def _record_view(self, tenant: str, row: Row) -> Body:
        """The record as ``__records`` shows it (the API's fullest representation)."""
        return row.body

    @abstractmethod
    def _api_routes(self) -> list[BaseRoute]:
        """The API's own endpoints, mounted under the emulation's prefix."""

    def _extra_admin_routes(self) -> list[BaseRoute]:
        return []

    # -- config ---------------------------------------------------------------

    def _merge(self, current: CfgT, body: Mapping[str, Any]) -> CfgT:
        return merge_config(current, body, self._validators())

    def _apply(self, *, rebuild: bool) -> None:
        if rebuild:
            self.tables = {}
            self._build()
        self._configured()

    def configure(self, body: Mapping[str, Any]) -> CfgT:
        """Change some config fields; regenerates data only if the seed or sizes changed."""
        new = self._merge(self.config, body)
        before, after = config_json(self.config), config_json(new)
        rebuild = any(before[name] != after[name] for name in self._data_fields())
        self.config = new
        self._apply(rebuild=rebuild)
        return new

    def reset(self, overrides: Mapping[str, Any] | None = None) -> CfgT:
        """Back to the launch config (plus ``overrides``) with fresh data and zero stats."""
        self.config = self._merge(self.launch, overrides or {})
        self.stats.reset()
        self._apply(rebuild=True)
        return self.config

    # -- mutation -------------------------------------------------------------

    def table(self, tenant: str) -> Table:
        table = self.tables.get(tenant)
        if table is None:
            raise BadRequestError(f"unknown tenant {tenant!r}; known: {sorted(self.tables)}")
        return table

    def _keys(self, raw: Any, name: str, table: Table) -> list[Key]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise BadRequestError(f"{name} must be a list of record ids")
        keys: list[Key] = []
        for item in raw:
            ok = _is_int(item) if self.numeric_keys else isinstance(item, str)
            if not ok or item not in table.rows:
                raise BadRequestError(f"{name}: no live record {item!r}")
            keys.append(item)
        return keys

    def mutate(self, tenant: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Delete, update, then insert records of ``tenant``, deterministically.

        Random picks come from a RNG seeded with the config seed, the tenant
        and the number of earlier mutations of that tenant; ``update_ids`` and
        ``delete_ids`` name records explicitly (on top of the random ones).
        """
        known = {"tenant", "update", "insert", "delete", "update_ids", "delete_ids"}
        extra = sorted(set(body) - known)
        if extra:
            raise BadRequestError(f"unknown mutate field(s) {extra}; known: {sorted(known)}")
        table = self.table(tenant)
        counts = {name: v_int(0)(body.get(name) or 0, name) for name in ("update", "insert")}
        delete = v_int(0)(body.get("delete") or 0, "delete")
        update_ids = self._keys(body.get("update_ids"), "update_ids", table)
        delete_ids = self._keys(body.get("delete_ids"), "delete_ids", table)
        if set(update_ids) & set(delete_ids):
            raise BadRequestError("a record cannot be both updated and deleted")
        pool = [key for key in table.sorted_keys() if key not in {*update_ids, *delete_ids}]
        if counts["update"] + delete > len(pool):
            raise BadRequestError(f"cannot touch {counts['update'] + delete} of {len(pool)}")
        rng = seeded_rng(getattr(self.config, "seed", 0), self.name, tenant, table.mutations)
        table.mutations += 1
        picked = rng.sample(pool, counts["update"] + delete)
        deleted = sorted([*delete_ids, *picked[counts["update"] :]], key=_key_order)
        updated = sorted([*update_ids, *picked[: counts["update"]]], key=_key_order)
        for key in deleted:
            self._delete_record(tenant, table, key)
        for key in updated:
            self._update_record(tenant, table, table.rows[key], rng)
        before = set(table.rows)
        for _ in range(counts["insert"]):
            self._new_record(tenant, table, rng)
        inserted = sorted(set(table.rows) - before, key=_key_order)
        return {"tenant": tenant, "updated": updated, "inserted": inserted, "deleted": deleted}

    # -- ASGI -----------------------------------------------------------------

    def counted(self, handler: Endpoint) -> Endpoint:
        """Wrap a data handler: render :class:`SeedError` and count the request per tenant."""

        async def endpoint(request: Request) -> Response:
            try:
                response = await handler(request)
            except SeedError as exc:
                response = exc.response()
            tenant = str(getattr(request.state, TENANT_STATE, ""))
            limited = bool(getattr(request.state, LIMITED_STATE, False))
            self.stats.count(tenant, response.status_code, rate_limited=limited)
            return response

        return endpoint

    def _admin_routes(self) -> list[BaseRoute]:
        async def stats(_request: Request) -> Response:
            return json_response(self.stats.snapshot())

        async def reset_stats(_request: Request) -> Response:
            self.stats.reset()
            return json_response(self.stats.snapshot())

        async def config(request: Request) -> Response:
            if request.method == "POST":
                self.configure(await json_body(request))
            return json_response(config_json(self.config))

        async def reset(request: Request) -> Response:
            return json_response(config_json(self.reset(await json_body(request))))

        async def mutate(request: Request) -> Response:
            body = await json_body(request)
            tenant = body.get("tenant")
            if not isinstance(tenant, str):
                raise BadRequestError(f"tenant must be one of {sorted(self.tables)}")
            return json_response(self.mutate(tenant, body))

        async def records(request: Request) -> Response:
            tenant = request.query_params.get("tenant", "")
            table = self.table(tenant)
            rows = [self._record_view(tenant, table.rows[key]) for key in table.sorted_keys()]
            return json_response({"tenant": tenant, "records": rows})

        return [
            Route("/__stats", stats, methods=["GET"]),
            Route("/__stats/reset", reset_stats, methods=["POST"]),
            Route("/__config", config, methods=["GET", "POST"]),
            Route("/__reset", reset, methods=["POST"]),
            Route("/__mutate", mutate, methods=["POST"]),
            Route("/__records", records, methods=["GET"]),
            *self._extra_admin_routes(),
        ]

    def asgi_app(self) -> Starlette:
        """The sub-app to mount at :attr:`prefix` (admin routes first, then the API)."""
        return Starlette(
            routes=[*self._admin_routes(), *self._api_routes()],
            exception_handlers={
                SeedError: _seed_error_handler,
                BadRequestError: _bad_request_handler,
            },
        )
