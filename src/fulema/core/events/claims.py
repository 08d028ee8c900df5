"""Serving one consumer: the claim (a lease taken with a conditional UPDATE, never SKIP LOCKED:
TiDB, ARCHITECTURE.md), its next batch, the handler, the dead letters, and the position.

One process at a time holds a consumer's lease, so its events are handled in order. A round:
claim and read the batch, hand it to the batch handler or event by event to the handler (the
handler's own transactions), then write the position, the failure state and any dead letters
(guarded by the lease's holder: a process that lost its lease writes nothing).

A round that ends without a failure may **keep** the lease (`settle(keep=True)`, what
`run_forever`'s loops do): the position UPDATE renews it for `claim_seconds`, and the next
round `resume`s it by reading the row (no write, no commit to wait for) as long as at least
half of it is left. So a consumer that keeps moving costs one write per round instead of two
(the claim's commit was on every announcement's path: docs/messaging.md, "Latency"). Safety
is the claim's: another process takes the consumer only once the lease has run out, which
for a process that dies is at most `claim_seconds` after its last round, as it was for a
process that died in the middle of one; `release` hands kept leases back on shutdown.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import logctx
from fulema.core.clock import clock
from fulema.core.db import Database, table_of
from fulema.core.events import metrics
from fulema.core.events.consumers import (
    Consumer,
    ConsumerState,
    DeadLetter,
    Poison,
    short_error,
)
from fulema.core.events.outbox import ArchivedEvent, Event, OutboxEvent
from fulema.core.ids import new_id

log = structlog.get_logger(__name__)

_cs = table_of(ConsumerState)
_CLAIMED = (_cs.c.position, _cs.c.attempts, _cs.c.last_error, _cs.c.blocked_since)


@dataclass(frozen=True)
class Claimed:
    """What serving a claimed consumer needs of its row (the columns of `_CLAIMED`)."""

    position: int
    attempts: int
    last_error: str | None
    blocked_since: datetime | None


@dataclass
class Outcome:
    """Where a round left the consumer: what `settle` writes."""

    position: int
    attempts: int
    error: str | None
    blocked_since: datetime | None
    retry_at: datetime | None = None
    delivered: int = 0
    dead: list[dict[str, Any]] = field(default_factory=list)


def backoff_seconds(attempts: int) -> int:
    """1, 2, 4, ... seconds, at most five minutes: a consumer that is stopped at an event keeps
    trying (the cause is often a database or broker that comes back) without hammering."""
    return int(min(300, 2 ** max(0, attempts - 1)))


async def read_events(s: AsyncSession, *, after: int, through: int, limit: int,
                      archived_through: int) -> list[Event]:
    """Events after seq `after` up to `through`, in order, from the archive where they are."""
    model: type[OutboxEvent] | type[ArchivedEvent] = (
        ArchivedEvent if after < archived_through else OutboxEvent)
    upper = min(through, archived_through) if model is ArchivedEvent else through
    rows = (await s.execute(
        select(model.id, model.topic, model.payload, model.seq, model.created_at)
        .where(model.seq > after, model.seq <= upper).order_by(model.seq).limit(limit)
    )).all()
    return [Event(id=r.id, topic=r.topic, payload=dict(r.payload), seq=int(r.seq),
                  created_at=r.created_at) for r in rows]


def dead_letter_row(consumer: str, event: Event, attempts: int, error: str | None,
                    reason: str, by: str | None) -> dict[str, Any]:
    return dict(id=new_id("dlq"), consumer=consumer, event_id=event.id, seq=event.seq,
                topic=event.topic, attempts=attempts, last_error=error, reason=reason,
                created_at=clock.now(), created_by=by, resolved_at=None, resolved_by=None)


def _order_of(payload: Any) -> str | None:
    value = payload.get("order_id") if isinstance(payload, dict) else None
    return str(value) if value else None


def _session(db: Database) -> AbstractAsyncContextManager[AsyncSession]:
    """Where the claim's and the resume's statements run: on PostgreSQL in autocommit (each
    statement is its own transaction; the BEGIN and COMMIT round trips are saved and the
    lease is committed before the batch is read), elsewhere in one transaction."""
    return db.one_statement_session() if db.dialect == "postgresql" else db.transaction()


async def claim(db: Database, consumer: Consumer, *, worker_id: str, claim_seconds: int,
                head: int, archived_through: int) -> tuple[Claimed, list[Event]] | None:
    """The consumer's state and its next batch, if this process won the consumer (free, or
    leased by this process already). Where the database returns an UPDATE's rows
    (PostgreSQL, SQLite) the claim answers the state itself: one statement fewer per
    consumer and round; elsewhere (MariaDB, MySQL) the state is read after it."""
    now = clock.now()
    name = consumer.name
    take = (update(_cs).where(
        _cs.c.name == name,
        or_(_cs.c.claimed_until.is_(None), _cs.c.claimed_until < now,
            _cs.c.claimed_by == worker_id),
        or_(_cs.c.retry_at.is_(None), _cs.c.retry_at <= now),
        _cs.c.position < head)
        .values(claimed_by=worker_id, claimed_until=now + timedelta(seconds=claim_seconds)))
    async with _session(db) as s:
        if db.engine.dialect.update_returning:
            row = (await s.execute(take.returning(*_CLAIMED))).first()
            if row is None:
                return None
            state = Claimed(*row)
        else:
            if (await s.execute(take)).rowcount != 1:  # type: ignore[attr-defined]
                return None
            got = (await s.execute(select(*_CLAIMED).where(_cs.c.name == name))).one()
            state = Claimed(*got)
        events = await read_events(s, after=state.position, through=head,
                                   limit=consumer.batch, archived_through=archived_through)
        return state, events


async def resume(db: Database, consumer: Consumer, *, worker_id: str, claim_seconds: int,
                 head: int, archived_through: int) -> tuple[Claimed, list[Event]] | None:
    """The consumer's state and its next batch, read without a write, when this process
    kept its lease from the last round and at least half of it is left; None otherwise (the
    caller claims). The batch is empty when the consumer is not behind `head`."""
    now = clock.now()
    async with _session(db) as s:
        row = (await s.execute(select(*_CLAIMED, _cs.c.claimed_until, _cs.c.retry_at).where(
            _cs.c.name == consumer.name, _cs.c.claimed_by == worker_id))).first()
        if row is None or row.claimed_until is None or row.attempts \
                or row.claimed_until - now < timedelta(seconds=claim_seconds / 2) \
                or (row.retry_at is not None and row.retry_at > now):
            return None
        state = Claimed(row.position, row.attempts, row.last_error, row.blocked_since)
        if state.position >= head:
            return state, []
        return state, await read_events(s, after=state.position, through=head,
                                        limit=consumer.batch,
                                        archived_through=archived_through)


async def handle(db: Database, consumer: Consumer, state: Claimed, events: list[Event]
                 ) -> Outcome:
    """Hand a claimed batch to the consumer: in one go through its batch handler when it can,
    else event by event, stopping at a failing event (retry with back-off, or dead letter
    once it has failed `max_attempts` times and the consumer goes on)."""
    out = Outcome(position=state.position, attempts=state.attempts,
                  error=state.last_error if state.attempts else None,
                  blocked_since=state.blocked_since)
    if await serve_batch(db, consumer, events, state.attempts):
        out.delivered = sum(1 for e in events if consumer.wants(e.topic))
        out.position, out.attempts, out.error, out.blocked_since = events[-1].seq, 0, None, None
        return out
    for event in events:
        if consumer.wants(event.topic):
            # its handler's log lines name the event and the order it is about
            with logctx.scope(event_id=event.id, topic=event.topic, consumer=consumer.name,
                              order_id=_order_of(event.payload)):
                try:
                    await consumer.handler(db, event)
                except Exception as exc:
                    if _failed(consumer, event, exc, out):
                        break
                else:
                    out.delivered += 1
        out.position, out.attempts, out.error, out.blocked_since = event.seq, 0, None, None
    return out


def _failed(consumer: Consumer, event: Event, exc: Exception, out: Outcome) -> bool:
    """Note a handler's failure in `out`; whether the consumer stays at the event (True) or
    sets it aside as a dead letter and goes on (False)."""
    out.attempts += 1
    out.error = short_error(exc)
    log.warning("events.handler_failed", consumer=consumer.name, event_id=event.id,
                topic=event.topic, attempts=out.attempts, error=out.error)
    if out.attempts < consumer.max_attempts or consumer.on_poison is Poison.STOP:
        out.retry_at = clock.now() + timedelta(seconds=backoff_seconds(out.attempts))
        if out.attempts >= consumer.max_attempts and out.blocked_since is None:
            out.blocked_since = clock.now()
            log.error("events.consumer_stopped", consumer=consumer.name, event_id=event.id,
                      topic=event.topic, seq=event.seq, attempts=out.attempts, error=out.error)
        return True
    out.dead.append(dead_letter_row(consumer.name, event, out.attempts, out.error,
                                    "EXHAUSTED", None))
    metrics.DEAD_LETTERS.labels(consumer.name).inc()
    log.error("events.dead_lettered", consumer=consumer.name, event_id=event.id,
              topic=event.topic, attempts=out.attempts, error=out.error)
    return False


async def serve_batch(db: Database, consumer: Consumer, events: list[Event],
                      attempts: int) -> bool:
    """The round in one go through the consumer's batch handler, when it has one, there
    is more than one event, and the first is not already failing (then one by one)."""
    wanted = [e for e in events if consumer.wants(e.topic)]
    if consumer.batch_handler is None or len(wanted) < 2 or attempts:
        return False
    with logctx.scope(consumer=consumer.name, topic=wanted[0].topic,
                      event_id=f"{wanted[0].id}..{wanted[-1].id}"):
        try:
            await consumer.batch_handler(db, wanted)
        except Exception as exc:
            log.warning("events.batch_failed", consumer=consumer.name, events=len(wanted),
                        error=short_error(exc))
            return False
    return True


async def settle(db: Database, consumer: Consumer, *, worker_id: str, out: Outcome,
                 keep_seconds: int = 0) -> bool:
    """Write the round's dead letters, the consumer's position and failure state, only while
    this process holds the lease; release the lease, or with `keep_seconds` (and no failure
    pending) renew it for that long. Answers whether the lease is kept. On PostgreSQL a lone
    UPDATE runs in autocommit (no BEGIN and COMMIT round trips)."""
    now = clock.now()
    keep = bool(keep_seconds) and out.retry_at is None and not out.attempts
    write = (update(_cs).where(_cs.c.name == consumer.name, _cs.c.claimed_by == worker_id)
             .values(position=out.position, attempts=out.attempts, last_error=out.error,
                     retry_at=out.retry_at, blocked_since=out.blocked_since,
                     claimed_by=worker_id if keep else None,
                     claimed_until=now + timedelta(seconds=keep_seconds) if keep else None,
                     updated_at=now))
    if not out.dead and db.dialect == "postgresql":
        async with db.one_statement() as conn:
            written = (await conn.execute(write)).rowcount
    else:
        async with db.transaction() as s:
            if out.dead:
                await s.execute(insert(DeadLetter), out.dead)
            written = (await s.execute(write)).rowcount  # type: ignore[attr-defined]
    if written != 1:  # the lease ran out and another process took the consumer
        log.warning("events.lease_lost", consumer=consumer.name)
        return False
    return keep


async def release(db: Database, worker_id: str) -> None:
    """Hand back every lease this process kept (shutdown): another process may take its
    consumers at once instead of when the leases run out."""
    async with db.transaction() as s:
        await s.execute(update(_cs).where(_cs.c.claimed_by == worker_id)
                        .values(claimed_by=None, claimed_until=None))


async def serve(db: Database, consumer: Consumer, *, worker_id: str, claim_seconds: int,
                head: int, archived_through: int, keep: bool = False
                ) -> tuple[int, int, int] | None:
    """One round for `consumer` if this process wins its claim (or, with `keep`, still holds
    the lease it kept). Answers (handler calls that succeeded, the position before, the
    position after), or None when the consumer was not this process's to serve."""
    claimed = None
    if keep:
        claimed = await resume(db, consumer, worker_id=worker_id,
                               claim_seconds=claim_seconds, head=head,
                               archived_through=archived_through)
        if claimed is not None and not claimed[1]:  # kept, and nothing past its position
            return 0, claimed[0].position, claimed[0].position
    if claimed is None:
        claimed = await claim(db, consumer, worker_id=worker_id, claim_seconds=claim_seconds,
                              head=head, archived_through=archived_through)
    if claimed is None:
        return None
    state, events = claimed
    out = await handle(db, consumer, state, events)
    await settle(db, consumer, worker_id=worker_id, out=out,
                 keep_seconds=claim_seconds if keep else 0)
    metrics.DELIVERED.labels(consumer.name).inc(out.delivered)
    metrics.LAG.labels(consumer.name).set(head - out.position)
    metrics.BLOCKED.labels(consumer.name).set(1 if out.blocked_since else 0)
    return out.delivered, state.position, out.position
