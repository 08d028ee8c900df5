"""The consumer's batch handler: a dispatcher round posted with payments in bulk books exactly
what posting each event on its own books, exactly once, and a round that goes wrong falls back
to the one-by-one path without a gap or a double posting."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from fulema.core.config import Settings
from fulema.core.db import Database, StatementCounter
from fulema.core.events import Event
from fulema.core.events.consumers import ConsumerState
from fulema.ledger import service as ledger
from fulema.ledger.jobs import CONSUMER
from fulema.ledger.models import LedgerEntry, LedgerPosting
from fulema.ledger.postings import make_batch_handler, make_handler
from tests.ledger.helpers import (
    active_merchant,
    payment_payload,
    post_all,
    publish_events,
    refund_payload,
)

PAID = datetime(2026, 11, 25, 3, tzinfo=UTC)
REFUNDED = datetime(2026, 11, 25, 5, tzinfo=UTC)


async def count(db: Database, table: type[LedgerEntry] | type[LedgerPosting]) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


def events(payloads: list[tuple[str, dict[str, object]]]) -> list[Event]:
    return [Event(id=f"evt_{i}", topic=topic, payload=payload, seq=i + 1, created_at=PAID)
            for i, (topic, payload) in enumerate(payloads)]


async def test_a_round_in_bulk_books_what_one_by_one_books(db: Database) -> None:
    mid = await active_merchant(db, wechat_bps=60)
    pays = [payment_payload(merchant_id=mid, amount=1000 + i * 333, channel="wechat",
                            paid_at=PAID, platform_discount=i * 10, merchant_discount=i * 5)
            for i in range(4)]
    refund = refund_payload(payment=pays[1], amount=600, cash=550, platform=30, merchant=20,
                            at=REFUNDED)
    # payments, a refund of the second in the middle of the round, then more payments
    round_ = events([("payment.succeeded", pays[0]), ("payment.succeeded", pays[1]),
                     ("refund.succeeded", refund), ("payment.succeeded", pays[2]),
                     ("payment.succeeded", pays[3])])
    await make_batch_handler(time(0))(db, round_)
    bulk = (await ledger.trial_balance(db), await ledger.account_balance(
        db, acct=ledger.merchant_payable(mid)), await count(db, LedgerEntry))
    await make_batch_handler(time(0))(db, round_)  # the round redelivered: nothing more
    assert await count(db, LedgerEntry) == 5

    # the same round, one event at a time, for another merchant: the same books
    other = await active_merchant(db, wechat_bps=60)
    one = make_handler(time(0))
    twins = [dict(p, merchant_id=other, order_id=f"{p['order_id']}x") for p in pays]
    twin_refund = dict(refund, merchant_id=other, order_id=twins[1]["order_id"],
                       refund_id=f"{refund['refund_id']}x")
    for event in events([("payment.succeeded", twins[0]), ("payment.succeeded", twins[1]),
                         ("refund.succeeded", twin_refund), ("payment.succeeded", twins[2]),
                         ("payment.succeeded", twins[3])]):
        await one(db, Event(id=f"one_{event.id}", topic=event.topic, payload=event.payload,
                            seq=event.seq, created_at=PAID))
    assert bulk[0].total == 0
    assert bulk[2] == 5
    assert await ledger.account_balance(db, acct=ledger.merchant_payable(other)) == bulk[1]
    assert bulk[1] != 0
    assert (await ledger.trial_balance(db)).total == 0


async def test_payments_in_bulk_cost_the_same_statements_however_many(db: Database) -> None:
    mid = await active_merchant(db, wechat_bps=60)
    handler = make_batch_handler(time(0))
    await handler(db, events([("payment.succeeded", payment_payload(
        merchant_id=mid, amount=500, channel="wechat", paid_at=PAID))]))  # the rate, cached

    async def statements(n: int, tag: str) -> int:
        round_ = [Event(id=f"{tag}{i}", topic="payment.succeeded", seq=i + 1, created_at=PAID,
                        payload=payment_payload(merchant_id=mid, amount=500 + i,
                                                channel="wechat", paid_at=PAID))
                  for i in range(n)]
        before = StatementCounter.total
        await handler(db, round_)
        return StatementCounter.total - before

    assert await statements(2, "a") == await statements(20, "b")
    assert await count(db, LedgerEntry) == 23
    assert await count(db, LedgerPosting) == 23 * 4  # cash, fee and the payable's two lines


async def test_a_second_success_in_a_round_stops_the_consumer_after_the_others(
        db: Database, settings: Settings) -> None:
    mid = await active_merchant(db)
    first = payment_payload(merchant_id=mid, amount=700, channel="alipay", paid_at=PAID)
    later = payment_payload(merchant_id=mid, amount=900, channel="alipay", paid_at=PAID)
    await publish_events(db, [("payment.succeeded", first), ("payment.succeeded", later),
                              ("payment.succeeded", dict(first))])  # the order's success again
    await post_all(db, settings)
    assert await count(db, LedgerEntry) == 2  # both payments, once each; the twin refused
    async with db.transaction() as s:
        state = await s.get(ConsumerState, CONSUMER)
    # held at the twin (retried with back-off, then the alarm), not past it
    assert state is not None
    assert state.attempts == 1
    assert state.retry_at is not None
    assert state.last_error is not None
    assert "IntegrityError" in state.last_error
    assert (await ledger.trial_balance(db)).total == 0
    with pytest.raises(IntegrityError):  # and the handler itself refuses it
        await make_handler(time(0))(db, Event(id="evt_again", topic="payment.succeeded",
                                              payload=first, seq=9, created_at=PAID))
