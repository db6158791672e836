"""Reading a YAML config: ``${VAR}`` interpolation, file references, and errors that name the key.

YAML is parsed only here; everything past this module sees frozen models.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from syncline.config.models import Config
from syncline.config.strategies import UNION_FIELDS
from syncline.errors import ConfigError
from syncline.redact import is_secret_name

__all__ = ["config_from_dict", "load_config"]

log = logging.getLogger("syncline")
_SECRET_AUTH_FIELDS = ("token", "value", "key", "password", "client_secret", "refresh_token")
_VAR = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config file; every problem is a :class:`ConfigError` naming the key."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(file)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=str(file)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML{where}: {problem}", file=str(file)) from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping with a 'sources' key at the top", file=str(file))
    return config_from_dict(raw, base_dir=file.resolve().parent, file=file, environ=environ)


def config_from_dict(
    raw: dict[str, Any],
    *,
    base_dir: str | os.PathLike[str] = ".",
    file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate an in-memory config (as from YAML); for users who build it in Python."""
    label = str(file) if file is not None else "<config>"
    base = Path(base_dir)
    env = os.environ if environ is None else environ
    if file is not None:
        _warn_literal_secrets(raw, label)
    data = _interpolate(raw, env, (), label)
    _inline_query_files(data, base, label)
    data = {**data, "base_dir": base, "file": Path(file) if file is not None else None}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc), file=label) from None
    return config.model_copy(update={"store": _resolve_store(config.store, base)})


def _interpolate(value: Any, env: Mapping[str, str], path: tuple[str, ...], file: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, str(k)), file) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, str(i)), file) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"environment variable {name} is not set "
                f"(export it, or write ${{{name}:-default}})",
                file=file,
                key=".".join(path),
            )

        return _VAR.sub(substitute, value)
    return value


def _warn_literal_secrets(raw: dict[str, Any], file: str) -> None:
    """A token typed into a config file ends up in version control; steer to ``${env:…}``."""
    sources = raw.get("sources")
    if not isinstance(sources, dict):
        return
    for source_name, source in sources.items():
        if not isinstance(source, dict):
            continue
        places: list[tuple[str, Any]] = []
        auth = source.get("auth")
        if isinstance(auth, dict):
            places += [(f"auth.{name}", auth.get(name)) for name in _SECRET_AUTH_FIELDS]
        headers = source.get("headers")
        if isinstance(headers, dict):
            places += [(f"headers.{k}", v) for k, v in headers.items() if is_secret_name(str(k))]
        for where, value in places:
            if isinstance(value, str) and value and "${" not in value:
                log.warning(
                    "%s: sources.%s.%s holds a secret written in the file; "
                    "use ${env:NAME} and keep the value out of the config",
                    file,
                    source_name,
                    where,
                )


def _inline_query_files(data: dict[str, Any], base: Path, file: str) -> None:
    """Replace ``graphql.query_file`` by the file's text, resolved next to the config."""
    sources = data.get("sources")
    if not isinstance(sources, dict):
        return
    for source_name, source in sources.items():
        streams = source.get("streams") if isinstance(source, dict) else None
        for stream_name, stream in (streams or {}).items():
            graphql = stream.get("graphql") if isinstance(stream, dict) else None
            if not isinstance(graphql, dict) or "query_file" not in graphql:
                continue
            key = f"sources.{source_name}.streams.{stream_name}.graphql.query_file"
            if "query" in graphql:
                raise ConfigError("give exactly one of 'query' or 'query_file'", file=file, key=key)
            query_path = base / str(graphql.pop("query_file"))
            try:
                graphql["query"] = query_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {query_path}: {exc.strerror}", file=file, key=key
                ) from None


def _resolve_store(url: str, base: Path) -> str:
    """Relative store paths are relative to the config file, not to the shell's directory."""
    for scheme in ("sqlite:///", "jsonl:///", "duckdb:///"):
        if url.startswith(scheme):
            rest = url[len(scheme) :]
            if rest == ":memory:" or rest.startswith("/"):
                return url
            return scheme + str((base / rest).resolve())
    return url


def _describe(exc: ValidationError) -> str:
    """Turn pydantic's errors into ``key.path: message`` lines users can act on."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = _clean_location(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif error["type"] == "union_tag_invalid":
            ctx = error.get("ctx", {})
            message = f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{loc}: {message}" if loc else message)
    return "; ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines)


def _clean_location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        previous = loc[i - 1] if i else None
        if previous in UNION_FIELDS and isinstance(item, str) and parts and parts[-1] == previous:
            continue  # pydantic adds the union's tag ('page_number') to the path
        if isinstance(item, str) and item.startswith(("function-", "union[")):
            continue
        parts.append(str(item))
    return ".".join(parts)
