"""Keeping secrets out of everything a user or a log can read.

Tokens live in headers (never printed at all) and sometimes in URLs
(``?api_key=``) or echoed in error bodies; :class:`Redactor` removes both the
known secret values and any query parameter whose name looks secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "Redactor", "is_secret_name"]

MASK = "***"
# Long names match anywhere (access_token, x-api-key); short ones only as whole words,
# so ``author`` and ``design`` stay readable in error messages.
_SECRET_NAMES = re.compile(
    r"token|secret|password|passwd|api[-_]?key|apikey|signature|credential|authorization"
    r"|(?:^|[^a-z])(?:sig|auth|pwd|session|key)(?:$|[^a-z])",
    re.IGNORECASE,
)


class Redactor:
    """Replaces known secret values (raw, URL-encoded) and secret-looking parameters."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            values.update(_forms(secret))
        self._secrets = sorted(values, key=len, reverse=True)

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on too: a token that only became known at runtime."""
        values = _forms(secret)
        if not values.issubset(self._secrets):
            self._secrets = sorted(values.union(self._secrets), key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def url(self, url: str) -> str:
        """The URL without userinfo and with secret query values masked."""
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]  # drop userinfo, keep [IPv6]:port as written
        query = urlencode(
            [
                (name, MASK if _SECRET_NAMES.search(name) else value)
                for name, value in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def _forms(secret: str) -> set[str]:
    """The spellings of a secret to mask: raw and URL-encoded both ways."""
    if len(secret) < 4:  # masking "a" everywhere would garble every message
        return set()
    return {secret, quote(secret, safe=""), quote_plus(secret)}


def is_secret_name(name: str) -> bool:
    """Whether a header, parameter or field name suggests its value is a credential."""
    return _SECRET_NAMES.search(name) is not None
