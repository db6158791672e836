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
* ``GET {division}/crm/Accounts(guid'…')``, ``PUT`` or ``PATCH`` (204; both
  merge the given fields and bump ``Timestamp`` and ``Modified``), ``DELETE``
  (204);
* ``GET {division}/bulk/CRM/Accounts`` (1,000 per page) and
  ``GET {division}/sync/CRM/Accounts?$filter=Timestamp gt 1L`` (1,000 per
  page, ordered by ``Timestamp``, ``__next`` with ``$skiptoken=<Timestamp>L``);
  ``GET {division}/sync/Deleted`` lists deletions (``EntityType`` 2 = accounts);
* ``GET current/Me`` (``CurrentDivision``), so clients can discover a division;
* per-division minutely and daily limits (``exact`` header style, shared with
  the sandbox's global limiter); a request over a limit is a 429.  Every
  request, read or write, counts against them, as in real Exact.

Write-back test surface (config fields settable at launch, via ``__config``
or as ``__reset`` overrides), so a client's ``push`` can be proven against
the failure modes that matter:

* ``etags`` (default ``False``): every account representation (list and
  bulk pages, single GET, sync pages, ``__records``) carries
  ``"__metadata": {..., "etag": "W/\"<Timestamp>\""}`` (the row's
  rowversion), and a single GET, a successful ``PUT``/``PATCH`` also send an
  ``ETag`` header.  A ``PUT``/``PATCH``/``DELETE`` whose ``If-Match`` is
  neither ``*`` nor the current etag (a comma-separated list matches if any
  entry does) is a 412 and is neither applied nor counted.  Without
  ``If-Match`` a write is applied unconditionally.  With ``etags`` off the
  header is ignored and nothing etag-like is emitted.
* ``write_minutely_limit`` / ``write_daily_limit`` (default ``None``: off;
  windows ``write_minutely_window`` = 60 s and ``write_daily_window`` =
  86,400 s, fixed): a separate per-division limiter that only ``PUT``,
  ``PATCH`` and ``DELETE`` consume, checked *after* the general limits (a
  write rejected here has still used a general call).  Writes carry its state
  as ``X-RateLimit-Write-Limit/-Remaining/-Reset`` (daily window) and
  ``X-RateLimit-Write-Minutely-Limit/-Remaining/-Reset`` (only the configured
  windows; resets in epoch milliseconds); over it, a write is a 429 carrying
  those and the general headers.  Reads never touch it.
* ``failed_writes`` (default 0): the next N ``PUT``/``PATCH`` requests that
  would be applied (valid body, matching ``If-Match``) answer 500 *without*
  applying: a write the server surely did not apply, though the client
  cannot know.
* ``slow_writes`` (default 0) and ``slow_write_seconds`` (default 5.0): the
  next N applied ``PUT``/``PATCH`` requests apply the change, then sleep that
  long before answering: a client that times out cannot know the write
  happened.  ``failed_writes`` is checked first.  Both counters count down in
  the running config (``GET __config`` shows what is left; ``__reset``
  restores the launch values).
* ``GET __writes?tenant=<division>``: ``{"tenant", "writes": {ID: n},
  "total"}``, how many writes the emulation applied per account (applied
  ``PUT``/``PATCH``, including slow ones, and ``DELETE``; rejected, failed
  and ``__mutate`` changes never count; only IDs written at least once).
  Without ``tenant``: ``{"writes": {division: {ID: n}}, "total"}`` with every
  division.  Zeroed whenever the data is rebuilt (``__reset``, a new
  ``seed``/``tenants``).

Deviations: errors use the OData error envelope with plain messages; an
unknown division is a 403; windows start when the emulation is configured
(not at midnight); ``$orderby``, ``$expand`` and ``POST`` are not supported;
``Modified`` moves on a per-division virtual clock, not the wall clock.
Extensions real Exact does not have: a ``PUT``/``PATCH`` with ``Prefer:
return=representation`` answers 200 with ``{"d": <the account as a single
GET renders it>}`` (and ``Preference-Applied``) instead of 204; the write
limits, ``etags`` as a switch (with the rowversion as the etag),
``failed_writes``, ``slow_writes`` and ``__writes`` are test surface.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import time
from bisect import bisect_right
from collections import Counter
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
    v_bool,
    v_int,
    v_number,
    v_opt_int,
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
WRITE_METHODS: Final = frozenset({"PUT", "PATCH", "DELETE"})
UPDATE_METHODS: Final = frozenset({"PUT", "PATCH"})
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
    etags: bool = False
    """Emit ``__metadata.etag`` / ``ETag`` and honour ``If-Match`` on writes."""
    write_minutely_limit: int | None = None
    """Writes (``PUT``/``PATCH``/``DELETE``) per division per ``write_minutely_window``."""
    write_minutely_window: float = 60.0
    write_daily_limit: int | None = None
    write_daily_window: float = 86_400.0
    slow_writes: int = 0
    """How many of the next applied updates answer only after ``slow_write_seconds``."""
    slow_write_seconds: float = 5.0
    failed_writes: int = 0
    """How many of the next updates answer 500 without being applied."""


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
    write_limiter: RateLimiter | None
    _user: str
    _writes: dict[str, Counter[str]]

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
            "etags": v_bool,
            "write_minutely_limit": v_opt_int(1),
            "write_minutely_window": v_number(0.001),
            "write_daily_limit": v_opt_int(1),
            "write_daily_window": v_number(0.001),
            "slow_writes": v_int(0),
            "slow_write_seconds": v_number(0.0),
            "failed_writes": v_int(0),
        }

    # -- data -----------------------------------------------------------------

    def _build(self) -> None:
        # Write counts describe the data they were made against: new data, zero counts.
        self._writes = {division: Counter() for division in self.config.tenants}
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
        write_windows = [
            Window(calls, per, "fixed", name)
            for calls, per, name in (
                (config.write_minutely_limit, config.write_minutely_window, "minutely"),
                (config.write_daily_limit, config.write_daily_window, "daily"),
            )
            if calls is not None
        ]
        self.write_limiter = make_limiter(*write_windows) if write_windows else None

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
        metadata = {"etag": _etag(row.seq)} if self.config.etags else {}
        return _render(self._view(row, timestamp=True), None, metadata)

    def _account_metadata(self, uri: str, kind: str, seq: int) -> dict[str, str]:
        """``__metadata`` of an account; with ``etags`` on it names the rowversion too."""
        metadata = _metadata(uri, kind)
        if self.config.etags:
            metadata["etag"] = _etag(seq)
        return metadata

    def writes(self, division: str | None) -> dict[str, Any]:
        """The ``__writes`` body: applied writes per account of one division, or of all."""
        if division is not None:
            self.table(division)  # a 400 naming the known divisions
            counts = self._writes.get(division, Counter())
            return {
                "tenant": division,
                "writes": dict(sorted(counts.items())),
                "total": sum(counts.values()),
            }
        every = {
            name: dict(sorted(self._writes.get(name, Counter()).items()))
            for name in sorted(self.tables, key=int)
        }
        return {"writes": every, "total": sum(sum(c.values()) for c in every.values())}

    def _take_failed_write(self) -> bool:
        """Use one of the ``failed_writes`` left (see :meth:`_take_slow_write`)."""
        left = self.config.failed_writes
        if left > 0:
            self.config = dataclasses.replace(self.config, failed_writes=left - 1)
        return left > 0

    def _take_slow_write(self) -> bool:
        """Use one of the ``slow_writes`` left in the running config.

        These count down in the config itself (not in ``_configured`` state)
        so that ``__config`` shows what is left and an unrelated ``__config``
        change neither re-arms nor clears them.
        """
        left = self.config.slow_writes
        if left > 0:
            self.config = dataclasses.replace(self.config, slow_writes=left - 1)
        return left > 0

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

    def _write_limit(
        self, request: Request, division: str, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """Consume the division's write budget (writes only); its headers, or a 429."""
        limiter = self.write_limiter
        if limiter is None or request.method not in WRITE_METHODS:
            return []
        verdict = limiter.check(division)
        wall = time.time()
        write_headers: list[tuple[bytes, bytes]] = []
        for state in verdict.states:
            prefix = "x-ratelimit-write" + ("-minutely" if state.window.name == "minutely" else "")
            write_headers += [
                (f"{prefix}-limit".encode(), str(state.window.calls).encode()),
                (f"{prefix}-remaining".encode(), str(state.remaining).encode()),
                (f"{prefix}-reset".encode(), str(round((wall + state.reset_in) * 1000)).encode()),
            ]
        if not verdict.allowed:
            mark_rate_limited(request)
            raise _odata_error(
                429, "API write rate limit exceeded.", _decode([*headers, *write_headers])
            )
        return write_headers

    async def _guarded(self, request: Request, handler: _Handler) -> Response:
        """Run ``handler(request, division, table)`` with the division's rate-limit headers."""
        division, table, headers = self._division(request)
        headers = [*headers, *self._write_limit(request, division, headers)]
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
            _render(
                view,
                query.select,
                self._account_metadata(
                    f"{uri}(guid'{view['ID']}')", "Account", table.rows[view["ID"]].seq
                ),
            )
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
            _render(
                view,
                query.select,
                self._account_metadata(
                    f"{uri}({view['Timestamp']}L)", "SyncAccount", int(view["Timestamp"])
                ),
            )
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
        if request.method in WRITE_METHODS:
            self._check_if_match(request, row)
        if request.method == "DELETE":
            table.delete(key)
            self._writes.setdefault(division, Counter())[key] += 1
            return Response(status_code=204)
        if request.method in UPDATE_METHODS:
            return await self._update(request, division, table, row)
        select = parse_select(request.query_params.get("$select"), ACCOUNT_FIELDS)
        return self._single_response(request, division, row, select, status=200)

    def _single_response(
        self,
        request: Request,
        division: str,
        row: Row,
        select: tuple[str, ...] | None,
        *,
        status: int,
    ) -> Response:
        """The account as a single GET renders it (with its ``ETag`` when ``etags`` is on)."""
        uri = f"{mount_base(request)}/api/v1/{division}/crm/Accounts(guid'{row.key}')"
        view = self._view(row, timestamp=False)
        metadata = self._account_metadata(uri, "Account", row.seq)
        response = json_response({"d": _render(view, select, metadata)}, status=status)
        if self.config.etags:
            response.headers["ETag"] = _etag(row.seq)
        return response

    def _check_if_match(self, request: Request, row: Row) -> None:
        """A 412 when ``etags`` is on and ``If-Match`` names neither ``*`` nor the current etag."""
        if_match = request.headers.get("if-match")
        if not self.config.etags or if_match is None:
            return
        wanted = {tag.strip() for tag in if_match.split(",")}
        if "*" not in wanted and _etag(row.seq) not in wanted:
            raise _odata_error(412, "The record was changed since it was read (ETag mismatch).")

    async def _update(self, request: Request, division: str, table: Table, row: Row) -> Response:
        """``PUT``/``PATCH``: validate, maybe fail (500) or stall after applying, then answer."""
        changes = await _put_body(request)
        if self._take_failed_write():
            raise _odata_error(500, "An unexpected error occurred (sandbox failed_writes).")
        updated = table.put(row.key, {**row.body, **changes, "Modifier": self._user})
        self._writes.setdefault(division, Counter())[str(row.key)] += 1
        if _prefers_representation(request):
            response = self._single_response(request, division, updated, None, status=200)
            response.headers["Preference-Applied"] = "return=representation"
        else:
            response = Response(status_code=204)
            if self.config.etags:
                response.headers["ETag"] = _etag(updated.seq)
        if self._take_slow_write():
            # Applied already: a client that gives up now cannot know it happened.
            await asyncio.sleep(self.config.slow_write_seconds)
        return response

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

    def _extra_admin_routes(self) -> list[BaseRoute]:
        async def writes(request: Request) -> Response:
            return json_response(self.writes(request.query_params.get("tenant")))

        return [Route("/__writes", writes, methods=["GET"])]

    def _api_routes(self) -> list[BaseRoute]:
        methods = ["GET", "PUT", "PATCH", "DELETE"]
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


def _etag(seq: int) -> str:
    """The weak etag of an account: its rowversion (``Timestamp``)."""
    return f'W/"{seq}"'


def _prefers_representation(request: Request) -> bool:
    """Whether ``Prefer`` (RFC 7240) asks for ``return=representation``."""
    preferences = request.headers.get("prefer", "").replace(";", ",").split(",")
    return any(p.strip().lower() == "return=representation" for p in preferences)


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
