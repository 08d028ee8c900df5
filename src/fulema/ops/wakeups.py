"""Wake-ups from an API process that runs no background to the `fulema worker`s that do
(PostgreSQL; docs/scaling.md).

A worker learns that something committed from PostgreSQL's NOTIFY on EVENTS_CHANNEL (its
dispatcher LISTENs; the notification loop and the speakers wake with it). An API process
used to send that NOTIFY inside every transaction that published an event, which cost each
such transaction a statement, and made the channel's acceptance of an order a transaction
(BEGIN, UPDATE, NOTIFY, COMMIT) where it is otherwise one statement in autocommit
(payments/orders_channel.py). Instead, `forward_commits` watches this process's own
`Database.committed` signal (raised after every commit that published, and by the few paths
that wake the notification loop without an event) and sends one NOTIFY on a connection of its
own, after the commit, at most once per `window` seconds however many commits there were.

Nothing is lost if a NOTIFY is: it only shortens the wait. The workers poll every
FULEMA_EVENTS_POLL_SECONDS whatever happens, so if this process dies between a commit and its
NOTIFY, or the connection is down, the events are found at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from fulema.core.db import EVENTS_CHANNEL, Database
from fulema.core.events.consumers import short_error

log = structlog.get_logger(__name__)

# Seconds between two NOTIFYs at most: a payment's urgent consumers (the speaker, the
# merchant's notification) hear of it this much later at worst, and a busy process sends at
# most 1 / WINDOW NOTIFYs a second instead of one per publishing transaction.
WINDOW = 0.005
RETRY_SECONDS = 1.0  # after a failed NOTIFY; the workers' polls cover the gap


async def forward_commits(db: Database, *, window: float = WINDOW) -> None:
    """Until cancelled: one NOTIFY after each burst of this process's commits."""
    import asyncpg

    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn: Any = None
    seen = db.committed.generation
    try:
        while True:
            await db.committed.wait(seen, 3600.0)
            if db.committed.generation == seen:
                continue
            seen = db.committed.generation
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(url)
                await conn.execute(f"NOTIFY {EVENTS_CHANNEL}")
            except Exception as exc:  # the workers' polls still find the events
                log.warning("events.forward_failed", error=short_error(exc))
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
                conn = None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            await asyncio.sleep(window)  # commits in the meantime share the next NOTIFY
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
