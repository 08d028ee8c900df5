"""The payer's cashier pages over HTTP: what a payer reads (Chinese first, yuan, pages not JSON),
the in-app payment hand-over, the self-updating result and PC cashier, and the sandbox app
shell that plays the payer's app in development."""

from __future__ import annotations

import json
import re

import pytest

from tests.payments.conftest import Platform
from tests.payments.test_cashier import BANK, RICH_OPENID, WECHAT, open_in_app

PLATE = "/pay/q/DEMO000001"


async def wechat_hand_over(p: Platform, cookie: str = "") -> str:
    page = await open_in_app(p, WECHAT, RICH_OPENID)
    token = re.search(r'name="payer_id" value="([^"]+)"', page.text)
    assert token
    handed = await p.http.post(PLATE, headers={"User-Agent": WECHAT, "Cookie": cookie},
                               data={"amount": "12.50", "payer_id": token.group(1)})
    assert handed.status_code == 200, handed.text
    return handed.text


async def test_an_unknown_plate_gets_a_page_not_json(platform: Platform) -> None:
    for answer in (await platform.http.get("/pay/q/NOPE000000", headers={"User-Agent": WECHAT}),
                   await platform.http.post("/pay/q/NOPE000000", headers={"User-Agent": BANK},
                                            data={"amount": "1.00"})):
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
        assert "收款码不存在" in answer.text
        assert "No such payment code" in answer.text
        assert "PLATE_NOT_FOUND" not in answer.text


@pytest.mark.parametrize(("amount", "says", "never"), [
    ("99999999", "单笔金额不能超过 ¥50000.00", "fen"),
    ("50000.01", "单笔金额不能超过 ¥50000.00", "per-order limit 5000000"),
    ("abc", "请输入正确的金额", "not a yuan amount"),
    ("1e3", "请输入正确的金额", "not a yuan amount"),
    ("0.00", "请输入大于 0 的金额", "fen"),
])
async def test_bad_amounts_are_told_in_chinese_and_yuan(platform: Platform, amount: str,
                                                        says: str, never: str) -> None:
    page = await platform.http.post(PLATE, headers={"User-Agent": BANK}, data={"amount": amount})
    assert page.status_code == 400
    assert says in page.text
    assert never not in page.text
    assert 'name="amount"' in page.text  # the pad again, with what was typed


async def test_the_largest_allowed_amount_is_taken(platform: Platform) -> None:
    page = await platform.http.post(PLATE, headers={"User-Agent": BANK},
                                    data={"amount": "50000.00"})
    assert page.status_code == 200
    assert "¥50000.00" in page.text


