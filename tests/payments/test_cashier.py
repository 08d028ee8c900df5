"""The static-QR cashier as a payer meets it: scan with an app, type an amount, pay."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.payments.conftest import Platform

WECHAT = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47"
BANK = "Mozilla/5.0 (Linux; Android 14) FulemaBank/3.1"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
RICH_OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


async def open_in_app(p: Platform, ua: str, payer_id: str) -> httpx.Response:
    """Scan the plate in the app: follow the silent-OAuth redirects as the app would."""
    resp = await p.http.get("/pay/q/DEMO000001", headers={"User-Agent": ua})
    for _ in range(5):
        if resp.status_code != 302:
            return resp
        location = resp.headers["location"]
        if "/sandbox/wechat/connect/oauth2/authorize" in location:
            location += f"&payer_id={payer_id}"
        url = httpx.URL(location)
        resp = await p.http.get(url.raw_path.decode(), headers={"User-Agent": ua})
    return resp


async def test_wechat_scan_shows_merchant_and_amount_pad(platform: Platform) -> None:
    first = await platform.http.get("/pay/q/DEMO000001", headers={"User-Agent": WECHAT})
    assert first.status_code == 302
    assert "snsapi_base" in first.headers["location"]
    page = await open_in_app(platform, WECHAT, RICH_OPENID)
    assert page.status_code == 200
    assert "付了码演示商户" in page.text
    assert 'name="amount"' in page.text
    assert "WeChat" in page.text


async def test_unsupported_app_is_told_which_apps_work(platform: Platform) -> None:
    page = await platform.http.get("/pay/q/DEMO000001", headers={"User-Agent": CHROME})
    assert page.status_code == 200
    assert 'name="amount"' not in page.text
    for app in ("WeChat", "Mobile banking"):
        assert app in page.text


async def test_unknown_plate_is_404(platform: Platform) -> None:
    page = await platform.http.get("/pay/q/NOPE000000", headers={"User-Agent": WECHAT})
    assert page.status_code == 404
    assert "收款码不存在" in page.text  # a page for the payer (tests/web/test_cashier_pages.py)


async def test_wechat_payer_pays_12_50_through_the_plate(platform: Platform) -> None:
    page = await open_in_app(platform, WECHAT, RICH_OPENID)
    token = re.search(r'name="payer_id" value="([^"]+)"', page.text)
    assert token
    assert token.group(1) != RICH_OPENID  # a signed token, never the raw openid
    handed = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": WECHAT},
                                      data={"amount": "12.50", "payer_id": token.group(1)})
    assert handed.status_code == 200, handed.text
    found = re.search(r'data-order-id="([^"]+)"', handed.text)
    assert found
    order_id = found.group(1)
    order = (await platform.call("GET", f"/api/v1/orders/{order_id}")).json()
    assert order["amount"] == 1250
    assert order["way_code"] == "QR_STATIC"
    assert order["channel"] == "wechat"
    prepay = order["pay_params"]["package"].removeprefix("prepay_id=")
    paid = await platform.wallet("wechat", "/scan", {"prepay_id": prepay,
                                                     "payer_id": RICH_OPENID})
    assert paid.status_code == 200, paid.text
    await platform.wait_status(order_id, "SUCCESS")
    result = await platform.http.get(f"/pay/result/{order_id}")
    assert 'data-status="SUCCESS"' in result.text


async def test_bank_app_payer_pays_through_the_plate(platform: Platform) -> None:
    handed = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK},
                                      data={"amount": "8.00"})
    assert handed.status_code == 200, handed.text
    order_id = re.search(r'data-order-id="([^"]+)"', handed.text)
    assert order_id
    order = (await platform.call("GET", f"/api/v1/orders/{order_id.group(1)}")).json()
    assert order["channel"] == "bankpay"
    assert order["code_url"] or order["h5_url"]


async def test_forged_payer_id_is_not_trusted(platform: Platform) -> None:
    handed = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": WECHAT},
                                      data={"amount": "1.00", "payer_id": RICH_OPENID})
    order_id = re.search(r'data-order-id="([^"]+)"', handed.text)
    assert order_id
    order = (await platform.call("GET", f"/api/v1/orders/{order_id.group(1)}")).json()
    assert order["payer_id"] is None
    assert order["pay_params"] is None  # no in-app payment for an unproven payer
    assert order["code_url"]


@pytest.mark.parametrize("amount", ["", "0", "0.00", "-1", "12.345", "abc", "99999999"])
async def test_bad_amount_is_asked_again_and_nothing_is_written(platform: Platform,
                                                                 amount: str) -> None:
    page = await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": WECHAT},
                                    data={"amount": amount, "payer_id": RICH_OPENID})
    assert page.status_code == 400
    assert 'class="err"' in page.text
    from sqlalchemy import func, select

    from fulema.payments.models import Order

    async with platform.db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 0


async def test_an_app_without_payer_auth_gets_the_amount_pad_at_once(platform: Platform) -> None:
    """The bank's app authorises nobody (its channel has no PayerAuth): no OAuth redirect,
    the amount pad straight away."""
    page = await platform.http.get("/pay/q/DEMO000001", headers={"User-Agent": BANK})
    assert page.status_code == 200
    assert "location" not in page.headers
    assert 'name="amount"' in page.text
