"""H5, APP and JSAPI through `POST /api/v1/orders`, on the sandbox channels that take them: what
the merchant gets back to hand to the browser or the app's SDK, and the payer paying it in the
channel's wallet. And the way codes the merchant API refuses."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fulema.payments.models import Order
from tests.payments.conftest import Platform
from tests.payments.test_every_channel import RICH, enable

WX_PAYER = RICH["wechat"]
ALI_PAYER = RICH["alipay"]


async def create(p: Platform, **fields: Any) -> dict[str, Any]:
    resp = await p.order(**fields)
    assert resp.status_code == 200, resp.text
    order: dict[str, Any] = resp.json()
    assert order["status"] == "PAYING", order
    assert order["way_code"] == fields["way_code"]
    assert order["channel"] == fields["channel"]
    return order


async def paid(p: Platform, order: dict[str, Any], payment: Any) -> None:
    assert payment.status_code == 200, payment.text
    view = await p.wait_status(order["order_id"], "SUCCESS")
    assert view["channel_trade_no"]
    assert view["paid_at"] is not None
    await p.settle_background()
    notes = [r["json"] for r in p.receiver.received if r["json"]["type"] == "payment.succeeded"]
    assert [n["data"]["order_id"] for n in notes] == [order["order_id"]]


async def count_orders(p: Platform) -> int:
    async with p.db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(Order)) or 0)


# ------------------------------------------------------------------------------------- H5


async def test_wechat_h5_gives_a_page_url_the_payer_pays_on(platform: Platform) -> None:
    p = platform
    order = await create(p, out_trade_no="H5WECHAT01", way_code="H5", channel="wechat",
                         amount=1250)
    assert order["h5_url"]
    assert order["h5_url"].startswith("http://testserver/sandbox/wechat/")
    assert order["code_url"] is None
    assert order["pay_params"] is None
    page = await p.http.get(order["h5_url"])  # the browser is sent there
    assert page.status_code == 200
    assert "¥12.50" in page.text
    await paid(p, order, await p.wallet("wechat", "/scan", {"h5_url": order["h5_url"],
                                                            "payer_id": WX_PAYER}))


async def test_bankpay_h5_gives_a_page_url_the_payer_pays_on(platform: Platform) -> None:
    p = platform
    order = await create(p, out_trade_no="H5BANKPAY1", way_code="H5", channel="bankpay",
                         amount=990)
    assert order["h5_url"]
    assert order["h5_url"].startswith("http://testserver/sandbox/bankpay/")
    assert order["code_url"] is None
    page = await p.http.get(order["h5_url"])
    assert page.status_code == 200
    await paid(p, order, await p.wallet("bankpay", "/scan", {"h5_url": order["h5_url"],
                                                             "payer_id": "payer_rich"}))


async def test_alipay_h5_gives_a_signed_wap_pay_url_the_payer_pays_on(platform: Platform) -> None:
    p = platform
    enable(p, "alipay")
    order = await create(p, out_trade_no="H5ALIPAY01", way_code="H5", channel="alipay",
                         amount=1250)
    assert order["h5_url"]
    assert "alipay.trade.wap.pay" in order["h5_url"]
    assert "sign=" in order["h5_url"]
    assert order["code_url"] is None
    await paid(p, order, await p.wallet("alipay", "/scan", {"code_url": order["h5_url"],
                                                            "payer_id": ALI_PAYER}))


# ------------------------------------------------------------------------------------ APP


async def test_wechat_app_gives_signed_sdk_params_the_app_pays_with(platform: Platform) -> None:
    p = platform
    order = await create(p, out_trade_no="APPWECHAT1", way_code="APP", channel="wechat",
                         amount=1250)
    params = order["pay_params"]
    assert params is not None
    assert set(params) == {"appid", "partnerid", "prepayid", "package", "noncestr", "timestamp",
                           "sign"}
    assert params["package"] == "Sign=WXPay"
    assert params["prepayid"]
    assert params["sign"]
    assert order["code_url"] is None
    assert order["h5_url"] is None
    await paid(p, order, await p.wallet("wechat", "/scan", {"prepay_id": params["prepayid"],
                                                            "payer_id": WX_PAYER}))


# ---------------------------------------------------------------------------------- JSAPI


async def test_wechat_jsapi_gives_bridge_params_only_that_payer_can_pay(
        platform: Platform) -> None:
    p = platform
    order = await create(p, out_trade_no="JSWECHAT01", way_code="JSAPI", channel="wechat",
                         payer_id=WX_PAYER, amount=1250)
    assert order["payer_id"] == WX_PAYER
    params = order["pay_params"]
    assert params is not None
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["signType"] == "RSA"
    assert params["package"].startswith("prepay_id=")
    prepay_id = params["package"].removeprefix("prepay_id=")

    stranger = await p.wallet("wechat", "/payers", {"balance_fen": 100_000})
    assert stranger.status_code == 200, stranger.text
    other = await p.wallet("wechat", "/scan", {"prepay_id": prepay_id,
                                               "payer_id": stranger.json()["openid"]})
    assert other.status_code == 403
    assert (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()["status"] \
        == "PAYING"
    await paid(p, order, await p.wallet("wechat", "/scan", {"prepay_id": prepay_id,
                                                            "payer_id": WX_PAYER}))


async def test_alipay_jsapi_gives_the_trade_no_for_my_trade_pay(platform: Platform) -> None:
    p = platform
    enable(p, "alipay")
    order = await create(p, out_trade_no="JSALIPAY01", way_code="JSAPI", channel="alipay",
                         payer_id=ALI_PAYER, amount=1250)
    params = order["pay_params"]
    assert params is not None
    assert params["tradeNO"]
    await paid(p, order, await p.wallet("alipay", "/scan", {"trade_no": params["tradeNO"],
                                                            "payer_id": ALI_PAYER}))


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
async def test_jsapi_without_payer_id_is_refused_and_writes_no_order(
        platform: Platform, channel: str) -> None:
    p = platform
    enable(p, channel)
    resp = await p.order(out_trade_no=f"JSNOID{channel[:4].upper()}", way_code="JSAPI",
                         channel=channel)
    assert resp.status_code == 400
    assert resp.json()["code"] == "PAYER_ID_REQUIRED"
    assert await count_orders(p) == 0


# ----------------------------------------------------------------------- refused way codes


async def test_qr_static_is_refused_from_the_merchant_api(platform: Platform) -> None:
    p = platform
    resp = await p.order(out_trade_no="STATIC0001", way_code="QR_STATIC", channel="wechat")
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "UNKNOWN_WAY_CODE"
    assert "cashier" in body["message"]
    assert "plate" in body["message"]
    assert await count_orders(p) == 0


async def test_an_unknown_way_code_lists_the_five_the_api_takes(platform: Platform) -> None:
    resp = await platform.order(out_trade_no="NOWAY00001", way_code="NATIVE")
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "UNKNOWN_WAY_CODE"
    assert body["message"] == "way_code must be one of QR_DYNAMIC, BARCODE, JSAPI, H5, APP"


# --------------------------------------------------------- payer codes (docs/errors.md says)


async def test_a_payer_code_of_a_channel_not_enabled_is_channel_not_enabled(
        platform: Platform) -> None:
    p = platform  # wechat and bankpay only
    alipay_shaped = "28" + "1234567890123456"  # an Alipay 付款码: 18 digits starting 28
    resp = await p.order(out_trade_no="BARALIOFF1", way_code="BARCODE", channel=None,
                         auth_code=alipay_shaped)
    assert resp.status_code == 400
    assert resp.json()["code"] == "CHANNEL_NOT_ENABLED"
    assert await count_orders(p) == 0


@pytest.mark.parametrize(("auth_code", "channel"), [
    ("991234567890123456", None),  # no channel issues codes like this
    ("12ab34567890123456", None),  # not digits
    ("134567890123456789", "bankpay"),  # a WeChat code, but the order names bankpay
])
async def test_a_payer_code_no_rule_places_is_unrecognised(
        platform: Platform, auth_code: str, channel: str | None) -> None:
    resp = await platform.order(out_trade_no="BARUNKNOWN", way_code="BARCODE", channel=channel,
                                auth_code=auth_code)
    assert resp.status_code == 400
    assert resp.json()["code"] == "UNRECOGNISED_PAYER_CODE"
    assert await count_orders(platform) == 0
