"""What one dispatcher process knows of the stream and of its consumers' positions, and the
one read that refreshes it.

The head, the archive boundary and each consumer's position are hints for the consumer loops:
a stale one costs a wasted claim or a later wake, never a skipped event (the claim checks the
row itself). They are refreshed by `look`: the stream and every consumer's row (and, when
asked, whether events wait to be numbered) read in one transaction, whatever the number of
consumers: the idle poll of `run_forever`, each `run_once` and `drain`'s "anything left?" use
it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import metrics
from fulema.core.events.consumers import ConsumerState
from fulema.core.events.outbox import STREAM, EventStream, OutboxEvent


@dataclass(frozen=True)
class Look:
    """One read of the stream and of the consumers' rows, as of `now`."""

    head: int
    archived: int
    waiting: bool  # committed events without a number (only when asked; else False)
    states: tuple[ConsumerState, ...]
    now: datetime
    mine: str = ""  # this process's worker id: a lease it kept is no obstacle to it

    def due(self, state: ConsumerState) -> bool:
        """Not waiting for a retry's back-off."""
        return state.retry_at is None or state.retry_at <= self.now

    def free(self, state: ConsumerState) -> bool:
        """Not leased by another process right now."""
        return (state.claimed_until is None or state.claimed_until < self.now
                or (bool(self.mine) and state.claimed_by == self.mine))

    def ready(self, state: ConsumerState) -> bool:
        """Behind the head, due and free: a claim would win it."""
        return state.position < self.head and self.due(state) and self.free(state)


@dataclass
class Positions:
    """This process's hints: the newest head and archive boundary seen, and each consumer's
    position when last read or served here."""

    worker_id: str = ""
    head: int = 0
    archived: int = 0
    known: dict[str, int] = field(default_factory=dict)

    def saw(self, stream: EventStream | None) -> None:
        """Remember the newest head and archive boundary seen (they only grow)."""
        if stream is not None:
            self.head = max(self.head, stream.last_seq)
            self.archived = max(self.archived, stream.archived_through)

    async def look(self, db: Database, names: Iterable[str], *, waiting: bool) -> Look | None:
        """Read the stream, every named consumer's row and (with `waiting`) whether events
        wait to be numbered, in one transaction (two or three statements, not two per
        consumer); note the head, each consumer's lag, and where each consumer's loop should
        consider it to be: at its position if a claim would win it, else at the head (one
        waiting for a retry or leased by another process is not tried until the next look). None
        before the stream exists."""
        now = clock.now()
        async with db.transaction() as s:
            unnumbered = None
            if waiting:
                unnumbered = await s.scalar(select(OutboxEvent.id)
                                            .where(OutboxEvent.seq.is_(None)).limit(1))
            stream = await s.get(EventStream, STREAM)
            states = tuple((await s.scalars(select(ConsumerState).where(
                ConsumerState.name.in_(list(names))))).all())
        if stream is None:
            return None
        self.saw(stream)
        seen = Look(head=stream.last_seq, archived=stream.archived_through,
                    waiting=unnumbered is not None, states=states, now=now,
                    mine=self.worker_id)
        for st in states:
            metrics.LAG.labels(st.name).set(max(0, self.head - st.position))
            usable = seen.due(st) and seen.free(st)
            self.known[st.name] = st.position if usable else max(st.position, self.head)
        return seen
