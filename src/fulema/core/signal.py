"""A wake-up that every waiter sees: the in-process half of "consumers wake when an event
commits" (PostgreSQL LISTEN/NOTIFY is the cross-process half).

`asyncio.Event` alone loses wake-ups for a loop that was busy when it was set and then clears
it; a generation number does not: a waiter that remembers the generation it last acted on
returns at once if anything happened since.
"""

from __future__ import annotations

import asyncio
import contextlib


class Signal:
    def __init__(self) -> None:
        self.generation = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        self.generation += 1
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait(self, since: int, seconds: float) -> None:
        """Return when the generation moves past `since`, or after `seconds` seconds.

        `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11 `wait_for` swallows a
        cancellation that arrives in the same turn of the loop as the wake-up (it returns the
        future's result instead), so a loop cancelled at shutdown just as a commit woke it went
        on waiting, and the shutdown never ended."""
        if self.generation != since:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await fut
        finally:
            self._waiters.discard(fut)
