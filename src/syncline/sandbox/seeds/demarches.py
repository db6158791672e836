"""démarches-simplifiées (API v2, GraphQL): ``getDemarche`` dossiers with Relay cursors.

Why emulate it: it is a GraphQL API whose incremental sync is a keyset cursor
over a *moving* order.  Without ``updatedSince`` dossiers are ordered by
deposit date; with it, by ``updated_at`` (``dateDerniereModification``), so an
updated dossier moves to the end of the listing.  The "synchronisation" guide
persists ``endCursor`` only while ``hasNextPage`` is true and warns that, as
long as there is no new page, the persisted cursor returns *the same dossiers
of the last page* again: clients must be idempotent.  That is what a faithful
keyset does (and what this emulation does), since the persisted cursor is the
one *before* the last page.

Behaviour copied from the public server code (``cursor_connection.rb``,
``dossiers_connection.rb``) and the docs:

* ``POST /api/v2/graphql`` with ``query``, ``variables`` (object or JSON
  string) and ``operationName``; a real GraphQL engine validates the query, so
  fragments, aliases, ``@include`` and ``__typename`` all work;
* cursor = base64 of ``"<order timestamp>;<id>"``; page size ``first`` (default
  and max 100), ``last``/``before`` and ``order: DESC`` as the server computes
  them; ``hasPreviousPage`` is true whenever ``after`` is given; ``endCursor`` is
  null on an empty page;
* errors in GraphQL shape with HTTP 200: an unknown démarche is ``Demarche not
  found`` (``extensions.code = not_found``, ``data: null``); a missing or wrong
  bearer token is ``unauthorized`` (the server hides the démarche); a body that
  is not JSON is a 400 ``{"errors": [...], "data": null}``;
* deletions are visible through ``deletedDossiers`` (``deletedSince``).

Deviations: only a subset of the schema exists (the fields in
:data:`SDL`; an unknown field is a validation error); dates are UTC
(``+00:00``) where the server uses Europe/Paris; ``repeat_last_page: true``
(off by default) makes ``after: <endCursor of a last page>`` serve that same
last page again instead of an empty one (until something new arrives), for
clients that persist every cursor.  An optional
rate limit answers like Rack::Attack (429, ``Retry later``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    IntValueNode,
    OperationDefinitionNode,
    VariableNode,
    build_schema,
    execute_sync,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from syncline.sandbox.common import json_response
from syncline.sandbox.limit_config import Window
from syncline.sandbox.limit_headers import whole_seconds
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
    b64_decode,
    b64_encode,
    bearer_token,
    make_limiter,
    mark_rate_limited,
    parse_iso_ms,
    seeded_rng,
    set_tenant,
    v_bool,
    v_int,
    v_opt_int,
    v_opt_number,
    v_opt_str,
    v_sizes,
)

SDL: Final = """
scalar ISO8601DateTime
scalar ISO8601Date
scalar BigInt

enum Order { ASC DESC }
enum DossierState { en_construction en_instruction accepte refuse sans_suite }
enum DemarcheState { brouillon publiee close depubliee }
enum Civilite { M Mme }

type Query {
  demarche(number: Int!): Demarche!
  dossier(number: Int!): Dossier!
}

type Demarche {
  id: ID!
  number: Int!
  title: String!
  description: String!
  state: DemarcheState!
  declarative: String
  dateCreation: ISO8601DateTime!
  datePublication: ISO8601DateTime
  dateFermeture: ISO8601DateTime
  dossiers(
    after: String, before: String, first: Int, last: Int, order: Order = ASC,
    state: DossierState, archived: Boolean, createdSince: ISO8601DateTime,
    updatedSince: ISO8601DateTime, revision: ID, minRevision: ID, maxRevision: ID
  ): DossierConnection!
  deletedDossiers(
    after: String, before: String, first: Int, last: Int, order: Order = ASC,
    deletedSince: ISO8601DateTime
  ): DeletedDossierConnection!
}

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

type DossierConnection { nodes: [Dossier!]! edges: [DossierEdge!]! pageInfo: PageInfo! }
type DossierEdge { cursor: String! node: Dossier! }
type DeletedDossierConnection {
  nodes: [DeletedDossier!]! edges: [DeletedDossierEdge!]! pageInfo: PageInfo!
}
type DeletedDossierEdge { cursor: String! node: DeletedDossier! }

