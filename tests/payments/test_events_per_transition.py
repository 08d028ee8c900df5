"""Every state change of an order or refund publishes one outbox event in the same transaction,
so the contexts that react (notifications now; points, speakers, ledger, risk later) see each
change exactly as the order's own event log does, in order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fulema.core.events import OutboxEvent
from tests.payments.conftest import Platform


async def _topics(platform: Platform, order_id: str) -> list[str]:
    async with platform.db.transaction() as s:
        rows = (await s.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at,
                                                             OutboxEvent.id))).all()
    return [r.topic for r in rows if r.payload.get("order_id") == order_id]


async def _code(platform: Platform, payer: str) -> str:
    body: dict[str, Any] = (await platform.wallet("bankpay", f"/payers/{payer}/code")).json()
    return str(body.get("data", body)["auth_code"])


async def test_paid_then_refunded_in_two_parts(platform: Platform) -> None:
    order = (await platform.order(amount=1000)).json()
    await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    await platform.wait_status(order["order_id"], "SUCCESS")
    for no, fen in (("R1", 400), ("R2", 600)):
        resp = await platform.call("POST", f"/api/v1/orders/{order['order_id']}/refunds",
                                   {"out_refund_no": f"{order['order_id'][-8:]}{no}",
                                    "amount": fen})
        assert resp.status_code == 200, resp.text
        await platform.settle_background()

    assert await _topics(platform, order["order_id"]) == [
        "payment.paying", "payment.succeeded",
        "refund.requested", "refund.succeeded", "refund.requested", "refund.succeeded"]
    view = (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert (view["status"], view["refunded_amount"]) == ("REFUNDED", 1000)


async def test_closed_order(platform: Platform) -> None:
    order = (await platform.order(amount=300)).json()
    await platform.call("POST", f"/api/v1/orders/{order['order_id']}/close")

    assert await _topics(platform, order["order_id"]) == ["payment.paying", "payment.closed"]


async def test_failed_payer_code_payment(platform: Platform) -> None:
    resp = await platform.order(way_code="BARCODE", channel=None, amount=5000,
                                auth_code=await _code(platform, "payer_poor"))
    assert resp.json()["status"] == "FAILED"

    assert await _topics(platform, resp.json()["order_id"]) == ["payment.failed"]


async def test_payer_code_with_password_is_paying_then_succeeded(platform: Platform) -> None:
    resp = await platform.order(way_code="BARCODE", channel=None, amount=880,
                                auth_code=await _code(platform, "payer_pin"))
    order_id = resp.json()["order_id"]
    assert resp.json()["status"] == "PAYING"
    await platform.wallet("bankpay", "/payers/payer_pin/confirm", {})
    await platform.settle_background()
    await platform.wait_status(order_id, "SUCCESS")

    assert await _topics(platform, order_id) == ["payment.paying", "payment.succeeded"]
