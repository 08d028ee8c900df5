"""`POST /api/v1/orders` with `"discount": "best"`: the order chooses its discount and reserves
it in one request (no quote first). Bad requests are refused with their codes and nothing
written; the same out_trade_no again answers the same order even after the campaign ran out;
200 concurrent best-discount orders against a budget that fits 50 make exactly 50 discounted
orders and 150 at the full amount, leaving the budget at exactly 0."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from fulema.core.channel_settings import RateLimitSection
from fulema.core.config import Settings
from fulema.marketing.models import Redemption
from fulema.payments.models import Order
from tests.marketing.test_e2e_http import OPS, PAYER, quote, setup_campaign
from tests.payments.conftest import Platform, platform

__all__ = ["platform"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rate limits off: 200 concurrent orders from one app measure the budget, not the limit."""
    return settings.model_copy(update={"ratelimit": RateLimitSection(enabled=False)})


async def _counts(p: Platform) -> tuple[int, int]:
    async with p.db.transaction() as s:
        orders = (await s.execute(select(func.count()).select_from(Order))).scalar_one()
        held = (await s.execute(select(func.count()).select_from(Redemption))).scalar_one()
    return orders, held


async def _remaining(p: Platform, campaign_id: str) -> int:
    stats = (await p.http.get(f"/ops/v1/marketing/campaigns/{campaign_id}", headers=OPS)).json()
    return int(stats["remaining"])


async def test_best_takes_the_campaign_without_a_payer_and_reserves_it(platform: Platform
                                                                       ) -> None:
    p = platform
    camp = await setup_campaign(p)
    resp = await p.order(amount=6000, discount="best")
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert (order["amount"], order["discount_amount"], order["payable_amount"]) == (6000, 1000,
                                                                                    5000)
    assert order["discounts"] == [{"kind": "campaign", "funder": "platform", "amount": 1000,
                                   "ref": camp["campaign_id"]}]
    paid = await p.wallet("bankpay", "/scan", {"code_url": order["code_url"], "payer_id": PAYER})
    assert paid.status_code == 200, paid.text
    assert paid.json()["amount_fen"] == 5000  # the channel charged the payable amount
    below = (await p.order(amount=4999, discount="best")).json()  # 满50 not reached
    assert (below["discount_amount"], below["payable_amount"], below["discounts"]) == (0, 4999,
                                                                                       [])
    assert await _counts(p) == (2, 1)
    assert await _remaining(p, camp["campaign_id"]) == 100_000 - 1000


async def test_best_with_a_coupon_pick_and_points_pick(platform: Platform) -> None:
    p = platform
    await setup_campaign(p)
    tpl = (await p.http.post("/ops/v1/marketing/coupon-templates", headers=OPS, json={
        "name": "3 off", "funder": "merchant", "owner_merchant_id": p.merchant_id,
        "discount_type": "INSTANT_OFF", "off": 300, "quantity": 5})).json()
    coupon = (await p.call("POST", "/api/v1/marketing/coupons/claim", {
        "template_id": tpl["template_id"], "channel": "bankpay", "payer_id": PAYER})).json()
    await p.http.post(f"/ops/v1/points/accounts/bankpay:{PAYER}/adjust",
                      json={"points": 500, "reason": "welcome"}, headers=OPS)
    resp = await p.order(amount=6000, payer_id=PAYER, discount="best", out_trade_no="BEST000001",
                         discount_picks={"coupon_id": coupon["coupon_id"], "max_points": True})
    order = resp.json()
    # 60.00 - 10.00 campaign - 3.00 coupon = 47.00, then all 500 points (5.00, under 50%)
    assert [(d["kind"], d["amount"]) for d in order["discounts"]] == [
        ("campaign", 1000), ("coupon", 300), ("points", 500)]
    assert order["payable_amount"] == 4200
    # the same request again: the coupon is locked by this very order, the points are held,
    # yet the answer is the order it made, unchanged
    again = (await p.order(amount=6000, payer_id=PAYER, discount="best",
                           out_trade_no="BEST000001",
                           discount_picks={"coupon_id": coupon["coupon_id"],
                                           "max_points": True})).json()
    assert (again["order_id"], again["payable_amount"]) == (order["order_id"], 4200)
    other = (await p.order(amount=6000, payer_id=PAYER, discount="best",
                           discount_picks={"coupon_id": coupon["coupon_id"]})).json()
    assert other["code"] == "COUPON_NOT_AVAILABLE"
    assert await _counts(p) == (1, 3)


