"""The transactional outbox and its named consumers, on every database.

What a bank's engineer checks: an event commits with its change or not at all; every consumer
gets every event once per round and in order, even one that committed late or that was
published before the consumer existed; a failing consumer holds back only itself and does
what it declared with a poisoned event (dead letter and go on, or stop and alert)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import (
    ArchivedEvent,
    Consumer,
    ConsumerState,
    DeadLetter,
    Dispatcher,
    Event,
    OutboxEvent,
    Poison,
    Start,
    admin,
    first_delivery,
    publish,
)
from fulema.core.events import metrics as event_metrics


class Recorder:
    """A consumer's handler that remembers what it got and can be told to fail."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.got: list[int] = []
        self.fail_on = fail_on or set()
        self.calls: Counter[int] = Counter()

    async def __call__(self, _db: Database, event: Event) -> None:
        n = int(event.payload["n"])
        self.calls[n] += 1
        if n in self.fail_on:
            raise ConnectionError(f"receiver refused event {n}")
        self.got.append(n)
        await asyncio.sleep(0)


async def publish_many(db: Database, ns: range, topic: str = "test.topic") -> None:
    """One transaction each, a millisecond apart (a frozen clock would make them simultaneous,
    and simultaneous commits have no order to keep)."""
    for n in ns:
        async with db.transaction() as s:
            publish(s, topic, {"n": n})
        clock.advance(timedelta(milliseconds=1))


async def count(db: Database, model: type) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_event_is_not_published_when_the_transaction_rolls_back(db: Database) -> None:
    async def failing_use_case() -> None:
        async with db.transaction() as s:
            publish(s, "payment.succeeded", {"order_id": "ord_1"})
            raise RuntimeError("the use case failed after publishing")

    with pytest.raises(RuntimeError):
        await failing_use_case()
    assert await count(db, OutboxEvent) == 0


async def test_every_consumer_gets_every_event_once_in_order(db: Database) -> None:
    await publish_many(db, range(30))
    ledger, points = Recorder(), Recorder()
    d = Dispatcher(db, [Consumer("ledger.postings", ledger, on_poison=Poison.STOP),
                        Consumer("points.earn", points)])
    await d.drain()
    assert ledger.got == list(range(30))
    assert points.got == list(range(30))
    async with db.transaction() as s:
        seqs = list(await s.scalars(select(OutboxEvent.seq).order_by(OutboxEvent.created_at,
                                                                     OutboxEvent.id)))
    assert seqs == list(range(1, 31))


async def test_two_processes_share_a_consumer_without_handing_an_event_out_twice(
        db: Database) -> None:
    await publish_many(db, range(40))
    seen = Recorder()
    consumer = Consumer("ledger.postings", seen, batch=7)
    a, b = Dispatcher(db, [consumer]), Dispatcher(db, [consumer])
    await asyncio.gather(a.drain(), b.drain(), a.drain())
    assert sorted(seen.got) == list(range(40))
    assert set(seen.calls.values()) == {1}
    assert seen.got == sorted(seen.got)  # one process at a time serves a consumer: in order


async def test_topics_filter_what_a_consumer_is_handed_but_its_position_covers_all(
        db: Database) -> None:
    await publish_many(db, range(3), topic="payment.succeeded")
    await publish_many(db, range(3, 5), topic="merchant.approved")
    payments = Recorder()
    await Dispatcher(db, [Consumer("risk.monitor", payments, topics=("payment.*",))]).drain()
    assert payments.got == [0, 1, 2]
    async with db.transaction() as s:
        state = await s.get(ConsumerState, "risk.monitor")
    assert state is not None
    assert state.position == 5


async def test_a_consumer_added_after_a_month_backfills_all_history_or_starts_now(
        db: Database) -> None:
    clock.freeze()
    for day in range(30):
        await publish_many(db, range(day * 2, day * 2 + 2))
        clock.advance(timedelta(days=1))
    old = Recorder()
    await Dispatcher(db, [Consumer("notify.webhooks", old)]).drain()
    # A month on, two new consumers register: one backfills, one starts from now.
    ledger, speaker = Recorder(), Recorder()
    d = Dispatcher(db, [Consumer("ledger.postings", ledger, start=Start.BEGINNING),
                        Consumer("messaging.speakers", speaker, start=Start.NOW)])
    await d.drain()
    assert ledger.got == list(range(60))
    assert speaker.got == []
    await publish_many(db, range(60, 62))
    await d.drain()
    assert ledger.got == list(range(62))
    assert speaker.got == [60, 61]


