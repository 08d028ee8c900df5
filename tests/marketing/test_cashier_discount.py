"""The static-QR cashier shows the best discount before the payer confirms, and lets the payer
use points; the order is created with the quote the page carried."""

from __future__ import annotations

import re

from tests.marketing.test_e2e_http import OPS, setup_campaign
from tests.payments.conftest import Platform
from tests.payments.test_cashier import BANK, RICH_OPENID, WECHAT, open_in_app


def field(text: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', text)
    assert found, name
    return found.group(1)


async def test_payer_sees_the_discount_and_pays_with_points(platform: Platform) -> None:
    p = platform
    await setup_campaign(p)  # 满50减10
    key = f"wechat:{RICH_OPENID}"
    resp = await p.http.post(f"/ops/v1/points/accounts/{key}/adjust",
                             json={"points": 800, "reason": "welcome"}, headers=OPS)
    assert resp.status_code == 200
    page = await open_in_app(p, WECHAT, RICH_OPENID)
    token = field(page.text, "payer_id")
    confirm = await p.http.post("/pay/q/DEMO000001", headers={"User-Agent": WECHAT},
                                data={"amount": "60.00", "payer_id": token})
    assert confirm.status_code == 200, confirm.text
    assert 'data-discount="10.00"' in confirm.text
    assert 'data-payable="50.00"' in confirm.text
    assert "使用 800 积分" in confirm.text  # 800 points = 8.00, under the 50% cap
    assert RICH_OPENID not in confirm.text  # the page carries a signed token, not the openid
    handed = await p.http.post("/pay/q/DEMO000001", headers={"User-Agent": WECHAT}, data={
        "amount": "60.00", "payer_id": token, "confirm": "1", "use_points": "1",
        "quote": field(confirm.text, "quote"), "quote_points": field(confirm.text, "quote_points")})
    assert handed.status_code == 200, handed.text
    assert "¥42.00" in handed.text
    order_id = re.search(r'data-order-id="([^"]+)"', handed.text)
    assert order_id
    order = (await p.call("GET", f"/api/v1/orders/{order_id.group(1)}")).json()
    assert (order["amount"], order["payable_amount"]) == (6000, 4200)
    assert [d["kind"] for d in order["discounts"]] == ["campaign", "points"]


async def test_no_discount_no_extra_step(platform: Platform) -> None:
    await setup_campaign(platform)
    handed = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK},
                                      data={"amount": "8.00"})  # below the 50.00 threshold
    assert 'data-order-id="' in handed.text


async def test_a_discount_without_a_payer_id(platform: Platform) -> None:
    await setup_campaign(platform, discount_type="INSTANT_OFF", threshold=0, off=100)
    confirm = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK},
                                       data={"amount": "8.00"})
    assert 'data-payable="7.00"' in confirm.text
    assert "quote_points" not in confirm.text
    handed = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK}, data={
        "amount": "8.00", "confirm": "1", "quote": field(confirm.text, "quote")})
    assert "¥7.00" in handed.text
