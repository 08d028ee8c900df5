"""The outbox: events recorded in the transaction of the change that caused them.

A state change and its events commit together or not at all (`publish` adds a row to the
caller's session), so a crash between commit and delivery loses nothing.

Ids are made in the application and transactions commit in any order, so neither id nor
`created_at` orders events the way they became visible. The dispatcher's sequencer gives every
committed event the next number of one stream (`seq`), under a lock, in the order it finds
them; a number is given only to a committed event and never reused, so the numbers a reader
can see always form an unbroken prefix 1..head. Each consumer then needs one position in that
stream instead of a delivery row per event: the design writes one UPDATE per event (its
number) plus one per consumer per batch, and never skips an event that committed late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.clock import clock
from fulema.core.db import Base, UTCDateTime, mark_published, table_of
from fulema.core.ids import new_id

STREAM = "outbox"


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Given by the sequencer after commit; NULL until then.
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    # Unique, and how the sequencer finds what has no number yet (NULLs are not unique).
    __table_args__ = (Index("uq_outbox_events_seq", "seq", unique=True),)


class ArchivedEvent(Base):
    """Events past retention that every consumer has passed: kept, out of the hot table.
    A consumer starting from the beginning of history reads them from here."""

    __tablename__ = "outbox_events_archive"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("uq_outbox_events_archive_seq", "seq", unique=True),)


class EventStream(Base):
    """The sequencer's counter (its row is also the sequencer's lock)."""

    __tablename__ = "event_streams"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Events with seq <= archived_through live in outbox_events_archive.
    archived_through: Mapped[int] = mapped_column(BigInteger, default=0)


@dataclass(frozen=True)
class Event:
    id: str
    topic: str
    payload: dict[str, Any]
    seq: int = 0
    created_at: datetime | None = None


def _event_row(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    return dict(id=new_id("evt"), topic=topic, payload=payload, created_at=clock.now(), seq=None)


# For a hot path that carries the event's INSERT inside a statement of its own (payments'
# one-statement accept on PostgreSQL): the row `publish_now` would write, and its table. The
# caller must then call `mark_published` on the session, as `publish_now` does.
OUTBOX_TABLE = table_of(OutboxEvent)
outbox_row = _event_row


def publish(session: AsyncSession, topic: str, payload: dict[str, Any]) -> str:
    """Record an event in the caller's transaction. Returns its id."""
    row = _event_row(topic, payload)
    session.add(OutboxEvent(**row))
    mark_published(session)
    return str(row["id"])


_INSERT_EVENT = insert(table_of(OutboxEvent))


async def publish_now(session: AsyncSession, topic: str, payload: dict[str, Any]) -> str:
    """`publish` as one Core INSERT executed at once, for hot paths that use no ORM objects
    (the unit of work's flush costs more than the insert)."""
    row = _event_row(topic, payload)
    await session.execute(_INSERT_EVENT, row)
    mark_published(session)
    return str(row["id"])
