"""End to end over the real HTTP API: an operator sets up a 满减 campaign and gives a payer
points; the merchant asks for a quote, creates the order with it, the payer pays on the
sandbox; the channel is charged the payable amount, and the query, the notification and a
refund show the breakdown. Budget spend and points follow through the consumers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.marketing.models import Redemption
from fulema.payments.models import Order
from tests.payments.conftest import Platform

OPS = {"Authorization": "Bearer test-operator"}
PAYER = "payer_rich"
KEY = f"bankpay:{PAYER}"


async def setup_campaign(p: Platform, **overrides: Any) -> dict[str, Any]:
    now = clock.now()
    body = {"name": "满50减10", "funder": "platform", "discount_type": "AMOUNT_OFF",
            "threshold": 5000, "off": 1000, "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(days=7)).isoformat(), "budget_total": 100_000,
            **overrides}
    resp = await p.http.post("/ops/v1/marketing/campaigns", json=body, headers=OPS)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def quote(p: Platform, **body: Any) -> Any:
    return await p.call("POST", "/api/v1/marketing/quote",
                        {"amount": 6000, "channel": "bankpay", "payer_id": PAYER, **body})


@pytest.mark.parametrize("how", ["quote", "best"])
async def test_pay_with_a_campaign_and_points_then_refund(platform: Platform, how: str) -> None:
    """`how`: a quote then the order with it (two requests), or the order alone with
    `"discount": "best"` and the payer's points pick (one request): the same order."""
    p = platform
    camp = await setup_campaign(p)
    resp = await p.http.post(f"/ops/v1/points/accounts/{KEY}/adjust",
                             json={"points": 500, "reason": "welcome"}, headers=OPS)
    assert resp.status_code == 200, resp.text

    if how == "quote":
        q = await quote(p, points=300)
        assert q.status_code == 200, q.text
        qv = q.json()
        assert (qv["amount"], qv["discount_amount"], qv["payable_amount"]) == (6000, 1300, 4700)
        assert [(d["kind"], d["amount"]) for d in qv["discounts"]] == [("campaign", 1000),
                                                                      ("points", 300)]
        assert qv["points_balance"] == 500
        created = await p.order(amount=6000, payer_id=PAYER, quote=qv["quote_id"])
    else:
        created = await p.order(amount=6000, payer_id=PAYER, discount="best",
                                discount_picks={"points": 300})
    assert created.status_code == 200, created.text
    order = created.json()
    assert (order["amount"], order["payable_amount"], order["discount_amount"]) == (6000, 4700,
                                                                                     1300)
    paid = await p.wallet("bankpay", "/scan", {"code_url": order["code_url"], "payer_id": PAYER})
    assert paid.status_code == 200, paid.text
    assert paid.json()["amount_fen"] == 4700  # the channel charged the payable amount
    view = await p.wait_status(order["order_id"], "SUCCESS")
    assert view["discounts"] == [
        {"kind": "campaign", "funder": "platform", "amount": 1000, "ref": camp["campaign_id"]},
        {"kind": "points", "funder": "platform", "amount": 300, "ref": KEY}]
    await p.settle_background()
    note = next(r["json"] for r in p.receiver.received if r["json"]["type"] == "payment.succeeded")
    data = note["data"]
    assert data["payable_amount"] == 4700
    assert data["discount_amount"] == 1300
    assert [d["kind"] for d in data["discounts"]] == ["campaign", "points"]

    stats = (await p.http.get(f"/ops/v1/marketing/campaigns/{camp['campaign_id']}",
                              headers=OPS)).json()
    assert (stats["spend"], stats["redemptions"], stats["remaining"]) == (1000, 1, 99_000)
    statement = (await p.http.get(f"/ops/v1/points/accounts/{KEY}", headers=OPS)).json()
    assert statement["balance"] == 500 - 300 + 47  # 47.00 yuan cash earns 47 points

    # a refund of 20.00 in the order's terms: 15.67 cash, 3.33 campaign, 1.00 points
    r = await p.call("POST", f"/api/v1/orders/{order['order_id']}/refunds",
                     {"out_refund_no": "RMKT000001", "amount": 2000})
    assert r.status_code == 200, r.text
    rv = r.json()
    assert rv["status"] == "SUCCESS"
    assert rv["cash_amount"] == 1567
    assert [(d["kind"], d["amount"]) for d in rv["discounts"]] == [("campaign", 333),
                                                                  ("points", 100)]
    at_channel = (await p.http.get(f"/sandbox/bankpay/wallet/orders/{order['order_id']}")).json()
    assert [x["refund_fen"] for x in at_channel["refunds"]] == [1567]
    await p.settle_background()
    stats = (await p.http.get(f"/ops/v1/marketing/campaigns/{camp['campaign_id']}",
                              headers=OPS)).json()
    assert (stats["spend"], stats["remaining"]) == (1000 - 333, 99_000 + 333)
    statement = (await p.http.get(f"/ops/v1/points/accounts/{KEY}", headers=OPS)).json()
    # 100 redeemed points back, 15 of the 47 earned clawed back (47 x 20/60, rounded down)
    assert statement["balance"] == 247 + 100 - 15

    # the rest: the last refund takes exactly what is left of every part
    r = await p.call("POST", f"/api/v1/orders/{order['order_id']}/refunds",
                     {"out_refund_no": "RMKT000002", "amount": 4000})
    rv = r.json()
    assert rv["cash_amount"] == 4700 - 1567
    assert [(d["kind"], d["amount"]) for d in rv["discounts"]] == [("campaign", 667),
                                                                  ("points", 200)]
    await p.settle_background()
    refund_notes = [r["json"] for r in p.receiver.received
                    if r["json"]["type"] == "refund.succeeded"]
    assert len(refund_notes) == 2
    assert [n["data"]["cash_amount"] for n in refund_notes] == [1567, 3133]
    assert refund_notes[0]["data"]["discounts"][0]["amount"] == 333
    stats = (await p.http.get(f"/ops/v1/marketing/campaigns/{camp['campaign_id']}",
                              headers=OPS)).json()
    assert (stats["spend"], stats["remaining"]) == (0, 100_000)
    statement = (await p.http.get(f"/ops/v1/points/accounts/{KEY}", headers=OPS)).json()
    assert statement["balance"] == 500  # every point back where it started


