"""Named event consumers: what each declares, and the rows that remember where it is.

A consumer is a context and a purpose (`ledger.postings`, `points.earn`, `bus.nats`). Each has
its own position in the event stream, so one that fails holds back only itself, and one added
later starts from the beginning of history (backfill) or from now, as it declares.

What a poisoned event (one that keeps failing) does is the consumer's choice:
- DEAD_LETTER: after `max_attempts` it is set aside in `event_dead_letters` and the consumer
  goes on (notifications, points: one customer's problem must not stop everyone's);
- STOP: the consumer stays at it, retrying with back-off, and raises the alarm (metric and
  error log) once it has failed `max_attempts` times (the ledger and settlement, where a gap
  unbalances the books and order matters). An operator repairs the cause, or skips the event
  into the dead letters by name.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.clock import clock
from fulema.core.db import Base, Database, UTCDateTime
from fulema.core.events.outbox import Event

Handler = Callable[[Database, Event], Awaitable[None]]
# Optional: all of a round's events at once, in one transaction of the consumer's own (all or
# nothing); when it raises, the round is handled again event by event through `handler`, so a
# poisoned event is still found, retried and dead-lettered on its own.
BatchHandler = Callable[[Database, list[Event]], Awaitable[None]]


class Poison(enum.StrEnum):
    DEAD_LETTER = "DEAD_LETTER"
    STOP = "STOP"


class Start(enum.StrEnum):
    BEGINNING = "BEGINNING"  # backfill every event still kept (archive included)
    NOW = "NOW"  # only events sequenced after the consumer first registers


@dataclass(frozen=True)
class Consumer:
    name: str
    handler: Handler
    # Exact topics or prefixes ending in "*" ("payment.*"); empty means every topic.
    topics: tuple[str, ...] = ()
    on_poison: Poison = Poison.DEAD_LETTER
    max_attempts: int = 8
    start: Start = Start.BEGINNING
    batch: int = 100
    batch_handler: BatchHandler | None = None
    # Served the moment its events are numbered (a cloud speaker, a merchant's webhook: someone
    # waits for it). Other consumers wait the dispatcher's `linger_seconds` after a wake, so at
    # the few events a second most hours have, one round carries several events: one claim,
    # one read and one position update for all of them instead of per event (docs/events.md).
    urgent: bool = False
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64 or "." not in self.name:
            raise ValueError(f"consumer name {self.name!r}: use <context>.<purpose>, at most 64")
        if self.max_attempts < 1 or self.batch < 1:
            raise ValueError("max_attempts and batch must be at least 1")
        object.__setattr__(self, "_exact", frozenset(t for t in self.topics if not t.endswith("*")))
        object.__setattr__(self, "_prefixes", tuple(t[:-1] for t in self.topics if t.endswith("*")))

    def wants(self, topic: str) -> bool:
        if not self.topics:
            return True
        return topic in self._exact or any(topic.startswith(p) for p in self._prefixes)


def check_unique(consumers: Iterable[Consumer]) -> dict[str, Consumer]:
    by_name: dict[str, Consumer] = {}
    for c in consumers:
        if c.name in by_name:
            raise ValueError(f"two consumers are named {c.name}")
        by_name[c.name] = c
    return by_name


class ConsumerState(Base):
    __tablename__ = "event_consumers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)  # last seq handled
    start: Mapped[str] = mapped_column(String(16))
    # The event at position + 1 while it is failing:
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    blocked_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeadLetter(Base):
    __tablename__ = "event_dead_letters"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    topic: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str] = mapped_column(String(16))  # EXHAUSTED | SKIPPED
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_dead_letters_consumer", "consumer", "resolved_at", "seq"),)


class EventReceipt(Base):
    """What a consumer has handled, for handlers whose effect is not idempotent by itself."""

    __tablename__ = "event_receipts"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _receipts_if_new(session: AsyncSession) -> Any:
    """Where the database can say in one statement which receipts were new (PostgreSQL and
    SQLite: `INSERT ... ON CONFLICT DO NOTHING RETURNING`), that INSERT; else None. It waits
    for a transaction that is writing the same receipt and skips it if that one commits, so
    it answers what the SAVEPOINT and the SELECT + INSERT below answer, in one round trip
    instead of three or two (on every announcement's path: docs/messaging.md, "Latency")."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(EventReceipt)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(EventReceipt)
    return None


async def _write_if_new(session: AsyncSession, consumer: str, event_ids: list[str]
                        ) -> set[str] | None:
    """The receipts among `event_ids` (distinct) written now, None where the database cannot
    tell in one statement."""
    stmt = _receipts_if_new(session)
    if stmt is None:
        return None
    now = clock.now()
    rows = await session.execute(
        stmt.values([dict(consumer=consumer, event_id=i, created_at=now) for i in event_ids])
        .on_conflict_do_nothing().returning(EventReceipt.event_id))
    return set(rows.scalars().all())


async def first_delivery(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """True the first time `consumer` handles `event_id` in a committed transaction.

    Call it in the handler's own transaction, before its writes: a redelivery (after a crash
    between the handler's commit and the position update, or an operator's replay) then
    finds the receipt and does nothing."""
    written = await _write_if_new(session, consumer, [event_id])
    if written is not None:
        return event_id in written
    try:
        async with session.begin_nested():
            await session.execute(insert(EventReceipt).values(
                consumer=consumer, event_id=event_id, created_at=clock.now()))
    except IntegrityError:
        return False
    return True


async def first_deliveries(session: AsyncSession, consumer: str, events: list[Event]
                           ) -> list[Event]:
    """The events of a batch `consumer` has not handled yet, their receipts written: one
    SELECT and one multi-row INSERT for the whole batch instead of a savepoint per event.

    For batch handlers only: on MySQL-protocol databases a receipt written meanwhile by
    another transaction makes the INSERT fail, the batch rolls back and the dispatcher redoes
    it event by event, where `first_delivery` settles each one. On PostgreSQL and SQLite one
    `INSERT ... ON CONFLICT DO NOTHING RETURNING` answers which were new."""
    if events:
        written = await _write_if_new(session, consumer, list(dict.fromkeys(e.id for e in events)))
        if written is not None:
            fresh_now: list[Event] = []
            for e in events:
                if e.id in written:
                    written.discard(e.id)  # a second copy of an event in the batch is not new
                    fresh_now.append(e)
            return fresh_now
    seen = await receipts_among(session, consumer, [e.id for e in events])
    fresh: list[Event] = []
    for e in events:
        if e.id not in seen:
            seen.add(e.id)
            fresh.append(e)
    await write_receipts(session, consumer, [e.id for e in fresh])
    return fresh


async def receipts_among(session: AsyncSession, consumer: str, event_ids: list[str]
                         ) -> set[str]:
    """Which of `event_ids` `consumer` has a receipt for (one SELECT; none for no ids). With
    `write_receipts`, for a batch handler that decides event by event, in order, which events
    it acts on and so needs a receipt (`billing.donations`); others use `first_deliveries`."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    return set((await session.scalars(select(EventReceipt.event_id).where(
        EventReceipt.consumer == consumer, EventReceipt.event_id.in_(ids)))).all())


async def write_receipts(session: AsyncSession, consumer: str, event_ids: list[str]) -> None:
    """Receipts for `event_ids` (none of them received before), in one multi-row INSERT."""
    if event_ids:
        now = clock.now()
        await session.execute(insert(EventReceipt), [
            dict(consumer=consumer, event_id=i, created_at=now) for i in event_ids])


async def fresh_events(session: AsyncSession, consumer: str, events: list[Event]
                       ) -> list[Event]:
    """The events `consumer` has not handled yet, their receipts written, for a handler that
    takes a round or one event: a round in one statement (`first_deliveries`), a lone event
    (the dispatcher's retry, one by one) through `first_delivery`, which settles a receipt
    written meanwhile by another process instead of failing."""
    if len(events) == 1:
        return list(events) if await first_delivery(session, consumer, events[0].id) else []
    return await first_deliveries(session, consumer, events)


def short_error(exc: BaseException) -> str:
    """The exception's type and first line, cut short: enough for an operator to act on,
    nothing like a traceback with local variables (which might carry secrets)."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:500]
