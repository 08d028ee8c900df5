"""What an operator sees and does about event consumers: lag, failures, replay, skip, and
the retention that moves old events to the archive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events.claims import dead_letter_row
from fulema.core.events.consumers import Consumer, ConsumerState, DeadLetter, short_error
from fulema.core.events.outbox import STREAM, ArchivedEvent, Event, EventStream, OutboxEvent
from fulema.core.events.sequencer import ensure_stream

MAX_REPLAY = 1000


async def consumer_status(db: Database, declared: dict[str, Consumer]) -> list[dict[str, Any]]:
    """Every consumer with a position, declared in this process or not (one that no process
    declares any more shows its lag growing, which is the point)."""
    await ensure_stream(db)
    async with db.transaction() as s:
        stream = await s.get(EventStream, STREAM)
        states = (await s.scalars(select(ConsumerState).order_by(ConsumerState.name))).all()
        open_dead = {name: int(n) for name, n in (await s.execute(
            select(DeadLetter.consumer, func.count()).where(DeadLetter.resolved_at.is_(None))
            .group_by(DeadLetter.consumer))).all()}
    head = stream.last_seq if stream else 0
    out = []
    for st in states:
        c = declared.get(st.name)
        out.append({
            "name": st.name, "declared": c is not None,
            "on_poison": c.on_poison.value if c else None,
            "topics": list(c.topics) if c else None, "start": st.start,
            "position": st.position, "head": head, "lag": head - st.position,
            "attempts": st.attempts, "last_error": st.last_error, "retry_at": st.retry_at,
            "blocked": st.blocked_since is not None, "blocked_since": st.blocked_since,
            "dead_letters": int(open_dead.get(st.name, 0)), "updated_at": st.updated_at,
        })
    return out


async def dead_letters(db: Database, consumer: str, *, limit: int = 50,
                       starting_after: str | None = None,
                       include_resolved: bool = False) -> list[dict[str, Any]]:
    q = select(DeadLetter).where(DeadLetter.consumer == consumer)
    if not include_resolved:
        q = q.where(DeadLetter.resolved_at.is_(None))
    if starting_after:
        q = q.where(DeadLetter.id > starting_after)
    async with db.transaction() as s:
        rows = (await s.scalars(q.order_by(DeadLetter.id).limit(limit))).all()
    return [{"id": r.id, "consumer": r.consumer, "event_id": r.event_id, "seq": r.seq,
             "topic": r.topic, "attempts": r.attempts, "last_error": r.last_error,
             "reason": r.reason, "created_at": r.created_at, "created_by": r.created_by,
             "resolved_at": r.resolved_at, "resolved_by": r.resolved_by} for r in rows]


def _declared(declared: dict[str, Consumer], name: str) -> Consumer:
    consumer = declared.get(name)
    if consumer is None:
        raise FulemaError(ErrorCode.EVENT_CONSUMER_NOT_FOUND, f"no consumer named {name}")
    return consumer


async def _events_by(s: AsyncSession, *, event_id: str | None, from_seq: int | None,
                     to_seq: int | None) -> list[Event]:
    found: list[Event] = []
    for model in (ArchivedEvent, OutboxEvent):
        q = select(model.id, model.topic, model.payload, model.seq, model.created_at)
        if event_id is not None:
            q = q.where(model.id == event_id)
        else:
            q = q.where(model.seq >= from_seq, model.seq <= to_seq)
        rows = (await s.execute(q.order_by(model.seq).limit(MAX_REPLAY))).all()
        found += [Event(id=r.id, topic=r.topic, payload=dict(r.payload), seq=int(r.seq or 0),
                        created_at=r.created_at) for r in rows if r.seq is not None]
    return sorted(found, key=lambda e: e.seq)[:MAX_REPLAY]


async def replay(db: Database, declared: dict[str, Consumer], name: str, *, operator: str,
                 event_id: str | None = None, from_seq: int | None = None,
                 to_seq: int | None = None) -> dict[str, Any]:
    """Hand one event, or a range of at most MAX_REPLAY, to the consumer's handler again, now.

    Handlers are idempotent by event id, so replaying what was handled is harmless; a dead
    letter that now succeeds is marked resolved, with the operator's name."""
    consumer = _declared(declared, name)
    if event_id is None and (from_seq is None or to_seq is None):
        raise FulemaError(ErrorCode.EVENT_REPLAY_INVALID, "give event_id, or from_seq and to_seq")
    if event_id is None and not (0 < from_seq <= to_seq):  # type: ignore[operator]
        raise FulemaError(ErrorCode.EVENT_REPLAY_INVALID, "need 0 < from_seq <= to_seq")
    if event_id is None and to_seq - from_seq >= MAX_REPLAY:  # type: ignore[operator]
        raise FulemaError(ErrorCode.EVENT_REPLAY_INVALID, f"replay at most {MAX_REPLAY} events a call")
    async with db.transaction() as s:
        events = await _events_by(s, event_id=event_id, from_seq=from_seq, to_seq=to_seq)
    if event_id is not None and not events:
        raise FulemaError(ErrorCode.EVENT_NOT_FOUND, f"no sequenced event {event_id}")
    # Recorded before the handlers run (each commits on its own): the trail has every replay
    # that touched anything, even one interrupted halfway.
    await audit.record_alone(db, actor=operator, action="events.replay", target_type="consumer",
                             target_id=name, detail={"event_id": event_id, "from_seq": from_seq,
                                                     "to_seq": to_seq, "events": len(events)})
    replayed, failed = [], []
    for event in events:
        if not consumer.wants(event.topic):
            continue
        try:
            await consumer.handler(db, event)
        except Exception as exc:
            failed.append({"event_id": event.id, "seq": event.seq, "error": short_error(exc)})
            continue
        replayed.append(event.id)
    if replayed:
        async with db.transaction() as s:
            await s.execute(update(DeadLetter).where(
                DeadLetter.consumer == name, DeadLetter.event_id.in_(replayed),
                DeadLetter.resolved_at.is_(None)).values(resolved_at=clock.now(),
                                                          resolved_by=operator))
    return {"consumer": name, "replayed": len(replayed), "failed": failed}