async def test_bad_input_each_with_its_code_and_nothing_reserved(platform: Platform) -> None:
    p = platform
    camp = await setup_campaign(p, budget_total=500)  # cannot cover 10.00 off
    q = await quote(p)
    assert q.json()["discount_amount"] == 0  # left out of the best choice
    picked = await quote(p, campaign_id=camp["campaign_id"])
    assert picked.json()["code"] == "BUDGET_EXHAUSTED"
    camp2 = await setup_campaign(p)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"amount": 4000, "campaign_id": camp2["campaign_id"]}, "THRESHOLD_NOT_MET"),
        ({"campaign_id": "cmp_nope"}, "CAMPAIGN_NOT_FOUND"),
        ({"points": -1}, "INVALID_POINTS"),
        ({"points": 1.5}, "INVALID_POINTS"),
        ({"points": 10}, "POINTS_INSUFFICIENT"),
        ({"coupon_id": "cpn_nope"}, "COUPON_NOT_FOUND"),
        ({"payer_id": None, "points": 1}, "PAYER_REQUIRED_FOR_DISCOUNT"),
        ({"amount": 0}, "INVALID_AMOUNT"),
    ]
    for body, code in cases:
        resp = await quote(p, **body)
        assert resp.json().get("code") == code, (body, resp.text)

    good = (await quote(p)).json()
    assert good["discount_amount"] == 1000
    token = good["quote_id"]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for overrides, code in [({"quote": tampered}, "QUOTE_INVALID"),
                            ({"quote": "garbage"}, "QUOTE_INVALID"),
                            ({"quote": token, "amount": 6001}, "QUOTE_MISMATCH"),
                            ({"quote": token, "payer_id": "someone_else"}, "QUOTE_MISMATCH"),
                            ({"quote": token, "channel": "wechat", "way_code": "QR_DYNAMIC"},
                             "QUOTE_MISMATCH")]:
        resp = await p.order(**{"amount": 6000, "payer_id": PAYER, **overrides})
        assert resp.json().get("code") == code, (overrides, resp.text)
    clock.advance(timedelta(seconds=p.settings.marketing_quote_seconds + 1))
    resp = await p.order(amount=6000, payer_id=PAYER, quote=token)
    assert resp.json()["code"] == "QUOTE_EXPIRED"
    async with p.db.transaction() as s:
        assert (await s.execute(select(func.count()).select_from(Order))).scalar_one() == 0
        assert (await s.execute(select(func.count()).select_from(Redemption))).scalar_one() == 0


