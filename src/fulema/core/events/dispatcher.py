"""The dispatcher: numbers committed events, then serves each named consumer from its position.

Every process that runs it (`fulema serve` on the embedded default, `fulema worker`s in
production) is built with the same consumers by the composition root, so no process can take
an event away from a consumer it does not know: nothing is "delivered" globally, each consumer
only moves its own position.

Its parts: `sequencer` (numbering, under the stream row's lock), `claims` (a consumer's lease,
its batch, the handler, dead letters, the position), `loops` (`run_forever`: the numbering loop
and one loop per consumer, linger, LISTEN) and `positions` (what this process knows of the
head and of each consumer, and the one read that refreshes it). Claims are conditional UPDATEs
checked by row count, never SKIP LOCKED (TiDB; ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import claims, loops
from fulema.core.events.claims import dead_letter_row, read_events
from fulema.core.events.consumers import Consumer, ConsumerState, Start, check_unique
from fulema.core.events.outbox import STREAM, EventStream
from fulema.core.events.positions import Positions
from fulema.core.events.sequencer import Sequencer, ensure_stream
from fulema.core.ids import new_token

log = structlog.get_logger(__name__)

__all__ = ["Dispatcher", "dead_letter_row", "ensure_stream", "read_events"]


class Dispatcher:
    def __init__(self, db: Database, consumers: Sequence[Consumer] = (), *,
                 claim_seconds: int = 60, sequence_batch: int = 1000,
                 poll_seconds: float = 0.5, concurrency: int = 4,
                 linger_seconds: float = 0.0, urgent_concurrency: int | None = None) -> None:
        self.db = db
        # How long `run_forever` lets events gather for a consumer that is not `urgent`
        # before serving it (0: at once, as `run_once` and `drain` always do).
        self.linger_seconds = max(0.0, linger_seconds)
        # At most this many consumers are served at once by `run_forever` (each holds a
        # connection while it works: a dozen at once would starve the requests' pool).
        self.concurrency = max(1, concurrency)
        self.consumers = check_unique(consumers)
        # The `urgent` consumers (someone waits for them: the speakers) have slots of their
        # own, so nothing read later (ledger, points, risk, billing...) can hold them back
        # (None: one per urgent consumer; they are few, each holds a connection while it works).
        self.urgent_concurrency = urgent_concurrency
        self.worker_id = f"{socket.gethostname()}-{new_token(6)}"
        self.claim_seconds = claim_seconds
        self.poll_seconds = poll_seconds
        self._registered = False
        # One round at a time per consumer in this process (`run_once` beside the loops): the
        # claim no longer keeps them apart once a lease is kept across rounds.
        self._serving: dict[str, asyncio.Lock] = {}
        self.positions = Positions(worker_id=self.worker_id)
        self.sequencer = Sequencer(db, self.consumers, self.positions, batch=sequence_batch)

    @property
    def sequence_batch(self) -> int:
        return self.sequencer.batch

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
        """Number the committed events that have no number yet (`Sequencer.sequence`)."""
        return await self.sequencer.sequence(look_first=look_first)

    async def _sequence_all(self, *, look_first: bool = True) -> None:
        while await self.sequence(look_first=look_first) >= self.sequence_batch:
            look_first = False  # a full batch: more are certainly waiting

    # -- delivery -----------------------------------------------------------------------
    async def run_once(self) -> int:
        """Number what is new, then give each consumer what it has not had, one after the
        other. Returns the number of handler calls that succeeded."""
        if not self._registered:
            await self.register()
        await self._sequence_all()
        if not self.consumers:
            return 0
        seen = await self.positions.look(self.db, self.consumers, waiting=False)
        if seen is None:
            return 0
        ready = {st.name for st in seen.states if seen.ready(st)}
        delivered = 0
        for name in [n for n in self.consumers if n in ready]:
            delivered += (await self._serve_moved(self.consumers[name], seen.head,
                                                  seen.archived))[0]
        return delivered

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
        """Events wait to be numbered, or a consumer is behind and due (leased or not)."""
        seen = await self.positions.look(self.db, self.consumers, waiting=True)
        if seen is None:
            return False
        return seen.waiting or any(st.position < seen.head and seen.due(st)
                                   for st in seen.states)

    async def _serve_moved(self, consumer: Consumer, head: int, archived_through: int
                           ) -> tuple[int, bool]:
        """One round for `consumer` if this process wins it, its lease released after it
        (`run_once`): (handler calls that succeeded, whether its position moved)."""
        return await self._serve_round(consumer, head, archived_through, keep=False)

    async def _serve_round(self, consumer: Consumer, head: int, archived_through: int, *,
                           keep: bool) -> tuple[int, bool]:
        """A round; with `keep` (the loops of `run_forever`) the lease is kept after a round
        without failure and resumed by the next (`claims.serve`)."""
        lock = self._serving.setdefault(consumer.name, asyncio.Lock())
        async with lock:
            served = await claims.serve(self.db, consumer, worker_id=self.worker_id,
                                        claim_seconds=self.claim_seconds, head=head,
                                        archived_through=archived_through, keep=keep)
        if served is None:
            return 0, False
        delivered, before, after = served
        self.positions.known[consumer.name] = after
        return delivered, after != before

    async def run_forever(self) -> None:
        """Serve until cancelled (`loops.run_forever`)."""
        await loops.run_forever(self)

    async def _refresh(self) -> bool:
        """The idle poll's look at the head and every consumer (one transaction), so each
        consumer loop knows whether it has work. Answers whether events are waiting to be
        numbered."""
        seen = await self.positions.look(self.db, self.consumers, waiting=True)
        return seen is not None and seen.waiting
