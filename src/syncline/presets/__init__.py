"""Ready-made configs for the real APIs syncline was built against, shipped as package data.

Why files and not Python: a preset is what ``syncline init --preset NAME``
writes for the user to edit, comments included, so the YAML file *is* the
product. This module only finds, describes, copies and loads them. Adding a
preset means dropping ``NAME.yaml`` here: its first line (``# …``) is the
one-line description ``syncline presets`` shows.

Every preset reads its secrets, tenant ids and base URL override from the
environment (``${FIC_TOKEN}``, ``${FIC_BASE_URL:-https://…}``), so the same file
runs against the real API and against the sandbox's emulation of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from syncline.config import Config, config_from_dict
from syncline.errors import ConfigError

__all__ = [
    "Preset",
    "PresetError",
    "all_presets",
    "get_preset",
    "preset_config",
    "preset_names",
    "write_preset",
]

Scalar = str | int | float | bool
_VAR = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


class PresetError(ConfigError):
    """An unknown preset name, or an output file that is already there (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    text: str

    @property
    def description(self) -> str:
        """The file's first comment line: what the preset syncs, and how."""
        first = self.text.lstrip().splitlines()[0] if self.text.strip() else ""
        return first.lstrip("#").strip()

    def required_env(self) -> list[str]:
        """The environment variables the preset needs and has no default for, in file order."""
        found: dict[str, None] = {}
        for text in _strings(self.data()):
            for match in _VAR.finditer(text):
                if match.group(2) is None:
                    found[match.group(1)] = None
        return list(found)

    def data(self) -> dict[str, Any]:
        """The parsed YAML, a fresh copy each time (callers may change it)."""
        parsed = yaml.safe_load(self.text)
        if not isinstance(parsed, dict):
            raise PresetError("is not a mapping", file=f"preset {self.name}")
        return parsed


def preset_names() -> list[str]:
    """The names ``--preset`` accepts, sorted."""
    folder = resources.files(__name__)
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(".yaml")
    )


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is an error listing the known ones."""
    names = preset_names()
    if name not in names:
        raise PresetError(f"unknown preset {name!r}; known presets: {', '.join(names)}")
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return Preset(name, text)


def all_presets() -> list[Preset]:
    return [get_preset(name) for name in preset_names()]


def write_preset(name: str, out: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Copy the preset to ``out`` byte for byte (comments are the documentation).

    An existing file is only replaced with ``force``: it is probably the user's
    edited config, with their tenant ids in it.
    """
    preset = get_preset(name)
    path = Path(out)
    if path.is_dir():
        raise PresetError(
            f"{path} is a directory; give a file name such as {path / 'syncline.yaml'}"
        )
    if path.exists() and not force:
        raise PresetError(f"{path} already exists; use --force to overwrite it")
    try:
        path.write_text(preset.text, encoding="utf-8")
    except OSError as exc:
        raise PresetError(f"cannot write {path}: {exc.strerror}") from None
    return path


def preset_config(
    name: str,
    *,
    store: str | None = None,
    partitions: Mapping[str, Sequence[Scalar]] | None = None,
    environ: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] = ".",
) -> Config:
    """Load a preset as syncline would after ``init``, optionally pointed elsewhere.

    ``store`` replaces the store URL and ``partitions`` the tenant ids of every
    source (the demo and the tests use the sandbox's tenants); everything else,
    paths, paginators and incremental modes included, is the file unchanged.
    ``environ`` defaults to the process environment.
    """
    data = get_preset(name).data()
    if store is not None:
        data["store"] = store
    if partitions is not None:
        for source in data.get("sources", {}).values():
            source["partitions"] = {key: list(values) for key, values in partitions.items()}
    return config_from_dict(data, base_dir=base_dir, file=f"preset {name}", environ=environ)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
