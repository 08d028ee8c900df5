"""A consumer's batch handler (the speaker announcements use one): a round's events go
through it in one call, in order; when it fails, the round is handled again event by event, so
a poisoned event is still dead-lettered on its own and the others are delivered once."""

from __future__ import annotations

from fulema.core.db import Database
from fulema.core.events import Consumer, DeadLetter, Dispatcher, Event, Poison, Start
from tests.integration.test_outbox import Recorder, count, publish_many


class BatchRecorder:
    def __init__(self, *, fail: bool = False) -> None:
        self.rounds: list[list[int]] = []
        self.fail = fail

    async def __call__(self, _db: Database, events: list[Event]) -> None:
        if self.fail:
            raise ConnectionError("the batch could not be written")
        self.rounds.append([int(e.payload["n"]) for e in events])


async def test_a_round_goes_through_the_batch_handler_in_one_call(db: Database) -> None:
    one_by_one, batches = Recorder(), BatchRecorder()
    d = Dispatcher(db, [Consumer(name="test.speaker", handler=one_by_one, batch_handler=batches,
                                 start=Start.BEGINNING)])
    await d.register()
    await publish_many(db, range(5))
    assert await d.drain() == 5
    assert batches.rounds == [[0, 1, 2, 3, 4]]
    assert one_by_one.got == []
    await publish_many(db, range(5, 6))  # a round of one: the plain handler
    await d.drain()
    assert one_by_one.got == [5]
    assert batches.rounds == [[0, 1, 2, 3, 4]]


async def test_a_failed_batch_is_handled_event_by_event(db: Database) -> None:
    one_by_one, batches = Recorder(fail_on={2}), BatchRecorder(fail=True)
    d = Dispatcher(db, [Consumer(name="test.speaker", handler=one_by_one, batch_handler=batches,
                                 on_poison=Poison.DEAD_LETTER, max_attempts=1,
                                 start=Start.BEGINNING)])
    await d.register()
    await publish_many(db, range(5))
    await d.drain()
    assert one_by_one.got == [0, 1, 3, 4]
    assert one_by_one.calls[2] == 1
    assert await count(db, DeadLetter) == 1
