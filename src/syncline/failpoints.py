"""Named points where a test can make this process die with SIGKILL, deterministically.

Crash-safety is only proven by killing a real process at the worst moments
(before a page is written, between its rows and its commit, after the commit).
``SYNCLINE_FAILPOINT=store.before_commit:3`` kills the process the 3rd time that
point is reached. Unset (always, outside tests) this costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["failpoint"]


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        points[name] = int(count or 1)
    return points


_ARMED = _parse(os.environ.get("SYNCLINE_FAILPOINT", ""))
_HITS: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Die here, with SIGKILL and no cleanup, if a test armed this point for this hit."""
    if not _ARMED or name not in _ARMED:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    if _HITS[name] == _ARMED[name]:
        os.kill(os.getpid(), signal.SIGKILL)