async def test_pausing_the_campaign_after_the_quote_refuses_the_order(platform: Platform) -> None:
    p = platform
    camp = await setup_campaign(p)
    token = (await quote(p)).json()["quote_id"]
    resp = await p.http.post(f"/ops/v1/marketing/campaigns/{camp['campaign_id']}/pause",
                             headers=OPS)
    assert resp.json()["status"] == "PAUSED"
    again = await p.http.post(f"/ops/v1/marketing/campaigns/{camp['campaign_id']}/pause",
                              headers=OPS)
    assert again.json()["code"] == "ILLEGAL_STATE_TRANSITION"
    order = await p.order(amount=6000, payer_id=PAYER, quote=token)
    assert order.json()["code"] == "CAMPAIGN_NOT_ACTIVE"
    async with p.db.transaction() as s:
        assert (await s.execute(select(func.count()).select_from(Order))).scalar_one() == 0


async def test_a_closed_order_gives_its_budget_and_coupon_back(platform: Platform) -> None:
    p = platform
    camp = await setup_campaign(p)
    tpl = (await p.http.post("/ops/v1/marketing/coupon-templates", headers=OPS, json={
        "name": "3 off", "funder": "merchant", "owner_merchant_id": p.merchant_id,
        "discount_type": "INSTANT_OFF", "off": 300, "quantity": 5})).json()
    claimed = await p.call("POST", "/api/v1/marketing/coupons/claim",
                           {"template_id": tpl["template_id"], "channel": "bankpay",
                            "payer_id": PAYER})
    assert claimed.status_code == 200, claimed.text
    twice = await p.call("POST", "/api/v1/marketing/coupons/claim",
                         {"template_id": tpl["template_id"], "channel": "bankpay",
                          "payer_id": PAYER})
    assert twice.json()["code"] == "COUPON_LIMIT_REACHED"
    qv = (await quote(p)).json()
    assert [d["kind"] for d in qv["discounts"]] == ["campaign", "coupon"]
    assert qv["payable_amount"] == 6000 - 1000 - 300
    order = (await p.order(amount=6000, payer_id=PAYER, quote=qv["quote_id"])).json()
    other = await quote(p, coupon_id=claimed.json()["coupon_id"])
    assert other.json()["code"] == "COUPON_NOT_AVAILABLE"
    closed = await p.call("POST", f"/api/v1/orders/{order['order_id']}/close")
    assert closed.json()["status"] == "CLOSED"
    await p.settle_background()
    stats = (await p.http.get(f"/ops/v1/marketing/campaigns/{camp['campaign_id']}",
                              headers=OPS)).json()
    assert (stats["remaining"], stats["redemptions"]) == (100_000, 0)
    coupons = (await p.call("GET", f"/api/v1/marketing/coupons?channel=bankpay&payer_id={PAYER}"
                            )).json()
    assert [c["state"] for c in coupons["data"]] == ["AVAILABLE"]


async def test_coupon_of_another_payer_foreign_or_expired_is_refused(platform: Platform) -> None:
    p = platform
    mine = (await p.http.post("/ops/v1/marketing/coupon-templates", headers=OPS, json={
        "name": "3 off", "funder": "platform", "discount_type": "INSTANT_OFF", "off": 300,
        "quantity": 5, "valid_days": 1})).json()
    foreign = (await p.http.post("/ops/v1/marketing/coupon-templates", headers=OPS, json={
        "name": "elsewhere", "funder": "merchant", "owner_merchant_id": "mch_other",
        "discount_type": "INSTANT_OFF", "off": 300, "quantity": 5})).json()
    theirs = (await p.http.post(f"/ops/v1/marketing/coupon-templates/{mine['template_id']}/grant",
                                headers=OPS, json={"channel": "bankpay", "payer_id": "other"}
                                )).json()
    away = (await p.http.post(f"/ops/v1/marketing/coupon-templates/{foreign['template_id']}/grant",
                              headers=OPS, json={"channel": "bankpay", "payer_id": PAYER})).json()
    ours = (await p.http.post(f"/ops/v1/marketing/coupon-templates/{mine['template_id']}/grant",
                              headers=OPS, json={"channel": "bankpay", "payer_id": PAYER})).json()
    assert (await quote(p, coupon_id=theirs["coupon_id"])).json()["code"] == "COUPON_NOT_OWNED"
    assert (await quote(p, coupon_id=away["coupon_id"])).json()["code"] == "COUPON_NOT_APPLICABLE"
    ok = (await quote(p, coupon_id=ours["coupon_id"])).json()
    assert ok["payable_amount"] == 5700
    clock.advance(timedelta(days=2))
    assert (await quote(p, coupon_id=ours["coupon_id"])).json()["code"] == "COUPON_EXPIRED"
    late = await p.order(amount=6000, payer_id=PAYER, quote=ok["quote_id"])
    assert late.json()["code"] == "QUOTE_EXPIRED"