async def test_backfill_reads_the_archive_for_events_past_retention(db: Database) -> None:
    clock.freeze()
    await publish_many(db, range(10))
    await Dispatcher(db, [Consumer("notify.webhooks", Recorder())]).drain()
    clock.advance(timedelta(days=100))
    await publish_many(db, range(10, 12))
    assert await admin.archive(db, retention=timedelta(days=90)) == 10
    assert (await count(db, ArchivedEvent), await count(db, OutboxEvent)) == (10, 2)
    late = Recorder()
    await Dispatcher(db, [Consumer("ledger.postings", late, batch=4)]).drain()
    assert late.got == list(range(12))


async def test_archive_keeps_what_a_slow_consumer_has_not_had(db: Database) -> None:
    clock.freeze()
    await publish_many(db, range(6))
    slow = Recorder(fail_on={2})
    await Dispatcher(db, [Consumer("ledger.postings", slow, on_poison=Poison.STOP)]).drain()
    clock.advance(timedelta(days=100))
    await admin.archive(db, retention=timedelta(days=90))
    assert await count(db, ArchivedEvent) == 2  # events 0 and 1: the consumer is stuck at 2


async def test_dead_letter_consumer_sets_a_poisoned_event_aside_and_goes_on(
        db: Database) -> None:
    clock.freeze()
    await publish_many(db, range(5))
    points, ledger = Recorder(fail_on={2}), Recorder()
    d = Dispatcher(db, [Consumer("points.earn", points, max_attempts=3),
                        Consumer("ledger.postings", ledger, on_poison=Poison.STOP)])
    await d.drain()
    assert ledger.got == [0, 1, 2, 3, 4]  # the other consumer did not wait
    assert points.got == [0, 1]
    for _ in range(3):
        clock.advance(timedelta(minutes=10))
        await d.drain()
    assert points.calls[2] == 3
    assert points.got == [0, 1, 3, 4]
    letters = await admin.dead_letters(db, "points.earn")
    assert [(x["topic"], x["attempts"], x["reason"]) for x in letters] == [
        ("test.topic", 3, "EXHAUSTED")]
    assert "receiver refused event 2" in (letters[0]["last_error"] or "")


async def test_stop_consumer_holds_at_the_poisoned_event_and_raises_the_alarm(
        db: Database) -> None:
    clock.freeze()
    await publish_many(db, range(5))
    ledger, points = Recorder(fail_on={2}), Recorder()
    consumers = [Consumer("ledger.postings", ledger, on_poison=Poison.STOP, max_attempts=2),
                 Consumer("points.earn", points)]
    d = Dispatcher(db, consumers)
    for _ in range(4):
        await d.drain()
        clock.advance(timedelta(minutes=10))
    assert ledger.got == [0, 1]
    assert points.got == [0, 1, 2, 3, 4]
    status = {c["name"]: c for c in await admin.consumer_status(db, d.consumers)}
    assert status["ledger.postings"]["blocked"] is True
    assert status["ledger.postings"]["position"] == 2
    assert status["ledger.postings"]["lag"] == 3
    assert status["points.earn"]["lag"] == 0
    assert event_metrics.BLOCKED.labels("ledger.postings")._value.get() == 1
    assert await count(db, DeadLetter) == 0  # nothing is set aside without an operator
    # The cause is repaired: the consumer resumes at the same event, in order.
    ledger.fail_on.clear()
    await d.drain()
    assert ledger.got == [0, 1, 2, 3, 4]
    assert event_metrics.BLOCKED.labels("ledger.postings")._value.get() == 0


async def test_operator_skips_a_stuck_event_by_name_then_replays_it(db: Database) -> None:
    clock.freeze()
    await publish_many(db, range(4))
    ledger = Recorder(fail_on={1})
    d = Dispatcher(db, [Consumer("ledger.postings", ledger, on_poison=Poison.STOP)])
    await d.drain()
    skipped = await admin.skip_head(db, d.consumers, "ledger.postings", operator="ops.zhang")
    assert skipped["seq"] == 2
    assert skipped["by"] == "ops.zhang"
    await d.drain()
    assert ledger.got == [0, 2, 3]
    ledger.fail_on.clear()
    result = await admin.replay(db, d.consumers, "ledger.postings", operator="ops.li",
                                event_id=skipped["skipped_event_id"])
    assert result == {"consumer": "ledger.postings", "replayed": 1, "failed": []}
    assert ledger.got == [0, 2, 3, 1]
    letter = (await admin.dead_letters(db, "ledger.postings", include_resolved=True))[0]
    assert (letter["reason"], letter["created_by"], letter["resolved_by"]) == (
        "SKIPPED", "ops.zhang", "ops.li")


