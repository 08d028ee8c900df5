"""Transactional outbox and the dispatcher that delivers it.

A state change and the events it causes commit in one transaction (`publish` adds a row to the
same session), so a crash between commit and delivery loses nothing: the dispatcher finds the
row later. Delivery is at-least-once; every handler must be idempotent.

Claims use a conditional UPDATE checked by row count rather than SELECT ... SKIP LOCKED, which
TiDB does not honour (see ARCHITECTURE.md), so several workers can share one outbox on any of
the supported databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import JSON, Index, Integer, String, Text, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.clock import clock
from fulema.core.db import Base, Database, UTCDateTime, table_of
from fulema.core.ids import new_id, new_token

log = structlog.get_logger(__name__)


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "available_at"),)


@dataclass(frozen=True)
class Event:
    id: str
    topic: str
    payload: dict[str, Any]


Handler = Callable[[Database, Event], Awaitable[None]]


def _event_row(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    now = clock.now()
    return dict(id=new_id("evt"), topic=topic, payload=payload, created_at=now,
                available_at=now, attempts=0, claimed_by=None, claimed_until=None,
                delivered_at=None, last_error=None)


def publish(session: AsyncSession, topic: str, payload: dict[str, Any]) -> str:
    """Record an event in the caller's transaction. Returns its id."""
    row = _event_row(topic, payload)
    session.add(OutboxEvent(**row))
    return str(row["id"])


_INSERT_EVENT = insert(table_of(OutboxEvent))


async def publish_now(session: AsyncSession, topic: str, payload: dict[str, Any]) -> str:
    """`publish` as one Core INSERT executed at once, for hot paths that use no ORM objects
    (the unit of work's flush costs more than the insert)."""
    row = _event_row(topic, payload)
    await session.execute(_INSERT_EVENT, row)
    return str(row["id"])


class Dispatcher:
    """Delivers outbox events to handlers registered per topic."""

    def __init__(self, db: Database, *, claim_seconds: int = 60, batch: int = 50) -> None:
        self.db = db
        self.handlers: dict[str, list[Handler]] = {}
        self.worker_id = f"{socket.gethostname()}-{new_token(6)}"
        self.claim_seconds = claim_seconds
        self.batch = batch
        self.wakeup = asyncio.Event()
        # Set after a round that delivered something: loops that act on what handlers wrote
        # (merchant notifications) wake at once instead of at their next poll.
        self.delivered = asyncio.Event()

    def subscribe(self, topic: str, handler: Handler) -> None:
        self.handlers.setdefault(topic, []).append(handler)

    async def run_once(self) -> int:
        """Claim and deliver what is due. Returns the number of events delivered."""
        now = clock.now()
        async with self.db.transaction() as s:
            due = (await s.execute(
                select(OutboxEvent.id, OutboxEvent.topic)
                .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.available_at <= now,
                       or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now))
                .order_by(OutboxEvent.available_at)
                .limit(self.batch)
            )).all()
            # Events nobody in this process subscribes to (yet) are marked delivered in one
            # statement instead of a claim and a delivery each: every state change publishes,
            # and most topics have no handler until a later context subscribes.
            idle = [row.id for row in due if not self.handlers.get(row.topic)]
            if idle:
                await s.execute(update(OutboxEvent).where(
                    OutboxEvent.id.in_(idle), OutboxEvent.delivered_at.is_(None),
                    or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now),
                ).values(delivered_at=now))
        ids = [row.id for row in due if self.handlers.get(row.topic)]
        delivered = len(idle)
        for event_id in ids:
            claimed = await self._claim(event_id)
            if claimed is not None:
                delivered += await self._deliver(*claimed)
        if delivered:
            self.delivered.set()
        return delivered

    async def drain(self, max_rounds: int = 100) -> int:
        """Deliver until nothing is due (tests and the demo use this)."""
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            total += n
            if n == 0:
                break
        return total

    async def _claim(self, event_id: str) -> tuple[Event, int] | None:
        """The event and its attempts so far if this worker won it, else None."""
        now = clock.now()
        async with self.db.transaction() as s:
            result = await s.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == event_id, OutboxEvent.delivered_at.is_(None),
                       or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now))
                .values(claimed_by=self.worker_id,
                        claimed_until=now + timedelta(seconds=self.claim_seconds))
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = await s.get(OutboxEvent, event_id)
            assert row is not None
            return Event(id=row.id, topic=row.topic, payload=dict(row.payload)), row.attempts

    async def _deliver(self, event: Event, attempts: int) -> int:
        event_id = event.id
        try:
            for handler in self.handlers.get(event.topic, []):
                await handler(self.db, event)
        except Exception as exc:
            delay = min(3600, 2 ** min(attempts, 12))
            log.warning("outbox.handler_failed", event_id=event_id, topic=event.topic,
                        error=repr(exc), retry_in=delay)
            async with self.db.transaction() as s:
                await s.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(
                    attempts=attempts + 1, claimed_by=None, claimed_until=None,
                    available_at=clock.now() + timedelta(seconds=delay),
                    last_error=repr(exc)[:2000]))
            return 0
        async with self.db.transaction() as s:
            await s.execute(update(OutboxEvent).where(
                OutboxEvent.id == event_id, OutboxEvent.claimed_by == self.worker_id
            ).values(delivered_at=clock.now(), attempts=attempts + 1))
        return 1

    async def run_forever(self, idle_seconds: float = 0.5) -> None:
        while True:
            try:
                n = await self.run_once()
            except Exception as exc:
                log.error("outbox.round_failed", error=repr(exc))
                n = 0
            if n == 0:
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), timeout=idle_seconds)