async def test_wechat_hands_over_to_the_in_app_payment_not_printed_parameters(
        platform: Platform) -> None:
    html = await wechat_hand_over(platform)
    assert 'data-way="wechat"' in html
    found = re.search(r'<script type="application/json" id="pay-params">(.*?)</script>', html)
    assert found
    params = json.loads(found.group(1))
    assert set(params) >= {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert "paySign=" not in html
    assert "appId=" not in html  # nothing printed for the payer
    assert '<script src="/static/cashier.js"></script>' in html
    assert "bridge.js" not in html  # no app shell without its cookie


async def test_the_app_shell_cookie_brings_its_bridge_in_development_only(
        platform: Platform) -> None:
    html = await wechat_hand_over(platform, cookie="fulema_app_shell=wechat")
    assert '<script src="/sandbox/app/bridge.js"></script>' in html
    platform.settings.mount_sandbox = False  # what production runs with
    try:
        html = await wechat_hand_over(platform, cookie="fulema_app_shell=wechat")
    finally:
        platform.settings.mount_sandbox = True
    assert "bridge.js" not in html


async def test_bank_app_hand_over_is_a_link_the_app_opens(platform: Platform) -> None:
    page = await platform.http.post(PLATE, headers={"User-Agent": BANK}, data={"amount": "8.00"})
    assert 'data-app-pay href="' in page.text
    order_id = re.search(r'data-order-id="([^"]+)"', page.text)
    assert order_id
    assert f'data-return-url="/pay/result/{order_id.group(1)}"' in page.text


async def test_result_and_status_go_from_waiting_to_paid(platform: Platform) -> None:
    html = await wechat_hand_over(platform)
    order_id = re.search(r'data-order-id="([^"]+)"', html)
    assert order_id
    oid = order_id.group(1)
    page = await platform.http.get(f"/pay/result/{oid}")
    assert "等待支付" in page.text
    assert 'data-status="PAYING"' in page.text
    status = await platform.http.get(f"/pay/result/{oid}/status")
    assert status.json() == {"status": "PAYING", "label": "等待支付 · Waiting for payment"}
    assert status.headers["cache-control"] == "no-store"
    prepay = json.loads(re.search(r'id="pay-params">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    paid = await platform.wallet("wechat", "/scan", {
        "prepay_id": prepay["package"].removeprefix("prepay_id="), "payer_id": RICH_OPENID})
    assert paid.status_code == 200, paid.text
    await platform.wait_status(oid, "SUCCESS")
    status = await platform.http.get(f"/pay/result/{oid}/status")
    assert status.json() == {"status": "SUCCESS", "label": "支付成功 · Paid"}
    page = await platform.http.get(f"/pay/result/{oid}")
    assert "支付成功" in page.text
    assert "¥12.50" in page.text


async def test_unknown_order_pages_are_404_pages(platform: Platform) -> None:
    for path in ("/pay/result/NOPE", "/pay/order/NOPE"):
        page = await platform.http.get(path)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "订单不存在" in page.text
    status = await platform.http.get("/pay/result/NOPE/status")
    assert status.status_code == 404
    assert status.json()["status"] == "NOT_FOUND"


async def test_pc_cashier_shows_the_orders_qr_and_then_paid(platform: Platform) -> None:
    made = await platform.order(amount=2599, subject="Tea set")
    assert made.status_code == 200, made.text
    order = made.json()
    page = await platform.http.get(f"/pay/order/{order['order_id']}")
    assert page.status_code == 200
    assert 'src="data:image/svg+xml' in page.text
    assert "¥25.99" in page.text
    assert "等待支付" in page.text
    assert "Tea set" in page.text
    paid = await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                                      "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    await platform.wait_status(order["order_id"], "SUCCESS")
    page = await platform.http.get(f"/pay/order/{order['order_id']}")
    assert "支付成功" in page.text
    assert "data:image/svg+xml" not in page.text  # no QR for a paid order


async def test_the_app_shell_opens_the_cashier_as_the_chosen_app(platform: Platform) -> None:
    shell = await platform.http.get("/sandbox/app/", headers={"User-Agent": WECHAT})
    assert shell.status_code == 200
    assert "微信 WeChat" in shell.text
    opened = await platform.http.post("/sandbox/app/open",
                                      data={"app": "unionpay", "payer": "", "plate": "DEMO000001"})
    assert opened.status_code == 303
    assert opened.headers["location"] == PLATE
    cookies = opened.headers.get_list("set-cookie")
    assert any(c.startswith("fulema_app_shell=unionpay") for c in cookies)
    assert any(c.startswith("fulema_app_payer=up_rich") for c in cookies)
    bad = await platform.http.post("/sandbox/app/open", data={"app": "icq", "plate": "X"})
    assert "未知的 App" in bad.text
    assert "set-cookie" not in bad.headers
    script = await platform.http.get("/sandbox/app/bridge.js")
    assert script.headers["content-type"].startswith("text/javascript")
    for interface in ("getBrandWCPayRequest", "WeixinJSBridgeReady", "tradePay", "upsdk"):
        assert interface in script.text


async def test_the_sandbox_tells_the_app_what_a_prepay_order_is_for(platform: Platform) -> None:
    html = await wechat_hand_over(platform)
    prepay = json.loads(re.search(r'id="pay-params">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    ref = prepay["package"].removeprefix("prepay_id=")
    found = await platform.http.get("/sandbox/wechat/wallet/lookup", params={"ref": ref})
    assert found.json() == {"amount_fen": 1250, "subject": "付了码演示商户", "payable": True}
    missing = await platform.http.get("/sandbox/wechat/wallet/lookup", params={"ref": "nope"})
    assert missing.status_code == 404


def test_the_cashier_and_the_app_shell_agree_on_the_cookie() -> None:
    from fulema.sandbox.appshell import APP_COOKIE
    from fulema.web.cashier import APP_SHELL_COOKIE

    assert APP_COOKIE == APP_SHELL_COOKIE
