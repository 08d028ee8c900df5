"""Refunds in transit, on the real consumer: a refund accepted (`refund.requested`) holds its
cash from the merchant's payable in `refunds_in_transit` until the channel answers; a
confirmation (`refund.succeeded`) releases the hold with the refund's own lines, a refusal
(`refund.failed`) gives it back. For any mix of payments and refunds in any of those states:

- the trial balance sums to zero;
- refunds in transit holds exactly the cash of the refunds still waiting for the channel;
- each merchant's payable equals gross - confirmed refunds - fees - merchant-borne discounts
  - the cash still in transit, with the fees recomputed here independently;
- a settlement run's batch figures add up (refunds held count as refunds of the batch).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.ledger import service as ledger
from fulema.settlement import service as settlement
from tests.ledger.helpers import (
    active_merchant,
    payment_payload,
    post_all,
    publish_events,
    refund_payload,
)

TRANSIT = "refunds_in_transit"
BASE_MONDAY = date(2026, 6, 1)
assert BASE_MONDAY.weekday() == 0
_example = [0]

refund_st = st.tuples(st.integers(1, 100), st.sampled_from(["SUCCESS", "FAILED", "PENDING"]))
payment_st = st.fixed_dictionaries({
    "channel": st.sampled_from(["wechat", "alipay", "bankpay"]),
    "amount": st.integers(1, 200_000),
    "platform_share": st.integers(0, 30),
    "merchant_share": st.integers(0, 30),
    "refunds": st.lists(refund_st, max_size=3),  # percent of what is left, and the outcome
})


def half_up(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _requested(payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    accepted = {k: v for k, v in payload.items() if k != "succeeded_at"}
    return {**accepted, "status": "PROCESSING", "created_at": at.isoformat()}


@settings(max_examples=12, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payments=st.lists(payment_st, min_size=1, max_size=5), bps=st.integers(0, 100))
async def test_refunds_wait_in_transit_and_the_books_balance(
        db: Database, settings: Settings, payments: list[dict[str, Any]], bps: int) -> None:
    clock.reset()
    _example[0] += 1
    day = BASE_MONDAY + timedelta(days=7 * _example[0])
    paid_at = datetime(day.year, day.month, day.day, 3, 0, tzinfo=UTC)
    refund_at = paid_at + timedelta(hours=1)
    mid = await active_merchant(db, wechat_bps=bps)
    rates = {"wechat": bps, "alipay": 38, "bankpay": 0}
    transit_before = await ledger.account_balance(db, acct=TRANSIT)
    expected = pending_cash = 0
    paid: list[tuple[str, dict[str, Any]]] = []
    asked: list[tuple[str, dict[str, Any]]] = []
    answered: list[tuple[str, dict[str, Any]]] = []
    for p in payments:
        amount = p["amount"]
        pd, md = amount * p["platform_share"] // 100, amount * p["merchant_share"] // 100
        cash = amount - pd - md
        payload = payment_payload(merchant_id=mid, amount=amount, channel=p["channel"],
                                  paid_at=paid_at, platform_discount=pd, merchant_discount=md)
        paid.append(("payment.succeeded", payload))
        fee = 0 if p["channel"] == "bankpay" else half_up(Decimal(cash * rates[p["channel"]])
                                                          / 10000)
        expected += amount - md - fee
        left = {"cash": cash, "pd": pd, "md": md}
        cash_back = fee_back = 0
        for pct, outcome in p["refunds"]:
            r = sum(left.values()) * pct // 100
            if r <= 0:
                continue
            rc = min(r, left["cash"])
            rp = min(r - rc, left["pd"])
            rm = r - rc - rp
            refund = refund_payload(payment=payload, amount=r, cash=rc, platform=rp, merchant=rm,
                                    at=refund_at)
            asked.append(("refund.requested", _requested(refund, refund_at)))
            if outcome == "FAILED":
                answered.append(("refund.failed", {**_requested(refund, refund_at),
                                                   "status": "FAILED"}))
                continue  # nothing taken: the amounts stay refundable
            left["cash"] -= rc
            left["pd"] -= rp
            left["md"] -= rm
            if outcome == "PENDING":
                pending_cash += rc
                continue
            cash_back += rc
            back = (half_up(Decimal(fee) * cash_back / cash) if cash else 0) - fee_back
            fee_back += back
            expected -= r - rm - back
            answered.append(("refund.succeeded", refund))
    await publish_events(db, paid)
    await publish_events(db, asked)
    await post_all(db, settings)
    assert (await ledger.trial_balance(db)).total == 0
    await publish_events(db, answered)
    await post_all(db, settings)

    assert (await ledger.trial_balance(db)).total == 0
    in_transit = await ledger.account_balance(db, acct=TRANSIT) - transit_before
    assert in_transit == -pending_cash  # a credit: owed to payers, not yet paid by the channel
    payable = -await ledger.account_balance(db, acct=ledger.merchant_payable(mid))
    assert payable == expected - pending_cash

    clock.freeze(paid_at + timedelta(days=1, hours=20))
    summary = await settlement.run_settlement(db, settings, settle_date=day + timedelta(days=1))
    assert not summary.already_done
    assert (await ledger.trial_balance(db)).total == 0


async def test_a_refund_answered_twice_or_redelivered_posts_once(db: Database,
                                                               settings: Settings) -> None:
    mid = await active_merchant(db)
    at = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    payment = payment_payload(merchant_id=mid, amount=10_000, channel="alipay", paid_at=at)
    refund = refund_payload(payment=payment, amount=4_000, cash=4_000, platform=0, merchant=0,
                            at=at)
    before = await ledger.account_balance(db, acct=TRANSIT)
    await publish_events(db, [("payment.succeeded", payment)])
    await publish_events(db, [("refund.requested", _requested(refund, at))] * 2)
    await post_all(db, settings)
    assert await ledger.account_balance(db, acct=TRANSIT) - before == -4_000
    await publish_events(db, [("refund.succeeded", refund)])
    await post_all(db, settings)
    assert await ledger.account_balance(db, acct=TRANSIT) - before == 0
    assert (await ledger.trial_balance(db)).total == 0
    fee = half_up(Decimal(10_000 * 38) / 10000)  # 38
    back = half_up(Decimal(fee) * 4_000 / 10_000)
    assert -await ledger.account_balance(db, acct=ledger.merchant_payable(mid)) == \
        10_000 - fee - (4_000 - back)
