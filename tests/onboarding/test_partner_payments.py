"""Payments in the channels' partner (service-provider) form, end to end over HTTP against the
mounted sandboxes: a merchant with an ACTIVE registration pays under its sub-merchant id
(create, pay in the sandbox's wallet, the partner-form callback, query, refund, close), one
without a registration in the direct form as before (a sub-merchant the channel itself
suspended: test_partner_channels, for every channel)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fulema.channels.base import CallbackKind, CallbackResult, TradeResult, TradeState
from fulema.core.errors import FulemaError
from fulema.core.money import Money
from fulema.payments import service as payments
from fulema.payments.callback_routing import SubMerchantCheck, sub_merchant_check
from fulema.payments.models import OrderEvent
from tests.onboarding.helpers import (
    OPS,
    RICH,
    refunded,
    registered,
    registrations,
    rounds,
    sandbox_state,
    stored_sub,
)
from tests.payments.conftest import Platform


async def test_a_registered_merchant_pays_in_the_wechat_partner_form(platform: Platform) -> None:
    p = platform
    sub = await registered(p, "wechat")
    order = (await p.order(channel="wechat", amount=1800)).json()
    assert order["status"] == "PAYING", order
    assert await stored_sub(p, order["order_id"]) == sub
    wechat = sandbox_state(p, "wechat").sandbox
    assert wechat.orders[order["order_id"]].sub_mchid == sub  # it reached the partner API

    # still unpaid: the merchant's query asks WeChat in the partner form
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PAYING"
    paid = await p.wallet("wechat", "/scan", {"code_url": order["code_url"],
                                              "payer_id": RICH["wechat"]})
    assert paid.status_code == 200, paid.text
    view = await p.wait_status(order["order_id"], "SUCCESS")  # the partner-form callback
    assert view["amount"] == 1800

    channel = p.app.state.payments.channels.get("wechat")
    asked = await channel.query(order["order_id"], sub_merchant_id=sub)
    assert (asked.state, asked.amount.fen if asked.amount else None) == (TradeState.SUCCESS, 1800)
    assert (await channel.query(order["order_id"])).state == TradeState.NOT_FOUND  # not ours

    refund = await refunded(p, order["order_id"], "RFSP0001", 300)
    assert refund["status"] == "SUCCESS", refund
    assert wechat.refunds[refund["refund_id"]].order.sub_mchid == sub
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert (view["status"], view["refunded_amount"]) == ("PARTIALLY_REFUNDED", 300)

    other = (await p.order(channel="wechat", amount=500)).json()
    closed = await p.call("POST", f"/api/v1/orders/{other['order_id']}/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "CLOSED"
    assert wechat.orders[other["order_id"]].state == "CLOSED"


async def test_an_unregistered_merchant_pays_in_the_direct_form(platform: Platform) -> None:
    p = platform
    order = (await p.order(channel="wechat", amount=700)).json()
    assert order["status"] == "PAYING", order
    assert await stored_sub(p, order["order_id"]) is None
    assert sandbox_state(p, "wechat").sandbox.orders[order["order_id"]].sub_mchid == ""
    paid = await p.wallet("wechat", "/scan", {"code_url": order["code_url"],
                                              "payer_id": RICH["wechat"]})
    assert paid.status_code == 200, paid.text
    await p.wait_status(order["order_id"], "SUCCESS")


async def test_a_registered_merchant_pays_in_the_alipay_partner_form(platform: Platform) -> None:
    p = platform
    smid = await registered(p, "alipay")
    order = (await p.order(channel="alipay", amount=1250)).json()
    assert order["status"] == "PAYING", order
    assert await stored_sub(p, order["order_id"]) == smid
    paid = await p.wallet("alipay", "/scan", {"code_url": order["code_url"],
                                              "payer_id": RICH["alipay"]})
    assert paid.status_code == 200, paid.text
    trades = sandbox_state(p, "alipay").sandbox.books.trades
    assert trades[order["order_id"]].smid == smid  # sub_merchant.merchant_id reached Alipay
    await p.wait_status(order["order_id"], "SUCCESS")
    refund = await refunded(p, order["order_id"], "RFSPA001", 250)
    assert refund["status"] == "SUCCESS", refund


async def test_a_callback_for_another_sub_merchant_is_refused(platform: Platform) -> None:
    """The check runs on the order locked to apply the result: a success named for another
    sub-merchant (or for none) is refused and writes nothing; the order's own is applied."""
    p = platform
    sub = await registered(p, "wechat")
    order = (await p.order(channel="wechat")).json()
    deps = p.app.state.payments
    paid = TradeResult(state=TradeState.SUCCESS, channel_trade_no="4200000001",
                       amount=Money(order["amount"]), currency="CNY")

    def check(named: str | None) -> SubMerchantCheck:
        found = sub_merchant_check(CallbackResult(
            kind=CallbackKind.PAYMENT, order_id=order["order_id"], sub_merchant_id=named,
            names_sub_merchant=True))
        assert found is not None
        return found

    for wrong in ("1999999999", None):
        with pytest.raises(FulemaError) as refused:
            await payments.apply_trade_result(deps, order_id=order["order_id"], result=paid,
                                              source="callback", check=check(wrong))
        assert refused.value.code == "CALLBACK_INVALID"
        assert "1999999999" in refused.value.message or "(none)" in refused.value.message
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PAYING"  # nothing applied, nothing half-written
    assert await events_of(p, order["order_id"]) == ["CREATED", "CHANNEL_ACCEPTED"]

    applied = await payments.apply_trade_result(deps, order_id=order["order_id"], result=paid,
                                                source="callback", check=check(sub))
    assert applied.status == "SUCCESS"
    # a notification that names no sub-merchant (Alipay's form) needs no check
    assert sub_merchant_check(CallbackResult(kind=CallbackKind.PAYMENT,
                                             order_id=order["order_id"])) is None


