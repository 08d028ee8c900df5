"""A channel callback that is correctly signed but wrong is never applied: an unknown order, a
success for another amount (before or after the order was paid), or a replayed message. The
bank channel's callbacks are used because their signature is an HMAC the test can make."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlalchemy import func, select

from fulema.channels.bankpay.adapter import signed_headers
from fulema.core.events import OutboxEvent
from fulema.payments.models import Order, OrderEvent
from tests.payments.conftest import Platform


def _success(platform: Platform, order_id: str, amount_fen: int) -> bytes:
    data: dict[str, Any] = {
        "merchant_no": platform.settings.bankpay.merchant_no, "out_trade_no": order_id,
        "trade_no": "BP-FORGED-1", "trade_state": "SUCCESS", "amount_fen": amount_fen,
        "success_time": "2026-11-25T10:00:00+08:00"}
    return orjson.dumps({"event_id": "EVT1", "event_type": "TRADE.SUCCESS",
                         "create_time": "2026-11-25T10:00:00+08:00", "data": data})


async def _post(platform: Platform, body: bytes, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, Any]]:
    headers = headers or signed_headers(platform.settings.bankpay.secret, body)
    resp = await platform.http.post("/callbacks/bankpay", content=body,
                                    headers={**headers, "Content-Type": "application/json"})
    return resp.status_code, resp.json()


async def _events(platform: Platform, order_id: str) -> int:
    async with platform.db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(OrderEvent)
                                  .where(OrderEvent.order_id == order_id)) or 0)


async def test_success_for_another_amount_is_refused_and_the_order_stays_unpaid(
        platform: Platform) -> None:
    order = (await platform.order(amount=1250)).json()
    before = await _events(platform, order["order_id"])

    status, ack = await _post(platform, _success(platform, order["order_id"], 1))

    assert (status, ack["code"]) == (400, "FAIL")  # the bank will retry, and we will query
    view = (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PAYING"
    assert view["paid_at"] is None
    assert await _events(platform, order["order_id"]) == before


async def test_wrong_amount_after_payment_is_refused_not_acknowledged(platform: Platform) -> None:
    order = (await platform.order(amount=1250)).json()
    again = await _post(platform, _success(platform, order["order_id"], 1250))
    assert again[1]["code"] == "SUCCESS"

    status, ack = await _post(platform, _success(platform, order["order_id"], 99_999))

    assert (status, ack["code"]) == (400, "FAIL")
    view = (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert (view["status"], view["amount"]) == ("SUCCESS", 1250)


async def test_callback_for_an_unknown_order_writes_nothing(platform: Platform) -> None:
    status, ack = await _post(platform, _success(platform, "ord_does_not_exist", 1250))

    assert (status, ack["code"]) == (400, "FAIL")
    async with platform.db.transaction() as s:
        assert await s.get(Order, "ord_does_not_exist") is None


async def test_replayed_callback_is_refused_and_a_fresh_duplicate_changes_nothing(
        platform: Platform) -> None:
    order = (await platform.order(amount=1250)).json()
    body = _success(platform, order["order_id"], 1250)
    headers = signed_headers(platform.settings.bankpay.secret, body)
    assert (await _post(platform, body, headers))[1]["code"] == "SUCCESS"
    after_first = await _events(platform, order["order_id"])
    await platform.settle_background()
    notified = len(platform.receiver.received)

    replay_status, _ = await _post(platform, body, headers)  # the very same message again
    duplicate_status, ack = await _post(platform, body)  # the bank's own retry, signed anew
    await platform.settle_background()

    assert replay_status == 400
    assert (duplicate_status, ack["code"]) == (200, "SUCCESS")  # acknowledged, not re-applied
    assert await _events(platform, order["order_id"]) == after_first
    assert len(platform.receiver.received) == notified == 1


async def test_twenty_concurrent_duplicate_callbacks_pay_once_and_notify_once(
        platform: Platform) -> None:
    """A channel that retries while we are still answering sends the same success many times
    at once; the order row lock makes exactly one of them the payment."""
    order = (await platform.order(amount=1250)).json()
    body = _success(platform, order["order_id"], 1250)

    answers = await asyncio.gather(*(_post(platform, body) for _ in range(20)))
    await platform.settle_background()

    assert all((status, ack["code"]) == (200, "SUCCESS") for status, ack in answers)
    async with platform.db.transaction() as s:
        paid_events = await s.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == order["order_id"], OrderEvent.to_status == "SUCCESS",
            OrderEvent.from_status != "SUCCESS"))
        succeeded = await s.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.topic == "payment.succeeded"))
    assert paid_events == 1
    assert succeeded == 1
    assert len(platform.receiver.received) == 1
