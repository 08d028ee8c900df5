"""Settlement on the real service: cycles and the calendar decide what a run takes, holds keep
money in, a negative net carries forward, a date already settled is a no-op, and a payout that
fails, times out, succeeds late or is answered twice never pays twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import OutboxEvent
from fulema.ledger import service as ledger
from fulema.ledger.models import LedgerEntry
from fulema.merchants import service as merchants
from fulema.sandbox.banktransfer import SandboxBank
from fulema.settlement import service as settlement
from fulema.settlement.models import Payout
from tests.ledger.helpers import (
    active_merchant,
    payment_payload,
    post_all,
    publish_events,
    refund_payload,
)
from tests.merchants.factories import OPERATOR

FRI, SAT, MON, TUE = date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 30), date(2026, 12, 1)


def at(day: date, hour: int = 3) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)  # 11:00 in Shanghai


async def pay(db: Database, settings: Settings, merchant_id: str, amount: int, day: date,
              channel: str = "wechat") -> dict[str, object]:
    payload = payment_payload(merchant_id=merchant_id, amount=amount, channel=channel,
                              paid_at=at(day))
    await publish_events(db, [("payment.succeeded", payload)])
    await post_all(db, settings)
    return payload


async def batches(db: Database, merchant_id: str) -> list[settlement.BatchView]:
    return await settlement.list_batches(db, merchant_id=merchant_id)


async def payouts_of(db: Database, merchant_id: str) -> list[Payout]:
    async with db.transaction() as s:
        rows = list((await s.scalars(select(Payout).where(Payout.merchant_id == merchant_id)
                                     .order_by(Payout.created_at))).all())
        for r in rows:
            s.expunge(r)
    return rows


async def paid_events(db: Database) -> list[dict[str, Any]]:
    """The `settlement.paid` events in the outbox (docs/settlement.md)."""
    async with db.transaction() as s:
        rows = (await s.scalars(select(OutboxEvent.payload)
                                .where(OutboxEvent.topic == "settlement.paid"))).all()
    return [dict(r) for r in rows]


async def drive_payouts(db: Database, settings: Settings, bank: SandboxBank,
                        rounds: int = 8) -> None:
    adapter = settlement.BankTransferPayouts(bank)
    for _ in range(rounds):
        await settlement.process_payouts(db, settings, adapter)
        clock.advance(timedelta(minutes=15))


async def test_friday_t1_is_paid_monday_and_bankpay_same_day(db: Database,
                                                            settings: Settings) -> None:
    mid = await active_merchant(db)
    await pay(db, settings, mid, 10000, FRI)  # wechat, 38 bps: fee 38
    await pay(db, settings, mid, 5000, FRI, channel="bankpay")  # T+0, no fee
    clock.freeze(at(FRI, 16))
    fri = await settlement.run_settlement(db, settings, settle_date=FRI)
    assert fri.settled == 1
    assert fri.net_settled == 5000
    sat = await settlement.run_settlement(db, settings, settle_date=SAT)
    assert sat.batches == 0  # nothing is due on a Saturday (no batch for an empty merchant)
    mon = await settlement.run_settlement(db, settings, settle_date=MON)
    assert mon.net_settled == 10000 - 38
    again = await settlement.run_settlement(db, settings, settle_date=MON)
    assert again.already_done
    assert again.net_settled == mon.net_settled
    assert [b.net for b in await batches(db, mid)] == [10000 - 38, 5000]
    assert await ledger.account_balance(db, acct=ledger.merchant_payable(mid)) == 0


async def test_holiday_moves_t1_and_make_up_saturday_pays(db: Database,
                                                          settings: Settings) -> None:
    await settlement.set_calendar_day(db, day=MON, kind="HOLIDAY", note="test", operator="op")
    mid = await active_merchant(db)
    await pay(db, settings, mid, 2000, FRI)
    assert (await settlement.run_settlement(db, settings, settle_date=MON)).settled == 0
    assert (await settlement.run_settlement(db, settings, settle_date=TUE)).settled == 1
    sat2 = date(2026, 12, 5)
    await settlement.set_calendar_day(db, day=sat2, kind="WORKDAY", note="调休", operator="op")
    await pay(db, settings, mid, 3000, date(2026, 12, 4))
    assert (await settlement.run_settlement(db, settings, settle_date=sat2)).net_settled == 3000 - 11


async def test_frozen_merchant_is_held_and_paid_after_unfreeze(db: Database,
                                                              settings: Settings) -> None:
    mid = await active_merchant(db)
    await pay(db, settings, mid, 10000, FRI)
    await merchants.freeze(db, merchant_id=mid, reason="chargebacks", operator=OPERATOR)
    mon = await settlement.run_settlement(db, settings, settle_date=MON)
    assert mon.held == 1
    assert mon.settled == 0
    (held,) = await batches(db, mid)
    assert held.status == "HELD"
    assert held.hold_reason == "merchant frozen"
    assert held.net == 10000 - 38
    assert not await payouts_of(db, mid)
    await merchants.unfreeze(db, merchant_id=mid, operator=OPERATOR)
    await merchants.hold_settlement(db, merchant_id=mid, reason="risk review",
                                    operator=OPERATOR)
    assert (await settlement.run_settlement(db, settings, settle_date=TUE)).held == 1
    await merchants.release_settlement(db, merchant_id=mid, operator=OPERATOR)
    wed = await settlement.run_settlement(db, settings, settle_date=date(2026, 12, 2))
    assert wed.settled == 1
    assert wed.net_settled == 10000 - 38


async def test_negative_net_is_carried_forward(db: Database, settings: Settings) -> None:
    mid = await active_merchant(db)
    p = await pay(db, settings, mid, 10000, FRI)
    assert (await settlement.run_settlement(db, settings, settle_date=MON)).settled == 1
    await publish_events(db, [("refund.succeeded", refund_payload(
        payment=p, amount=6000, cash=6000, platform=0, merchant=0, at=at(MON)))])
    await pay(db, settings, mid, 1000, MON)
    tue = await settlement.run_settlement(db, settings, settle_date=TUE)
    assert tue.carried == 1
    (carried, _) = await batches(db, mid)
    # 1000 - fee 4, minus the refund 6000 less its fee back (38 * 6000/10000 = 22.8 -> 23)
    assert carried.net == 1000 - 4 - 6000 + 23
    assert await ledger.account_balance(db, acct=ledger.merchant_payable(mid)) == -carried.net
    await pay(db, settings, mid, 8000, TUE)
    wed = await settlement.run_settlement(db, settings, settle_date=date(2026, 12, 2))
    assert wed.settled == 1
    assert wed.net_settled == carried.net + 8000 - 30


async def settled_payout(db: Database, settings: Settings, amount: int = 10000) -> str:
    mid = await active_merchant(db)
    await pay(db, settings, mid, amount, FRI)
    await settlement.run_settlement(db, settings, settle_date=MON)
    return mid


async def test_failed_payout_retries_then_returns_to_the_balance(db: Database,
                                                                 settings: Settings) -> None:
    settings = settings.model_copy(update={"payout_max_attempts": 2, "payout_retry_seconds": 60})
    mid = await settled_payout(db, settings)
    bank = SandboxBank()
    bank.script("FAILED", "FAILED")
    clock.freeze(at(MON, 8))
    await drive_payouts(db, settings, bank)
    (p,) = await payouts_of(db, mid)
    assert p.status == "RETURNED"
    assert p.attempt == 2
    assert sum(bank.paid.values()) == 0
    assert await paid_events(db) == []  # nothing reached the account, nothing is told
    assert await ledger.account_balance(db, acct=ledger.merchant_payable(mid)) == -(10000 - 38)
    tue = await settlement.run_settlement(db, settings, settle_date=TUE)
    assert tue.settled == 1
    assert tue.net_settled == 10000 - 38
    await drive_payouts(db, settings, bank)
    assert sum(bank.paid.values()) == 10000 - 38
    assert (await ledger.trial_balance(db)).total == 0
    assert [e["amount"] for e in await paid_events(db)] == [10000 - 38]


@pytest.mark.parametrize("outcome", ["TIMEOUT", "LOST", "PENDING"])
async def test_unknown_outcomes_are_asked_about_and_paid_once(db: Database, settings: Settings,
                                                              outcome: str) -> None:
    mid = await settled_payout(db, settings)
    bank = SandboxBank()
    bank.script(outcome)
    clock.freeze(at(MON, 8))
    await drive_payouts(db, settings, bank)
    (p,) = await payouts_of(db, mid)
    assert p.status == "SUCCEEDED"
    assert p.attempt == 1
    assert list(bank.executions.values()) == [1]
    assert sum(bank.paid.values()) == 10000 - 38
    async with db.transaction() as s:
        entries = await s.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.business_ref == p.id))
    assert entries == 1


async def test_an_answer_given_twice_or_late_changes_nothing(db: Database,
                                                             settings: Settings) -> None:
    mid = await settled_payout(db, settings)
    bank = SandboxBank()
    clock.freeze(at(MON, 8))
    await drive_payouts(db, settings, bank, rounds=1)
    (p,) = await payouts_of(db, mid)
    ok = settlement.TransferResult(settlement.TransferState.SUCCESS, bank_ref="X")
    failed = settlement.TransferResult(settlement.TransferState.FAILED, reason="late")
    for answer in (ok, failed, ok):
        status = await settlement.apply_answer(db, settings, payout_id=p.id,
                                               request_id=p.request_id, result=answer)
        assert status == "SUCCEEDED"
    assert len(await ledger.entries_for(db, business_ref=p.id)) == 1
    assert sum(bank.paid.values()) == 10000 - 38


async def test_concurrent_payout_workers_pay_once(db: Database, settings: Settings) -> None:
    if db.dialect == "sqlite":
        pytest.skip("concurrency is tested where transactions really overlap (PostgreSQL, MariaDB)")
    mids = [await active_merchant(db) for _ in range(3)]
    for i, mid in enumerate(mids):
        await pay(db, settings, mid, 10000 + i, FRI)
    # Two runs of the same date at once make one batch per merchant.
    await asyncio.gather(*(settlement.run_settlement(db, settings, settle_date=MON)
                           for _ in range(2)))
    assert [len(await batches(db, mid)) for mid in mids] == [1, 1, 1]
    bank = SandboxBank(delay_seconds=0.05)
    bank.script("TIMEOUT")
    adapter = settlement.BankTransferPayouts(bank)
    clock.freeze(at(MON, 8))
    for _ in range(4):
        await asyncio.gather(*(settlement.process_payouts(db, settings, adapter)
                               for _ in range(4)))
        clock.advance(timedelta(minutes=5))
    for mid in mids:
        (p,) = await payouts_of(db, mid)
        assert p.status == "SUCCEEDED"
        assert len(await ledger.entries_for(db, business_ref=p.id)) == 1
    assert all(n == 1 for n in bank.executions.values())
    assert len(bank.executions) == 3
    assert sum(bank.paid.values()) == sum(10000 + i - 38 for i in range(3))
