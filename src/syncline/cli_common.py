"""What every ``syncline`` command shares: exit codes, the config option, loading, failing.

Apart from :mod:`syncline.cli` so the command modules (:mod:`syncline.cli_push`)
can import it without a cycle.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import click
from rich.table import Table
from rich.text import Text

from syncline.config import Config, load_config
from syncline.errors import ConfigError, StoreError
from syncline.logs import install_redaction
from syncline.stores import Store, open_store

__all__ = [
    "EXIT_BUSY",
    "EXIT_BY_OUTCOME",
    "EXIT_DEFERRED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "add_text_row",
    "config_option",
    "fail",
    "load",
    "opened",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DEFERRED, EXIT_BUSY = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
EXIT_BY_OUTCOME = {
    "ok": EXIT_OK,
    "paused": EXIT_OK,  # a spent daily budget is a normal end: the next run continues
    "deferred": EXIT_DEFERRED,
    "busy": EXIT_BUSY,
    "failed": EXIT_FAILED,
}

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default="syncline.yaml",
    envvar="SYNCLINE_CONFIG",
    show_default=True,
    help="The YAML config file.",
)


def load(path: Path) -> Config:
    try:
        config = load_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    install_redaction(config)
    return config


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def opened(config: Config) -> Iterator[Store]:
    """The config's store for one command, closed after it; a bad store URL exits 2."""
    try:
        store = open_store(config.store)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        fail(str(exc), EXIT_FAILED)
    try:
        yield store
    finally:
        store.close()


def add_text_row(table: Table, *cells: str) -> None:
    """Add a row whose cells are shown exactly as they are.

    Why: rich reads ``[...]`` in a plain string as markup and drops it, and
    our cells hold data with brackets: scopes (``sb[tenant=a]``), job labels
    (``sb.items [tenant=a]``), error messages and SQL statements.
    """
    table.add_row(*(Text(cell) for cell in cells))
