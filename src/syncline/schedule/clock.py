"""The scheduler's sense of time, injectable so tests can live through a day in milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware UTC."""
        ...

    async def sleep_until(self, moment: datetime | None, wake: asyncio.Event) -> None:
        """Return at ``moment`` (``None``: no deadline) or as soon as ``wake`` is set."""
        ...


class SystemClock:
    """The machine's clock: what ``syncline run`` uses."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime | None, wake: asyncio.Event) -> None:
        timeout = None if moment is None else max(0.0, (moment - self.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)
