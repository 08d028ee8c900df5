"""The consumer posts each event exactly once: a redelivered or replayed event changes
nothing, and a consumer that starts after payments were made backfills them."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Event
from fulema.ledger import service as ledger
from fulema.ledger.models import LedgerEntry
from fulema.ledger.postings import make_handler
from tests.ledger.helpers import active_merchant, payment_payload, post_all, publish_events

PAID = datetime(2026, 11, 25, 3, tzinfo=UTC)


async def entries(db: Database) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


async def test_a_redelivered_event_posts_once(db: Database) -> None:
    mid = await active_merchant(db, wechat_bps=60)
    payload = payment_payload(merchant_id=mid, amount=1250, channel="wechat", paid_at=PAID)
    handler = make_handler(time(0))
    event = Event(id="evt_once", topic="payment.succeeded", payload=payload, seq=1,
                  created_at=PAID)
    await handler(db, event)
    await handler(db, event)
    assert await entries(db) == 1
    assert await ledger.account_balance(db, acct=ledger.merchant_payable(mid)) == -(1250 - 8)
    twin = Event(id="evt_twin", topic="payment.succeeded", payload=payload, seq=2,
                 created_at=PAID)
    with pytest.raises(IntegrityError):  # a second success of one order: an anomaly, it stops
        await handler(db, twin)
    assert await entries(db) == 1


async def test_payments_made_before_the_ledger_are_backfilled(db: Database,
                                                              settings: Settings) -> None:
    mid = await active_merchant(db)
    await publish_events(db, [("payment.succeeded", payment_payload(
        merchant_id=mid, amount=100 * i, channel="alipay", paid_at=PAID)) for i in range(1, 4)])
    await post_all(db, settings)
    await post_all(db, settings)  # a second dispatcher finds nothing new
    assert await entries(db) == 3
    assert (await ledger.trial_balance(db)).total == 0
    assert await ledger.account_balance(db, acct="fee_income") == -(0 + 1 + 1)  # 0.38, 0.76, 1.14


async def test_reconciliation_adjustment_is_posted_once(db: Database, settings: Settings) -> None:
    mid = await active_merchant(db)
    await publish_events(db, [
        ("reconciliation.adjustment", {"discrepancy_id": "dsc_1", "channel": "wechat",
                                       "merchant_id": mid, "amount": 500, "reason": "长款",
                                       "operator": "ops:alice"}),
        ("reconciliation.adjustment", {"discrepancy_id": "dsc_2", "channel": "alipay",
                                       "merchant_id": None, "amount": -120, "reason": "短款",
                                       "operator": "ops:alice"})])
    await post_all(db, settings)
    await post_all(db, settings)
    assert await entries(db) == 2
    assert await ledger.account_balance(db, acct=ledger.merchant_payable(mid)) == -500
    assert await ledger.account_balance(db, acct="reconciliation_differences") == 120
    assert (await ledger.trial_balance(db)).total == 0
    (entry,) = await ledger.entries_for(db, business_ref="dsc_1")
    assert entry.kind == "adjustment"
