"""`Dispatcher.run_forever`: the numbering loop and one loop per consumer.

One loop numbers the events, woken by commits in this process (`Database.committed`), by
NOTIFY from other processes (PostgreSQL: `listen`) or every `poll_seconds`; each consumer has
a loop of its own that the numbering wakes, so a consumer is never kept waiting while another
handles its round (the speakers do not wait for the ledger: docs/messaging.md), at most
`concurrency` of them at once; the `urgent` ones in a lane of their own (`urgent_concurrency`
slots), so the consumers read later never hold them back. A consumer that is not `urgent` lets
`linger_seconds` pass after a fresh wake, so the events of the next moments join its round.
Each loop keeps its consumer's lease across rounds (`claims`: a round resumes it with a read
instead of a claim's write); the leases are handed back when `run_forever` ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import structlog

from fulema.core.db import EVENTS_CHANNEL, Database
from fulema.core.events import claims
from fulema.core.events.consumers import short_error
from fulema.core.signal import Signal

if TYPE_CHECKING:
    from fulema.core.events.dispatcher import Dispatcher

log = structlog.get_logger(__name__)


async def run_forever(d: Dispatcher) -> None:
    """Serve until cancelled.

    Woken by a commit, the numbering loop goes straight to numbering (such a wake means
    something was published). Every `poll_seconds` without one it reads the stream and every
    consumer's state in one transaction (`Positions.look`), so retries that came due and
    other processes' numbering are found with one read, not one per consumer."""
    listener = await listen(d.db)
    numbered = Signal()
    slots = asyncio.Semaphore(d.concurrency)
    urgent = [name for name, c in d.consumers.items() if c.urgent]
    lane = asyncio.Semaphore(max(1, d.urgent_concurrency or len(urgent)))
    loops = [asyncio.create_task(consumer_loop(d, name, numbered,
                                               lane if name in urgent else slots))
             for name in d.consumers]
    timed_out = True
    try:
        while True:
            seen = d.db.committed.generation
            try:
                if not d._registered:
                    await d.register()
                if not timed_out or await d._refresh():
                    await d._sequence_all(look_first=False)
            except Exception as exc:
                log.error("events.round_failed", error=short_error(exc))
            numbered.notify()
            await d.db.committed.wait(seen, d.poll_seconds)
            timed_out = d.db.committed.generation == seen
    finally:
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):  # else they run out within claim_seconds
            await claims.release(d.db, d.worker_id)
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()


async def consumer_loop(d: Dispatcher, name: str, numbered: Signal,
                        slots: asyncio.Semaphore) -> None:
    """One consumer: served again at once while it moves, else when the numbering loop next
    wakes it (after numbering, or after its periodic look). Woken with nothing past its known
    position, it reads nothing: a dozen consumers cost no dozen reads per commit."""
    consumer = d.consumers[name]
    linger = 0.0 if consumer.urgent else d.linger_seconds
    known = d.positions.known
    moved = False
    while True:
        seen = numbered.generation
        head = d.positions.head
        try:
            if linger and not moved and head > known.get(name, -1):
                await asyncio.sleep(linger)
                seen, head = numbered.generation, d.positions.head
            moved = False
            if head > known.get(name, -1):
                # Straight to the claim, which checks that the consumer is behind, due and
                # free (no read before it on the hot path).
                async with slots:
                    _, moved = await d._serve_round(consumer, head, d.positions.archived,
                                                    keep=True)
                if not moved:
                    known[name] = max(known.get(name, -1), head)
        except Exception as exc:
            moved = False
            log.error("events.round_failed", consumer=name, error=short_error(exc))
        if not moved:
            # the numbering loop wakes every loop at least every poll_seconds
            await numbered.wait(seen, 10 * d.poll_seconds)


async def listen(db: Database) -> Any:
    """On PostgreSQL, a connection that LISTENs for other processes' commits."""
    if db.dialect != "postgresql":
        return None
    try:
        import asyncpg

        url = db.engine.url.set(drivername="postgresql")
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        await conn.add_listener(EVENTS_CHANNEL, lambda *_: db.committed.notify())
        return conn
    except Exception as exc:  # polling still delivers; say why the wake-up is missing
        log.warning("events.listen_failed", error=short_error(exc))
        return None
