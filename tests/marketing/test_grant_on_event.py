"""Coupons granted on events: a template with a grant rule gives a payer one coupon after a
paid order of at least its minimum at a merchant in scope, exactly once per order (also when
the event is delivered twice or replayed under another id), within the template's per-payer,
per-day and quantity limits; bad rules are refused with COUPON_GRANT_RULE_INVALID and write
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Event
from fulema.core.payer_ids import event_fields
from fulema.marketing import jobs
from fulema.marketing.models import Coupon, CouponTemplate
from fulema.merchants import service as merchants
from tests.marketing.factories import template
from tests.payments.conftest import Platform

OPS = {"Authorization": "Bearer test-operator"}
PAYER = "payer_rich"  # a sandbox payer with money
KEY = f"bankpay:{PAYER}"


def _grant_handler(settings: Settings) -> Any:
    return next(c for c in jobs.consumers(settings) if c.name == jobs.GRANT_CONSUMER).handler


def _paid(order_id: str, *, merchant_id: str, amount: int, payer: str | None = PAYER,
          channel: str = "bankpay", event_id: str | None = None) -> Event:
    payload = {"order_id": order_id, "merchant_id": merchant_id, "amount": amount,
               "payable_amount": amount, "channel": channel, **event_fields(payer)}
    return Event(id=event_id or f"evt_{order_id}", topic="payment.succeeded", payload=payload)


async def _coupons(db: Database, template_id: str) -> list[Coupon]:
    async with db.transaction() as s:
        return list((await s.scalars(select(Coupon).where(
            Coupon.template_id == template_id).order_by(Coupon.created_at))).all())


async def test_a_paid_order_over_the_minimum_grants_one_coupon_over_http(
        platform: Platform) -> None:
    p = platform
    resp = await p.http.post("/ops/v1/marketing/coupon-templates", headers=OPS, json={
        "name": "满50送3元券", "funder": "merchant", "owner_merchant_id": p.merchant_id,
        "discount_type": "INSTANT_OFF", "off": 300, "quantity": 10, "per_payer_limit": 5,
        "per_day_limit": 5, "grant": {"on": "payment.succeeded", "min_amount": 5000}})
    assert resp.status_code == 201, resp.text
    tpl = resp.json()
    assert tpl["grant"] == {"on": "payment.succeeded", "min_amount": 5000,
                            "merchant_ids": None}

    for amount in (4999, 5000):
        created = await p.order(amount=amount, payer_id=PAYER)
        assert created.status_code == 200, created.text
        order = created.json()
        paid = await p.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                                   "payer_id": PAYER})
        assert paid.status_code == 200, paid.text
        await p.wait_status(order["order_id"], "SUCCESS")
    await p.settle_background()

    mine = (await p.call("GET", f"/api/v1/marketing/coupons?channel=bankpay&payer_id={PAYER}"))
    assert mine.status_code == 200, mine.text
    coupons = [c for c in mine.json()["data"] if c["template_id"] == tpl["template_id"]]
    assert len(coupons) == 1  # 49.99 earns none, 50.00 earns one
    assert coupons[0]["state"] == "AVAILABLE"
    rows = await _coupons(p.db, tpl["template_id"])
    assert [(r.via, r.source_order_id) for r in rows] == [("EVENT", order["order_id"])]

    # the granted coupon is good on the next order: 3.00 off
    q = await p.call("POST", "/api/v1/marketing/quote",
                     {"amount": 1000, "channel": "bankpay", "payer_id": PAYER})
    assert q.status_code == 200, q.text
    assert [(d["kind"], d["amount"]) for d in q.json()["discounts"]] == [("coupon", 300)]


async def test_each_order_grants_once_even_delivered_twice_or_replayed(
        db: Database, settings: Settings) -> None:
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    tpl = await template(db, per_payer_limit=5, per_day_limit=5,
                         grant={"min_amount": 1000})
    handle = _grant_handler(settings)
    event = _paid("ord_a", merchant_id=demo.merchant_id, amount=1000)
    await handle(db, event)
    await handle(db, event)  # the same event twice
    await handle(db, _paid("ord_a", merchant_id=demo.merchant_id, amount=1000,
                           event_id="evt_replayed"))  # the same payment, another event id
    assert [c.source_order_id for c in await _coupons(db, tpl.template_id)] == ["ord_a"]
    await handle(db, _paid("ord_b", merchant_id=demo.merchant_id, amount=2000))
    assert [c.source_order_id for c in await _coupons(db, tpl.template_id)] == ["ord_a",
                                                                                "ord_b"]
    async with db.transaction() as s:
        t = await s.get(CouponTemplate, tpl.template_id)
        assert t is not None
        assert t.issued == 2


async def test_grants_keep_to_limits_quantity_scope_and_channel(
        db: Database, settings: Settings) -> None:
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    handle = _grant_handler(settings)
    per_payer = await template(db, name="once per payer", per_payer_limit=1, per_day_limit=1,
                               quantity=100, grant={"min_amount": 1})
    scarce = await template(db, name="only two", per_payer_limit=9, per_day_limit=9,
                            quantity=2, grant={"min_amount": 1})
    elsewhere = await template(db, name="other merchant", merchant_ids=["mch_other"],
                               grant={"min_amount": 1})
    ecny_only = await template(db, name="e-CNY only", channels=["ecny"],
                               grant={"min_amount": 1})
    by_hand = await template(db, name="claim only")
    for i, payer in enumerate(["p1", "p1", "p2", "p3"]):
        await handle(db, _paid(f"ord_{i}", merchant_id=demo.merchant_id, amount=100,
                               payer=payer))
    await handle(db, _paid("ord_anon", merchant_id=demo.merchant_id, amount=100, payer=None))
    assert sorted(c.payer_key for c in await _coupons(db, per_payer.template_id)) == [
        "bankpay:p1", "bankpay:p2", "bankpay:p3"]  # p1's second payment earns no second
    assert [c.payer_key for c in await _coupons(db, scarce.template_id)] == ["bankpay:p1",
                                                                            "bankpay:p1"]
    for t in (elsewhere, ecny_only, by_hand):
        assert await _coupons(db, t.template_id) == []


@pytest.mark.parametrize(("grant", "owner"), [
    ({"on": "refund.succeeded"}, False),
    ({"on": "payment.succeeded", "min_amount": 0}, False),
    ({"min_amount": -5}, False),
    ({"min_amount": 10**13}, False),
    ({"merchant_ids": []}, False),
    ({"merchant_ids": [""]}, False),
    ({"merchant_ids": ["mch_someone_else"]}, True),  # a merchant's coupon, another's payments
])
async def test_bad_grant_rules_are_refused_and_write_nothing(
        platform: Platform, grant: dict[str, Any], owner: bool) -> None:
    p = platform
    body: dict[str, Any] = {"name": "bad", "funder": "platform", "discount_type": "INSTANT_OFF",
                            "off": 100, "quantity": 10, "grant": grant}
    if owner:
        body.update(funder="merchant", owner_merchant_id=p.merchant_id)
    resp = await p.http.post("/ops/v1/marketing/coupon-templates", headers=OPS, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "COUPON_GRANT_RULE_INVALID"
    async with p.db.transaction() as s:
        assert (await s.scalar(select(func.count()).select_from(CouponTemplate))) == 0


async def test_a_grant_rule_of_the_wrong_shape_is_a_validation_error(platform: Platform
                                                                     ) -> None:
    resp = await platform.http.post("/ops/v1/marketing/coupon-templates", headers=OPS, json={
        "name": "bad", "funder": "platform", "discount_type": "INSTANT_OFF", "off": 100,
        "quantity": 10, "grant": {"min_amount": "5000", "when": "always"}})
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "VALIDATION_ERROR"
