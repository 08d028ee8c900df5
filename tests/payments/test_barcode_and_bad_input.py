"""Payer-presented codes (channel detected from the code) and every kind of bad request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.gateway.signing import sign_request
from fulema.payments.models import Order
from tests.payments.conftest import APP_ID, SECRET, Platform


async def payer_code(p: Platform, payer: str) -> str:
    resp = await p.wallet("bankpay", f"/payers/{payer}/code")
    body: dict[str, Any] = resp.json()
    return str(body.get("data", body)["auth_code"])


async def count_orders(p: Platform) -> int:
    async with p.db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(Order)) or 0)


async def test_barcode_payment_detects_the_bank_channel_and_succeeds(platform: Platform) -> None:
    code = await payer_code(platform, "payer_rich")
    resp = await platform.order(out_trade_no="BAR0000001", way_code="BARCODE", auth_code=code,
                                channel=None, amount=880)
    assert resp.status_code == 200, resp.text
    assert resp.json()["channel"] == "bankpay"
    assert resp.json()["status"] == "SUCCESS"


async def test_barcode_with_password_is_polled_until_the_payer_confirms(platform: Platform) -> None:
    code = await payer_code(platform, "payer_pin")
    resp = await platform.order(out_trade_no="BAR0000002", way_code="BARCODE", auth_code=code,
                                channel=None, amount=880)
    order = resp.json()
    assert order.get("status") == "PAYING", order
    confirm = await platform.wallet("bankpay", "/payers/payer_pin/confirm", {})
    assert confirm.status_code == 200, confirm.text
    clock.freeze()
    clock.advance(timedelta(seconds=6))
    await platform.settle_background(rounds=1)
    async with platform.db.transaction() as s:
        row = await s.get(Order, order["order_id"])
        assert row is not None
        assert row.status == "SUCCESS"


async def test_barcode_never_confirmed_is_cancelled_after_the_polling_window(
        platform: Platform) -> None:
    code = await payer_code(platform, "payer_pin")
    order = (await platform.order(out_trade_no="BAR0000003", way_code="BARCODE", auth_code=code,
                                  channel=None, amount=880)).json()
    assert order["status"] == "PAYING"
    clock.freeze()
    for _ in range(7):
        clock.advance(timedelta(seconds=5))
        await platform.settle_background(rounds=1)
    async with platform.db.transaction() as s:
        row = await s.get(Order, order["order_id"])
        assert row is not None
        assert row.status in {"CLOSED", "FAILED"}


async def test_insufficient_balance_fails_the_barcode_payment(platform: Platform) -> None:
    code = await payer_code(platform, "payer_poor")
    resp = await platform.order(out_trade_no="BAR0000004", way_code="BARCODE", auth_code=code,
                                channel=None, amount=5000)
    assert resp.json()["status"] == "FAILED"
    assert resp.json()["failure_code"]


async def test_unrecognised_payer_code(platform: Platform) -> None:
    resp = await platform.order(out_trade_no="BAR0000005", way_code="BARCODE",
                                auth_code="991234567890123456", channel=None)
    assert resp.status_code == 400
    assert resp.json()["code"] == "UNRECOGNISED_PAYER_CODE"
    assert await count_orders(platform) == 0


async def test_signature_failures_each_have_their_code(platform: Platform) -> None:
    body = orjson.dumps({"out_trade_no": "SIG0000001", "amount": 100, "subject": "x",
                         "way_code": "QR_DYNAMIC", "channel": "bankpay"})
    path = "/api/v1/orders"
    now = clock.timestamp()

    async def post(headers: dict[str, str]) -> tuple[int, str]:
        r = await platform.http.post(path, content=body, headers=headers)
        return r.status_code, r.json().get("code", "")

    good = sign_request(app_id=APP_ID, secret=SECRET, method="POST", path=path, body=body,
                        timestamp=now)
    missing = {k: v for k, v in good.items() if k != "X-Fulema-Signature"}
    assert await post(missing) == (401, "SIGNATURE_MISSING")
    bad = {**good, "X-Fulema-Signature": "00" * 32}
    assert await post(bad) == (401, "SIGNATURE_INVALID")
    wrong_secret = sign_request(app_id=APP_ID, secret="nope", method="POST", path=path,
                                body=body, timestamp=now)
    assert await post(wrong_secret) == (401, "SIGNATURE_INVALID")
    stale = sign_request(app_id=APP_ID, secret=SECRET, method="POST", path=path, body=body,
                         timestamp=now - 301)
    assert await post(stale) == (401, "TIMESTAMP_EXPIRED")
    unknown = sign_request(app_id="app_nobody", secret=SECRET, method="POST", path=path,
                           body=body, timestamp=now)
    assert await post(unknown) == (401, "APP_NOT_FOUND")
    assert (await post(good))[0] == 200
    assert await post(good) == (401, "NONCE_REPLAYED")
    assert await count_orders(platform) == 1


async def test_bad_bodies_each_have_their_code_and_write_nothing(platform: Platform) -> None:
    base = {"out_trade_no": "BAD0000001", "amount": 100, "subject": "x",
            "way_code": "QR_DYNAMIC", "channel": "bankpay"}
    cases: list[tuple[Any, int, str]] = [
        ({**base, "amount": 0}, 400, "INVALID_AMOUNT"),
        ({**base, "amount": -1}, 400, "INVALID_AMOUNT"),
        ({**base, "amount": 12.5}, 400, "INVALID_AMOUNT"),
        ({**base, "amount": "100"}, 400, "INVALID_AMOUNT"),
        ({**base, "amount": 5_000_001}, 400, "AMOUNT_OUT_OF_RANGE"),
        ({**base, "way_code": "TELEPATHY"}, 400, "UNKNOWN_WAY_CODE"),
        ({**base, "way_code": "JSAPI", "channel": "wechat"}, 400, "PAYER_ID_REQUIRED"),
        ({**base, "channel": None}, 400, "VALIDATION_ERROR"),
        ({**base, "channel": "paypal"}, 400, "VALIDATION_ERROR"),
        ({**base, "out_trade_no": "x"}, 400, "VALIDATION_ERROR"),
        ({**base, "surprise": 1}, 400, "VALIDATION_ERROR"),
        ({k: v for k, v in base.items() if k != "subject"}, 400, "VALIDATION_ERROR"),
        ({**base, "store_id": "sto_missing"}, 404, "STORE_NOT_FOUND"),
        (b"{not json", 400, "MALFORMED_JSON"),
        (b"[1,2]", 400, "MALFORMED_JSON"),
        (b"", 400, "MALFORMED_JSON"),
    ]
    for body, status, code in cases:
        resp = await platform.call("POST", "/api/v1/orders", body)
        assert (resp.status_code, resp.json()["code"]) == (status, code), (body, resp.text)
    big = b'{"subject": "' + b"x" * 70_000 + b'"}'
    resp = await platform.call("POST", "/api/v1/orders", big)
    assert resp.status_code == 413
    assert resp.json()["code"] == "BODY_TOO_LARGE"
    assert await count_orders(platform) == 0


async def test_frozen_merchant_cannot_take_payments(platform: Platform) -> None:
    auth = {"Authorization": "Bearer test-operator"}
    frozen = await platform.http.post(f"/ops/v1/merchants/{platform.merchant_id}/freeze",
                                      json={"reason": "suspicious volume"}, headers=auth)
    assert frozen.status_code == 200, frozen.text
    resp = await platform.order(out_trade_no="FROZEN0001")
    assert resp.status_code == 403
    assert resp.json()["code"] == "MERCHANT_FROZEN"
    await platform.http.post(f"/ops/v1/merchants/{platform.merchant_id}/unfreeze",
                             json={}, headers=auth)
    assert (await platform.order(out_trade_no="FROZEN0002")).status_code == 200


async def test_notification_is_retried_until_acknowledged_and_can_be_resent(
        platform: Platform) -> None:
    platform.receiver.fail_next = 2
    order = (await platform.order(out_trade_no="NOTIFY0001", amount=100)).json()
    await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    await platform.wait_status(order["order_id"], "SUCCESS")
    await platform.settle_background(rounds=1)
    path = f"/api/v1/orders/{order['order_id']}/notifications"
    first = (await platform.call("GET", path)).json()["notifications"][0]
    assert first["status"] == "PENDING"
    assert first["attempts"] == 1
    clock.freeze()
    for _ in range(3):
        clock.advance(timedelta(seconds=31))
        await platform.settle_background(rounds=1)
    done = (await platform.call("GET", path)).json()["notifications"][0]
    assert done["status"] == "DELIVERED"
    assert done["attempts"] == 3
    resent = await platform.call("POST", f"/api/v1/orders/{order['order_id']}/notify")
    assert resent.status_code == 200
    before = len(platform.receiver.received)
    await platform.settle_background(rounds=1)
    assert len(platform.receiver.received) == before + 1


async def test_rotated_secret_takes_effect_at_once(platform: Platform) -> None:
    """Credentials are cached per process; a rotation in this process must not leave the old
    secret usable."""
    assert (await platform.order(out_trade_no="ROTATE0001")).status_code == 200
    auth = {"Authorization": "Bearer test-operator"}
    rotated = await platform.http.post(
        f"/ops/v1/merchants/{platform.merchant_id}/apps/{APP_ID}/rotate", headers=auth)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    old = await platform.order(out_trade_no="ROTATE0002")
    assert old.status_code == 401
    assert old.json()["code"] == "SIGNATURE_INVALID"
    body = {"out_trade_no": "ROTATE0003", "amount": 100, "subject": "x",
            "way_code": "QR_DYNAMIC", "channel": "bankpay"}
    new = await platform.call("POST", "/api/v1/orders", body, secret=new_secret)
    assert new.status_code == 200, new.text
