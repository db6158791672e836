"""Fatture in Cloud (API v2) products, as the "Syncronization using Polling" guide uses them.

Why emulate it: it is the archetype of an API that can *only* be polled in
full.  ``GET /c/{company_id}/products`` has 1-based, Laravel-style pages and no
updated-since filter, so a sync must walk every page every time while spending
a per-company hourly quota, and inserts/deletes between two page requests shift
the offset pages underneath the client.

What is emulated (from the guide, the API reference and its OpenAPI models):

* bearer token; 401 ``{"error": {...}}`` without it; a company the token cannot
  see is a 403 in the same ``ApiError`` shape;
* ``page`` (default 1), ``per_page`` (default 50, max 100: larger values are
  served as 100), ``fieldset=basic|detailed``, ``fields=a,b``, ``sort=a,-b``;
* the pagination envelope ``current_page, data, first_page_url, from,
  last_page, last_page_url, next_page_url, path, per_page, prev_page_url, to,
  total`` with the API's relative ``"page=N"`` URLs; a page past ``last_page``
  is empty with ``from``/``to`` null;
* the documented limits per company: 300 requests per 5 minutes (429 +
  ``Retry-After``), 1,000 per hour and 40,000 per month (403 + ``Retry-After``,
  as the limits page says; ``hourly_status: 429`` switches to a 429).

Deviations: windows start when the emulation is (re)configured, not at the top
of the wall-clock hour; the ``basic`` fieldset is an educated guess (the
reference does not list it); ``q`` filters are rejected with a 422 instead of
being evaluated.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from syncline.sandbox.common import json_response
from syncline.sandbox.limit_config import Window
from syncline.sandbox.limit_headers import whole_seconds
from syncline.sandbox.limiter import RateLimiter
from syncline.sandbox.seeds.common import (
    Body,
    Row,
    SeedApi,
    SeedError,
    Table,
    Validator,
    bearer_token,
    make_limiter,
    mark_rate_limited,
    seeded_rng,
    set_tenant,
    v_choice,
    v_int,
    v_number,
    v_opt_str,
    v_sizes,
)

BASIC_FIELDS: Final = (
    "id",
    "name",
    "code",
    "net_price",
    "gross_price",
    "use_gross_price",
    "default_vat",
    "net_cost",
    "measure",
    "description",
    "category",
    "in_stock",
)
DETAILED_FIELDS: Final = (
    *BASIC_FIELDS,
    "notes",
    "stock_initial",
    "stock_current",
    "average_cost",
    "average_price",
    "created_at",
    "updated_at",
)

_NAMES: Final = (
    "Consulenza fiscale",
    "Sviluppo sito web",
    "Manutenzione impianto",
    "Licenza software annuale",
    "Corso di formazione",
    "Hosting e dominio",
    "Sedia ergonomica",
    "Scrivania in rovere",
    "Cartuccia toner",
    "Risma carta A4",
    "Monitor 27 pollici",
    "Tastiera wireless",
    "Assistenza tecnica",
    "Traduzione documenti",
    "Servizio fotografico",
    "Noleggio furgone",
)
_CATEGORIES: Final = ("Servizi", "Software", "Hardware", "Cancelleria", "Arredamento", "")
_MEASURES: Final = ("pz", "ore", "mesi", "kg", "")
_VATS: Final = (
    (0, 22, "Aliquota ordinaria", ""),
    (1, 10, "Aliquota ridotta", ""),
    (2, 4, "Aliquota minima", ""),
    (21, 0, "Non imponibile art. 8", "Operazione non imponibile ai sensi dell'art. 8"),
)


@dataclass(frozen=True)
class FicConfig:
    seed: int = 7
    tenants: dict[str, int] = field(default_factory=lambda: {"1001": 237, "1002": 58, "1003": 0})
    """Company id -> number of products."""
    token: str | None = "fic-token"  # noqa: S105 - the sandbox's documented test token
    """Bearer token every request needs (``None``: no auth check)."""
    default_per_page: int = 50
    max_per_page: int = 100
    short_term_limit: int = 300
    short_term_window: float = 300.0
    hourly_limit: int = 1000
    hourly_window: float = 3600.0
    hourly_status: int = 403
    """Status once the hourly (or monthly) quota is spent: 403 as documented, or 429."""
    monthly_limit: int = 40_000
    monthly_window: float = 30 * 86_400.0


def _api_error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> SeedError:
    return SeedError(status, {"error": {"message": message, "code": code}}, headers=headers)


def _validation_error(param: str, message: str) -> SeedError:
    body = {"error": {"message": message, "validation_result": {param: [message]}}}
    return SeedError(422, body)


def _fic_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _money(value: float) -> float:
    return round(value, 2)


class FattureInCloud(SeedApi[FicConfig]):
    """``/fattureincloud``: see the module docstring."""

    name = "fattureincloud"
    prefix = "/fattureincloud"
    numeric_keys = True
    limiter: RateLimiter
    _next_id: int

    def _default_config(self) -> FicConfig:
        return FicConfig()

    def _validators(self) -> Mapping[str, Validator]:
        return {
            "seed": v_int(0),
            "tenants": v_sizes(numeric_keys=True),
            "token": v_opt_str,
            "default_per_page": v_int(1),
            "max_per_page": v_int(1),
            "short_term_limit": v_int(1),
            "short_term_window": v_number(0.001),
            "hourly_limit": v_int(1),
            "hourly_window": v_number(0.001),
            "hourly_status": v_choice(403, 429),
            "monthly_limit": v_int(1),
            "monthly_window": v_number(0.001),
        }

    # -- data -----------------------------------------------------------------

    def _build(self) -> None:
        self._next_id = 1000 + seeded_rng(self.config.seed, self.name).randint(0, 999)
        for company in sorted(self.config.tenants, key=int):
            rng = seeded_rng(self.config.seed, self.name, company)
            table = self.tables[company] = Table(rng)
            for _ in range(self.config.tenants[company]):
                self._insert(table, rng, step_ms=rng.randint(60, 7200) * 1000)

    def _configured(self) -> None:
        config = self.config
        self.limiter: RateLimiter = make_limiter(
            Window(config.short_term_limit, config.short_term_window, "sliding", "short-term"),
            Window(config.hourly_limit, config.hourly_window, "fixed", "hourly"),
            Window(config.monthly_limit, config.monthly_window, "fixed", "monthly"),
        )

    def _insert(self, table: Table, rng: random.Random, *, step_ms: int = 1000) -> None:
        pid = self._next_id
        self._next_id += rng.randint(1, 4)
        vat_id, vat, vat_name, vat_notes = rng.choice(_VATS)
        net = _money(rng.uniform(1, 2500))
        stock = float(rng.randint(0, 500))
        name = rng.choice(_NAMES)
        body: Body = {
            "id": pid,
            "name": name,
            "code": f"{name[:3].upper()}{pid:06d}",
            "net_price": net,
            "gross_price": _money(net * (1 + vat / 100)),
            "use_gross_price": rng.random() < 0.2,
            "default_vat": {
                "id": vat_id,
                "value": vat,
                "description": vat_name,
                "notes": vat_notes,
                "e_invoice": True,
                "ei_type": "N3.2" if vat == 0 else None,
                "ei_description": vat_notes or None,
                "is_disabled": False,
            },
            "net_cost": _money(net * rng.uniform(0.3, 0.8)),
            "measure": rng.choice(_MEASURES),
            "description": f"{name} - articolo di listino {pid}",
            "category": rng.choice(_CATEGORIES),
            "notes": rng.choice(("", "", "Disponibile su ordinazione", "Fuori produzione")),
            "in_stock": stock > 0,
            "stock_initial": stock,
            "stock_current": stock,
            "average_cost": _money(net * 0.6),
            "average_price": net,
        }
        row = table.put(pid, body, step_ms=step_ms)
        body["created_at"] = body["updated_at"] = _fic_time(row.modified)

    def _new_record(self, tenant: str, table: Table, rng: random.Random) -> None:
        self._insert(table, rng)

    def _update_record(self, tenant: str, table: Table, row: Row, rng: random.Random) -> None:
        body = dict(row.body)
        net = _money(float(body["net_price"]) + rng.randint(50, 2000) / 100)
        vat = int(body["default_vat"]["value"])
        stock = max(0.0, float(body["stock_current"]) + rng.choice((-3, -1, 2, 10)))
        body.update(
            net_price=net,
            gross_price=_money(net * (1 + vat / 100)),
            average_price=net,
            stock_current=stock,
            in_stock=stock > 0,
        )
        updated = table.put(row.key, body)
        body["updated_at"] = _fic_time(updated.modified)

    # -- HTTP -----------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        expected = self.config.token
        if expected is not None and bearer_token(request) != expected:
            raise _api_error(401, "Unauthorized", "UNAUTHORIZED")

    def _company(self, request: Request) -> Table:
        company = str(request.path_params["company_id"])
        set_tenant(request, company)
        self._authorize(request)
        table = self.tables.get(company)
        if table is None:
            message = "You do not have the permission to access this company."
            raise _api_error(403, message, "NO_PERMISSION")
        verdict = self.limiter.check(company)
        if not verdict.allowed:
            assert verdict.blocking is not None
            mark_rate_limited(request)
            headers = {"Retry-After": str(max(1, whole_seconds(verdict.retry_in)))}
            if verdict.blocking.name == "short-term":
                raise _api_error(429, "Too many requests.", "TOO_MANY_REQUESTS", headers)
            status = self.config.hourly_status
            message = f"{verdict.blocking.name.capitalize()} API quota exceeded."
            raise _api_error(status, message, "QUOTA_EXCEEDED", headers)
        return table

    def _int_query(self, request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _validation_error(name, f"The {name} must be an integer.") from None
        if value < 1:
            raise _validation_error(name, f"The {name} must be at least 1.")
        return value

    def _fields(self, request: Request) -> tuple[str, ...]:
        fields = request.query_params.get("fields")
        if fields:
            wanted = [name.strip() for name in fields.split(",") if name.strip()]
            return tuple(name for name in wanted if name in DETAILED_FIELDS)
        fieldset = request.query_params.get("fieldset") or "basic"
        if fieldset not in {"basic", "detailed"}:
            raise _validation_error("fieldset", "The selected fieldset is invalid.")
        return DETAILED_FIELDS if fieldset == "detailed" else BASIC_FIELDS

    @staticmethod
    def _sorted(rows: list[Row], spec: str | None) -> list[Row]:
        if not spec:
            return rows
        for part in reversed([item.strip() for item in spec.split(",") if item.strip()]):
            name = part.lstrip("-")
            if name not in DETAILED_FIELDS or name == "default_vat":
                raise _validation_error("sort", f"The sort field {name!r} is invalid.")

            def key(row: Row, name: str = name) -> tuple[bool, Any]:
                value = row.body.get(name)
                return (value is None, value if value is not None else 0)

            rows = sorted(rows, key=key, reverse=part.startswith("-"))
        return rows

    async def list_products(self, request: Request) -> Response:
        table = self._company(request)
        if request.query_params.get("q"):
            raise _validation_error("q", "The sandbox does not evaluate q filters.")
        page = self._int_query(request, "page", 1)
        size = min(
            self._int_query(request, "per_page", self.config.default_per_page),
            self.config.max_per_page,
        )
        fields = self._fields(request)
        rows = [table.rows[key] for key in table.sorted_keys()]
        rows = self._sorted(rows, request.query_params.get("sort"))
        total = len(rows)
        last_page = max(1, math.ceil(total / size))
        first = (page - 1) * size
        data = [{name: row.body[name] for name in fields} for row in rows[first : first + size]]
        return json_response(
            {
                "current_page": page,
                "data": data,
                "first_page_url": "page=1",
                "from": first + 1 if data else None,
                "last_page": last_page,
                "last_page_url": f"page={last_page}",
                "next_page_url": f"page={page + 1}" if page < last_page else None,
                "path": "/products",
                "per_page": size,
                "prev_page_url": f"page={page - 1}" if page > 1 else None,
                "to": first + len(data) if data else None,
                "total": total,
            }
        )

    async def get_product(self, request: Request) -> Response:
        table = self._company(request)
        row = table.rows.get(int(request.path_params["product_id"]))
        if row is None:
            raise _api_error(404, "Not found.", "NOT_FOUND")
        fields = self._fields(request) if request.query_params else DETAILED_FIELDS
        return json_response({"data": {name: row.body[name] for name in fields}})

    def _api_routes(self) -> list[BaseRoute]:
        return [
            Route("/c/{company_id:int}/products", self.counted(self.list_products)),
            Route("/c/{company_id:int}/products/{product_id:int}", self.counted(self.get_product)),
        ]
