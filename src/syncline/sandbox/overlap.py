"""Per-tenant counts of data requests in flight, and the overlaps they reveal.

Why: a test of parallel sync must prove that no two workers ever worked on the
same partition (tenant) at once, and only the server sees when requests really
overlap.  A request that starts while another one of its tenant is still in
flight is an overlap.  Kept free of I/O and of other sandbox imports (the ASGI
side is :mod:`.overlap_middleware`) so :class:`~.common.SandboxState` can
create one without an import cycle.  Everything runs on the app's single
event-loop thread, so plain dicts need no lock.
"""

from __future__ import annotations


class OverlapTracker:
    """Requests in flight per tenant, plus the overlap counters derived from them."""

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}
        self._overlaps: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}

    def enter(self, tenant: str) -> None:
        current = self._in_flight.get(tenant, 0) + 1
        self._in_flight[tenant] = current
        self._overlaps[tenant] = self._overlaps.get(tenant, 0) + int(current > 1)
        self._max_in_flight[tenant] = max(self._max_in_flight.get(tenant, 0), current)

    def leave(self, tenant: str) -> None:
        current = self._in_flight[tenant] - 1
        if current:
            self._in_flight[tenant] = current
        else:
            del self._in_flight[tenant]

    def in_flight(self, tenant: str) -> int:
        return self._in_flight.get(tenant, 0)

    def reset(self) -> None:
        """Zero the counters but keep the in-flight counts.

        Requests still running will call :meth:`leave`, which must find their
        count, and they still overlap with the requests that start after this.
        """
        self._overlaps.clear()
        self._max_in_flight.clear()

    def counters(self) -> dict[str, dict[str, int]]:
        """``{tenant: {"overlaps": n, "max_in_flight": n}}`` for tenants seen since the reset."""
        return {
            tenant: {"overlaps": overlaps, "max_in_flight": self._max_in_flight[tenant]}
            for tenant, overlaps in sorted(self._overlaps.items())
        }
