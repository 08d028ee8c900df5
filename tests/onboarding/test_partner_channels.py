"""The partner form at UnionPay (acquirer access, accessType=1), e-CNY and the bank's own
channel, end to end over HTTP against the mounted sandboxes: a merchant ACTIVE there pays under
its sub-merchant id (the sandbox records it, the notification naming it is applied, queries,
refunds and closes ask in the same form), the channel refuses a sub-merchant it does not know
or has suspended with its own code (SUB_MERCHANT_REFUSED, 403, never a 500), and a
notification naming another sub-merchant is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fulema.channels.base import (
    BarcodePayRequest,
    CreatePaymentRequest,
    SubMerchantRefused,
    TradeState,
)
from fulema.core.errors import FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from tests.onboarding.helpers import (
    RICH,
    current,
    decide,
    refunded,
    registered,
    sandbox_state,
    status_in_db,
    stored_sub,
)
from tests.payments.conftest import Platform

CHANNELS = ["unionpay", "ecny", "bankpay"]
# each channel's own code for a sub-merchant it does not know / has suspended
UNKNOWN = {"unionpay": "31", "ecny": "SUB_MERCHANT_NOT_REGISTERED",
           "bankpay": "SUB_MERCHANT_INVALID"}
SUSPENDED = {"wechat": "NO_AUTH", "alipay": "ACQ.SECONDARY_MERCHANT_STATUS_ERROR",
             "unionpay": "31", "ecny": "SUB_MERCHANT_SUSPENDED", "bankpay": "SUB_MERCHANT_FROZEN"}


def seen_sub(p: Platform, channel: str, order_id: str) -> str:
    """The merchant the channel's sandbox recorded the order under."""
    sb = sandbox_state(p, channel).sandbox
    if channel == "unionpay":
        txn = sb.find_order(order_id)
        assert txn is not None
        return str(txn.mer_id)
    return str(sb.orders[order_id].sub_merchant_id)


