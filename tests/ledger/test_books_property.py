"""Hypothesis on the real service: random payments (with platform- and merchant-funded
discounts, simulated through the event payloads), partial refunds on the next day, posted by
the real `ledger.postings` consumer, settled by the real daily run and paid out through the
sandbox bank (which fails and times out at random). After every example:

- the trial balance sums to zero;
- each merchant's payable equals gross - refunds - fees - merchant-borne discounts, with the
  fees recomputed here independently (half-up per payment, refunded in proportion to cash);
- sum of payouts (succeeded or still in flight) + the balance carried on the payable equals
  the merchant's payable; the bank moved each payout at most once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.ledger import service as ledger
from fulema.sandbox.banktransfer import SandboxBank
from fulema.settlement import service as settlement
from fulema.settlement.models import Payout, SettlementBatch
from tests.ledger.helpers import (
    active_merchant,
    payment_payload,
    post_all,
    publish_events,
    refund_payload,
)

BASE_MONDAY = date(2026, 3, 2)
assert BASE_MONDAY.weekday() == 0
_example = [0]


def half_up(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))


payment_st = st.fixed_dictionaries({
    "merchant": st.integers(0, 1),
    "channel": st.sampled_from(["wechat", "alipay", "bankpay"]),
    "amount": st.integers(1, 200_000),
    "platform_share": st.integers(0, 30),  # percent of the amount the platform funds
    "merchant_share": st.integers(0, 30),
    "refunds": st.lists(st.integers(1, 100), max_size=3),  # percent of what is left
})
outcomes_st = st.lists(st.sampled_from(["SUCCESS", "FAILED", "TIMEOUT", "LOST", "PENDING"]),
                       max_size=4)


def _plan(p: dict[str, Any]) -> tuple[int, int, int, list[tuple[int, int, int, int]]]:
    amount = p["amount"]
    pd = amount * p["platform_share"] // 100
    md = amount * p["merchant_share"] // 100
    cash = amount - pd - md
    left = {"cash": cash, "pd": pd, "md": md}
    refunds = []
    for pct in p["refunds"]:
        total_left = sum(left.values())
        r = total_left * pct // 100
        if r <= 0:
            continue
        rc = min(r, left["cash"])
        rp = min(r - rc, left["pd"])
        rm = r - rc - rp
        assert rm <= left["md"]
        left["cash"] -= rc
        left["pd"] -= rp
        left["md"] -= rm
        refunds.append((r, rc, rp, rm))
    return cash, pd, md, refunds


@settings(max_examples=12, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payments=st.lists(payment_st, min_size=1, max_size=6), outcomes=outcomes_st,
       bps=st.integers(0, 100))
async def test_books_balance_and_merchants_get_exactly_their_payable(
        db: Database, settings: Settings, payments: list[dict[str, Any]],
        outcomes: list[str], bps: int) -> None:
    settings = settings.model_copy(update={"payout_max_attempts": 2, "payout_retry_seconds": 60})
    clock.reset()  # the fixture resets it per test, not per example
    _example[0] += 1
    day_a = BASE_MONDAY + timedelta(days=7 * _example[0])
    paid_at = datetime(day_a.year, day_a.month, day_a.day, 3, 0, tzinfo=UTC)  # 11:00 Shanghai
    refund_at = paid_at + timedelta(days=1)
    mids = [await active_merchant(db, wechat_bps=bps), await active_merchant(db)]
    rates = [{"wechat": bps, "alipay": 38, "bankpay": 0}, {"wechat": 38, "alipay": 38,
                                                           "bankpay": 0}]
    expected = dict.fromkeys(mids, 0)
    events: list[tuple[str, dict[str, Any]]] = []
    later: list[tuple[str, dict[str, Any]]] = []
    for p in payments:
        mid = mids[p["merchant"]]
        cash, pd, md, refunds = _plan(p)
        payload = payment_payload(merchant_id=mid, amount=p["amount"], channel=p["channel"],
                                  paid_at=paid_at, platform_discount=pd, merchant_discount=md)
        events.append(("payment.succeeded", payload))
        bps_here = rates[p["merchant"]][p["channel"]]
        fee = 0 if p["channel"] == "bankpay" else half_up(Decimal(cash * bps_here) / 10000)
        expected[mid] += p["amount"] - md - fee
        cash_back = fee_back = 0
        for r, rc, rp, rm in refunds:
            cash_back += rc
            back = (half_up(Decimal(fee) * cash_back / cash) if cash else 0) - fee_back
            fee_back += back
            expected[mid] -= r - rm - back
            later.append(("refund.succeeded", refund_payload(
                payment=payload, amount=r, cash=rc, platform=rp, merchant=rm, at=refund_at)))
    await publish_events(db, events)
    await publish_events(db, later)
    await post_all(db, settings)

    tb = await ledger.trial_balance(db)
    assert tb.total == 0
    for mid in mids:
        assert -await ledger.account_balance(db, acct=ledger.merchant_payable(mid)) == \
            expected[mid]

    bank = SandboxBank()
    bank.script(*outcomes)
    payouts = settlement.BankTransferPayouts(bank)
    clock.freeze(paid_at + timedelta(days=1, hours=20))
    for run in (day_a + timedelta(days=1), day_a + timedelta(days=2)):
        await settlement.run_settlement(db, settings, settle_date=run)
        for _ in range(6):
            await settlement.process_payouts(db, settings, payouts)
            clock.advance(timedelta(minutes=5))
    again = await settlement.run_settlement(db, settings, settle_date=day_a + timedelta(days=1))
    assert again.already_done

    assert (await ledger.trial_balance(db)).total == 0
    assert all(n == 1 for n in bank.executions.values())
    async with db.transaction() as s:
        rows = (await s.execute(select(Payout.merchant_id, Payout.amount, Payout.status,
                                       Payout.id).where(Payout.merchant_id.in_(mids)))).all()
        statuses = {b.status for b in (await s.scalars(select(SettlementBatch).where(
            SettlementBatch.merchant_id.in_(mids)))).all()}
    assert statuses <= {"SETTLED", "CARRIED"}
    # (earlier examples' payouts may still be due and paid by this bank: count ours)
    ours = {pid for *_, pid in rows}
    paid_by_bank = sum(fen for key, fen in bank.moved.items() if key.rsplit("-", 1)[0] in ours)
    assert paid_by_bank == sum(a for _, a, st_, _ in rows if st_ == "SUCCEEDED")
    for mid in mids:
        out = sum(a for m, a, st_, _ in rows if m == mid and st_ != "RETURNED")
        carried = -await ledger.account_balance(db, acct=ledger.merchant_payable(mid))
        assert out + carried == expected[mid]
