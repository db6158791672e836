"""The description of one HTTP request, built from config, checkpoint and paginator."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["RequestSpec"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """An immutable request; paginators and incremental modes derive new ones from it.

    For a GraphQL stream ``json`` is ``{"query", "operationName", "variables"}``
    and :meth:`with_value` sets a variable; otherwise it sets a query parameter.
    That is how one paginator works unchanged for REST and GraphQL.
    """

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    graphql: bool = False
    follows_link: bool = False

    def with_value(self, name: str, value: Any) -> RequestSpec:
        if self.graphql and self.json is not None:
            variables = {**self.json.get("variables", {}), name: value}
            return replace(self, json={**self.json, "variables": variables})
        return replace(self, params={**self.params, name: value})

    def with_link(self, url: str) -> RequestSpec:
        """Follow a server-given link: it carries its own query, so ours is dropped."""
        return replace(self, url=url, params={}, follows_link=True)