async def test_receipts_make_a_redelivered_event_a_no_op(db: Database) -> None:
    await publish_many(db, range(1))
    applied: list[str] = []

    async def once(database: Database, event: Event) -> None:
        async with database.transaction() as s:
            if await first_delivery(s, "ledger.postings", event.id):
                applied.append(event.id)

    d = Dispatcher(db, [Consumer("ledger.postings", once)])
    await d.drain()
    await admin.replay(db, d.consumers, "ledger.postings", operator="ops", from_seq=1, to_seq=1)
    assert len(applied) == 1


async def test_a_commit_wakes_the_dispatcher_without_waiting_for_a_poll(db: Database) -> None:
    got = asyncio.Event()

    async def speaker(_db: Database, _event: Event) -> None:
        got.set()

    d = Dispatcher(db, [Consumer("messaging.speakers", speaker, start=Start.NOW)],
                   poll_seconds=3600)
    await d.register()
    task = asyncio.create_task(d.run_forever())
    try:
        await asyncio.sleep(0.05)  # let it settle into its wait
        await publish_many(db, range(1))
        await asyncio.wait_for(got.wait(), timeout=10)  # an hour-long poll never came into it
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_slow_consumer_does_not_hold_back_another_while_running(db: Database) -> None:
    """`run_forever` serves each consumer in a loop of its own: the speakers hear a payment
    while the ledger is still busy with the one before (docs/events.md, Wake-ups)."""
    release, speaker_got = asyncio.Event(), Recorder()
    ledger_got: list[int] = []

    async def slow_ledger(_db: Database, event: Event) -> None:
        await release.wait()
        ledger_got.append(int(event.payload["n"]))

    d = Dispatcher(db, [Consumer("ledger.postings", slow_ledger, start=Start.NOW),
                        Consumer("messaging.speakers", speaker_got, start=Start.NOW)],
                   poll_seconds=3600)
    await d.register()
    task = asyncio.create_task(d.run_forever())
    try:
        await asyncio.sleep(0.05)
        await publish_many(db, range(2))
        for _ in range(200):
            if speaker_got.got == [0, 1]:
                break
            await asyncio.sleep(0.05)
        assert speaker_got.got == [0, 1]  # heard while the ledger is stuck at the first
        assert ledger_got == []
        release.set()
        for _ in range(200):
            if ledger_got == [0, 1]:
                break
            await asyncio.sleep(0.05)
        assert ledger_got == [0, 1]  # and the ledger, released, gets both, in order
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_consumer_that_wants_none_of_a_round_moves_with_the_head_unserved(
        db: Database) -> None:
    """Numbering moves a caught-up consumer past events it does not want in the same
    transaction; one still behind (here: stopped at a failing event) is not moved past
    anything, and gets its event once it recovers."""
    metrics_got, failing = Recorder(), Recorder(fail_on={0})
    bystander = Recorder()
    d = Dispatcher(db, [Consumer("ops.metrics", metrics_got, topics=("payment.*",)),
                        Consumer("ledger.postings", failing, topics=("payment.succeeded",),
                                 on_poison=Poison.STOP),
                        Consumer("onboarding.sync", bystander, topics=("merchant.*",))])
    await d.register()
    await publish_many(db, range(1), topic="payment.succeeded")
    await d.drain()  # the ledger fails at event 1 and stays before it
    await publish_many(db, range(1, 3), topic="payment.paying")
    assert await d.sequence() == 2  # numbered, nobody served yet

    async with db.transaction() as s:
        pos = dict((await s.execute(select(ConsumerState.name, ConsumerState.position))).all())
    assert pos["onboarding.sync"] == 3  # wanted none of 1..3: moved with the head
    assert pos["ledger.postings"] == 0  # behind: left where it stopped
    assert pos["ops.metrics"] == 1  # wants payment.paying: serves 2..3 itself
    assert bystander.calls == Counter()

    failing.fail_on.clear()
    clock.advance(timedelta(seconds=5))  # its retry comes due
    await d.drain()
    assert failing.got == [0]
    assert metrics_got.got == [0, 1, 2]
    async with db.transaction() as s:
        assert set((await s.scalars(select(ConsumerState.position))).all()) == {3}


