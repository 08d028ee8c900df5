"""Under degrade (past the soft level of gateway/protection.py) marketing is shed first: a quote
is the full amount with nothing looked up, marked `degraded`, and an order made with it pays the
full amount and reserves nothing; reports and exports wait (429 with Retry-After) while
payments go on. Out of degrade the same quote finds the discount again."""

from __future__ import annotations

from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.marketing.models import Redemption
from tests.marketing.test_e2e_http import OPS, quote, setup_campaign
from tests.payments.conftest import Platform, platform

__all__ = ["platform"]


def _degrade(platform: Platform, klass: str, *, burst: int = 10) -> None:
    """The app's bucket of `klass` nearly spent, with time frozen so it does not refill."""
    protection = platform.app.state.protection
    protection.per_class[klass] = type(protection.per_class[klass])(rate=0.01, burst=burst)


async def test_a_degraded_quote_falls_back_to_no_discount(platform: Platform) -> None:
    await setup_campaign(platform)
    normal = await quote(platform)
    assert normal.json()["discount_amount"] == 1000
    assert normal.json()["degraded"] is False
    _degrade(platform, "merchant")
    clock.freeze(clock.now())
    try:
        answers = [await quote(platform) for _ in range(8)]  # 10 -> 2 tokens: still fresh
        assert [a.json()["discount_amount"] for a in answers] == [1000] * 8
        shed = await quote(platform)  # the 9th: below the soft level (0.8 of the burst used)
    finally:
        clock.reset()
    assert shed.status_code == 200, shed.text
    assert shed.headers["X-Fulema-Degraded"] == "1"
    body = shed.json()
    assert (body["amount"], body["discount_amount"], body["payable_amount"], body["discounts"],
            body["degraded"]) == (6000, 0, 6000, [], True)

    order = await platform.order(amount=6000, payer_id="payer_rich", quote=body["quote_id"])
    assert order.status_code == 200, order.text
    assert (order.json()["payable_amount"], order.json()["discount_amount"]) == (6000, 0)
    async with platform.db.transaction() as s:
        reserved = await s.scalar(select(func.count()).select_from(Redemption)
                                  .where(Redemption.order_id == order.json()["order_id"]))
    assert reserved == 0


async def test_a_degraded_best_discount_order_pays_the_full_amount(platform: Platform) -> None:
    """`"discount": "best"` past the soft level: the order is made at the full amount, nothing
    looked up or reserved, and the answer says so (`X-Fulema-Degraded: 1`); the same request
    again later answers that order, still at the full amount."""
    camp = await setup_campaign(platform)
    normal = await platform.order(amount=6000, discount="best")
    assert normal.json()["discount_amount"] == 1000
    assert "X-Fulema-Degraded" not in normal.headers
    protection = platform.app.state.protection
    limit = protection.per_class["create"]
    _degrade(platform, "create")
    clock.freeze(clock.now())
    try:
        fresh = [await platform.order(amount=6000, discount="best") for _ in range(8)]
        assert [a.json()["discount_amount"] for a in fresh] == [1000] * 8
        shed = await platform.order(amount=6000, discount="best", out_trade_no="SHED000001",
                                    payer_id="payer_rich", discount_picks={"points": 100})
    finally:
        clock.reset()
        protection.per_class["create"] = limit  # the load is over
        protection.store = type(protection.store)()
    assert shed.status_code == 200, shed.text
    assert shed.headers["X-Fulema-Degraded"] == "1"
    body = shed.json()
    assert (body["amount"], body["discount_amount"], body["payable_amount"], body["discounts"]
            ) == (6000, 0, 6000, [])
    async with platform.db.transaction() as s:
        reserved = await s.scalar(select(func.count()).select_from(Redemption)
                                  .where(Redemption.order_id == body["order_id"]))
    assert reserved == 0
    again = await platform.order(amount=6000, discount="best", out_trade_no="SHED000001",
                                 payer_id="payer_rich", discount_picks={"points": 100})
    assert "X-Fulema-Degraded" not in again.headers
    assert (again.json()["order_id"], again.json()["payable_amount"]) == (body["order_id"], 6000)
    stats = (await platform.http.get(f"/ops/v1/marketing/campaigns/{camp['campaign_id']}",
                                     headers=OPS)).json()
    assert stats["remaining"] == 100_000 - 9 * 1000


async def test_a_bad_amount_is_still_refused_under_degrade(platform: Platform) -> None:
    _degrade(platform, "merchant", burst=2)
    clock.freeze(clock.now())
    try:
        assert "X-Fulema-Degraded" not in (await quote(platform)).headers
        resp = await quote(platform, amount=0)
    finally:
        clock.reset()
    assert resp.headers.get("X-Fulema-Degraded") == "1"
    assert resp.json()["code"] == "INVALID_AMOUNT"


async def test_reports_and_exports_wait_under_degrade(platform: Platform) -> None:
    protection = platform.app.state.protection
    protection.global_limit = type(protection.global_limit)(rate=0.01, burst=20)
    clock.freeze(clock.now())
    try:
        fresh = [await platform.http.get("/ops/v1/ledger/trial-balance", headers=OPS)
                 for _ in range(16)]  # 20 -> 4 tokens: not yet degraded
        assert [r.status_code for r in fresh] == [200] * 16, fresh[-1].text
        waits = await platform.http.get("/ops/v1/ledger/trial-balance", headers=OPS)
        day = clock.now().date().isoformat()
        csv_waits = await platform.http.get(
            f"/ops/v1/settlement/merchants/{platform.merchant_id}/statement.csv?date={day}",
            headers=OPS)
        bill_waits = await platform.call("GET", f"/api/v1/bills?date={day}")
    finally:
        clock.reset()
    for resp in (waits, csv_waits, bill_waits):
        assert resp.status_code == 429, resp.text
        assert resp.json()["code"] == "RATE_LIMITED"
        assert "reports and exports wait" in resp.json()["message"]  # shed, not the hard limit
        assert int(resp.headers["Retry-After"]) >= 1
