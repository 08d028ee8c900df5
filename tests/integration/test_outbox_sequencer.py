"""The sequencer numbers committed events 1, 2, 3 ... in (created_at, id) order, in rounds of
up to 1,000, and on a MySQL-protocol database a round costs a few round trips, not one per
event: it holds the stream's row lock meanwhile, so a round trip per event would cap every
consumer's rate at one event per round trip on TiDB or TDSQL (docs/scaling.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events.dispatcher import Dispatcher
from fulema.core.events.outbox import STREAM, EventStream, OutboxEvent
from fulema.core.ids import new_id

EVENTS = 1_200  # more than one round (1,000) and more than one statement's chunk (500)


async def test_committed_events_get_an_unbroken_sequence_in_their_order(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = Dispatcher(db)
    await dispatcher.register()
    start = clock.now()
    # three transactions, the later ones holding the earlier events: the order is created_at's
    for part in (2, 0, 1):
        async with db.transaction() as s:
            s.add_all([OutboxEvent(id=new_id("evt"), topic="test.sequenced", payload={"n": i},
                                   created_at=start + timedelta(milliseconds=i))
                       for i in range(part * 400, part * 400 + 400)])
    queries = [0]
    if db.dialect in {"mysql", "mariadb"}:
        import aiomysql.cursors

        query = aiomysql.cursors.Cursor._query

        async def counted(self: Any, q: str) -> Any:
            queries[0] += 1
            return await query(self, q)

        monkeypatch.setattr(aiomysql.cursors.Cursor, "_query", counted)

    assert await dispatcher.sequence() == 1_000
    first_round = queries[0]
    assert await dispatcher.sequence() == 200
    assert await dispatcher.sequence() == 0

    async with db.transaction() as s:
        rows = (await s.execute(select(OutboxEvent.payload, OutboxEvent.seq)
                                .order_by(OutboxEvent.created_at, OutboxEvent.id))).all()
        stream = await s.get(EventStream, STREAM)
    assert [seq for _, seq in rows] == list(range(1, EVENTS + 1))
    assert [p["n"] for p, _ in rows] == list(range(EVENTS))
    assert stream is not None
    assert stream.last_seq == EVENTS
    if db.dialect in {"mysql", "mariadb"}:
        # the look, the lock, the read, two numbering statements, the stream's row, commit
        assert first_round <= 10, first_round