def auth_code(doc: dict[str, Any]) -> str:
    return str(doc.get("auth_code") or doc["data"]["auth_code"])


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_registered_merchant_pays_in_the_partner_form(platform: Platform,
                                                             channel: str) -> None:
    p = platform
    sub = await registered(p, channel)
    order = (await p.order(channel=channel, amount=1800)).json()
    assert order["status"] == "PAYING", order
    assert await stored_sub(p, order["order_id"]) == sub
    assert seen_sub(p, channel, order["order_id"]) == sub  # it reached the channel so

    paid = await p.wallet(channel, "/scan", {"code_url": order["code_url"],
                                             "payer_id": RICH[channel]})
    assert paid.status_code == 200, paid.text
    # the notification names the sub-merchant; it is the order's, so it is applied
    assert await status_in_db(p, order["order_id"], "SUCCESS") == "SUCCESS"

    adapter = p.app.state.payments.channels.get(channel)
    asked = await adapter.query(order["order_id"], sub_merchant_id=sub)
    assert (asked.state, asked.amount.fen if asked.amount else None) == (TradeState.SUCCESS, 1800)
    assert (await adapter.query(order["order_id"])).state == TradeState.NOT_FOUND  # not ours

    refund = await refunded(p, order["order_id"], f"RFP{channel[:3].upper()}01", 300)
    assert refund["status"] == "SUCCESS", refund
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert (view["status"], view["refunded_amount"]) == ("PARTIALLY_REFUNDED", 300)

    other = (await p.order(channel=channel, amount=500)).json()
    closed = await p.call("POST", f"/api/v1/orders/{other['order_id']}/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "CLOSED"


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_payer_code_in_the_partner_form(platform: Platform, channel: str) -> None:
    p = platform
    sub = await registered(p, channel)
    code = auth_code((await p.wallet(channel, f"/payers/{RICH[channel]}/code")).json())
    resp = await p.order(way_code="BARCODE", channel=None, auth_code=code, amount=660)
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert order["channel"] == channel
    assert await stored_sub(p, order["order_id"]) == sub
    assert seen_sub(p, channel, order["order_id"]) == sub
    if order["status"] != "SUCCESS":
        order = await p.wait_status(order["order_id"], "SUCCESS")
    assert order["amount"] == 660


@pytest.mark.parametrize("channel", ["wechat", "alipay", *CHANNELS])
async def test_a_sub_merchant_suspended_at_the_channel_is_refused_with_its_code(
        platform: Platform, channel: str) -> None:
    p = platform
    await registered(p, channel)
    reg = await current(p, channel)
    await decide(p, channel, reg["id"], "suspend")  # the channel stops it; our row stays ACTIVE
    no = f"SPSUSP{channel[:3].upper()}1"
    resp = await p.order(channel=channel, out_trade_no=no)
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert body["code"] == "SUB_MERCHANT_REFUSED"
    assert SUSPENDED[channel] in body["message"]
    order = (await p.call("GET", f"/api/v1/orders/by-out-trade-no/{no}")).json()
    assert (order["status"], order["failure_code"]) == ("FAILED", SUSPENDED[channel]), order
    # a payer code is refused the same way, and nothing is charged
    payer = f"/payers/{RICH[channel]}"
    code = auth_code((await p.wallet(channel, f"{payer}/code")).json())
    before = await p.http.get(f"/sandbox/{channel}/wallet{payer}")
    assert before.status_code == 200, before.text
    resp = await p.order(out_trade_no=no + "B", way_code="BARCODE", channel=None,
                         auth_code=code)
    assert resp.status_code == 403, resp.text
    assert resp.json()["code"] == "SUB_MERCHANT_REFUSED"
    assert (await p.http.get(f"/sandbox/{channel}/wallet{payer}")).json() == before.json()
    # resumed at the channel: accepted again
    await decide(p, channel, reg["id"], "resume")
    assert (await p.order(channel=channel)).status_code == 200


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_suspended_sub_merchants_earlier_payment_is_still_refunded(
        platform: Platform, channel: str) -> None:
    """Suspension stops new payments only: what was paid before is queried and refunded."""
    p = platform
    await registered(p, channel)
    order = (await p.order(channel=channel, amount=900)).json()
    paid = await p.wallet(channel, "/scan", {"code_url": order["code_url"],
                                             "payer_id": RICH[channel]})
    assert paid.status_code == 200, paid.text
    assert await status_in_db(p, order["order_id"], "SUCCESS") == "SUCCESS"
    await decide(p, channel, (await current(p, channel))["id"], "suspend")
    refund = await refunded(p, order["order_id"], f"RFS{channel[:3].upper()}01", 900)
    assert refund["status"] == "SUCCESS", refund
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert (view["status"], view["refunded_amount"]) == ("REFUNDED", 900)


@pytest.mark.parametrize("channel", CHANNELS)
async def test_an_unknown_sub_merchant_is_refused_by_the_channel(platform: Platform,
                                                                 channel: str) -> None:
    p = platform
    adapter = p.app.state.payments.channels.get(channel)
    unknown = "898330158120999" if channel == "unionpay" else "NOSUCHSUB0001"
    expire = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(SubMerchantRefused) as refused:
        await adapter.create(CreatePaymentRequest(
            order_id=new_id("ord"), amount=Money(100), subject="x",
            way_code=WayCode.QR_DYNAMIC, notify_url="http://testserver/n", expire_at=expire,
            sub_merchant_id=unknown))
    assert refused.value.code == UNKNOWN[channel]
    with pytest.raises(SubMerchantRefused):
        await adapter.barcode_pay(BarcodePayRequest(
            order_id=new_id("ord"), amount=Money(100), subject="x",
            auth_code="6200000000000000000", sub_merchant_id=unknown))


async def test_unionpay_acquirer_access_needs_the_acquirer_code(platform: Platform) -> None:
    p = platform
    sub = await registered(p, "unionpay")
    adapter = p.app.state.payments.channels.get("unionpay")
    endpoint = adapter.primary
    fields = {"txnType": "00", "txnSubType": "00", "bizType": "000000",
              "orderId": "ord01jnone0000001", "txnTime": "20300101000000"}
    url = f"{endpoint.base_url}/gateway/api/queryTrans.do"
    missing = await endpoint._call(url, {**fields, "accessType": "1", "merId": sub})
    assert (missing["respCode"], missing["respMsg"]) == ("13", "报文交易要素缺失[acqInsCode]")
    other = await endpoint._call(url, {**fields, "accessType": "1", "merId": sub,
                                       "acqInsCode": "49999999"})
    assert other["respCode"] == "31"  # not the acquirer this UnionPay serves


async def test_unionpay_notification_names_the_sub_merchant(platform: Platform) -> None:
    """What UnionPay posts in the acquirer form is read as the sub-merchant's; one from an
    acquirer code not ours is refused before anything is applied."""
    p = platform
    sub = await registered(p, "unionpay")
    order = (await p.order(channel="unionpay")).json()
    sb = sandbox_state(p, "unionpay").sandbox
    txn = sb.find_order(order["order_id"])
    txn.code = "00"
    from fulema.sandbox.unionpay.protocol import write_form

    def notification(**changes: str) -> bytes:
        fields = {"version": "5.1.0", "encoding": "UTF-8", "bizType": "000000", "txnType": "01",
                  "txnSubType": "07", "accessType": "1", "acqInsCode": sb.config.acq_ins_code,
                  "merId": sub, "orderId": txn.order_id, "txnTime": txn.txn_time,
                  "txnAmt": str(txn.amount), "currencyCode": "156", "queryId": txn.query_id,
                  "respCode": "00", "origRespCode": "00", "traceTime": txn.trace_time,
                  **changes}
        return write_form(sb._signed(fields, txn.sign_method)).encode()

    adapter = p.app.state.payments.channels.get("unionpay")
    endpoint = adapter.primary
    cb = await endpoint.parse_callback({}, notification())
    assert (cb.order_id, cb.sub_merchant_id, cb.names_sub_merchant) == (
        order["order_id"], sub, True)
    with pytest.raises(FulemaError) as refused:
        await endpoint.parse_callback({}, notification(acqInsCode="49999999"))
    assert refused.value.code == "CALLBACK_INVALID"
    # the direct form's notification for this partner-form order is read as naming none:
    # payments refuses it (callback_routing), so the order is not paid by it
    cb = await endpoint.parse_callback({}, notification(accessType="0", acqInsCode="",
                                                        merId=sb.mer_id))
    assert cb.sub_merchant_id is None
    resp = await p.http.post("/callbacks/unionpay", content=notification(
        accessType="0", acqInsCode="", merId=sb.mer_id),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 400
    assert await status_in_db(p, order["order_id"], "PAYING") == "PAYING"
