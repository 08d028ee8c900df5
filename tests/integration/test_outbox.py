"""The transactional outbox: events commit with the change or not at all, and two dispatchers
sharing one outbox never deliver an event twice at the same time."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select

from fulema.core.db import Database
from fulema.core.events import Dispatcher, Event, OutboxEvent, publish


async def test_event_is_not_published_when_the_transaction_rolls_back(db: Database) -> None:
    async def failing_use_case() -> None:
        async with db.transaction() as s:
            publish(s, "payment.succeeded", {"order_id": "ord_1"})
            raise RuntimeError("the use case failed after publishing")

    with pytest.raises(RuntimeError):
        await failing_use_case()
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(OutboxEvent)) == 0


async def test_two_dispatchers_deliver_each_event_once(db: Database) -> None:
    async with db.transaction() as s:
        for i in range(30):
            publish(s, "test.topic", {"n": i})
    seen: Counter[int] = Counter()

    async def handler(_db: Database, event: Event) -> None:
        seen[event.payload["n"]] += 1
        await asyncio.sleep(0)

    a, b = Dispatcher(db), Dispatcher(db)
    a.subscribe("test.topic", handler)
    b.subscribe("test.topic", handler)
    await asyncio.gather(a.drain(), b.drain())
    assert sorted(seen) == list(range(30))
    assert set(seen.values()) == {1}
    async with db.transaction() as s:
        pending = await s.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.delivered_at.is_(None)))
    assert pending == 0


async def test_failing_handler_is_retried_later_not_lost(db: Database) -> None:
    async with db.transaction() as s:
        publish(s, "flaky", {"n": 1})
    calls: list[int] = []

    async def flaky(_db: Database, event: Event) -> None:
        calls.append(event.payload["n"])
        if len(calls) == 1:
            raise ConnectionError("receiver down")

    d = Dispatcher(db)
    d.subscribe("flaky", flaky)
    assert await d.run_once() == 0
    async with db.transaction() as s:
        row = (await s.scalars(select(OutboxEvent))).one()
        assert row.delivered_at is None
        assert row.attempts == 1
        assert row.last_error is not None
        assert "receiver down" in row.last_error
    from datetime import timedelta

    from fulema.core.clock import clock

    clock.freeze()
    clock.advance(timedelta(seconds=5))
    assert await d.run_once() == 1
    assert calls == [1, 1]