async def test_same_out_trade_no_answers_the_same_order_after_the_campaign_ran_out(
        platform: Platform) -> None:
    p = platform
    camp = await setup_campaign(p, budget_total=1000)  # one order's discount
    first = (await p.order(amount=6000, discount="best", out_trade_no="BEST000002")).json()
    assert first["discount_amount"] == 1000
    second = (await p.order(amount=6000, discount="best")).json()
    assert (second["discount_amount"], second["payable_amount"]) == (0, 6000)  # ran out
    again = (await p.order(amount=6000, discount="best", out_trade_no="BEST000002")).json()
    assert (again["order_id"], again["discount_amount"], again["payable_amount"]) == (
        first["order_id"], 1000, 5000)
    changed = (await p.order(amount=6001, discount="best", out_trade_no="BEST000002")).json()
    assert changed["code"] == "DUPLICATE_OUT_TRADE_NO"
    without = (await p.order(amount=6000, out_trade_no="BEST000002")).json()
    assert without["code"] == "DUPLICATE_OUT_TRADE_NO"  # "best" is part of the request
    assert await _remaining(p, camp["campaign_id"]) == 0
    assert await _counts(p) == (2, 1)


async def test_bad_discount_requests_each_with_its_code_and_nothing_written(
        platform: Platform) -> None:
    p = platform
    await setup_campaign(p)
    token = (await quote(p)).json()["quote_id"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"discount": "best", "quote": token, "payer_id": PAYER}, "DISCOUNT_REQUEST_INVALID"),
        ({"discount": "cheapest"}, "DISCOUNT_REQUEST_INVALID"),
        ({"discount": ""}, "DISCOUNT_REQUEST_INVALID"),
        ({"discount_picks": {"points": 10}, "payer_id": PAYER}, "DISCOUNT_REQUEST_INVALID"),
        ({"discount": "best", "discount_picks": {"points": 10}}, "PAYER_REQUIRED_FOR_DISCOUNT"),
        ({"discount": "best", "discount_picks": {"coupon_id": "cpn_x"}},
         "PAYER_REQUIRED_FOR_DISCOUNT"),
        ({"discount": "best", "discount_picks": {"points": -1}, "payer_id": PAYER},
         "INVALID_POINTS"),
        ({"discount": "best", "discount_picks": {"points": 10}, "payer_id": PAYER},
         "POINTS_INSUFFICIENT"),
        ({"discount": "best", "discount_picks": {"coupon_id": "cpn_x"}, "payer_id": PAYER},
         "COUPON_NOT_FOUND"),
        ({"discount": "best", "discount_picks": {"campaign_id": "cmp_x"}}, "CAMPAIGN_NOT_FOUND"),
        ({"discount": "best", "discount_picks": {"colour": "red"}}, "VALIDATION_ERROR"),
        ({"discount": 1}, "VALIDATION_ERROR"),
    ]
    for body, code in cases:
        resp = await p.order(amount=6000, **body)
        assert resp.json().get("code") == code, (body, resp.text)
    picked = await p.order(amount=4000, discount="best",
                           discount_picks={"campaign_id": (await setup_campaign(p))[
                               "campaign_id"]})
    assert picked.json()["code"] == "THRESHOLD_NOT_MET"
    assert await _counts(p) == (0, 0)


@pytest.mark.parametrize("shards", [1, 10])
async def test_200_best_orders_against_a_budget_for_50(platform: Platform, shards: int) -> None:
    """Exactly 50 orders get the discount; the other 150 are made at the full amount (the
    campaign is left out, not the order refused); the budget ends at exactly 0."""
    p = platform
    camp = await setup_campaign(p, discount_type="INSTANT_OFF", threshold=0, off=100,
                                budget_total=50 * 100, budget_shards=shards)
    answers = await asyncio.gather(*(p.order(amount=1250, discount="best") for _ in range(200)))
    bodies = [a.json() for a in answers]
    assert all(a.status_code == 200 for a in answers), [b for b in bodies if "code" in b][:3]
    discounted = [b for b in bodies if b["discount_amount"] == 100]
    full = [b for b in bodies if b["discount_amount"] == 0]
    assert (len(discounted), len(full)) == (50, 150)
    assert all(b["payable_amount"] == 1150 for b in discounted)
    assert all((b["payable_amount"], b["discounts"]) == (1250, []) for b in full)
    assert await _remaining(p, camp["campaign_id"]) == 0
    assert await _counts(p) == (200, 50)
    async with p.db.transaction() as s:  # what each order records is what it was answered
        rows = (await s.execute(select(Order.payable_amount, Order.discount_amount))).all()
    assert sorted((r[0].fen, r[1].fen) for r in rows) == sorted(
        [(1150, 100)] * 50 + [(1250, 0)] * 150)
