"""Inxmail (New Xperience REST API): mailing-synchronizations with sync tokens.

Why emulate it: it is the HAL flavour of "incremental sync by token".  A full
sync (``?syncModifications=true``) pages through ``_links.next`` cursor links;
the last page carries ``_links["inx:upcoming-modifications"]``, a full URL with
a ``syncToken`` that later returns only what changed since.  The docs warn that
data is sorted by ``modificationDate`` and that, in large paginated results,
the same record can show up again on a later page with newer data: paging runs
over a *live* view, not a snapshot.

Emulated:

* ``GET /integrations/inxmail-professional/mailing-synchronizations`` (with or
  without the trailing slash) and ``.../{id}``; HTTP Basic auth whose user name
  is the tenant (the customer "space") and whose password is ``password``;
* ``syncModifications=true`` starts a full sync; ``cursor`` continues any
  listing (the ``next`` link carries nothing else, as documented);
  ``syncToken`` starts an incremental sync; ``pageSize`` (default 1000);
* the live view: records are ordered by their change sequence (the same order
  as ``modificationDate``); a cursor is the position of the last record served,
  so a record changed mid-sync moves behind the cursor and is served again;
* records are embedded under ``_embedded["inx:mailing-synchronizations"]``
  (the API's ``inx:`` relation naming); an empty page omits ``_embedded`` the
  way Spring HATEOAS does (``omit_empty_embedded: false`` keeps an empty list);
* a sync token that expired (``token_ttl``), was never issued, or was revoked
  with ``POST /inxmail/__expire-tokens`` is a ``410 Gone`` problem document;
  combining ``syncModifications`` with filters or sorting is a 400.

Deviation (the docs say nothing about deletions): a record deleted since the
token was issued, or during a sync, is served as a tombstone
``{"id", "modificationDate", "deleted": true, "_links": {"self"}}``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from syncline.sandbox.common import json_response
from syncline.sandbox.limit_config import Window
from syncline.sandbox.limit_headers import whole_seconds
from syncline.sandbox.limiter import RateLimiter
from syncline.sandbox.seeds.common import (
    Body,
    Change,
    Row,
    SeedApi,
    SeedError,
    Table,
    Tombstone,
    Validator,
    b64_decode,
    b64_encode,
    basic_credentials,
    iso_ms,
    make_limiter,
    mark_rate_limited,
    mount_base,
    seeded_rng,
    seeded_uuid,
    set_tenant,
    v_bool,
    v_int,
    v_opt_int,
    v_opt_number,
    v_opt_str,
    v_sizes,
)

COLLECTION: Final = "/integrations/inxmail-professional/mailing-synchronizations"
EMBEDDED: Final = "inx:mailing-synchronizations"
UPCOMING: Final = "inx:upcoming-modifications"
HAL: Final = "application/hal+json;charset=UTF-8"
PROBLEM: Final = "application/problem+json"
_FILTERS: Final = ("mailingId", "readyForSending", "mailingHasDraft", "mailingIsApproved")
_SORTS: Final = ("sortBy", "order")
_TOPICS: Final = ("Newsletter", "Sommer-Sale", "Produktneuheiten", "Webinar", "Kundenumfrage")
_LISTS: Final = ("Hauptverteiler", "B2B Kunden", "Interessenten", "Testliste")


@dataclass(frozen=True)
class InxConfig:
    seed: int = 7
    tenants: dict[str, int] = field(default_factory=lambda: {"acme": 240, "globex": 35})
    """Space (the Basic-auth user name) -> number of mailing synchronizations."""
    password: str | None = "inx-secret"  # noqa: S105 - the sandbox's documented test secret
    """Basic-auth password of every space (``None``: no auth check; tenant from the user)."""
    default_page_size: int = 1000
    max_page_size: int = 1000
    token_ttl: float | None = None
    """Seconds a sync token stays valid (``None``: until expired by the admin switch)."""
    omit_empty_embedded: bool = True
    rate_limit: int | None = None
    rate_limit_window: float | None = 60.0


@dataclass(frozen=True)
class _SyncToken:
    tenant: str
    seq: int
    issued: float


@dataclass(frozen=True)
class _Cursor:
    """Where a listing stands; everything needed for the next page rides in the link."""

    mode: str
    """``"sync"`` (change order) or ``"list"`` (creation order, offset)."""
    tenant: str
    tomb_floor: int
    """Tombstones with a seq at or below this are not served."""
    position: int
    """Seq of the last change served (sync) or offset (list)."""
    size: int
    sort: str = "creationDate"
    desc: bool = False

    def encode(self) -> str:
        fields = [self.mode, self.tenant, self.tomb_floor, self.position, self.size]
        return b64_encode(orjson.dumps([*fields, self.sort, self.desc]).decode())

    @staticmethod
    def decode(raw: str) -> _Cursor:
        text = b64_decode(raw)
        try:
            mode, tenant, floor, position, size, sort, desc = orjson.loads(text or "")
            return _Cursor(str(mode), str(tenant), int(floor), int(position), int(size), sort, desc)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            raise _problem(400, "Bad Request", f"Invalid cursor: {raw!r}") from None


def _problem(status: int, title: str, detail: str, **headers: str) -> SeedError:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return SeedError(status, body, headers=headers, media_type=PROBLEM)


def _hal(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type=HAL)


class Inxmail(SeedApi[InxConfig]):
    """``/inxmail``: see the module docstring."""

    name = "inxmail"
    prefix = "/inxmail"
    numeric_keys = False
    limiter: RateLimiter | None
    tokens: dict[str, _SyncToken]
    _serial: int

    def _default_config(self) -> InxConfig:
        return InxConfig()

    def _validators(self) -> Mapping[str, Validator]:
        return {
            "seed": v_int(0),
            "tenants": v_sizes(numeric_keys=False),
            "password": v_opt_str,
            "default_page_size": v_int(1),
            "max_page_size": v_int(1),
            "token_ttl": v_opt_number(0.001),
            "omit_empty_embedded": v_bool,
            "rate_limit": v_opt_int(1),
            "rate_limit_window": v_opt_number(0.001),
        }

    # -- data -----------------------------------------------------------------

    def _build(self) -> None:
        self.tokens = {}
        self._serial = 0
        for tenant in sorted(self.config.tenants):
            rng = seeded_rng(self.config.seed, self.name, tenant)
            table = self.tables[tenant] = Table(rng)
            for _ in range(self.config.tenants[tenant]):
                self._insert(tenant, table, rng, step_ms=rng.randint(1_000, 6 * 3_600_000))

    def _configured(self) -> None:
        config = self.config
        self.limiter = None
        if config.rate_limit is not None:
            window = config.rate_limit_window or 60.0
            self.limiter = make_limiter(Window(config.rate_limit, window, "sliding", "api"))

    def _insert(self, tenant: str, table: Table, rng: random.Random, *, step_ms: int) -> None:
        key = seeded_uuid(rng)
        approved = rng.random() < 0.6
        name = f"{rng.choice(_TOPICS)} KW{rng.randint(1, 52):02d}"
        body: Body = {
            "id": key,
            "mailingId": seeded_uuid(rng),
            "mailingName": name,
            "approvedMailingName": name if approved else None,
            "readyForSending": approved,
            "mailingHasDraft": not approved or rng.random() < 0.3,
            "mailingIsApproved": approved,
            "target": {
                "customer": tenant,
                "listId": rng.randint(2, 40),
                "listName": rng.choice(_LISTS),
            },
            "mailingUploadsModificationDate": None,
            "sendingsModificationDate": None,
        }
        table.put(key, body, step_ms=step_ms)

    def _new_record(self, tenant: str, table: Table, rng: random.Random) -> None:
        self._insert(tenant, table, rng, step_ms=rng.randint(1_000, 600_000))

    def _update_record(self, tenant: str, table: Table, row: Row, rng: random.Random) -> None:
        body = dict(row.body)
        name = f"{str(body['mailingName']).split(' (v')[0]} (v{row.version + 1})"
        approved = rng.random() < 0.5
        body.update(
            mailingName=name,
            approvedMailingName=name if approved else body["approvedMailingName"],
            readyForSending=approved or bool(body["readyForSending"]),
            mailingIsApproved=approved or bool(body["mailingIsApproved"]),
            mailingHasDraft=not approved,
        )
        updated = table.put(row.key, body, step_ms=rng.randint(1_000, 600_000))
        if approved:
            body["mailingUploadsModificationDate"] = iso_ms(updated.modified)

    def _record_view(self, tenant: str, row: Row) -> Body:
        return self._render(row, "")

    def _render(self, row: Row, base: str) -> Body:
        href = f"{base}{COLLECTION}/{row.key}"
        editor = f"{base}/mailing-editor/{row.body['mailingId']}"
        return {
            "id": row.key,
            "creationDate": iso_ms(row.created),
            "modificationDate": iso_ms(row.modified),
            **{name: value for name, value in row.body.items() if name != "id"},
            "_links": {
                "self": {"href": href},
                "inx:mailing-editor": {"href": editor},
                "inx:mailing-preview-draft": {"href": f"{editor}/preview/draft"},
                "inx:mailing-preview-approved": {"href": f"{editor}/preview/approved"},
                "inx:sendings": {"href": f"{href}/sendings"},
                "inx:mailing-uploads": {"href": f"{href}/mailing-uploads"},
            },
        }

    @staticmethod
    def _tombstone(tomb: Tombstone, base: str) -> Body:
        return {
            "id": tomb.key,
            "modificationDate": iso_ms(tomb.deleted),
            "deleted": True,
            "_links": {"self": {"href": f"{base}{COLLECTION}/{tomb.key}"}},
        }

    def expire_tokens(self) -> int:
        count = len(self.tokens)
        self.tokens.clear()
        return count

    def _issue(self, tenant: str, seq: int) -> str:
        self._serial += 1
        token = b64_encode(f"{tenant}:{seq}:{self._serial}")
        self.tokens[token] = _SyncToken(tenant, seq, time.monotonic())
        return token

    # -- HTTP -----------------------------------------------------------------

    def _tenant(self, request: Request) -> str:
        credentials = basic_credentials(request)
        user = credentials[0] if credentials else ""
        set_tenant(request, user)
        challenge = {"WWW-Authenticate": 'Basic realm="Inxmail"'}
        password = self.config.password
        if credentials is None or (password is not None and credentials[1] != password):
            raise _problem(401, "Unauthorized", "Full authentication is required.", **challenge)
        if user not in self.tables:
            raise _problem(401, "Unauthorized", f"Unknown API key {user!r}.", **challenge)
        if self.limiter is not None:
            verdict = self.limiter.check(user)
            if not verdict.allowed:
                mark_rate_limited(request)
                retry = str(max(1, whole_seconds(verdict.retry_in)))
                detail = "Rate limit exceeded."
                raise _problem(429, "Too Many Requests", detail, **{"Retry-After": retry})
        return user

    def _page_size(self, request: Request) -> int:
        raw = request.query_params.get("pageSize")
        if raw is None or raw == "":
            return min(self.config.default_page_size, self.config.max_page_size)
        if not raw.isdigit() or int(raw) < 1:
            raise _problem(400, "Bad Request", f"pageSize must be a positive integer: {raw!r}")
        return min(int(raw), self.config.max_page_size)

    def _start(self, request: Request, tenant: str) -> _Cursor:
        params = request.query_params
        raw_cursor = params.get("cursor")
        if raw_cursor:
            cursor = _Cursor.decode(raw_cursor)
            if cursor.tenant != tenant:
                raise _problem(400, "Bad Request", "The cursor belongs to another customer.")
            return cursor
        table = self.tables[tenant]
        sync = params.get("syncModifications", "").lower() == "true"
        token = params.get("syncToken")
        if (sync or token) and any(params.get(name) for name in (*_FILTERS, *_SORTS)):
            detail = "syncModifications cannot be combined with filters or sorting."
            raise _problem(400, "Bad Request", detail)
        size = self._page_size(request)
        if token:
            issued = self.tokens.get(token)
            ttl = self.config.token_ttl
            if issued is not None and ttl is not None and time.monotonic() - issued.issued > ttl:
                del self.tokens[token]
                issued = None
            if issued is None or issued.tenant != tenant:
                raise _problem(410, "Gone", "The sync token expired; start a full sync again.")
            return _Cursor("sync", tenant, issued.seq, issued.seq, size)
        if sync:
            # Deletions that happen during this full sync must reach the client too.
            return _Cursor("sync", tenant, table.seq, 0, size)
        sort = params.get("sortBy") or "creationDate"
        if sort not in {"creationDate", "modificationDate", "mailingName"}:
            raise _problem(400, "Bad Request", f"Unsupported sortBy: {sort!r}")
        order = (params.get("order") or "asc").lower()
        if order not in {"asc", "desc"}:
            raise _problem(400, "Bad Request", f"Unsupported order: {order!r}")
        return _Cursor("list", tenant, 0, 0, size, sort, order == "desc")

    def _sync_page(self, table: Table, cursor: _Cursor) -> tuple[list[Change], _Cursor | None, int]:
        page: list[Change] = []
        more = False
        for change in table.changes_after(cursor.position):
            if isinstance(change, Tombstone) and change.seq <= cursor.tomb_floor:
                continue
            if len(page) == cursor.size:
                more = True
                break
            page.append(change)
        if more:
            nxt = _Cursor("sync", cursor.tenant, cursor.tomb_floor, page[-1].seq, cursor.size)
            return page, nxt, 0
        return page, None, table.seq

    def _list_rows(self, request: Request, table: Table, cursor: _Cursor) -> list[Row]:
        params = request.query_params
        rows = list(table.rows.values())
        wanted = {item.strip() for item in params.get("mailingId", "").split(",") if item.strip()}
        if wanted:
            rows = [row for row in rows if row.body["mailingId"] in wanted]
        for name in _FILTERS[1:]:
            value = params.get(name)
            if value:
                rows = [row for row in rows if row.body[name] == (value.lower() == "true")]

        def key(row: Row) -> tuple[Any, str]:
            if cursor.sort == "mailingName":
                return (row.body["mailingName"], str(row.key))
            value = row.modified if cursor.sort == "modificationDate" else row.created
            return (value, str(row.key))

        return sorted(rows, key=key, reverse=cursor.desc)

    async def list_syncs(self, request: Request) -> Response:
        tenant = self._tenant(request)
        table = self.tables[tenant]
        cursor = self._start(request, tenant)
        base = mount_base(request)
        links: dict[str, Any] = {"self": {"href": str(request.url)}}
        items: list[Body]
        if cursor.mode == "sync":
            page, nxt, upcoming_seq = self._sync_page(table, cursor)
            items = [
                self._tombstone(c, base) if isinstance(c, Tombstone) else self._render(c, base)
                for c in page
            ]
            if nxt is not None:
                links["next"] = {"href": f"{base}{COLLECTION}?cursor={nxt.encode()}"}
            else:
                token = self._issue(tenant, upcoming_seq)
                href = f"{base}{COLLECTION}?syncToken={token}&syncModifications=true"
                links[UPCOMING] = {"href": href}
        else:
            rows = self._list_rows(request, table, cursor)
            start = cursor.position
            items = [self._render(row, base) for row in rows[start : start + cursor.size]]
            if start + cursor.size < len(rows):
                nxt = _Cursor(
                    "list", tenant, 0, start + cursor.size, cursor.size, cursor.sort, cursor.desc
                )
                links["next"] = {"href": f"{base}{COLLECTION}?cursor={nxt.encode()}"}
        links["curies"] = [
            {
                "href": "https://apidocs.inxmail.com/xnew/rest/v1/relations/{rel}",
                "name": "inx",
                "templated": True,
            }
        ]
        payload: dict[str, Any] = {}
        if items or not self.config.omit_empty_embedded:
            payload["_embedded"] = {EMBEDDED: items}
        payload["_links"] = links
        return _hal(payload)

    async def get_sync(self, request: Request) -> Response:
        tenant = self._tenant(request)
        row = self.tables[tenant].rows.get(str(request.path_params["sync_id"]))
        if row is None:
            raise _problem(404, "Not Found", "No such mailing synchronization.")
        return _hal(self._render(row, mount_base(request)))

    def _api_routes(self) -> list[BaseRoute]:
        listing = self.counted(self.list_syncs)
        return [
            Route(COLLECTION, listing, methods=["GET"]),
            Route(f"{COLLECTION}/", listing, methods=["GET"]),
            Route(f"{COLLECTION}/{{sync_id}}", self.counted(self.get_sync), methods=["GET"]),
        ]

    def _extra_admin_routes(self) -> list[BaseRoute]:
        async def expire(_request: Request) -> Response:
            return json_response({"expired": self.expire_tokens()})

        return [Route("/__expire-tokens", expire, methods=["POST"])]
