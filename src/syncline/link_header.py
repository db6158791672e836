"""RFC 8288 ``Link`` header parsing.

Real servers send relative URIs, several ``Link`` lines, ``rel="next last"``,
``REL=NEXT``, quoted commas and duplicated parameters; each is handled here
so paginators can simply ask for the ``next`` target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin

__all__ = ["Link", "find_link", "parse_link_headers"]


@dataclass(frozen=True, slots=True)
class Link:
    target: str
    rels: frozenset[str]
    params: dict[str, str] = field(default_factory=dict)


def parse_link_headers(values: Iterable[str]) -> list[Link]:
    """Every link in every ``Link`` header value, in order; malformed parts are skipped."""
    links: list[Link] = []
    for value in values:
        links.extend(_parse_one(value))
    return links


def find_link(values: Iterable[str], rel: str, base_url: str) -> str | None:
    """The absolute URL of the first link with relation ``rel``, resolved against ``base_url``."""
    wanted = rel.lower()
    for link in parse_link_headers(values):
        if wanted in link.rels:
            try:
                return urljoin(base_url, link.target)
            except ValueError:  # e.g. an unbalanced IPv6 bracket: not a usable link
                continue
    return None


def _parse_one(value: str) -> list[Link]:
    links: list[Link] = []
    pos, end = 0, len(value)
    while pos < end:
        start = value.find("<", pos)
        if start < 0:
            break
        close = value.find(">", start)
        if close < 0:
            break
        target = value[start + 1 : close].strip()
        params, pos = _parse_params(value, close + 1)
        rel = params.get("rel", "")
        links.append(Link(target, frozenset(rel.lower().split()), params))
    return links


def _parse_params(value: str, pos: int) -> tuple[dict[str, str], int]:
    """Read ``; name=value`` pairs until the comma that ends this link (quotes respected)."""
    params: dict[str, str] = {}
    end = len(value)
    while pos < end:
        while pos < end and value[pos] in " \t":
            pos += 1
        if pos >= end or value[pos] == ",":
            return params, pos + 1
        if value[pos] != ";":
            # Junk between parameters: skip to the next separator.
            pos += 1
            continue
        pos += 1
        name_start = pos
        while pos < end and value[pos] not in "=;,":
            pos += 1
        name = value[name_start:pos].strip().lower()
        param_value = ""
        if pos < end and value[pos] == "=":
            param_value, pos = _parse_value(value, pos + 1)
        if name and name not in params:  # RFC 8288: only the first 'rel' counts
            params[name] = param_value
    return params, pos


def _parse_value(value: str, pos: int) -> tuple[str, int]:
    end = len(value)
    while pos < end and value[pos] in " \t":
        pos += 1
    if pos < end and value[pos] == '"':
        pos += 1
        chars: list[str] = []
        while pos < end and value[pos] != '"':
            if value[pos] == "\\" and pos + 1 < end:
                pos += 1
            chars.append(value[pos])
            pos += 1
        return "".join(chars), pos + 1
    start = pos
    while pos < end and value[pos] not in ";,":
        pos += 1
    return value[start:pos].strip(), pos