type DeletedDossier {
  id: ID!
  number: Int!
  state: DossierState!
  reason: String!
  dateSupression: ISO8601DateTime!
}

type DemarcheDescriptor { id: ID! number: Int! title: String! revision: Revision! }
type Revision { id: ID! }

type Dossier {
  id: ID!
  number: Int!
  state: DossierState!
  archived: Boolean!
  dateDepot: ISO8601DateTime!
  dateDerniereModification: ISO8601DateTime!
  datePassageEnConstruction: ISO8601DateTime!
  datePassageEnInstruction: ISO8601DateTime
  dateTraitement: ISO8601DateTime
  dateExpiration: ISO8601DateTime
  dateSuppressionParUsager: ISO8601DateTime
  motivation: String
  usager: Profile!
  demandeur: Demandeur!
  groupeInstructeur: GroupeInstructeur!
  demarche: DemarcheDescriptor!
  champs(id: ID): [Champ!]!
  annotations(id: ID): [Champ!]!
  traitements: [Traitement!]!
  labels: [Label!]!
}

type Profile { id: ID! email: String! }
type GroupeInstructeur { id: ID! number: Int! label: String! closed: Boolean! }
type Traitement {
  id: ID!
  state: DossierState!
  dateTraitement: ISO8601DateTime!
  emailAgentTraitant: String
  motivation: String
}
type Label { id: ID! name: String! color: String! }

interface Demandeur { id: ID! }
type PersonnePhysique implements Demandeur {
  id: ID!
  civilite: Civilite
  nom: String!
  prenom: String!
  email: String
  dateDeNaissance: ISO8601Date
}
type PersonneMorale implements Demandeur {
  id: ID!
  siret: String!
  siegeSocial: Boolean!
  naf: String
  libelleNaf: String
}

