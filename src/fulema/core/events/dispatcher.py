"""The dispatcher: numbers committed events, then serves each named consumer from its position.

Every process that runs it (`fulema serve` on the embedded default, `fulema worker`s in
production) is built with the same consumers by the composition root, so no process can take
an event away from a consumer it does not know: nothing is "delivered" globally, each consumer
only moves its own position.

Claims are conditional UPDATEs checked by row count, never SKIP LOCKED (TiDB; ARCHITECTURE.md):
one process at a time serves a consumer, which keeps its events in order; the sequencer runs
under its stream row's lock. Wake-ups: a commit that published wakes this process at once
(`Database.committed`); on PostgreSQL a NOTIFY wakes the other processes; otherwise they find
the events at their next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import logctx
from fulema.core.clock import clock
from fulema.core.db import EVENTS_CHANNEL, Database, retry_on_conflict, table_of
from fulema.core.events import metrics
from fulema.core.events.consumers import (
    Consumer,
    ConsumerState,
    DeadLetter,
    Poison,
    Start,
    check_unique,
    short_error,
)
from fulema.core.events.outbox import STREAM, ArchivedEvent, Event, EventStream, OutboxEvent
from fulema.core.ids import new_id, new_token
from fulema.core.signal import Signal

log = structlog.get_logger(__name__)

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


async def _number(s: AsyncSession, dialect: str, ids: list[str], first: int) -> None:
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
_cs = table_of(ConsumerState)
_CLAIMED = (_cs.c.position, _cs.c.attempts, _cs.c.last_error, _cs.c.blocked_since)


@dataclass(frozen=True)
class Claimed:
    """What serving a claimed consumer needs of its row (the columns of `_CLAIMED`)."""

    position: int
    attempts: int
    last_error: str | None
    blocked_since: datetime | None


def backoff_seconds(attempts: int) -> int:
    """1, 2, 4, ... seconds, at most five minutes: a consumer that is stopped at an event keeps
    trying (the cause is often a database or broker that comes back) without hammering."""
    return int(min(300, 2 ** max(0, attempts - 1)))


async def ensure_stream(db: Database) -> None:
    async with db.transaction() as s:
        if await s.get(EventStream, STREAM) is not None:
            return
    with contextlib.suppress(IntegrityError):
        async with db.transaction() as s:
            s.add(EventStream(name=STREAM, last_seq=0, archived_through=0))


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


def _order_of(payload: Any) -> str | None:
    value = payload.get("order_id") if isinstance(payload, dict) else None
    return str(value) if value else None


class Dispatcher:
    def __init__(self, db: Database, consumers: Sequence[Consumer] = (), *,
                 claim_seconds: int = 60, sequence_batch: int = 1000,
                 poll_seconds: float = 0.5, concurrency: int = 4,
                 linger_seconds: float = 0.0) -> None:
        self.db = db
        # How long `run_forever` lets events gather for a consumer that is not `urgent`
        # before serving it (0: at once, as `run_once` and `drain` always do).
        self.linger_seconds = max(0.0, linger_seconds)
        # At most this many consumers are served at once by `run_forever` (each holds a
        # connection while it works: a dozen at once would starve the requests' pool).
        self.concurrency = max(1, concurrency)
        self.consumers = check_unique(consumers)
        self.worker_id = f"{socket.gethostname()}-{new_token(6)}"
        self.claim_seconds = claim_seconds
        self.sequence_batch = sequence_batch
        self.poll_seconds = poll_seconds
        self._registered = False
        self._head = 0  # the newest seq this process has seen numbered
        self._archived = 0  # the archive boundary it has seen
        self._known: dict[str, int] = {}  # each consumer's position when last read here

    # -- registration -------------------------------------------------------------------
    async def register(self) -> None:
        """Create the stream row and a position for every consumer not seen before: 0 to
        backfill, the current head to start from now."""
        await ensure_stream(self.db)
        async with self.db.transaction() as s:
            known = set((await s.scalars(select(ConsumerState.name).where(
                ConsumerState.name.in_(list(self.consumers))))).all())
            head = (await s.get(EventStream, STREAM))
        for c in self.consumers.values():
            if c.name in known:
                continue
            now = clock.now()
            position = 0 if c.start is Start.BEGINNING else (head.last_seq if head else 0)
            with contextlib.suppress(IntegrityError):  # another process registered it first
                async with self.db.transaction() as s:
                    s.add(ConsumerState(name=c.name, position=position, start=c.start.value,
                                        attempts=0, created_at=now, updated_at=now))
            log.info("events.consumer_registered", consumer=c.name, start=c.start.value,
                     position=position)
        self._registered = True

    # -- sequencing ---------------------------------------------------------------------
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
            self._saw(await s.get(EventStream, STREAM))
        if waiting is None:
            return 0
        return await retry_on_conflict(self._sequence_locked)

    def _saw(self, stream: EventStream | None) -> None:
        """Remember the newest head and archive boundary seen (hints for the consumer loops:
        a stale one costs a wasted claim or a later wake, never a skipped event)."""
        if stream is not None:
            self._head = max(self._head, stream.last_seq)
            self._archived = max(self._archived, stream.archived_through)

    async def _sequence_locked(self) -> int:
        async with self.db.transaction() as s:
            stream = (await s.execute(select(EventStream).where(EventStream.name == STREAM)
                                      .with_for_update())).scalar_one()
            rows = (await s.execute(
                select(OutboxEvent.id, OutboxEvent.topic).where(OutboxEvent.seq.is_(None))
                .order_by(OutboxEvent.created_at, OutboxEvent.id).limit(self.sequence_batch)
            )).all()
            if not rows:
                return 0
            first = stream.last_seq + 1
            last = first + len(rows) - 1
            await _number(s, self.db.dialect, [r.id for r in rows], first)
            stream.last_seq = last
            passed = self._uninterested({r.topic for r in rows})
            if passed:
                await s.execute(_PASS_OVER, {"b_names": passed, "b_before": first - 1,
                                             "b_last": last, "b_now": clock.now()})
        # Only once committed: a consumer that claimed up to an uncommitted head would find
        # nothing, note it had seen that head, and sleep through the wake-up that follows.
        self._saw(stream)
        for name in passed:
            if self._known.get(name) == first - 1:  # it was exactly there: it is now at `last`
                self._known[name] = last
        return len(rows)

    def _uninterested(self, topics: set[str]) -> list[str]:
        """The consumers that want none of these topics."""
        return [name for name, c in self.consumers.items()
                if not any(c.wants(t) for t in topics)]

    # -- delivery -----------------------------------------------------------------------
    async def run_once(self) -> int:
        """Number what is new, then give each consumer what it has not had. Returns the
        number of handler calls that succeeded."""
        if not self._registered:
            await self.register()
        await self._sequence_all()
        if not self.consumers:
            return 0
        due, head, archived = await self._due_consumers()
        delivered = 0
        for name in due:
            delivered += (await self._serve_moved(self.consumers[name], head, archived))[0]
        return delivered

    async def _sequence_all(self, *, look_first: bool = True) -> None:
        while await self.sequence(look_first=look_first) >= self.sequence_batch:
            look_first = False  # a full batch: more are certainly waiting

    async def _due_consumers(self) -> tuple[list[str], int, int]:
        """The consumers behind the head, due and not claimed elsewhere, with the head and
        the archive boundary: the stream and every consumer's row read in one transaction
        (two statements, not two per consumer). A row that changes meanwhile is settled by
        the claim, which checks the same conditions."""
        now = clock.now()
        async with self.db.transaction() as s:
            stream = await s.get(EventStream, STREAM)
            states = (await s.scalars(select(ConsumerState).where(
                ConsumerState.name.in_(list(self.consumers))))).all()
        if stream is None:
            return [], 0, 0
        self._saw(stream)
        due = {st.name for st in states if self._note(st, stream.last_seq, now)}
        return ([name for name in self.consumers if name in due], stream.last_seq,
                stream.archived_through)

    def _note(self, state: ConsumerState, head: int, now: datetime) -> bool:
        """Remember a consumer's position and lag; whether it is behind, due and free."""
        self._known[state.name] = state.position
        metrics.LAG.labels(state.name).set(head - state.position)
        due = state.retry_at is None or state.retry_at <= now
        free = state.claimed_until is None or state.claimed_until < now
        return state.position < head and due and free


    async def _serve_if_due(self, name: str) -> tuple[int, bool]:
        """Serve one consumer if it is behind the head, due and not claimed elsewhere.
        Answers (handler calls that succeeded, whether its position moved)."""
        now = clock.now()
        async with self.db.transaction() as s:
            stream = await s.get(EventStream, STREAM)
            state = await s.get(ConsumerState, name)
        if stream is None or state is None:
            return 0, False
        self._saw(stream)
        if not self._note(state, stream.last_seq, now):
            return 0, False
        return await self._serve_moved(self.consumers[name], stream.last_seq,
                                       stream.archived_through)

    async def _claim(self, consumer: Consumer, head: int, archived_through: int
                     ) -> tuple[Claimed, list[Event]] | None:
        """The consumer's state and its next batch, if this process won the consumer (one
        transaction: the claim and the read). Where the database returns an UPDATE's rows
        (PostgreSQL, SQLite) the claim answers the state itself: one statement fewer per
        consumer and round; elsewhere (MariaDB, MySQL) the state is read after it."""
        now = clock.now()
        name = consumer.name
        claim = (update(_cs).where(
            _cs.c.name == name,
            or_(_cs.c.claimed_until.is_(None), _cs.c.claimed_until < now),
            or_(_cs.c.retry_at.is_(None), _cs.c.retry_at <= now),
            _cs.c.position < head)
            .values(claimed_by=self.worker_id,
                    claimed_until=now + timedelta(seconds=self.claim_seconds)))
        async with self.db.transaction() as s:
            if self.db.engine.dialect.update_returning:
                row = (await s.execute(claim.returning(*_CLAIMED))).first()
                if row is None:
                    return None
                state = Claimed(*row)
            else:
                if (await s.execute(claim)).rowcount != 1:  # type: ignore[attr-defined]
                    return None
                got = (await s.execute(select(*_CLAIMED).where(_cs.c.name == name))).one()
                state = Claimed(*got)
            events = await read_events(s, after=state.position, through=head,
                                       limit=consumer.batch, archived_through=archived_through)
            return state, events

    async def _serve(self, consumer: Consumer, head: int, archived_through: int) -> int:
        return (await self._serve_moved(consumer, head, archived_through))[0]

    async def _serve_moved(self, consumer: Consumer, head: int, archived_through: int
                           ) -> tuple[int, bool]:
        claimed = await self._claim(consumer, head, archived_through)
        if claimed is None:
            return 0, False
        state, events = claimed
        start = state.position
        position, attempts = state.position, state.attempts
        error: str | None = state.last_error if attempts else None
        retry_at, blocked_since = None, state.blocked_since
        dead: list[dict[str, Any]] = []
        delivered = 0
        if await self._serve_batch(consumer, events, attempts):
            delivered = sum(1 for e in events if consumer.wants(e.topic))
            position, attempts, error, blocked_since = events[-1].seq, 0, None, None
            events = []  # all handled: the per-event loop below has nothing left
        for event in events:
            if consumer.wants(event.topic):
                # its handler's log lines name the event and the order it is about
                with logctx.scope(event_id=event.id, topic=event.topic, consumer=consumer.name,
                                  order_id=_order_of(event.payload)):
                    try:
                        await consumer.handler(self.db, event)
                    except Exception as exc:
                        attempts += 1
                        error = short_error(exc)
                        log.warning("events.handler_failed", consumer=consumer.name,
                                    event_id=event.id, topic=event.topic, attempts=attempts,
                                    error=error)
                        if attempts < consumer.max_attempts or consumer.on_poison is Poison.STOP:
                            retry_at = clock.now() + timedelta(seconds=backoff_seconds(attempts))
                            if attempts >= consumer.max_attempts and blocked_since is None:
                                blocked_since = clock.now()
                                log.error("events.consumer_stopped", consumer=consumer.name,
                                          event_id=event.id, topic=event.topic, seq=event.seq,
                                          attempts=attempts, error=error)
                            break
                        dead.append(dead_letter_row(consumer.name, event, attempts, error,
                                                    "EXHAUSTED", None))
                        metrics.DEAD_LETTERS.labels(consumer.name).inc()
                        log.error("events.dead_lettered", consumer=consumer.name, event_id=event.id,
                                  topic=event.topic, attempts=attempts, error=error)
                    else:
                        delivered += 1
            position, attempts, error, blocked_since = event.seq, 0, None, None
        async with self.db.transaction() as s:
            if dead:
                await s.execute(insert(DeadLetter), dead)
            await s.execute(update(ConsumerState).where(
                ConsumerState.name == consumer.name, ConsumerState.claimed_by == self.worker_id
            ).values(position=position, attempts=attempts, last_error=error, retry_at=retry_at,
                     blocked_since=blocked_since, claimed_by=None, claimed_until=None,
                     updated_at=clock.now()).execution_options(synchronize_session=False))
        metrics.DELIVERED.labels(consumer.name).inc(delivered)
        metrics.LAG.labels(consumer.name).set(head - position)
        metrics.BLOCKED.labels(consumer.name).set(1 if blocked_since else 0)
        self._known[consumer.name] = position
        return delivered, position != start

    async def _serve_batch(self, consumer: Consumer, events: list[Event], attempts: int) -> bool:
        """The round in one go through the consumer's batch handler, when it has one, there
        is more than one event, and the first is not already failing (then one by one)."""
        wanted = [e for e in events if consumer.wants(e.topic)]
        if consumer.batch_handler is None or len(wanted) < 2 or attempts:
            return False
        with logctx.scope(consumer=consumer.name, topic=wanted[0].topic,
                          event_id=f"{wanted[0].id}..{wanted[-1].id}"):
            try:
                await consumer.batch_handler(self.db, wanted)
            except Exception as exc:
                log.warning("events.batch_failed", consumer=consumer.name, events=len(wanted),
                            error=short_error(exc))
                return False
        return True

    async def drain(self, max_rounds: int = 100) -> int:
        """Deliver until nothing is left that can be delivered now (tests and the demo)."""
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            total += n
            if n == 0 and not await self._behind_and_due():
                break
        return total

    async def _behind_and_due(self) -> bool:
        now = clock.now()
        async with self.db.transaction() as s:
            stream = await s.get(EventStream, STREAM)
            waiting = await s.scalar(select(OutboxEvent.id).where(OutboxEvent.seq.is_(None))
                                     .limit(1))
            states = (await s.scalars(select(ConsumerState).where(
                ConsumerState.name.in_(list(self.consumers))))).all()
        head = stream.last_seq if stream else 0
        return waiting is not None or any(
            st.position < head and (st.retry_at is None or st.retry_at <= now) for st in states)

    async def run_forever(self) -> None:
        """Serve until cancelled. One loop numbers the events, waking on commits in this
        process, NOTIFY from others (PostgreSQL), or every `poll_seconds`; each consumer has a
        loop of its own that it wakes, so a consumer is never kept waiting while another
        handles its round (the speakers do not wait for the ledger: docs/messaging.md), at
        most `concurrency` of them at once.

        Woken by a commit, the numbering loop goes straight to numbering (such a wake means
        something was published). Every `poll_seconds` without one it reads the stream and
        every consumer's state in one transaction (`_refresh`), so retries that came due and
        other processes' numbering are found with one read, not one per consumer."""
        listener = await self._listen()
        numbered = Signal()
        slots = asyncio.Semaphore(self.concurrency)
        loops = [asyncio.create_task(self._consumer_loop(name, numbered, slots))
                 for name in self.consumers]
        timed_out = True
        try:
            while True:
                seen = self.db.committed.generation
                try:
                    if not self._registered:
                        await self.register()
                    if not timed_out or await self._refresh():
                        await self._sequence_all(look_first=False)
                except Exception as exc:
                    log.error("events.round_failed", error=short_error(exc))
                numbered.notify()
                await self.db.committed.wait(seen, self.poll_seconds)
                timed_out = self.db.committed.generation == seen
        finally:
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def _refresh(self) -> bool:
        """Read the head and every consumer's state (one transaction), so each consumer loop
        knows whether it has work: a consumer behind the head, due and free is served at the
        next wake; one waiting for a retry or claimed elsewhere is not tried until it is.
        Answers whether events are waiting to be numbered."""
        now = clock.now()
        async with self.db.transaction() as s:
            waiting = await s.scalar(select(OutboxEvent.id).where(OutboxEvent.seq.is_(None))
                                     .limit(1))
            stream = await s.get(EventStream, STREAM)
            states = (await s.scalars(select(ConsumerState).where(
                ConsumerState.name.in_(list(self.consumers))))).all()
        self._saw(stream)
        head = self._head
        for st in states:
            metrics.LAG.labels(st.name).set(max(0, head - st.position))
            due = st.retry_at is None or st.retry_at <= now
            free = st.claimed_until is None or st.claimed_until < now
            self._known[st.name] = st.position if due and free else max(st.position, head)
        return waiting is not None

    async def _consumer_loop(self, name: str, numbered: Signal,
                             slots: asyncio.Semaphore) -> None:
        """One consumer: served again at once while it moves, else when the numbering loop
        next wakes it (after numbering, or after its periodic `_refresh`). Woken with nothing
        past its known position, it reads nothing: a dozen consumers cost no dozen reads per
        commit. A consumer that is not `urgent` first lets `linger_seconds` pass after a
        fresh wake, so the events of the next moments join its round."""
        consumer = self.consumers[name]
        linger = 0.0 if consumer.urgent else self.linger_seconds
        moved = False
        while True:
            seen = numbered.generation
            head = self._head
            try:
                if linger and not moved and head > self._known.get(name, -1):
                    await asyncio.sleep(linger)
                    seen, head = numbered.generation, self._head
                moved = False
                if head > self._known.get(name, -1):
                    # Straight to the claim, which checks that the consumer is behind, due
                    # and free (no read before it on the hot path).
                    async with slots:
                        _, moved = await self._serve_moved(consumer, head, self._archived)
                    if not moved:
                        self._known[name] = max(self._known.get(name, -1), head)
            except Exception as exc:
                moved = False
                log.error("events.round_failed", consumer=name, error=short_error(exc))
            if not moved:
                # the numbering loop wakes every loop at least every poll_seconds
                await numbered.wait(seen, 10 * self.poll_seconds)

    async def _listen(self) -> Any:
        """On PostgreSQL, a connection that LISTENs for other processes' commits."""
        if self.db.dialect != "postgresql":
            return None
        try:
            import asyncpg

            url = self.db.engine.url.set(drivername="postgresql")
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))
            await conn.add_listener(EVENTS_CHANNEL, lambda *_: self.db.committed.notify())
            return conn
        except Exception as exc:  # polling still delivers; say why the wake-up is missing
            log.warning("events.listen_failed", error=short_error(exc))
            return None


def dead_letter_row(consumer: str, event: Event, attempts: int, error: str | None,
                    reason: str, by: str | None) -> dict[str, Any]:
    return dict(id=new_id("dlq"), consumer=consumer, event_id=event.id, seq=event.seq,
                topic=event.topic, attempts=attempts, last_error=error, reason=reason,
                created_at=clock.now(), created_by=by, resolved_at=None, resolved_by=None)
