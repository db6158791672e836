"""``POST /graphql``: a Relay-style connection executed by graphql-core.

Why a real GraphQL engine instead of a hand-rolled JSON shape: clients must
cope with genuine GraphQL behaviour (validation errors returned as
``{"errors": [...]}`` with HTTP 200, ``null`` data when a resolver fails,
variables, operation names).  Item fields keep the REST snake_case names so a
record looks the same whichever endpoint served it; only the Relay plumbing
(``pageInfo``, ``endCursor``, ``totalCount``) is camelCase.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLResolveInfo,
    build_schema,
    execute_sync,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import Response

from syncline.sandbox.common import (
    BadRequestError,
    SandboxState,
    clamp_size,
    json_response,
    listing_start,
    sandbox_state,
)
from syncline.sandbox.cursor import InvalidCursorError, cursor_at, start_after

SDL = """
type Query {
  "Items in (updated_at, id) order; `after` is a previous page's endCursor."
  items(first: Int, after: String, updatedSince: String): ItemConnection!
}

type ItemConnection {
  nodes: [Item!]!
  pageInfo: PageInfo!
  totalCount: Int!
}

type PageInfo {
  hasNextPage: Boolean!
  endCursor: String
}

type Attributes {
  color: String!
  size: String!
  weight: Float!
}

type Item {
  id: Int!
  sku: String!
  name: String!
  description: String!
  price: String!
  currency: String!
  stock: Int!
  category: String!
  tags: [String!]!
  attributes: Attributes!
  created_at: String!
  updated_at: String!
  version: Int!
}
"""

SCHEMA = build_schema(SDL)


def _resolve_items(
    _root: object, info: GraphQLResolveInfo[SandboxState], **args: Any
) -> dict[str, Any]:
    dataset = info.context.dataset
    try:
        first = clamp_size(args.get("first"))
        floor = listing_start(dataset, args.get("updatedSince"))
        start = start_after(dataset, args.get("after"), floor)
    except BadRequestError as exc:
        raise GraphQLError(exc.message) from None
    except InvalidCursorError as exc:
        raise GraphQLError(str(exc)) from None
    stop = min(start + first, len(dataset))
    nodes = dataset.records_between(start, stop)
    return {
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": stop < len(dataset),
            "endCursor": cursor_at(dataset, stop - 1) if nodes else None,
        },
        "totalCount": len(dataset) - floor,
    }


_QUERY_TYPE = SCHEMA.query_type
assert _QUERY_TYPE is not None
_QUERY_TYPE.fields["items"].resolve = _resolve_items


@lru_cache(maxsize=256)
def _prepare(query: str) -> DocumentNode | tuple[GraphQLError, ...]:
    """Parse and validate once per distinct query text.

    Paginating clients send the same document for every page, so caching keeps
    validation off the per-page cost.
    """
    try:
        document = parse(query)
    except GraphQLError as error:
        return (error,)
    errors = validate(SCHEMA, document)
    return tuple(errors) if errors else document


def _error_body(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


async def graphql_endpoint(request: Request) -> Response:
    """GraphQL over HTTP: malformed requests get 400, GraphQL errors get 200."""
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return json_response(_error_body("request body is not valid JSON"), status=400)
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return json_response(_error_body("body must be an object with a 'query' string"), 400)
    variables = payload.get("variables")
    operation = payload.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        return json_response(_error_body("'variables' must be an object"), status=400)
    if operation is not None and not isinstance(operation, str):
        return json_response(_error_body("'operationName' must be a string"), status=400)
    prepared = _prepare(payload["query"])
    if isinstance(prepared, tuple):
        return json_response({"errors": [error.formatted for error in prepared]})
    result = execute_sync(
        SCHEMA,
        prepared,
        context_value=sandbox_state(request),
        variable_values=variables,
        operation_name=operation,
    )
    return json_response(result.formatted)
