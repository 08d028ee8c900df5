"""What the batched-consumer tests share: traffic as (topic, payload) pairs, the event-by-event
path, the dispatcher path with a watched batch handler, and a wipe between the two. Both test
modules compare the two paths row by row, so they must drive them the same way."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import (
    Consumer,
    DeadLetter,
    Dispatcher,
    Event,
    EventReceipt,
    OutboxEvent,
    publish,
)

NOON = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
Snapshot = dict[str, list[tuple[Any, ...]]]
Topics = list[tuple[str, dict[str, Any]]]


def events_of(traffic: Topics, prefix: str = "evt") -> list[Event]:
    return [Event(id=f"{prefix}-{i}", topic=t, payload=p) for i, (t, p) in enumerate(traffic)]


async def one_by_one(db: Database, handle: Callable[[Database, Event], Awaitable[None]],
                     traffic: Topics) -> None:
    """The event-by-event path: each event handled on its own, in order."""
    for event in events_of(traffic):
        await handle(db, event)


async def through_dispatcher(db: Database, consumer: Consumer, traffic: Topics,
                             name: str) -> list[int]:
    """Publish the traffic (one commit each, in order) and drain it through a fresh consumer
    whose batch handler is watched; returns the size of each round it was given."""
    sizes: list[int] = []
    batch = consumer.batch_handler
    assert batch is not None

    async def watched(d: Database, events: list[Event]) -> None:
        sizes.append(len(events))
        await batch(d, events)

    for topic, payload in traffic:
        async with db.transaction() as s:
            publish(s, topic, payload)
        clock.advance(timedelta(milliseconds=1))
    d = Dispatcher(db, [dataclasses.replace(consumer, name=name, batch_handler=watched,
                                            max_attempts=1)])
    await d.register()
    await d.drain()
    return sizes


async def wipe(db: Database, models: list[type]) -> None:
    """Delete `models`' rows and the event tables', so the second path starts where the first did."""
    async with db.transaction() as s:
        for model in [*models, EventReceipt, DeadLetter, OutboxEvent]:
            await s.execute(delete(model))