async def skip_head(db: Database, declared: dict[str, Consumer], name: str, *,
                    operator: str) -> dict[str, Any]:
    """Set aside the event a consumer is stuck at (into the dead letters, by name) and let it
    go on: the operator's decision for a STOP consumer whose event cannot be repaired."""
    _declared(declared, name)
    async with db.transaction() as s:
        state = (await s.execute(select(ConsumerState).where(ConsumerState.name == name)
                                 .with_for_update())).scalar_one_or_none()
        if state is None or state.attempts == 0:
            raise FulemaError(ErrorCode.EVENT_CONSUMER_NOT_FAILING, f"{name} is not failing at any event")
        events = await _events_by(s, event_id=None, from_seq=state.position + 1,
                                  to_seq=state.position + 1)
        if not events:
            raise FulemaError(ErrorCode.EVENT_CONSUMER_NOT_FAILING, f"{name} has no event to skip")
        event = events[0]
        await s.execute(insert(DeadLetter), [dead_letter_row(
            name, event, state.attempts, state.last_error, "SKIPPED", operator)])
        state.position, state.attempts, state.last_error = event.seq, 0, None
        state.retry_at = state.blocked_since = None
        state.updated_at = clock.now()
        await audit.record(s, actor=operator, action="events.skip", target_type="consumer",
                           target_id=name, detail={"event_id": event.id, "seq": event.seq,
                                                   "topic": event.topic})
    return {"consumer": name, "skipped_event_id": event.id, "seq": event.seq, "by": operator}


async def archive(db: Database, *, retention: timedelta, batch: int = 5000) -> int:
    """Move events older than `retention` that every registered consumer has passed into the
    archive. Only a prefix of the stream moves, so `archived_through` is exact."""
    await ensure_stream(db)
    cutoff: datetime = clock.now() - retention
    async with db.transaction() as s:
        stream = (await s.execute(select(EventStream).where(EventStream.name == STREAM)
                                  .with_for_update())).scalar_one()
        slowest = await s.scalar(select(func.min(ConsumerState.position)))
        limit = stream.last_seq if slowest is None else int(slowest)
        young = await s.scalar(select(func.min(OutboxEvent.seq)).where(
            OutboxEvent.created_at >= cutoff, OutboxEvent.seq.is_not(None)))
        if young is not None:
            limit = min(limit, int(young) - 1)
        limit = min(limit, stream.archived_through + batch)
        if limit <= stream.archived_through:
            return 0
        cols = [OutboxEvent.id, OutboxEvent.topic, OutboxEvent.payload, OutboxEvent.created_at,
                OutboxEvent.seq]
        moving = select(*cols).where(OutboxEvent.seq > stream.archived_through,
                                     OutboxEvent.seq <= limit)
        await s.execute(insert(ArchivedEvent).from_select(
            ["id", "topic", "payload", "created_at", "seq"], moving))
        result = await s.execute(delete(OutboxEvent).where(
            OutboxEvent.seq > stream.archived_through, OutboxEvent.seq <= limit))
        moved = int(result.rowcount)  # type: ignore[attr-defined]
        stream.archived_through = limit
    return moved
