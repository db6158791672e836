"""Exact Online REST API: CRM accounts over OData v2, the sync API, and per-division limits.

Why emulate it: Exact is the API where call budgeting decides whether a sync
finishes today.  Each division (administration) allows 60 calls a minute and a
few thousand a day, reported on every response in ``X-RateLimit-*`` headers
whose resets are epoch *milliseconds*; standard endpoints page 60 records at a
time, while the incremental ``sync/…`` endpoints return up to 1,000 records
ordered by ``Timestamp``, a rowversion that grows with every change.  The
Invantive case study (bulk-setting ``InvoiceAttachmentType`` from 3 to 1 for
customers, ``Status eq 'C'``, across divisions) is exactly the read/filter/PUT
loop this supports.

Emulated (``/api/v1/...``, bearer auth):

* ``GET {division}/crm/Accounts`` (also ``CRM``): ``{"d": {"results": [...],
  "__next": "<full url>"}}``, 60 per page, ordered by ``ID`` with
  ``$skiptoken=guid'<last ID>'`` in ``__next``; ``$filter`` (see
  :mod:`.odata`), ``$select``, ``$top``, ``$inlinecount=allpages``;
* ``GET {division}/crm/Accounts(guid'…')``, ``PUT`` (204; bumps ``Timestamp``
  and ``Modified``), ``DELETE`` (204);
* ``GET {division}/bulk/CRM/Accounts`` (1,000 per page) and
  ``GET {division}/sync/CRM/Accounts?$filter=Timestamp gt 1L`` (1,000 per
  page, ordered by ``Timestamp``, ``__next`` with ``$skiptoken=<Timestamp>L``);
  ``GET {division}/sync/Deleted`` lists deletions (``EntityType`` 2 = accounts);
* ``GET current/Me`` (``CurrentDivision``), so clients can discover a division;
* per-division minutely and daily limits (``exact`` header style, shared with
  the sandbox's global limiter); a request over a limit is a 429.

Deviations: errors use the OData error envelope with plain messages; an
unknown division is a 403; windows start when the emulation is configured
(not at midnight); ``$orderby``, ``$expand`` and ``POST`` are not supported;
``Modified`` moves on a per-division virtual clock, not the wall clock.
"""

from __future__ import annotations

import random
import re
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from syncline.sandbox.common import json_response
from syncline.sandbox.limit_config import Window
from syncline.sandbox.limit_headers import rate_limit_headers
from syncline.sandbox.limiter import RateLimiter
from syncline.sandbox.seeds.common import (
    Body,
    Key,
    Row,
    SeedApi,
    SeedError,
    Table,
    Tombstone,
    Validator,
    bearer_token,
    make_limiter,
    mark_rate_limited,
    mount_base,
    seeded_rng,
    seeded_uuid,
    set_tenant,
    v_int,
    v_number,
    v_opt_str,
    v_sizes,
)
from syncline.sandbox.seeds.odata import (
    Expr,
    FilterError,
    Kind,
    lower_bound,
    matches,
    parse_filter,
    parse_select,
)

ACCOUNT_FIELDS: Final[dict[str, Kind]] = {
    "ID": "guid",
    "Code": "string",
    "Name": "string",
    "Status": "string",
    "InvoiceAttachmentType": "int",
    "City": "string",
    "Postcode": "string",
    "AddressLine1": "string",
    "Country": "string",
    "Email": "string",
    "Phone": "string",
    "IsSupplier": "bool",
    "Blocked": "bool",
    "Created": "datetime",
    "Modified": "datetime",
    "Creator": "guid",
    "Modifier": "guid",
    "Division": "int",
}
SYNC_FIELDS: Final[dict[str, Kind]] = {"Timestamp": "int", **ACCOUNT_FIELDS}
DELETED_FIELDS: Final[dict[str, Kind]] = {
    "Timestamp": "int",
    "DeletedBy": "guid",
    "DeletedDate": "datetime",
    "Division": "int",
    "EntityKey": "guid",
    "EntityType": "int",
    "ID": "guid",
}
WRITABLE: Final[dict[str, type | tuple[type, ...]]] = {
    "Code": str,
    "Name": str,
    "Status": str,
    "InvoiceAttachmentType": int,
    "City": str,
    "Postcode": str,
    "AddressLine1": str,
    "Country": str,
    "Email": str,
    "Phone": str,
    "IsSupplier": bool,
    "Blocked": bool,
}
ACCOUNTS_ENTITY_TYPE: Final = 2
_GUID_KEY: Final = re.compile(r"^accounts\(guid'([0-9a-fA-F-]{36})'\)$", re.IGNORECASE)
_ADJECTIVES: Final = ("Groene", "Snelle", "Hollandse", "Noorder", "Oude", "Nieuwe", "Blauwe")
_NOUNS: Final = ("Molen", "Haven", "Brug", "Tulp", "Dijk", "Polder", "Gracht", "Fiets")
_FORMS: Final = ("B.V.", "B.V.", "N.V.", "VOF", "Holding B.V.", "")
_CITIES: Final = ("Amsterdam", "Rotterdam", "Utrecht", "Eindhoven", "Groningen", "Zwolle", "Delft")
_STREETS: Final = ("Keizersgracht", "Stationsweg", "Dorpsstraat", "Kerkplein", "Havenkade")


