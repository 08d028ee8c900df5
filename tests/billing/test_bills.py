"""Bill payment end to end on every database: inquire, pay through an ordinary order, written
off once; a write-off that keeps failing is retried and refunded past its deadline; bad input
is refused with its code and leaves nothing behind."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from fulema.billing.models import BillPayment
from fulema.core.clock import clock
from fulema.merchants import service as merchants
from fulema.merchants.domain import MerchantStatus
from fulema.ops.worker import run_all_once
from fulema.payments.models import Order
from tests.merchants.factories import merchant_in
from tests.payments.conftest import Platform

OPS = {"Authorization": "Bearer test-operator"}
BILLER = "water-zjg"
ACCOUNT = "330100123456"


async def biller(p: Platform) -> str:
    m = await merchant_in(p.db, MerchantStatus.ACTIVE)
    await merchants.create_app_credential(p.db, merchant_id=m.id, operator="t")
    resp = await p.http.post("/ops/v1/billers", headers=OPS, json={
        "code": BILLER, "name": "张家港自来水", "category": "water", "merchant_id": m.id})
    assert resp.status_code == 201, resp.text
    return m.id


async def the_bill(p: Platform, account: str = ACCOUNT) -> dict[str, Any]:
    resp = await p.http.get(f"/bills/v1/billers/{BILLER}/accounts/{account}/bills")
    assert resp.status_code == 200, resp.text
    [bill] = resp.json()["data"]
    return dict(bill)


async def pay(p: Platform, bill: dict[str, Any], **overrides: Any) -> Any:
    body = {"biller_code": BILLER, "account_no": bill["account_no"], "bill_id": bill["bill_id"],
            "amount": bill["amount"], "channel": "bankpay", **overrides}
    return await p.http.post("/bills/v1/payments", json=body)


async def payer_pays(p: Platform, answer: dict[str, Any]) -> None:
    scanned = await p.wallet("bankpay", "/scan", {"code_url": answer["order"]["code_url"],
                                                  "payer_id": "payer_rich"})
    assert scanned.status_code == 200, scanned.text
    await p.settle_background()


async def payment(p: Platform, payment_id: str) -> dict[str, Any]:
    resp = await p.http.get(f"/bills/v1/payments/{payment_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def count(p: Platform, model: Any) -> int:
    async with p.db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_paid_bill_is_written_off_once_with_a_receipt_and_history(
        platform: Platform) -> None:
    p = platform
    await biller(p)
    bill = await the_bill(p)
    answer = (await pay(p, bill)).json()
    assert answer["payment"]["status"] == "CREATED"
    assert answer["order"]["amount"] == bill["amount"]

    await payer_pays(p, answer)

    done = await payment(p, answer["payment"]["payment_id"])
    assert done["status"] == "WRITTEN_OFF"
    assert done["receipt_no"]
    receipt = (await p.http.get(f"/bills/v1/payments/{done['payment_id']}/receipt")).json()
    assert receipt["amount_yuan"] == f"{bill['amount'] // 100}.{bill['amount'] % 100:02d}"
    assert receipt["biller"] == "张家港自来水"
    assert p.app.state.billers.sandbox(BILLER).calls == 1
    # paid: the biller shows no unpaid bill, and paying it again is refused
    assert (await p.http.get(f"/bills/v1/billers/{BILLER}/accounts/{ACCOUNT}/bills")
            ).json()["data"] == []
    again = await pay(p, bill)
    assert again.status_code == 409
    assert again.json()["code"] == "BILL_ALREADY_PAID"
    history = (await p.http.get(f"/bills/v1/billers/{BILLER}/accounts/{ACCOUNT}/payments")
               ).json()["data"]
    assert [h["status"] for h in history] == ["WRITTEN_OFF"]


async def test_a_write_off_that_keeps_failing_is_retried_then_refunded_past_its_deadline(
        platform: Platform) -> None:
    p = platform
    await biller(p)
    bill = await the_bill(p)
    p.app.state.billers.sandbox(BILLER).fail_writeoffs[bill["bill_id"]] = -1  # always
    answer = (await pay(p, bill)).json()
    payment_id = answer["payment"]["payment_id"]

    await payer_pays(p, answer)
    first = await payment(p, payment_id)
    assert first["status"] == "PAID"
    assert first["writeoff_attempts"] >= 1
    assert "refused" in first["last_error"]

    clock.advance(timedelta(seconds=p.settings.billing_writeoff_retry_seconds + 1))
    await run_all_once(p.app)
    assert (await payment(p, payment_id))["writeoff_attempts"] >= 2  # retried

    clock.advance(timedelta(seconds=p.settings.billing_writeoff_deadline_seconds))
    for _ in range(3):
        await run_all_once(p.app)
        await asyncio.sleep(0.05)
    done = await payment(p, payment_id)
    assert done["status"] == "REFUNDED", done
    async with p.db.transaction() as s:
        row = await s.get(Order, done["order_id"])
        assert row is not None
        assert row.refunded_amount.fen == bill["amount"]
        assert row.status == "REFUNDED"
    # the bill is free again: the payer may pay it once the biller works
    p.app.state.billers.sandbox(BILLER).fail_writeoffs.clear()
    retry = await pay(p, bill)
    assert retry.status_code == 200, retry.text


async def test_bad_bill_requests_are_refused_and_leave_nothing(platform: Platform) -> None:
    p = platform
    await biller(p)
    bill = await the_bill(p)
    orders_before = await count(p, Order)

    unknown_biller = await p.http.get(f"/bills/v1/billers/nope/accounts/{ACCOUNT}/bills")
    assert unknown_biller.status_code == 404
    assert unknown_biller.json()["code"] == "BILLER_NOT_FOUND"
    unknown_account = await p.http.get(f"/bills/v1/billers/{BILLER}/accounts/9999990000/bills")
    assert unknown_account.json()["code"] == "BILL_NOT_FOUND"
    malformed_account = await p.http.get(f"/bills/v1/billers/{BILLER}/accounts/x!/bills")
    assert malformed_account.status_code == 400

    cases = [({"amount": bill["amount"] + 1}, 400, "BILL_AMOUNT_MISMATCH"),
             ({"amount": bill["amount"] - 1}, 400, "BILL_AMOUNT_MISMATCH"),
             ({"bill_id": "water-zjg-330100123456-209901"}, 404, "BILL_NOT_FOUND"),
             ({"biller_code": "gas-none"}, 404, "BILLER_NOT_FOUND"),
             ({"account_no": "1234560000"}, 404, "BILL_NOT_FOUND"),
             ({"amount": -5}, 400, "VALIDATION_ERROR"),
             ({"amount": "12.50"}, 400, "VALIDATION_ERROR"),
             ({"way_code": "BARCODE"}, 400, "VALIDATION_ERROR")]
    for change, http, code in cases:
        resp = await pay(p, bill, **change)
        assert (resp.status_code, resp.json()["code"]) == (http, code), (change, resp.text)
    assert await count(p, BillPayment) == 0
    assert await count(p, Order) == orders_before


async def test_the_same_bill_paid_twice_at_once_opens_one_order(platform: Platform) -> None:
    p = platform
    await biller(p)
    bill = await the_bill(p)

    first, second = await asyncio.gather(pay(p, bill), pay(p, bill))

    answers = [r.json() for r in (first, second) if r.status_code == 200]
    refused = [r.json()["code"] for r in (first, second) if r.status_code != 200]
    assert refused in ([], ["BILL_ALREADY_PAID"])
    assert len({a["payment"]["payment_id"] for a in answers}) == 1
    assert await count(p, BillPayment) == 1
    async with p.db.transaction() as s:
        n = await s.scalar(select(func.count()).select_from(Order).where(
            Order.out_trade_no == answers[0]["payment"]["payment_id"]))
    assert n == 1
