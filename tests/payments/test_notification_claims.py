"""Taking due merchant notifications (payments/notification_claims.py), on every database: two
workers claiming at once share the due rows without overlap, a claimed row waits until its
claim runs out, an attempt and the row's new state are written together, a resent
notification keeps the moment it was first delivered, and on PostgreSQL a round costs one
statement for its claims and one per delivery."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.payments.models import Notification, NotificationAttempt
from fulema.payments.notification_claims import (
    CLAIM_SECONDS,
    DELIVERED,
    FAILED,
    PENDING,
    Outcome,
    claim_due,
    claim_until,
    record_attempt,
)

SCHEDULE = [15, 30]


async def pending(db: Database, n: int, *, prefix: str = "ntf_t") -> list[str]:
    now = clock.now()
    ids = [f"{prefix}{i:03d}" for i in range(n)]
    async with db.transaction() as s:
        s.add_all(Notification(id=i, event_id=f"evt_{i}", merchant_id="mch_1", app_id="app_1",
                               order_id=f"ord_{i}", kind="payment.succeeded",
                               url="https://merchant.example/notify", body="{}",
                               status=PENDING, attempts=0, next_attempt_at=now, created_at=now)
                  for i in ids)
    return ids


async def row(db: Database, notification_id: str) -> Notification:
    async with db.transaction() as s:
        found = await s.get(Notification, notification_id)
        assert found is not None
        return found


async def attempts_of(db: Database, notification_id: str) -> list[NotificationAttempt]:
    async with db.transaction() as s:
        return list((await s.scalars(select(NotificationAttempt).where(
            NotificationAttempt.notification_id == notification_id)
            .order_by(NotificationAttempt.at, NotificationAttempt.id))).all())


def outcome(ok: bool, *, give_up: bool = False) -> Outcome:
    return Outcome(http_status=200 if ok else 500, ok=ok,
                   error=None if ok else "not acknowledged", give_up=give_up, duration_ms=3)


async def test_two_workers_claiming_at_once_share_the_due_rows_without_overlap(
        db: Database) -> None:
    ids = await pending(db, 30)
    other = Database(str(db.engine.url.render_as_string(hide_password=False)))
    try:
        a, b = await asyncio.gather(claim_due(db, limit=20, concurrency=4),
                                    claim_due(other, limit=20, concurrency=4))
    finally:
        await other.dispose()
    taken_a, taken_b = {c.id for c in a}, {c.id for c in b}
    assert not taken_a & taken_b  # no notification is posted by two workers
    assert len(taken_a) <= 20
    assert len(taken_b) <= 20
    # whatever is left is taken by the next round, and nothing twice
    rest = {c.id for c in await claim_due(db, limit=50, concurrency=4)}
    assert taken_a | taken_b | rest == set(ids)
    assert not (taken_a | taken_b) & rest
    assert await claim_due(db, limit=50, concurrency=4) == []  # all held now
    claimed = next(c for c in a + b)
    assert (claimed.url, claimed.app_id, claimed.attempts) == (
        "https://merchant.example/notify", "app_1", 0)


async def test_a_claim_lasts_the_rounds_deliveries_then_another_worker_may_retry(
        db: Database) -> None:
    clock.freeze()
    [nid] = await pending(db, 1)
    [claimed] = await claim_due(db, limit=50, concurrency=16)
    assert claimed.id == nid
    held = claim_until(clock.now(), limit=50, concurrency=16)
    # 50 POSTs 16 at a time are 4 waves of at most 10 s each, on top of the base claim
    assert held - clock.now() == timedelta(seconds=CLAIM_SECONDS + 40)
    clock.advance(held - clock.now())
    assert await claim_due(db, limit=50, concurrency=16) == []  # not yet: the claim holds
    clock.advance(timedelta(seconds=1))
    [again] = await claim_due(db, limit=50, concurrency=16)  # the worker died: retried
    assert again.id == nid


async def test_an_attempt_and_the_new_state_are_written_together(db: Database) -> None:
    clock.freeze()
    ids = await pending(db, 3)
    claimed = {c.id: c for c in await claim_due(db, limit=50, concurrency=16)}
    await record_attempt(db, claimed[ids[0]], outcome(True), SCHEDULE)
    await record_attempt(db, claimed[ids[1]], outcome(False), SCHEDULE)
    await record_attempt(db, claimed[ids[2]], outcome(False, give_up=True), SCHEDULE)

    delivered, retried, given_up = [await row(db, i) for i in ids]
    assert (delivered.status, delivered.attempts, delivered.claimed_until) == (DELIVERED, 1, None)
    assert delivered.delivered_at == clock.now()
    assert delivered.next_attempt_at is None
    assert (retried.status, retried.attempts, retried.delivered_at) == (PENDING, 1, None)
    assert retried.next_attempt_at == clock.now() + timedelta(seconds=SCHEDULE[0])
    assert retried.claimed_until is None  # given back: due again at its next attempt
    assert (given_up.status, given_up.next_attempt_at) == (FAILED, None)
    for nid, status in zip(ids, (200, 500, 500), strict=True):
        [attempt] = await attempts_of(db, nid)
        assert (attempt.http_status, attempt.duration_ms) == (status, 3)

    # the retried one comes back when due, and the schedule ends in FAILED
    clock.advance(timedelta(seconds=SCHEDULE[0]))
    [second] = await claim_due(db, limit=50, concurrency=16)
    assert (second.id, second.attempts) == (ids[1], 1)
    await record_attempt(db, second, outcome(False), SCHEDULE)
    clock.advance(timedelta(seconds=SCHEDULE[1]))
    [third] = await claim_due(db, limit=50, concurrency=16)
    await record_attempt(db, third, outcome(False), SCHEDULE)
    last = await row(db, ids[1])
    assert (last.status, last.attempts) == (FAILED, 3)
    assert len(await attempts_of(db, ids[1])) == 3


async def test_a_resent_notification_keeps_when_it_was_first_delivered(db: Database) -> None:
    clock.freeze()
    [nid] = await pending(db, 1)
    [claimed] = await claim_due(db, limit=50, concurrency=16)
    await record_attempt(db, claimed, outcome(True), SCHEDULE)
    first = (await row(db, nid)).delivered_at
    assert first is not None
    async with db.transaction() as s:  # what a merchant's resend does
        n = await s.get(Notification, nid)
        assert n is not None
        n.status, n.next_attempt_at, n.claimed_until = PENDING, clock.now(), None
    clock.advance(timedelta(minutes=5))
    [again] = await claim_due(db, limit=50, concurrency=16)
    await record_attempt(db, again, outcome(False), SCHEDULE)  # the resend is not acknowledged
    after = await row(db, nid)
    assert (after.status, after.attempts, after.delivered_at) == (PENDING, 2, first)


async def test_on_postgresql_a_round_costs_one_statement_and_one_per_delivery(
        db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("one statement per claim round is PostgreSQL's (UPDATE ... RETURNING and a "
                    "data-modifying CTE); the other databases' fallbacks are tested above")
    ids = await pending(db, 5)
    sent: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _sent(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(" ".join(statement.split())[:60])

    claimed = await claim_due(db, limit=50, concurrency=16)
    assert len(claimed) == 5
    assert len(sent) == 1, sent
    for c in claimed:
        await record_attempt(db, c, outcome(True), SCHEDULE)
    assert len(sent) == 1 + 5, sent
    assert [(await row(db, i)).status for i in ids] == [DELIVERED] * 5
