"""Refunds: partial, repeated, idempotent, never above what was paid (also under concurrency)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from fulema.payments.models import Order, Refund
from tests.payments.conftest import Platform


async def paid_order(p: Platform, no: str, amount: int) -> dict[str, Any]:
    order = (await p.order(out_trade_no=no, amount=amount)).json()
    resp = await p.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    assert resp.status_code == 200, resp.text
    return await p.wait_status(order["order_id"], "SUCCESS")


async def test_partial_then_full_refund(platform: Platform) -> None:
    order = await paid_order(platform, "REFUND0001", 1250)
    path = f"/api/v1/orders/{order['order_id']}/refunds"
    first = await platform.call("POST", path, {"out_refund_no": "R000000001", "amount": 250,
                                               "reason": "one bowl too many"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "SUCCESS"
    view = (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PARTIALLY_REFUNDED"
    assert view["refunded_amount"] == 250

    too_much = await platform.call("POST", path, {"out_refund_no": "R000000002", "amount": 1001})
    assert too_much.status_code == 409
    assert too_much.json()["code"] == "REFUND_EXCEEDS_REFUNDABLE"

    rest = await platform.call("POST", path, {"out_refund_no": "R000000003", "amount": 1000})
    assert rest.json()["status"] == "SUCCESS"
    view = (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "REFUNDED"
    assert view["refunded_amount"] == 1250

    more = await platform.call("POST", path, {"out_refund_no": "R000000004", "amount": 1})
    assert more.json()["code"] == "REFUND_EXCEEDS_REFUNDABLE"
    by_no = await platform.call("GET", "/api/v1/refunds/by-out-refund-no/R000000001")
    assert by_no.json()["amount"] == 250
    assert by_no.json()["status"] == "SUCCESS"

    await platform.settle_background()
    kinds = [r["json"]["type"] for r in platform.receiver.received]
    assert kinds.count("refund.succeeded") == 2


async def test_refund_is_idempotent_by_out_refund_no(platform: Platform) -> None:
    order = await paid_order(platform, "REFUND0002", 1000)
    path = f"/api/v1/orders/{order['order_id']}/refunds"
    a = await platform.call("POST", path, {"out_refund_no": "RIDEM00001", "amount": 100})
    b = await platform.call("POST", path, {"out_refund_no": "RIDEM00001", "amount": 100})
    assert a.json()["refund_id"] == b.json()["refund_id"]
    c = await platform.call("POST", path, {"out_refund_no": "RIDEM00001", "amount": 200})
    assert c.status_code == 409
    assert c.json()["code"] == "DUPLICATE_OUT_REFUND_NO"
    view = (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["refunded_amount"] == 100


async def test_refund_of_unpaid_order_is_refused_and_writes_nothing(platform: Platform) -> None:
    order = (await platform.order(out_trade_no="REFUND0003", amount=1000)).json()
    resp = await platform.call("POST", f"/api/v1/orders/{order['order_id']}/refunds",
                               {"out_refund_no": "RUNPAID001", "amount": 100})
    assert resp.status_code == 409
    assert resp.json()["code"] == "ORDER_NOT_PAID"
    async with platform.db.transaction() as s:
        assert (await s.scalars(select(Refund))).first() is None


async def test_refund_bad_amounts(platform: Platform) -> None:
    order = await paid_order(platform, "REFUND0004", 1000)
    path = f"/api/v1/orders/{order['order_id']}/refunds"
    for amount, code in [(0, "INVALID_AMOUNT"), (-5, "INVALID_AMOUNT"), (1.5, "INVALID_AMOUNT"),
                         ("100", "INVALID_AMOUNT")]:
        resp = await platform.call("POST", path, {"out_refund_no": "RBAD000001", "amount": amount})
        assert resp.status_code == 400, (amount, resp.text)
        assert resp.json()["code"] == code
    unknown = await platform.call("POST", "/api/v1/orders/ord_missing/refunds",
                                  {"out_refund_no": "RBAD000002", "amount": 1})
    assert unknown.json()["code"] == "ORDER_NOT_FOUND"


async def test_twenty_concurrent_partial_refunds_never_exceed_the_payment(
        platform: Platform) -> None:
    order = await paid_order(platform, "REFUND0005", 1000)
    path = f"/api/v1/orders/{order['order_id']}/refunds"
    results = await asyncio.gather(*[
        platform.call("POST", path, {"out_refund_no": f"RCONC{i:05d}", "amount": 70})
        for i in range(20)])
    ok = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    assert {r.json()["code"] for r in refused} <= {"REFUND_EXCEEDS_REFUNDABLE"}
    assert len(ok) == 14  # 14 x 70 = 980 <= 1000 < 15 x 70
    async with platform.db.transaction() as s:
        row = await s.get(Order, order["order_id"])
        assert row is not None
        refunds = list((await s.scalars(select(Refund).where(
            Refund.order_id == order["order_id"]))).all())
    total = sum(r.amount.fen for r in refunds if r.status == "SUCCESS")
    assert total == row.refunded_amount.fen == 980
    assert row.refund_pending_amount.fen == 0
    sandbox = (await platform.http.get(
        f"/sandbox/bankpay/wallet/orders/{order['order_id']}")).json()
    data = sandbox.get("data", sandbox)
    assert sum(r["refund_fen"] for r in data["refunds"]) == 980
