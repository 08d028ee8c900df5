"""The sequencer: gives every committed event the next number of the one stream, under the
stream row's lock, and moves the consumers that want none of a round past it.

A number goes only to a committed event and is never reused, so the numbers a reader sees
always form an unbroken prefix 1..head (docs/events.md, "How"). One process at a time numbers
(the lock); any number of processes may try.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import clock
from fulema.core.db import Database, retry_on_conflict, table_of
from fulema.core.events.consumers import Consumer, ConsumerState
from fulema.core.events.outbox import STREAM, EventStream, OutboxEvent
from fulema.core.events.positions import Positions

_SET_SEQ = (update(table_of(OutboxEvent))
            .where(table_of(OutboxEvent).c.id == bindparam("b_id"))
            .values(seq=bindparam("b_seq")))

# Consumers that want none of a numbering round's topics and had handled everything before it
# are moved past the round in the numbering transaction itself: one UPDATE for all of them,
# instead of a claim, a read and a position update per consumer per round (at a few events a
# second, with a dozen consumers, that was ~57 statements and 29 transactions per event, most
# for consumers that wanted nothing: bench.hidden --publish-rate 16). A consumer that was behind
# (`position` not exactly before the round) is left alone and passes over the round itself.
_csc = table_of(ConsumerState).c
_PASS_OVER = (update(table_of(ConsumerState))
              .where(_csc.name.in_(bindparam("b_names", expanding=True)),
                     _csc.position == bindparam("b_before"))
              .values(position=bindparam("b_last"),
                      updated_at=bindparam("b_now", type_=_csc.updated_at.type)))
# Events numbered by one statement on the MySQL protocol (its CASE has two parameters each).
_NUMBER_CHUNK = 500


async def number_events(s: AsyncSession, dialect: str, ids: list[str], first: int) -> None:
    """Give `ids` the numbers `first`, `first + 1`, ... in their order. On PostgreSQL (and
    SQLite) one UPDATE executemany, which asyncpg pipelines. The MySQL-protocol drivers would
    send that as one UPDATE per event (aiomysql batches only INSERT ... VALUES), each a round
    trip made while the stream's row is locked: the sequencer's rate would be one event per
    round trip (1-2 ms on TiDB or TDSQL; docs/scaling.md). There a chunk of events is numbered
    by one UPDATE with a CASE."""
    if dialect not in {"mysql", "mariadb"}:
        await s.execute(_SET_SEQ, [{"b_id": i, "b_seq": first + n} for n, i in enumerate(ids)])
        return
    events = table_of(OutboxEvent)
    for start in range(0, len(ids), _NUMBER_CHUNK):
        chunk = ids[start:start + _NUMBER_CHUNK]
        numbers = {i: first + start + n for n, i in enumerate(chunk)}
        await s.execute(update(events).where(events.c.id.in_(chunk))
                        .values(seq=case(numbers, value=events.c.id)))


async def ensure_stream(db: Database) -> None:
    """The stream's row (the counter and the sequencer's lock), made by the first process."""
    async with db.transaction() as s:
        if await s.get(EventStream, STREAM) is not None:
            return
    with contextlib.suppress(IntegrityError):
        async with db.transaction() as s:
            s.add(EventStream(name=STREAM, last_seq=0, archived_through=0))


class Sequencer:
    """Numbers a process's view of the stream. `consumers` is the dispatcher's own mapping
    (shared, so a consumer added to or taken from it is seen here)."""

    def __init__(self, db: Database, consumers: dict[str, Consumer], positions: Positions,
                 *, batch: int) -> None:
        self.db = db
        self.consumers = consumers
        self.positions = positions
        self.batch = batch

    async def sequence(self, *, look_first: bool = True) -> int:
        """Number the committed events that have no number yet. Returns how many.

        `look_first=False` goes straight to the numbering under the stream row's lock: for a
        wake-up that a commit with events caused, where the unlocked look ("anything
        waiting?", a transaction of its own) would only delay the events it is sure to find.
        Idle polls look first, so they never take the lock for nothing."""
        if not look_first:
            return await retry_on_conflict(self._sequence_locked)
        async with self.db.transaction() as s:
            waiting = await s.scalar(select(OutboxEvent.id).where(OutboxEvent.seq.is_(None))
                                     .limit(1))
            self.positions.saw(await s.get(EventStream, STREAM))
        if waiting is None:
            return 0
        return await retry_on_conflict(self._sequence_locked)

    async def _sequence_locked(self) -> int:
        async with self.db.transaction() as s:
            stream = (await s.execute(select(EventStream).where(EventStream.name == STREAM)
                                      .with_for_update())).scalar_one()
            rows = (await s.execute(
                select(OutboxEvent.id, OutboxEvent.topic).where(OutboxEvent.seq.is_(None))
                .order_by(OutboxEvent.created_at, OutboxEvent.id).limit(self.batch)
            )).all()
            if not rows:
                return 0
            first = stream.last_seq + 1
            last = first + len(rows) - 1
            await number_events(s, self.db.dialect, [r.id for r in rows], first)
            stream.last_seq = last
            passed = self.uninterested({r.topic for r in rows})
            if passed:
                await s.execute(_PASS_OVER, {"b_names": passed, "b_before": first - 1,
                                             "b_last": last, "b_now": clock.now()})
        # Only once committed: a consumer that claimed up to an uncommitted head would find
        # nothing, note it had seen that head, and sleep through the wake-up that follows.
        self.positions.saw(stream)
        known = self.positions.known
        for name in passed:
            if known.get(name) == first - 1:  # it was exactly there: it is now at `last`
                known[name] = last
        return len(rows)

    def uninterested(self, topics: set[str]) -> list[str]:
        """The consumers that want none of these topics."""
        return [name for name, c in self.consumers.items()
                if not any(c.wants(t) for t in topics)]
