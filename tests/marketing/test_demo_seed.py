"""The demo seed: a development platform starts with a bank-funded 满20减2 campaign (budget
500.00) and a 满30减5 coupon granted on payments of 10.00 or more, both at the demo merchant,
so the cashier of plate DEMO000001 shows a discount out of the box; seeding twice changes
nothing."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from fulema.marketing import service as marketing
from fulema.marketing.models import Campaign, CouponTemplate
from tests.marketing.test_cashier_discount import field
from tests.payments.conftest import Platform
from tests.payments.test_cashier import BANK

OPS = {"Authorization": "Bearer test-operator"}


async def test_the_demo_cashier_shows_the_seeded_discount(platform: Platform) -> None:
    p = platform
    seeded = await marketing.seed_demo_marketing(p.db, merchant_id=p.merchant_id)
    again = await marketing.seed_demo_marketing(p.db, merchant_id=p.merchant_id)
    assert again == seeded
    async with p.db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Campaign)) == 1
        assert await s.scalar(select(func.count()).select_from(CouponTemplate)) == 1

    stats = (await p.http.get(f"/ops/v1/marketing/campaigns/{seeded.campaign_id}",
                              headers=OPS)).json()
    c = stats["campaign"]
    assert (c["funder"], c["status"], c["discount_type"], c["threshold"], c["off"]) == (
        "platform", "ACTIVE", "AMOUNT_OFF", 2000, 200)
    assert (c["budget_total"], stats["remaining"]) == (50_000, 50_000)

    confirm = await p.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK},
                                data={"amount": "25.00"})
    assert confirm.status_code == 200, confirm.text
    assert 'data-discount="2.00"' in confirm.text
    assert 'data-payable="23.00"' in confirm.text
    handed = await p.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK}, data={
        "amount": "25.00", "confirm": "1", "quote": field(confirm.text, "quote")})
    assert "¥23.00" in handed.text
    order_id = re.search(r'data-order-id="([^"]+)"', handed.text)
    assert order_id
    order = (await p.call("GET", f"/api/v1/orders/{order_id.group(1)}")).json()
    assert (order["amount"], order["payable_amount"]) == (2500, 2300)

    # the demo story's 12.50 stays below the threshold: no confirmation step
    plain = await p.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK},
                              data={"amount": "12.50"})
    assert 'data-order-id="' in plain.text


async def test_a_demo_payment_of_ten_yuan_grants_the_demo_coupon(platform: Platform) -> None:
    p = platform
    seeded = await marketing.seed_demo_marketing(p.db, merchant_id=p.merchant_id)
    created = await p.order(amount=1000, payer_id="payer_rich")
    assert created.status_code == 200, created.text
    order = created.json()
    paid = await p.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    await p.wait_status(order["order_id"], "SUCCESS")
    await p.settle_background()
    mine = await p.call("GET", "/api/v1/marketing/coupons?channel=bankpay&payer_id=payer_rich")
    assert [c["template_id"] for c in mine.json()["data"]] == [seeded.template_id]
    # 35.00 with the coupon and the campaign: 2.00 off, then 5.00 off the 33.00 left
    q = await p.call("POST", "/api/v1/marketing/quote",
                     {"amount": 3500, "channel": "bankpay", "payer_id": "payer_rich"})
    assert q.status_code == 200, q.text
    assert [(d["kind"], d["amount"]) for d in q.json()["discounts"]] == [("campaign", 200),
                                                                        ("coupon", 500)]
    assert q.json()["payable_amount"] == 2800
