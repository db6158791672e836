"""Stopping on SIGINT/SIGTERM without tearing a page from its checkpoint.

The first signal cancels the sync: the page whose transaction is in flight
finishes (or never started), leases are released and the run is recorded as
interrupted. A second signal exits at once; that is still consistent, because
an uncommitted SQLite transaction simply never happened.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Interrupted", "run_until_signalled"]

_T = TypeVar("_T")


class Interrupted(Exception):
    """The run stopped because of a signal; ``exit_code`` follows the shell's 128+N rule."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.signal_name)


def run_until_signalled(
    make: Callable[[], Coroutine[Any, Any, _T]], on_first: Callable[[int], None] | None = None
) -> _T:
    """Run ``make()`` on a fresh event loop; raise :class:`Interrupted` on SIGINT/SIGTERM.

    With ``on_first``, the first signal calls it instead of cancelling: a long-running
    loop (``syncline run``, ``syncline worker``) then winds down by itself and returns.
    """
    loop = asyncio.new_event_loop()
    task = loop.create_task(make())
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            sys.stderr.write("second signal: exiting now (uncommitted work is rolled back)\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        received.append(signum)
        sys.stderr.write(
            f"{signal.Signals(signum).name}: finishing the page in flight "
            "(send it again to exit at once)\n"
        )
        sys.stderr.flush()
        if on_first is None:
            task.cancel()
        else:
            on_first(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if not received:
            raise
        raise Interrupted(received[0]) from None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        try:
            # Threads still committing a page finish before we exit.
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
