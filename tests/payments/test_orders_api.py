"""The unified order API end to end, on every database: create, pay, notify, query, close."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.gateway.signing import verify_notification
from fulema.payments.models import Notification, Order, OrderEvent
from tests.payments.conftest import SECRET, Platform


async def count_orders(p: Platform) -> int:
    async with p.db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(Order)) or 0)


async def test_dynamic_qr_paid_by_the_bank_app_notifies_the_merchant(platform: Platform) -> None:
    p = platform
    resp = await p.order(out_trade_no="T20261125001", amount=1250)
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert order["status"] == "PAYING"
    assert order["code_url"]
    assert order["amount"] == 1250

    paid = await p.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    view = await p.wait_status(order["order_id"], "SUCCESS")
    assert view["paid_at"] is not None
    assert view["channel_trade_no"]

    await p.settle_background()
    notes = [r for r in p.receiver.received if r["json"]["type"] == "payment.succeeded"]
    assert len(notes) == 1
    note = notes[0]
    assert note["json"]["data"]["order_id"] == order["order_id"]
    assert note["json"]["data"]["amount"] == 1250
    assert verify_notification(SECRET, note["headers"]["fulema-signature"], note["body"],
                               now=clock.timestamp())
    attempts = await p.call("GET", f"/api/v1/orders/{order['order_id']}/notifications")
    assert attempts.json()["notifications"][0]["status"] == "DELIVERED"


async def test_same_request_returns_same_order_and_other_parameters_conflict(
        platform: Platform) -> None:
    first = await platform.order(out_trade_no="IDEM000001", amount=500)
    again = await platform.order(out_trade_no="IDEM000001", amount=500)
    assert first.status_code == again.status_code == 200
    assert first.json()["order_id"] == again.json()["order_id"]
    other = await platform.order(out_trade_no="IDEM000001", amount=501)
    assert other.status_code == 409
    assert other.json()["code"] == "DUPLICATE_OUT_TRADE_NO"
    assert await count_orders(platform) == 1


async def test_fifty_concurrent_creates_with_one_out_trade_no_make_one_order(
        platform: Platform) -> None:
    results = await asyncio.gather(*[platform.order(out_trade_no="RACE000001", amount=990)
                                     for _ in range(50)])
    codes = {r.status_code for r in results}
    assert codes == {200}, {r.text for r in results if r.status_code != 200}
    assert len({r.json()["order_id"] for r in results}) == 1
    assert await count_orders(platform) == 1
    async with platform.db.transaction() as s:
        created = await s.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.kind == "CREATED"))
    assert created == 1


async def test_duplicate_channel_callbacks_are_harmless(platform: Platform) -> None:
    from fulema.channels.bankpay.adapter import signed_headers

    order = (await platform.order(out_trade_no="DUPCB00001", amount=300)).json()
    await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    await platform.wait_status(order["order_id"], "SUCCESS")
    sandbox_view = (await platform.http.get(
        f"/sandbox/bankpay/wallet/orders/{order['order_id']}")).json()
    data = sandbox_view.get("data", sandbox_view)
    bank = platform.settings.bankpay
    doc = {"event_id": "EVTdup", "event_type": "TRADE.SUCCESS", "create_time": "x",
           "data": {k: v for k, v in data.items() if k != "refunds"}}
    for _ in range(3):
        body = orjson.dumps(doc)
        resp = await platform.http.post("/callbacks/bankpay", content=body, headers={
            **signed_headers(bank.secret, body), "Content-Type": "application/json"})
        assert resp.status_code == 200, resp.text
    await platform.settle_background()
    async with platform.db.transaction() as s:
        succeeded = await s.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == order["order_id"], OrderEvent.kind == "CHANNEL_SUCCESS"))
        notes = await s.scalar(select(func.count()).select_from(Notification).where(
            Notification.order_id == order["order_id"]))
    assert succeeded == 1
    assert notes == 1


async def test_forged_callback_is_rejected_and_not_applied(platform: Platform) -> None:
    order = (await platform.order(out_trade_no="FORGE00001", amount=300)).json()
    body = orjson.dumps({"event_type": "TRADE.SUCCESS", "data": {
        "out_trade_no": order["order_id"], "trade_state": "SUCCESS", "amount_fen": 300}})
    resp = await platform.http.post("/callbacks/bankpay", content=body, headers={
        "X-Bank-Timestamp": str(clock.timestamp()), "X-Bank-Nonce": "abcdefabcdef",
        "X-Bank-Signature": "0" * 64, "Content-Type": "application/json"})
    assert resp.status_code == 400
    view = (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PAYING"


async def test_close_unpaid_order_then_payment_is_refused(platform: Platform) -> None:
    order = (await platform.order(out_trade_no="CLOSE00001", amount=300)).json()
    closed = await platform.call("POST", f"/api/v1/orders/{order['order_id']}/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "CLOSED"
    again = await platform.call("POST", f"/api/v1/orders/{order['order_id']}/close")
    assert again.json()["status"] == "CLOSED"
    paid = await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                                      "payer_id": "payer_rich"})
    assert paid.status_code == 409


async def test_close_of_a_paid_order_is_refused(platform: Platform) -> None:
    order = (await platform.order(out_trade_no="CLOSE00002", amount=300)).json()
    await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    await platform.wait_status(order["order_id"], "SUCCESS")
    resp = await platform.call("POST", f"/api/v1/orders/{order['order_id']}/close")
    assert resp.status_code == 409
    assert resp.json()["code"] == "ORDER_ALREADY_FINAL"


async def test_expired_order_is_closed_at_the_channel_too(platform: Platform) -> None:
    order = (await platform.order(out_trade_no="EXPIRE0001", amount=300,
                                  expire_seconds=60)).json()
    clock.freeze()
    clock.advance(__import__("datetime").timedelta(seconds=61))
    await platform.settle_background(rounds=1)
    async with platform.db.transaction() as s:
        row = await s.get(Order, order["order_id"])
        assert row is not None
        assert row.status == "CLOSED"
    sandbox = (await platform.http.get(
        f"/sandbox/bankpay/wallet/orders/{order['order_id']}")).json()
    assert orjson.dumps(sandbox).count(b"CLOSED") >= 1


async def test_query_by_out_trade_no_and_unknown_order(platform: Platform) -> None:
    order = (await platform.order(out_trade_no="QUERY00001", amount=300)).json()
    found = await platform.call("GET", "/api/v1/orders/by-out-trade-no/QUERY00001")
    assert found.json()["order_id"] == order["order_id"]
    missing = await platform.call("GET", "/api/v1/orders/ord_nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "ORDER_NOT_FOUND"
    assert missing.json()["request_id"]