interface Champ {
  id: ID!
  label: String!
  stringValue: String
  updatedAt: ISO8601DateTime!
  prefilled: Boolean!
}
type TextChamp implements Champ {
  id: ID! label: String! stringValue: String updatedAt: ISO8601DateTime! prefilled: Boolean!
  value: String
}
type DateChamp implements Champ {
  id: ID! label: String! stringValue: String updatedAt: ISO8601DateTime! prefilled: Boolean!
  date: ISO8601Date
}
type IntegerNumberChamp implements Champ {
  id: ID! label: String! stringValue: String updatedAt: ISO8601DateTime! prefilled: Boolean!
  value: BigInt
}
type CheckboxChamp implements Champ {
  id: ID! label: String! stringValue: String updatedAt: ISO8601DateTime! prefilled: Boolean!
  value: Boolean!
}
"""

SCHEMA: Final = build_schema(SDL)

_PRENOMS: Final = ("Camille", "Louis", "Léa", "Hugo", "Chloé", "Jules", "Inès", "Nathan", "Manon")
_NOMS: Final = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand")
_ASSOS: Final = ("Les Amis du Quartier", "Club Sportif", "Atelier Vélo", "Chorale du Val")
_TERMINAL: Final = ("accepte", "refuse", "sans_suite")
_MAX_REMEMBERED: Final = 10_000


@dataclass(frozen=True)
class DsConfig:
    seed: int = 7
    tenants: dict[str, int] = field(default_factory=lambda: {"1001": 180, "1002": 45, "1003": 0})
    """Démarche number -> number of dossiers."""
    token: str | None = "ds-token"  # noqa: S105 - the sandbox's documented test token
    default_page_size: int = 100
    max_page_size: int = 100
    repeat_last_page: bool = False
    """``after: <final endCursor>`` returns the last page again instead of an empty page."""
    rate_limit: int | None = None
    """Requests per ``rate_limit_window`` seconds and démarche (``None``: unlimited)."""
    rate_limit_window: float | None = 60.0


def _ds_time(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, tz=UTC).isoformat()


def _cursor(order_ms: int, number: int) -> str:
    stamp = datetime.fromtimestamp(order_ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return b64_encode(f"{stamp}.{order_ms % 1000:03d}000000Z;{number}")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    text = b64_decode(cursor)
    stamp, _, number = (text or "").partition(";")
    try:
        return parse_iso_ms(stamp[:23] + "Z"), int(number)
    except ValueError:
        raise _gql_error(f"Invalid cursor: {cursor!r}", "bad_request") from None


def _gql_error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def _global_id(kind: str, value: object) -> str:
    return b64_encode(f"{kind}-{value}")


@dataclass
class _Context:
    api: DemarchesSimplifiees
    authorized: bool


@dataclass
class _Item:
    """One entry of a connection: its ordering key and its GraphQL node."""

    order_ms: int
    number: int
    node: Body


def _present(value: str | None) -> str | None:
    return value or None


def _paginate(
    items: list[_Item],
    args: Mapping[str, Any],
    config: DsConfig,
    final_pages: dict[str, str | None],
) -> dict[str, Any]:
    """``cursor_connection.rb``'s page computation over ``items`` sorted ascending.

    ``final_pages`` remembers, for the ``endCursor`` of every last page served,
    the ``after`` that produced it, so ``repeat_last_page`` can serve exactly
    that page again.
    """
    first, last = args.get("first"), args.get("last")
    before, after = _present(args.get("before")), _present(args.get("after"))
    if first is not None and last is not None:
        raise _gql_error('Arguments "first" and "last" are exclusive', "bad_request")
    if before and after:
        raise _gql_error('Arguments "before" and "after" are exclusive', "bad_request")
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            message = f'Argument "{name}" must be a non-negative integer'
            raise _gql_error(message, "bad_request")
    maximum, default = config.max_page_size, config.default_page_size
    if args.get("order") == "DESC":
        if last is not None:
            first, last = min(last, maximum), None
        else:
            first, last = None, min(default if first is None else first, maximum)
    wanted = first if first is not None else last if last is not None else default
    limit = min(wanted, maximum) + 1
    inverted = last is not None or before is not None
    ordered = list(reversed(items)) if inverted else items
    if before:
        key = _decode_cursor(before)
        ordered = [item for item in ordered if (item.order_ms, item.number) < key]
    elif after:
        key = _decode_cursor(after)
        ordered = [item for item in ordered if (item.order_ms, item.number) > key]
    nodes = ordered[:limit]
    has_previous = bool(after) or (len(nodes) >= limit and inverted)
    has_next = bool(before) or (len(nodes) >= limit and not inverted)
    page = nodes[: limit - 1]
    if inverted:
        page.reverse()
    if after and not page and config.repeat_last_page and after in final_pages:
        return _paginate(items, {**args, "after": final_pages[after]}, config, {})
    cursors = [_cursor(item.order_ms, item.number) for item in page]
    if cursors and not has_next and not inverted:
        if len(final_pages) >= _MAX_REMEMBERED:
            final_pages.pop(next(iter(final_pages)))
        final_pages[cursors[-1]] = after
    return {
        "nodes": [item.node for item in page],
        "edges": [
            {"cursor": cursor, "node": item.node}
            for cursor, item in zip(cursors, page, strict=True)
        ],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def _since(args: Mapping[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    try:
        return parse_iso_ms(str(value))
    except ValueError:
        raise _gql_error(f"{name} is not an ISO8601 date: {value!r}", "bad_request") from None


def _resolve_demarche(_root: object, info: GraphQLResolveInfo[_Context], number: int) -> Body:
    context: _Context = info.context
    if not context.authorized:
        message = "An object of type Demarche was hidden due to permissions"
        raise _gql_error(message, "unauthorized")
    api = context.api
    if str(number) not in api.tables:
        raise _gql_error("Demarche not found", "not_found")
    return api.demarche_node(number)


def _resolve_dossier(_root: object, info: GraphQLResolveInfo[_Context], number: int) -> Body:
    context: _Context = info.context
    if not context.authorized:
        raise _gql_error("An object of type Dossier was hidden due to permissions", "unauthorized")
    for table in context.api.tables.values():
        row = table.rows.get(number)
        if row is not None:
            return row.body
    raise _gql_error("Dossier not found", "not_found")


def _resolve_dossiers(
    demarche: Body, info: GraphQLResolveInfo[_Context], **args: Any
) -> dict[str, Any]:
    context: _Context = info.context
    table = context.api.tables[str(demarche["number"])]
    updated_since = _since(args, "updatedSince")
    created_since = _since(args, "createdSince")
    rows = list(table.rows.values())
    if updated_since is not None:
        rows = [row for row in rows if row.modified >= updated_since]
    if created_since is not None:
        rows = [row for row in rows if row.created >= created_since]
    if args.get("state") is not None:
        rows = [row for row in rows if row.body["state"] == args["state"]]
    if args.get("archived") is not None:
        rows = [row for row in rows if row.body["archived"] == args["archived"]]
    # dossiers_connection.rb: order by updated_at with updatedSince, else by deposit date.
    order: Callable[[Row], int] = (
        (lambda row: row.modified) if updated_since is not None else (lambda row: row.created)
    )
    items = sorted(
        (_Item(order(row), int(row.key), row.body) for row in rows),
        key=lambda item: (item.order_ms, item.number),
    )
    return _paginate(items, args, context.api.config, context.api.final_pages)


def _resolve_deleted(
    demarche: Body, info: GraphQLResolveInfo[_Context], **args: Any
) -> dict[str, Any]:
    context: _Context = info.context
    table = context.api.tables[str(demarche["number"])]
    since = _since(args, "deletedSince")
    tombs = [t for t in table.tombstones.values() if since is None or t.deleted >= since]
    items = sorted(
        (_Item(tomb.deleted, int(tomb.key), _deleted_node(tomb)) for tomb in tombs),
        key=lambda item: (item.order_ms, item.number),
    )
    return _paginate(items, args, context.api.config, context.api.final_pages)


def _deleted_node(tomb: Tombstone) -> Body:
    return {
        "id": _global_id("DeletedDossier", tomb.key),
        "number": tomb.key,
        "state": tomb.body["state"],
        "reason": "user_request",
        "dateSupression": _ds_time(tomb.deleted),
    }


def _query_type() -> GraphQLObjectType:
    query = SCHEMA.query_type
    assert query is not None
    return query


_query_type().fields["demarche"].resolve = _resolve_demarche
_query_type().fields["dossier"].resolve = _resolve_dossier
_DEMARCHE = SCHEMA.get_type("Demarche")
assert isinstance(_DEMARCHE, GraphQLObjectType)
_DEMARCHE.fields["dossiers"].resolve = _resolve_dossiers
_DEMARCHE.fields["deletedDossiers"].resolve = _resolve_deleted


@lru_cache(maxsize=256)
def _prepare(query: str) -> DocumentNode | tuple[GraphQLError, ...]:
    try:
        document = parse(query)
    except GraphQLError as error:
        return (error,)
    errors = validate(SCHEMA, document)
    return tuple(errors) if errors else document


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        if name is None or (operation.name is not None and operation.name.value == name):
            return operation
    return None


def demarche_number(
    document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any]
) -> int | None:
    """The ``number`` argument of the root ``demarche`` field (literal or variable)."""
    operation = _operation(document, operation_name)
    if operation is None:
        return None
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.name.value != "demarche":
            continue
        for argument in selection.arguments or ():
            if argument.name.value != "number":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                raw = variables.get(value.name.value)
                return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    return None


def _http_error(message: str, status: int = 400) -> SeedError:
    return SeedError(status, {"errors": [{"message": message}], "data": None})


class DemarchesSimplifiees(SeedApi[DsConfig]):
    """``/demarches-simplifiees``: see the module docstring."""

    name = "demarches"
    prefix = "/demarches-simplifiees"
    numeric_keys = True
    limiter: RateLimiter | None
    final_pages: dict[str, str | None]
    _next_number: int

    def _default_config(self) -> DsConfig:
        return DsConfig()

    def _validators(self) -> Mapping[str, Validator]:
        return {
            "seed": v_int(0),
            "tenants": v_sizes(numeric_keys=True),
            "token": v_opt_str,
            "default_page_size": v_int(0),
            "max_page_size": v_int(1),
            "repeat_last_page": v_bool,
            "rate_limit": v_opt_int(1),
            "rate_limit_window": v_opt_number(0.001),
        }

    # -- data -----------------------------------------------------------------

    def _build(self) -> None:
        self.final_pages = {}
        self._next_number = 50_000 + seeded_rng(self.config.seed, self.name).randint(0, 9_999)
        for demarche in sorted(self.config.tenants, key=int):
            rng = seeded_rng(self.config.seed, self.name, demarche)
            table = self.tables[demarche] = Table(rng)
            for _ in range(self.config.tenants[demarche]):
                step_ms = rng.randint(300, 86_400) * 1000
                self._insert(demarche, table, rng, step_ms=step_ms, initial=True)

    def _configured(self) -> None:
        config = self.config
        self.limiter = None
        if config.rate_limit is not None:
            window = config.rate_limit_window or 60.0
            self.limiter = make_limiter(Window(config.rate_limit, window, "sliding", "api"))

    def demarche_node(self, number: int) -> Body:
        rng = seeded_rng(self.config.seed, self.name, number, "meta")
        return {
            "id": _global_id("Procedure", number),
            "number": number,
            "title": f"Demande de subvention aux associations (n°{number})",
            "description": "Démarche émulée par le bac à sable syncline.",
            "state": "publiee",
            "declarative": None,
            "dateCreation": _ds_time(1_672_531_200_000 + rng.randint(0, 10**9)),
            "datePublication": _ds_time(1_675_209_600_000 + rng.randint(0, 10**9)),
            "dateFermeture": None,
        }

    def _champs(self, demarche: str, number: int, rng: random.Random, now: str) -> list[Body]:
        asso = rng.choice(_ASSOS)
        members = rng.randint(3, 400)
        checked = rng.random() < 0.5
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"

        def champ(stable: int, typename: str, label: str, text: str, **extra: Any) -> Body:
            return {
                "__typename": typename,
                "id": _global_id("Champ", f"{demarche}-{stable}"),
                "label": label,
                "stringValue": text,
                "updatedAt": now,
                "prefilled": False,
                **extra,
            }

        return [
            champ(1, "TextChamp", "Nom de l'association", asso, value=asso),
            champ(2, "IntegerNumberChamp", "Nombre d'adhérents", str(members), value=str(members)),
            champ(3, "DateChamp", "Date de l'assemblée générale", day, date=day),
            champ(4, "CheckboxChamp", "Première demande", str(checked).lower(), value=checked),
            champ(
                5, "TextChamp", "Objet de la demande", f"Projet {number}", value=f"Projet {number}"
            ),
        ]

    def _insert(
        self, demarche: str, table: Table, rng: random.Random, *, step_ms: int, initial: bool
    ) -> None:
        """A new dossier; initial ones may already be processed (deposited days earlier)."""
        number = self._next_number
        self._next_number += rng.randint(1, 9)
        prenom, nom = rng.choice(_PRENOMS), rng.choice(_NOMS)
        roll = rng.random() if initial else 0.0
        state = (
            "en_construction"
            if roll < 0.3
            else "en_instruction"
            if roll < 0.6
            else _TERMINAL[0]
            if roll < 0.85
            else _TERMINAL[1]
            if roll < 0.95
            else _TERMINAL[2]
        )
        age = 0 if state == "en_construction" else rng.randint(3_600, 20 * 86_400) * 1000
        body: Body = {
            "__typename": "Dossier",
            "id": _global_id("Dossier", number),
            "number": number,
            "state": state,
            "archived": False,
            "dateExpiration": None,
            "dateSuppressionParUsager": None,
            "motivation": None,
            "usager": {
                "id": _global_id("User", number),
                "email": f"{prenom.lower()}.{nom.lower()}.{number}@example.fr",
            },
            "demandeur": {
                "__typename": "PersonnePhysique",
                "id": _global_id("Individual", number),
                "civilite": rng.choice(("M", "Mme")),
                "nom": nom,
                "prenom": prenom,
                "email": None,
                "dateDeNaissance": None,
            },
            "groupeInstructeur": {
                "id": _global_id("GroupeInstructeur", demarche),
                "number": int(demarche),
                "label": "défaut",
                "closed": False,
            },
            "demarche": {
                "id": _global_id("Procedure", demarche),
                "number": int(demarche),
                "title": f"Demande de subvention aux associations (n°{demarche})",
                "revision": {"id": _global_id("ProcedureRevision", demarche)},
            },
            "traitements": [],
            "labels": [],
            "annotations": [],
            "champs": [],
        }
        row = table.put(number, body, step_ms=step_ms, created=table.clock + step_ms - age)
        self._stamp(demarche, row, rng, state_changed=True)

    def _stamp(self, demarche: str, row: Row, rng: random.Random, *, state_changed: bool) -> None:
        """Fill the date fields (and champs) of ``row.body`` from its virtual times."""
        body = row.body
        depot, now = _ds_time(row.created), _ds_time(row.modified)
        body["dateDepot"] = body["datePassageEnConstruction"] = depot
        body["dateDerniereModification"] = now
        if not body["champs"]:
            body["champs"] = self._champs(demarche, int(row.key), rng, depot)
        state = body["state"]
        if state_changed:
            body["datePassageEnInstruction"] = None if state == "en_construction" else now
            body["dateTraitement"] = now if state in _TERMINAL else None
            if state in _TERMINAL:
                body["motivation"] = "Dossier complet." if state == "accepte" else "Hors délai."
                body["traitements"] = [
                    *body["traitements"],
                    {
                        "id": _global_id("Traitement", f"{row.key}-{row.version}"),
                        "state": state,
                        "dateTraitement": now,
                        "emailAgentTraitant": "instructeur@example.gouv.fr",
                        "motivation": body["motivation"],
                    },
                ]

    def _new_record(self, tenant: str, table: Table, rng: random.Random) -> None:
        self._insert(tenant, table, rng, step_ms=rng.randint(60, 3600) * 1000, initial=False)

    def _update_record(self, tenant: str, table: Table, row: Row, rng: random.Random) -> None:
        body = dict(row.body)
        state = body["state"]
        next_state = {
            "en_construction": "en_instruction",
            "en_instruction": rng.choice(_TERMINAL),
        }.get(state, state)
        champs = [dict(champ) for champ in body["champs"]]
        objet = f"Projet {row.key} (révision {row.version + 1})"
        champs[-1].update(stringValue=objet, value=objet)
        body.update(state=next_state, champs=champs)
        updated = table.put(row.key, body, step_ms=rng.randint(60, 3600) * 1000)
        for champ in champs[-1:]:
            champ["updatedAt"] = _ds_time(updated.modified)
        self._stamp(tenant, updated, rng, state_changed=next_state != state)

    def _record_view(self, tenant: str, row: Row) -> Body:
        return row.body

    def _delete_record(self, tenant: str, table: Table, key: Key) -> None:
        table.delete(key, step_ms=60_000)

    # -- HTTP -----------------------------------------------------------------

    @staticmethod
    async def _payload(request: Request) -> tuple[str, dict[str, Any], str | None]:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise _http_error(f"Invalid JSON: {exc}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            raise _http_error("No query string was present")
        variables: Any = payload.get("variables")
        if isinstance(variables, str):  # the server accepts a JSON-encoded string too
            try:
                variables = orjson.loads(variables) if variables.strip() else {}
            except orjson.JSONDecodeError:
                raise _http_error("Invalid variables: not a JSON object") from None
        if variables is None:
            variables = {}
        if not isinstance(variables, dict):
            raise _http_error("Invalid variables: not a JSON object")
        operation = payload.get("operationName")
        if operation is not None and not isinstance(operation, str):
            raise _http_error("operationName must be a string")
        return payload["query"], variables, operation

    async def graphql(self, request: Request) -> Response:
        query, variables, operation = await self._payload(request)
        prepared = _prepare(query)
        if isinstance(prepared, tuple):
            return json_response({"errors": [error.formatted for error in prepared]})
        number = demarche_number(prepared, operation, variables)
        set_tenant(request, "" if number is None else str(number))
        if self.limiter is not None:
            verdict = self.limiter.check("" if number is None else str(number))
            if not verdict.allowed:
                mark_rate_limited(request)
                retry = str(max(1, whole_seconds(verdict.retry_in)))
                raise SeedError(
                    429, b"Retry later\n", headers={"Retry-After": retry}, media_type="text/plain"
                )
        token = self.config.token
        context = _Context(self, token is None or bearer_token(request) == token)
        result = execute_sync(
            SCHEMA,
            prepared,
            context_value=context,
            variable_values=variables,
            operation_name=operation,
        )
        return json_response(result.formatted)

    def _api_routes(self) -> list[BaseRoute]:
        return [Route("/api/v2/graphql", self.counted(self.graphql), methods=["POST"])]