async def events_of(p: Platform, order_id: str) -> list[str]:
    async with p.db.transaction() as s:
        rows = await s.scalars(select(OrderEvent.kind).where(OrderEvent.order_id == order_id)
                               .order_by(OrderEvent.at, OrderEvent.id))
        return list(rows.all())


SUB_APPID = "wx0123456789abcdef"


async def test_the_merchants_own_app_is_sent_as_sub_appid(platform: Platform) -> None:
    """A merchant with its own WeChat app: the orders that app makes (JSAPI, the payer's
    openid under that app) carry sub_appid and sub_openid, and the app launches the payment
    under its own appid; a QR order does not, and setting the app re-registers nothing."""
    p = platform
    sub = await registered(p, "wechat")
    bad = await p.http.put(f"/ops/v1/onboarding/merchants/{p.merchant_id}/supplement",
                           json={"wechat_sub_appid": "wx12345"}, headers=OPS)
    assert bad.status_code == 400
    assert bad.json()["code"] == "VALIDATION_ERROR"
    resp = await p.http.put(f"/ops/v1/onboarding/merchants/{p.merchant_id}/supplement",
                            json={"wechat_sub_appid": SUB_APPID}, headers=OPS)
    assert resp.status_code == 200, resp.text
    assert resp.json()["wechat_sub_appid"] == SUB_APPID
    await rounds(p)
    assert [r["state"] for r in await registrations(p, "wechat")] == ["ACTIVE"]

    order = (await p.order(channel="wechat", way_code="JSAPI", payer_id=RICH["wechat"],
                           amount=990)).json()
    assert order["status"] == "PAYING", order
    assert order["pay_params"]["appId"] == SUB_APPID
    seen = sandbox_state(p, "wechat").sandbox.orders[order["order_id"]]
    assert (seen.sub_mchid, seen.sub_appid, seen.openid) == (sub, SUB_APPID, RICH["wechat"])
    prepay_id = order["pay_params"]["package"].removeprefix("prepay_id=")
    paid = await p.wallet("wechat", "/scan", {"prepay_id": prepay_id,
                                              "payer_id": RICH["wechat"]})
    assert paid.status_code == 200, paid.text
    await p.wait_status(order["order_id"], "SUCCESS")

    qr = (await p.order(channel="wechat")).json()
    assert sandbox_state(p, "wechat").sandbox.orders[qr["order_id"]].sub_appid == ""


async def test_the_wechat_sandbox_checks_sub_appid_and_sub_openid(platform: Platform) -> None:
    """WeChat's rules the sandbox keeps: sub_openid only with sub_appid, an appid's shape."""
    p = platform
    sub = await registered(p, "wechat")
    channel = p.app.state.payments.channels.get("wechat").primary
    base = {"sp_appid": channel.wx.appid, "sp_mchid": channel.wx.mchid, "sub_mchid": sub,
            "description": "x", "out_trade_no": "SUBAPP0001", "notify_url": "https://x/n",
            "amount": {"total": 100, "currency": "CNY"}}
    path = "/v3/pay/partner/transactions/jsapi"
    status, doc = await channel.api.call("POST", path, {**base,
                                                        "payer": {"sub_openid": "o_x"}})
    assert (status, doc["code"]) == (400, "PARAM_ERROR")
    status, doc = await channel.api.call("POST", path, {**base, "sub_appid": "wxNOTHEX",
                                                        "payer": {"sub_openid": "o_x"}})
    assert (status, doc["code"]) == (400, "PARAM_ERROR")
    status, doc = await channel.api.call("POST", path, {**base, "sub_appid": SUB_APPID,
                                                        "payer": {"sub_openid": "o_x"}})
    assert status == 200, doc
    assert doc["prepay_id"]
