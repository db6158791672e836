"""Per-tenant rate-limit accounting: which data request is allowed, and what is left.

Why its own I/O-free module with an injectable clock: the window arithmetic
(sliding deques, aligned fixed windows, "rejected requests cost nothing") is
where off-by-one bugs live, and a fake clock tests it exactly, while the ASGI
layer (:mod:`.limit_middleware`) only applies the :class:`Verdict`.  All
times are ``time.monotonic()`` seconds, so wall-clock jumps never reopen or
close a window.

The app runs on one event-loop thread and :meth:`RateLimiter.check` never
awaits, so each decision is atomic without locks.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncline.sandbox.limit_config import LimitsConfig, Window

Clock = Callable[[], float]


class _Sliding:
    """At most ``calls`` in any interval of ``per`` seconds: the allowed requests' times."""

    __slots__ = ("_per", "_times")

    def __init__(self, per: float) -> None:
        self._per = per
        self._times: deque[float] = deque()

    def used(self, now: float) -> int:
        cutoff = now - self._per
        times = self._times
        while times and times[0] <= cutoff:
            times.popleft()
        return len(times)

    def add(self, now: float) -> None:
        self._times.append(now)

    def reset_in(self, now: float) -> float:
        """Seconds until the oldest counted request leaves the window (0 if none)."""
        return self._times[0] + self._per - now if self._times else 0.0

    def frees_in(self, now: float, calls: int) -> float:
        """Seconds until there is room for one more request (call only when full)."""
        return self._times[len(self._times) - calls] + self._per - now


class _Fixed:
    """Windows ``[epoch + k*per, epoch + (k+1)*per)``: a counter for the current ``k``."""

    __slots__ = ("_count", "_epoch", "_index", "_per")

    def __init__(self, per: float, epoch: float) -> None:
        self._per = per
        self._epoch = epoch
        self._index = -1
        self._count = 0

    def used(self, now: float) -> int:
        index = math.floor((now - self._epoch) / self._per)
        if index != self._index:
            self._index, self._count = index, 0
        return self._count

    def add(self, _now: float) -> None:
        self._count += 1

    def reset_in(self, now: float) -> float:
        """Seconds until the current window ends (call after :meth:`used`)."""
        return max(0.0, self._epoch + (self._index + 1) * self._per - now)

    def frees_in(self, now: float, _calls: int) -> float:
        return self.reset_in(now)


_Usage = _Sliding | _Fixed


def _usage(window: Window, epoch: float) -> _Usage:
    return _Sliding(window.per) if window.kind == "sliding" else _Fixed(window.per, epoch)


class _Tenant:
    __slots__ = ("allowed", "rejected", "usage")

    def __init__(self, usage: list[_Usage]) -> None:
        self.allowed = 0
        self.rejected = 0
        self.usage = usage


@dataclass(frozen=True)
class WindowState:
    """One window of a tenant as it stands after the decision."""

    window: Window
    remaining: int
    reset_in: float
    """Seconds until the window resets; for sliding ones, until the oldest request leaves."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    states: tuple[WindowState, ...]
    """Same order as the configured windows."""
    blocking: Window | None = None
    """The window that rejected the request: of several full ones, the slowest to free up."""
    retry_in: float = 0.0
    """Seconds until ``blocking`` has room again; 0 when allowed."""

    @property
    def strictest(self) -> WindowState:
        """Fewest remaining; ties go to the shorter period (the one that bites first)."""
        return min(self.states, key=lambda state: (state.remaining, state.window.per))


class RateLimiter:
    """The active limits configuration plus per-tenant usage and counters."""

    def __init__(self, config: LimitsConfig | None = None, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or time.monotonic
        self.configure(config)

    def configure(self, config: LimitsConfig | None) -> None:
        """Replace the configuration (``None`` removes limits) and forget all usage and counts."""
        self.config = config
        self._tenants: dict[str, _Tenant] = {}
        self._epoch = self._clock()

    def reset_windows(self) -> None:
        """Forget all usage, as if every window had just reset; keeps config and counters.

        Fixed windows are re-aligned to now, so a "daily" window starts a full
        new day rather than ending at the old boundary.
        """
        self._epoch = self._clock()
        for tenant in self._tenants.values():
            tenant.usage = self._fresh_usage()

    def _fresh_usage(self) -> list[_Usage]:
        assert self.config is not None
        return [_usage(window, self._epoch) for window in self.config.windows]

    def check(self, tenant: str) -> Verdict:
        """Decide one data request of ``tenant``; allowed requests count in every window."""
        config = self.config
        assert config is not None, "check() needs a configuration"
        now = self._clock()
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _Tenant(self._fresh_usage())
        windows = config.windows
        used = [usage.used(now) for usage in state.usage]
        full = [i for i, window in enumerate(windows) if used[i] >= window.calls]
        if full:
            state.rejected += 1
            waits = {i: state.usage[i].frees_in(now, windows[i].calls) for i in full}
            worst = max(full, key=waits.__getitem__)
            states = self._states(windows, state.usage, used, now)
            return Verdict(False, states, windows[worst], waits[worst])
        for usage in state.usage:
            usage.add(now)
        state.allowed += 1
        return Verdict(True, self._states(windows, state.usage, [n + 1 for n in used], now))

    @staticmethod
    def _states(
        windows: tuple[Window, ...], usage: list[_Usage], used: list[int], now: float
    ) -> tuple[WindowState, ...]:
        return tuple(
            WindowState(window, max(0, window.calls - n), tracker.reset_in(now))
            for window, tracker, n in zip(windows, usage, used, strict=True)
        )

    def counters(self) -> dict[str, dict[str, int]]:
        """``{tenant: {"allowed": n, "rejected": n}}``, as in ``/_admin/stats``."""
        return {
            name: {"allowed": tenant.allowed, "rejected": tenant.rejected}
            for name, tenant in sorted(self._tenants.items())
        }

    def usage(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{tenant: {window: {"used", "remaining", "reset"}}}`` right now (reset in seconds)."""
        if self.config is None:
            return {}
        now = self._clock()
        result: dict[str, dict[str, dict[str, Any]]] = {}
        for name, tenant in sorted(self._tenants.items()):
            windows: dict[str, dict[str, Any]] = {}
            for window, tracker in zip(self.config.windows, tenant.usage, strict=True):
                used = tracker.used(now)
                windows[window.name] = {
                    "used": used,
                    "remaining": max(0, window.calls - used),
                    "reset": round(tracker.reset_in(now), 3),
                }
            result[name] = windows
        return result

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /_admin/limits`` body."""
        return {
            "config": None if self.config is None else self.config.to_json(),
            "tenants": self.counters(),
            "usage": self.usage(),
        }
