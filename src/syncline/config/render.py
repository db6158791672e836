"""Printing a config back to the user (``syncline config show``) with every secret masked.

What is printed is what syncline will use: defaults filled in, ``${VAR}``
resolved. That is exactly why secrets must go: a resolved token pasted into
a support ticket is a leaked token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from syncline.config.models import Config
from syncline.redact import MASK, Redactor, is_secret_name

__all__ = ["render_config"]


def render_config(config: Config, secrets: list[str] | None = None) -> str:
    """The config as YAML; secret fields, secret-named headers and params, passwords: ``***``."""
    data = config.model_dump(mode="json", exclude={"base_dir", "file"})
    redactor = Redactor(secrets or [])
    data["store"] = _mask_password(data["store"])
    for source in data["sources"].values():
        source["base_url"] = _mask_password(source["base_url"])
    return yaml.safe_dump(_mask(data, redactor, ()), sort_keys=False, allow_unicode=True)


def _mask(value: Any, redactor: Redactor, path: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        inside_secret_map = bool(path) and path[-1] in ("headers", "params")
        return {
            key: MASK
            if inside_secret_map and is_secret_name(str(key)) and isinstance(item, str)
            else _mask(item, redactor, (*path, str(key)))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask(item, redactor, path) for item in value]
    if isinstance(value, str):
        if set(value) == {"*"}:
            return MASK  # pydantic's rendering of a SecretStr
        return redactor.text(value)
    return value


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))
