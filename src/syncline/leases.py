"""One writer per (stream, partition): take a lease, keep it alive, give it back.

Two processes syncing the same stream would interleave their checkpoints. The
store keeps a lease row per (source, stream, partition) with an expiry and a
fencing token: the holder renews it while it works (and at every commit), a
crashed holder's lease simply expires, and a stalled holder that comes back
after someone else took over cannot commit, because its token is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator

from syncline.errors import LeaseHeld, LeaseLost, StoreError
from syncline.stores import Lease, StateKey, Store

__all__ = ["DEFAULT_TTL", "held_lease", "holder_name"]

DEFAULT_TTL = 60.0
"""Seconds a lease lives without renewal: how long a crashed holder blocks others."""
POLL = 0.25


def holder_name(run_id: str) -> str:
    """Who holds a lease, as users want to read it in an error: host, pid and run."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id[:8]}"


def holder_is_dead(holder: str) -> bool:
    """A holder on this host whose process is gone (killed) need not be waited for.

    Only a definite "no such process" counts; a live pid, even reused by another
    program, means we wait for the lease to expire, which is always safe.
    """
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextlib.asynccontextmanager
async def held_lease(
    store: Store, key: StateKey, holder: str, *, ttl: float = DEFAULT_TTL, wait: float = 0.0
) -> AsyncIterator[Lease]:
    """Hold the lease on ``key`` for the block, renewing it every ``ttl / 3`` seconds.

    Waits up to ``wait`` seconds for a busy lease, then raises :class:`LeaseHeld`.
    """
    lease = await _acquire(store, key, holder, ttl, wait)
    keeper = asyncio.create_task(_keep_alive(store, lease))
    try:
        yield lease
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await asyncio.to_thread(store.release_lease, lease)


async def _acquire(store: Store, key: StateKey, holder: str, ttl: float, wait: float) -> Lease:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            return await asyncio.to_thread(store.acquire_lease, key, holder, ttl)
        except LeaseHeld as held:
            if holder_is_dead(held.holder):
                with contextlib.suppress(LeaseHeld):  # someone else may have been faster
                    return await asyncio.to_thread(
                        store.acquire_lease, key, holder, ttl, take_over=held.holder
                    )
            if loop.time() + POLL > deadline:
                raise
            await asyncio.sleep(POLL)


async def _keep_alive(store: Store, lease: Lease) -> None:
    """Renew until cancelled; a lost lease is left for the next commit to report."""
    while True:
        await asyncio.sleep(lease.ttl / 3)
        try:
            await asyncio.to_thread(store.renew_lease, lease, lease.ttl)
        except LeaseLost:
            return
        except StoreError:
            continue  # a busy store now and then; the commit renews too