async def test_a_round_costs_the_same_statements_however_many_consumers_want_nothing(
        db: Database) -> None:
    """A payment event wakes every consumer loop; those that want none of it must cost
    nothing (before: a claim, a read and a position update each, ~4 statements per consumer
    per event at low rates, most of a create's database work)."""
    from fulema.core.db import StatementCounter

    async def quiet() -> None:
        """Until no statement has been sent for a tenth of a second."""
        last = -1
        while StatementCounter.total != last:
            last = StatementCounter.total
            await asyncio.sleep(0.1)

    # as the composition root does where the dispatcher runs in the publishing process (else
    # PostgreSQL's echo of our own NOTIFY may wake the numbering loop a second time)
    db.notify_other_processes = False

    async def one_event(bystanders: int, n: int) -> int:
        got = Recorder()
        consumers = [Consumer(f"t{n}.speaker", got, topics=("payment.succeeded",),
                              start=Start.NOW),
                     *[Consumer(f"t{n}.by{i}", Recorder(), topics=("merchant.*",),
                                start=Start.NOW) for i in range(bystanders)]]
        d = Dispatcher(db, consumers, poll_seconds=3600)
        await d.register()
        task = asyncio.create_task(d.run_forever())
        try:
            await quiet()  # its first look at every consumer's state is done
            before = StatementCounter.total
            await publish_many(db, range(n, n + 1), topic="payment.succeeded")
            for _ in range(400):
                if got.got:
                    break
                await asyncio.sleep(0.01)
            assert got.got == [n]
            await quiet()  # anything the bystanders would still do
            return StatementCounter.total - before
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    assert await one_event(1, 0) == await one_event(10, 1)


async def test_an_urgent_consumer_is_served_at_once_the_others_after_their_linger(
        db: Database) -> None:
    """The speaker announces at once; the ledger lets the events of the next moments gather
    and takes them in one round (one claim, one read and one position update for all)."""
    speaker = Recorder()
    rounds: list[list[int]] = []

    async def ledger_batch(_db: Database, events: list[Event]) -> None:
        rounds.append([int(e.payload["n"]) for e in events])

    async def ledger_one(_db: Database, event: Event) -> None:
        rounds.append([int(event.payload["n"])])

    d = Dispatcher(db, [Consumer("messaging.speaker", speaker, start=Start.NOW, urgent=True),
                        Consumer("ledger.postings", ledger_one, batch_handler=ledger_batch,
                                 start=Start.NOW)],
                   poll_seconds=3600, linger_seconds=3.0)
    await d.register()
    task = asyncio.create_task(d.run_forever())
    try:
        await asyncio.sleep(0.05)
        await publish_many(db, range(5))  # five payments in quick succession
        for _ in range(400):
            if len(speaker.got) == 5:
                break
            await asyncio.sleep(0.01)
        assert speaker.got == [0, 1, 2, 3, 4]
        assert rounds == []  # the ledger is still letting events gather
        for _ in range(1000):
            if rounds:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert rounds == [[0, 1, 2, 3, 4]]  # all five in one round
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_an_event_that_commits_late_is_not_skipped(backend: str, tmp_path: object) -> None:
    """Ids and created_at are made before commit; a transaction that began first may commit
    last. SQLite has one writer, so commits cannot interleave there: PostgreSQL and MariaDB."""
    from tests.conftest import open_database

    db = await open_database(backend, tmp_path)  # type: ignore[arg-type]
    try:
        got = Recorder()
        d = Dispatcher(db, [Consumer("ledger.postings", got)])
        async with db.transaction() as slow:
            publish(slow, "test.topic", {"n": 0})  # made first ...
            await slow.flush()
            await publish_many(db, range(1, 3))  # ... but these commit first
            await d.drain()
            assert got.got == [1, 2]
        await d.drain()  # ... and it commits last: still delivered
        assert got.got == [1, 2, 0]
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_notify_wakes_another_process(backend: str, tmp_path: object) -> None:
    from tests.conftest import open_database

    publisher_db = await open_database(backend, tmp_path)  # type: ignore[arg-type]
    worker_db = Database(publisher_db.url)
    got = asyncio.Event()

    async def speaker(_db: Database, _event: Event) -> None:
        got.set()

    d = Dispatcher(worker_db, [Consumer("messaging.speakers", speaker, start=Start.NOW)],
                   poll_seconds=3600)
    await d.register()
    task = asyncio.create_task(d.run_forever())
    try:
        await asyncio.sleep(0.3)  # LISTEN is in place
        await publish_many(publisher_db, range(1))
        await asyncio.wait_for(got.wait(), timeout=10)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await worker_db.dispose()
        await publisher_db.dispose()
