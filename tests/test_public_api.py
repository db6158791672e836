"""The public surface is deliberate: this test fails when it changes by accident."""

from __future__ import annotations

import re
from pathlib import Path

import syncline
from syncline.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def test_public_names_are_exactly_these() -> None:
    assert sorted(syncline.__all__) == sorted(
        [
            "AuthError",
            "BadPayload",
            "ClientError",
            "Config",
            "ConfigError",
            "JobResult",
            "NetworkError",
            "PaginationLoop",
            "PermanentError",
            "PushOutcome",
            "PushSummary",
            "RateLimited",
            "ServerError",
            "SourceError",
            "StoreError",
            "SyncSummary",
            "SynclineError",
            "TransientError",
            "UnsafeNextLink",
            "__version__",
            "changes",
            "config_from_dict",
            "iter_records",
            "load_config",
            "push",
            "sql",
            "sync",
        ]
    )
    for name in syncline.__all__:
        assert hasattr(syncline, name)


def test_error_tree() -> None:
    assert issubclass(syncline.RateLimited, syncline.TransientError)
    assert issubclass(syncline.TransientError, syncline.SourceError)
    assert issubclass(syncline.PaginationLoop, syncline.PermanentError)
    assert issubclass(syncline.ConfigError, syncline.SynclineError)
    assert not issubclass(syncline.StoreError, syncline.SourceError)


def test_every_command_and_option_is_documented() -> None:
    readme = (ROOT / "README.md").read_text() + (ROOT / "docs" / "cli.md").read_text()
    for name, command in cli.commands.items():
        assert f"syncline {name}" in readme, f"`syncline {name}` is not documented"
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert re.search(re.escape(opt) + r"\b", readme), f"{name} {opt} undocumented"
