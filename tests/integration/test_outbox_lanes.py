"""Who waits for whom in `Dispatcher.run_forever`, on every database.

What an engineer checks: the urgent consumers (the cloud speakers: a merchant is listening)
are served while the consumers read later hold every one of their slots; a consumer that
keeps moving keeps its lease across rounds (one write per round, not a claim and a release),
and another process takes it over only once that lease has run out, without handing an event
out twice or skipping one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import Consumer, ConsumerState, Dispatcher, Event, Start
from tests.integration.test_outbox import Recorder, publish_many


async def until(done: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)


async def test_an_urgent_consumer_is_served_while_slower_consumers_hold_every_slot(
        db: Database) -> None:
    """Two slow consumers take both of the dispatcher's slots (their handlers hang, as a
    ledger waiting on a lock would); a payment must still reach the speaker."""
    release = asyncio.Event()
    busy: set[str] = set()

    def hanging(name: str) -> Callable[[Database, Event], Any]:
        async def handler(_db: Database, _event: Event) -> None:
            busy.add(name)
            await release.wait()
        return handler

    slow = [f"ledger.slow{i}" for i in range(2)]
    speaker = Recorder()
    d = Dispatcher(db, [*[Consumer(n, hanging(n), topics=("ledger.*",), start=Start.NOW)
                          for n in slow],
                        Consumer("messaging.speaker", speaker, topics=("payment.succeeded",),
                                 start=Start.NOW, urgent=True)],
                   poll_seconds=3600, concurrency=2)
    await d.register()
    task = asyncio.create_task(d.run_forever())
    try:
        await asyncio.sleep(0.05)
        await publish_many(db, range(1), topic="ledger.entry")
        await until(lambda: busy == set(slow))
        assert busy == set(slow)  # every slot is taken
        await publish_many(db, range(1, 2), topic="payment.succeeded")
        await until(lambda: speaker.got == [1])
        assert speaker.got == [1]  # heard while the slow ones still hold their slots
        assert not release.is_set()
    finally:
        release.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@contextmanager
def consumer_writes(db: Database) -> Iterator[list[str]]:
    """The statements that write `event_consumers` (claims, positions, releases)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE EVENT_CONSUMERS"):
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)


async def test_a_consumer_that_keeps_moving_keeps_its_lease_and_a_survivor_takes_over_after_it(
        db: Database) -> None:
    got = Recorder()
    consumer = Consumer("ledger.postings", got, start=Start.NOW)
    first, survivor = Dispatcher(db, [consumer]), Dispatcher(db, [consumer])
    await first.register()
    await publish_many(db, range(2))
    await first.sequence()
    with consumer_writes(db) as writes:
        # two rounds as run_forever's loop serves them: a claim, then a resume
        assert await first._serve_round(consumer, 1, 0, keep=True) == (1, True)
        assert await first._serve_round(consumer, 2, 0, keep=True) == (1, True)
    assert got.got == [0, 1]
    assert len(writes) == 3  # the claim, and one position update per round: no release
    async with db.transaction() as s:
        row = await s.get(ConsumerState, "ledger.postings")
        assert row is not None
        assert (row.claimed_by, row.position) == (first.worker_id, 2)

    # The first process dies holding the lease: the survivor does not serve the consumer
    # until the lease has run out, then goes on from where the first stopped.
    await publish_many(db, range(2, 4))
    assert await survivor.run_once() == 0
    assert got.got == [0, 1]
    clock.advance(timedelta(seconds=first.claim_seconds + 1))
    assert await survivor.drain() == 2
    assert got.got == [0, 1, 2, 3]
    assert set(got.calls.values()) == {1}


async def position(db: Database) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(ConsumerState.position)
                                  .where(ConsumerState.name == "ledger.postings")) or 0)


async def test_a_lease_is_handed_back_when_run_forever_ends(db: Database) -> None:
    got = Recorder()
    consumer = Consumer("ledger.postings", got, start=Start.NOW)
    d = Dispatcher(db, [consumer], poll_seconds=3600)
    await d.register()
    task = asyncio.create_task(d.run_forever())
    try:
        await asyncio.sleep(0.05)
        await publish_many(db, range(1))
        for _ in range(1000):  # handled, and its position written (a round cut short by
            if await position(db) == 1:  # the shutdown is handed out again: at least once)
                break
            await asyncio.sleep(0.01)
        assert got.got == [0]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with db.transaction() as s:
        claimed_by = await s.scalar(select(ConsumerState.claimed_by)
                                    .where(ConsumerState.name == "ledger.postings"))
    assert claimed_by is None  # another process may take the consumer at once
    await publish_many(db, range(1, 2))
    assert await Dispatcher(db, [consumer]).drain() == 1
    assert got.got == [0, 1]