@dataclass(frozen=True)
class ExactConfig:
    seed: int = 7
    tenants: dict[str, int] = field(default_factory=lambda: {"3001": 600, "3002": 600, "3003": 600})
    """Division -> number of accounts (``~50,000`` in total for a full-size run)."""
    token: str | None = "exact-token"  # noqa: S105 - the sandbox's documented test token
    page_size: int = 60
    bulk_page_size: int = 1000
    sync_page_size: int = 1000
    minutely_limit: int = 60
    minutely_window: float = 60.0
    daily_limit: int = 5000
    daily_window: float = 86_400.0


_Handler = Callable[[Request, str, Table], Awaitable[Response]]


def _odata_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> SeedError:
    body = {"error": {"code": "", "message": {"lang": "", "value": message}}}
    return SeedError(status, body, headers=headers)


def _date(ms: int) -> str:
    return f"/Date({ms})/"


@dataclass(frozen=True)
class _Query:
    filter: Expr | None
    filter_text: str | None
    select: tuple[str, ...] | None
    top: int | None
    skiptoken: str | None
    count: bool


class ExactOnline(SeedApi[ExactConfig]):
    """``/exact``: see the module docstring."""

    name = "exact"
    prefix = "/exact"
    numeric_keys = False
    limiter: RateLimiter
    _user: str

    def _default_config(self) -> ExactConfig:
        return ExactConfig()

    def _validators(self) -> Mapping[str, Validator]:
        return {
            "seed": v_int(0),
            "tenants": v_sizes(numeric_keys=True),
            "token": v_opt_str,
            "page_size": v_int(1),
            "bulk_page_size": v_int(1),
            "sync_page_size": v_int(1),
            "minutely_limit": v_int(1),
            "minutely_window": v_number(0.001),
            "daily_limit": v_int(1),
            "daily_window": v_number(0.001),
        }

    # -- data -----------------------------------------------------------------

    def _build(self) -> None:
        self._user = seeded_uuid(seeded_rng(self.config.seed, self.name, "user"))
        for division in sorted(self.config.tenants, key=int):
            rng = seeded_rng(self.config.seed, self.name, division)
            table = Table(rng, seq_start=rng.randint(10_000_000, 90_000_000), seq_gap=9)
            self.tables[division] = table
            for _ in range(self.config.tenants[division]):
                self._insert(division, table, rng, step_ms=rng.randint(1, 600) * 1000)

    def _configured(self) -> None:
        config = self.config
        self.limiter = make_limiter(
            Window(config.minutely_limit, config.minutely_window, "fixed", "minutely"),
            Window(config.daily_limit, config.daily_window, "fixed", "daily"),
        )

    def _insert(self, division: str, table: Table, rng: random.Random, *, step_ms: int) -> None:
        key = seeded_uuid(rng)
        code = len(table.rows) + len(table.tombstones) + 1
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.choice(_FORMS)}".strip()
        roll = rng.random()
        status = "C" if roll < 0.45 else "P" if roll < 0.65 else "S" if roll < 0.8 else "A"
        body: Body = {
            "ID": key,
            "Code": f"{code:>18}",
            "Name": name,
            "Status": status,
            "InvoiceAttachmentType": rng.choices((1, 2, 3), weights=(40, 10, 50))[0],
            "City": rng.choice(_CITIES),
            "Postcode": f"{rng.randint(1000, 9999)} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}"
            f"{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}",
            "AddressLine1": f"{rng.choice(_STREETS)} {rng.randint(1, 300)}",
            "Country": "NL",
            "Email": f"info{code}@{name.split()[1].lower()}.example.nl",
            "Phone": f"+31 {rng.randint(10, 99)} {rng.randint(1000000, 9999999)}",
            "IsSupplier": rng.random() < 0.15,
            "Blocked": False,
            "Creator": self._user,
            "Modifier": self._user,
            "Division": int(division),
        }
        table.put(key, body, step_ms=step_ms)

    def _new_record(self, tenant: str, table: Table, rng: random.Random) -> None:
        self._insert(tenant, table, rng, step_ms=rng.randint(1, 3600) * 1000)

    def _update_record(self, tenant: str, table: Table, row: Row, rng: random.Random) -> None:
        body = dict(row.body)
        current = int(body["InvoiceAttachmentType"])
        other = 2 if current == 1 else 1
        body["InvoiceAttachmentType"] = 1 if current == 3 else rng.choice([3, other])
        body["City"] = rng.choice([city for city in _CITIES if city != body["City"]])
        table.put(row.key, body, step_ms=rng.randint(1, 3600) * 1000)

    def _view(self, row: Row, *, timestamp: bool) -> Body:
        record: Body = dict(row.body)
        record["Created"] = row.created
        record["Modified"] = row.modified
        if timestamp:
            record["Timestamp"] = row.seq
        return record

    def _record_view(self, tenant: str, row: Row) -> Body:
        return _render(self._view(row, timestamp=True), None, {})

    # -- HTTP plumbing ----------------------------------------------------------

    def _division(self, request: Request) -> tuple[str, Table, list[tuple[bytes, bytes]]]:
        """Authorize and rate-limit a division request; returns the rate-limit headers."""
        division = str(request.path_params["division"])
        set_tenant(request, division)
        expected = self.config.token
        if expected is not None and bearer_token(request) != expected:
            raise _odata_error(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
        table = self.tables.get(division)
        if table is None:
            raise _odata_error(403, f"Forbidden: no access to division {division}")
        verdict = self.limiter.check(division)
        headers = rate_limit_headers("exact", verdict, time.time())
        if not verdict.allowed:
            mark_rate_limited(request)
            raise _odata_error(429, "API rate limit exceeded.", _decode(headers))
        return division, table, headers

    @staticmethod
    def _query(request: Request, fields: Mapping[str, Kind]) -> _Query:
        params = request.query_params
        unsupported = sorted({"$orderby", "$expand", "$skip"} & set(params))
        if unsupported:
            raise FilterError(f"the sandbox does not support {unsupported}")
        text = params.get("$filter")
        top_raw = params.get("$top")
        if top_raw is not None and not top_raw.isdigit():
            raise FilterError(f"$top must be a non-negative integer, got {top_raw!r}")
        return _Query(
            filter=parse_filter(text, fields) if text else None,
            filter_text=text or None,
            select=parse_select(params.get("$select"), fields),
            top=None if top_raw is None else int(top_raw),
            skiptoken=params.get("$skiptoken"),
            count=params.get("$inlinecount") == "allpages",
        )

    async def _guarded(self, request: Request, handler: _Handler) -> Response:
        """Run ``handler(request, division, table)`` with the division's rate-limit headers."""
        division, table, headers = self._division(request)
        try:
            response: Response = await handler(request, division, table)
        except FilterError as exc:
            raise _odata_error(400, str(exc), _decode(headers)) from None
        except SeedError as exc:
            exc.headers.update(_decode(headers))
            raise
        response.raw_headers.extend(headers)
        return response

    # -- handlers ---------------------------------------------------------------

    async def entity(self, request: Request) -> Response:
        """``{division}/{service}/{entity}``: crm/Accounts[(guid'…')] and sync/Deleted."""

        async def handle(request: Request, division: str, table: Table) -> Response:
            service = str(request.path_params["service"]).lower()
            entity = str(request.path_params["entity"])
            if service == "crm" and entity.lower() == "accounts":
                if request.method != "GET":
                    raise _odata_error(405, "Method not allowed.")
                return self._list(request, division, table, "crm", self.config.page_size)
            match = _GUID_KEY.match(entity)
            if service == "crm" and match:
                return await self._single(request, division, table, match.group(1).lower())
            if service == "sync" and entity.lower() == "deleted" and request.method == "GET":
                return self._deleted(request, division, table)
            raise _odata_error(404, "Resource not found.")

        return await self._guarded(request, handle)

    async def sub_entity(self, request: Request) -> Response:
        """``{division}/{kind}/{service}/{entity}``: bulk/CRM/Accounts and sync/CRM/Accounts."""

        async def handle(request: Request, division: str, table: Table) -> Response:
            kind = str(request.path_params["kind"]).lower()
            service = str(request.path_params["service"]).lower()
            entity = str(request.path_params["entity"]).lower()
            if service != "crm" or entity != "accounts" or request.method != "GET":
                raise _odata_error(404, "Resource not found.")
            if kind == "bulk":
                return self._list(request, division, table, "bulk", self.config.bulk_page_size)
            if kind == "sync":
                return self._sync(request, division, table)
            raise _odata_error(404, "Resource not found.")

        return await self._guarded(request, handle)

    def _list(
        self, request: Request, division: str, table: Table, kind: str, page_size: int
    ) -> Response:
        query = self._query(request, ACCOUNT_FIELDS)
        keys = table.sorted_keys()
        start = 0
        if query.skiptoken:
            token = re.fullmatch(r"guid'([0-9a-fA-F-]{36})'", query.skiptoken)
            if token is None:
                raise FilterError(f"invalid $skiptoken: {query.skiptoken!r}")
            start = _bisect_after(keys, token.group(1).lower())
        rows = (table.rows[key] for key in keys[start:])
        views = (self._view(row, timestamp=False) for row in rows)
        matching = (view for view in views if query.filter is None or matches(query.filter, view))
        page, more = _take(matching, page_size, query.top)
        base = mount_base(request)
        uri = f"{base}/api/v1/{division}/{'crm' if kind == 'crm' else 'bulk/CRM'}/Accounts"
        results = [
            _render(view, query.select, _metadata(f"{uri}(guid'{view['ID']}')", "Account"))
            for view in page
        ]
        payload: dict[str, Any] = {"results": results}
        if query.count:
            everything = (self._view(table.rows[key], timestamp=False) for key in keys)
            payload["__count"] = str(
                sum(1 for v in everything if query.filter is None or matches(query.filter, v))
            )
        if more:
            payload["__next"] = _next_url(uri, request, f"guid'{page[-1]['ID']}'", query, page)
        return json_response({"d": payload})

    def _sync(self, request: Request, division: str, table: Table) -> Response:
        query = self._query(request, SYNC_FIELDS)
        after = lower_bound(query.filter_text or "", "Timestamp")
        if query.skiptoken:
            token = re.fullmatch(r"(\d+)[Ll]?", query.skiptoken)
            if token is None:
                raise FilterError(f"invalid $skiptoken: {query.skiptoken!r}")
            after = max(after or 0, int(token.group(1)))
        changes = table.changes_after(-1 if after is None else after, tombstones=False)
        views = (self._view(row, timestamp=True) for row in changes if isinstance(row, Row))
        matching = (view for view in views if query.filter is None or matches(query.filter, view))
        page, more = _take(matching, self.config.sync_page_size, query.top)
        base = mount_base(request)
        uri = f"{base}/api/v1/{division}/sync/CRM/Accounts"
        results = [
            _render(view, query.select, _metadata(f"{uri}({view['Timestamp']}L)", "SyncAccount"))
            for view in page
        ]
        payload: dict[str, Any] = {"results": results}
        if more:
            payload["__next"] = _next_url(uri, request, f"{page[-1]['Timestamp']}L", query, page)
        return json_response({"d": payload})

    def _deleted(self, request: Request, division: str, table: Table) -> Response:
        query = self._query(request, DELETED_FIELDS)
        after = lower_bound(query.filter_text or "", "Timestamp")
        if query.skiptoken:
            token = re.fullmatch(r"(\d+)[Ll]?", query.skiptoken)
            if token is None:
                raise FilterError(f"invalid $skiptoken: {query.skiptoken!r}")
            after = max(after or 0, int(token.group(1)))
        changes = table.changes_after(-1 if after is None else after)
        views = (
            self._deleted_view(division, tomb) for tomb in changes if isinstance(tomb, Tombstone)
        )
        matching = (view for view in views if query.filter is None or matches(query.filter, view))
        page, more = _take(matching, self.config.sync_page_size, query.top)
        base = mount_base(request)
        uri = f"{base}/api/v1/{division}/sync/Deleted"
        results = [
            _render(view, query.select, _metadata(f"{uri}({view['Timestamp']}L)", "SyncDeleted"))
            for view in page
        ]
        payload: dict[str, Any] = {"results": results}
        if more:
            payload["__next"] = _next_url(uri, request, f"{page[-1]['Timestamp']}L", query, page)
        return json_response({"d": payload})

    def _deleted_view(self, division: str, tomb: Tombstone) -> Body:
        rng = seeded_rng(self.config.seed, self.name, division, "deleted", tomb.seq)
        return {
            "Timestamp": tomb.seq,
            "DeletedBy": self._user,
            "DeletedDate": tomb.deleted,
            "Division": int(division),
            "EntityKey": tomb.key,
            "EntityType": ACCOUNTS_ENTITY_TYPE,
            "ID": seeded_uuid(rng),
        }

    async def _single(self, request: Request, division: str, table: Table, key: str) -> Response:
        row = table.rows.get(key)
        if row is None:
            raise _odata_error(404, f"Account {key} not found.")
        if request.method == "DELETE":
            table.delete(key)
            return Response(status_code=204)
        if request.method == "PUT":
            changes = await _put_body(request)
            table.put(key, {**row.body, **changes, "Modifier": self._user})
            return Response(status_code=204)
        select = parse_select(request.query_params.get("$select"), ACCOUNT_FIELDS)
        uri = f"{mount_base(request)}/api/v1/{division}/crm/Accounts(guid'{key}')"
        view = self._view(row, timestamp=False)
        return json_response({"d": _render(view, select, _metadata(uri, "Account"))})

    async def me(self, request: Request) -> Response:
        set_tenant(request, "")
        expected = self.config.token
        if expected is not None and bearer_token(request) != expected:
            raise _odata_error(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
        divisions = sorted(self.tables, key=int)
        uri = f"{mount_base(request)}/api/v1/current/Me(guid'{self._user}')"
        me = {
            "__metadata": _metadata(uri, "Me"),
            "UserID": self._user,
            "UserName": "sandbox@example.nl",
            "FullName": "Sandbox Gebruiker",
            "Email": "sandbox@example.nl",
            "CurrentDivision": int(divisions[0]) if divisions else None,
            "DivisionCustomer": None,
            "LanguageCode": "nl-NL",
        }
        return json_response({"d": {"results": [me]}})

    def _api_routes(self) -> list[BaseRoute]:
        methods = ["GET", "PUT", "DELETE"]
        return [
            Route("/api/v1/current/Me", self.counted(self.me), methods=["GET"]),
            Route(
                "/api/v1/{division:int}/{service}/{entity}",
                self.counted(self.entity),
                methods=methods,
            ),
            Route(
                "/api/v1/{division:int}/{kind}/{service}/{entity}",
                self.counted(self.sub_entity),
                methods=methods,
            ),
        ]


def _decode(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}


def _metadata(uri: str, kind: str) -> dict[str, str]:
    return {"uri": uri, "type": f"Exact.Web.Api.Models.{kind}"}


def _render(view: Body, select: tuple[str, ...] | None, metadata: Mapping[str, str]) -> Body:
    """A record in Exact's JSON: ``__metadata`` first, dates as ``/Date(ms)/``."""
    names = select if select is not None else tuple(view)
    record: Body = {"__metadata": dict(metadata)} if metadata else {}
    for name in names:
        value = view.get(name)
        if name in {"Created", "Modified", "DeletedDate"} and isinstance(value, int):
            value = _date(value)
        record[name] = value
    return record


def _bisect_after(keys: list[Key], key: str) -> int:
    """Position after ``key`` in the (all-``str``) sorted account ids."""
    return bisect_right(cast("list[str]", keys), key)


def _take(items: Iterator[Body], page_size: int, top: int | None) -> tuple[list[Body], bool]:
    """Up to one page (``$top`` caps it), and whether the listing continues after it."""
    limit = page_size if top is None else min(page_size, top)
    page: list[Body] = []
    for item in items:
        if len(page) == limit:
            return page, top is None or top > limit
        page.append(item)
    return page, False


def _next_url(uri: str, request: Request, skiptoken: str, query: _Query, page: list[Body]) -> str:
    params: dict[str, str] = {}
    for name in ("$filter", "$select", "$inlinecount"):
        value = request.query_params.get(name)
        if value is not None:
            params[name] = value
    if query.top is not None:
        params["$top"] = str(query.top - len(page))
    params["$skiptoken"] = skiptoken
    safe = "$'(),"
    return f"{uri}?{urlencode(params, safe=safe)}"


async def _put_body(request: Request) -> Body:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise _odata_error(400, "Error processing request stream. JSON text expected.") from None
    if not isinstance(body, dict) or not body:
        raise _odata_error(400, "Error processing request stream: expected a JSON object.")
    for name, value in body.items():
        expected = WRITABLE.get(name)
        if expected is None:
            raise _odata_error(400, f"Property '{name}' does not exist or cannot be updated.")
        wrong_bool = isinstance(value, bool) and expected is not bool
        if not isinstance(value, expected) or wrong_bool:
            raise _odata_error(400, f"Invalid value for property '{name}': {value!r}")
    if "Status" in body and body["Status"] not in {"A", "S", "P", "C"}:
        raise _odata_error(400, f"Invalid Status {body['Status']!r}: use A, S, P or C.")
    return body
