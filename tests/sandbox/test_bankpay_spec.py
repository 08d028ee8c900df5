"""The bankpay sandbox against docs/channels/bankpay.md, the published `bankpay/1` specification.

No adapter code here: requests are built by hand from the document, byte for byte, signed
with the document's formula (hmac from the standard library), sent to the sandbox served at
its own root (as `fulema sandbox bankpay` serves it); the answers are checked for exactly the
documented fields and the documented signature.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta, timezone

import httpx
import orjson
import pytest

from fulema.core.clock import clock
from fulema.sandbox.bankpay.config import BankpaySandboxConfig
from fulema.sandbox.bankpay.protocol import signature
from fulema.sandbox.bankpay.server import build_sandbox

SECRET = "example-secret"
MERCHANT = "888000000000001"
# The documented objects ("The order object", "The refund object"), field for field.
ORDER_FIELDS = {"merchant_no", "out_trade_no", "trade_no", "trade_state", "way_code",
                "amount_fen", "currency", "refunded_fen", "fee_fen", "same_day_settlement",
                "settle_date", "payer", "subject", "create_time", "expire_time",
                "success_time", "error_code", "error_message", "code_url", "h5_url",
                "sub_merchant_id"}
REFUND_FIELDS = {"merchant_no", "out_trade_no", "trade_no", "out_refund_no", "refund_no",
                 "refund_fen", "refund_state", "record_type", "reason", "fee_fen",
                 "same_day_settlement", "success_time", "settle_date", "error_code",
                 "error_message", "sub_merchant_id"}
STATEMENT_COLUMNS = ["trade_date", "trade_time", "merchant_no", "record_type", "out_trade_no",
                     "trade_no", "out_refund_no", "refund_no", "way_code", "amount_fen",
                     "fee_fen", "settle_fen", "settle_date", "same_day_settlement",
                     "payer_account", "state", "sub_merchant_id"]


def doc_signature(ts: str, nonce: str, body: bytes) -> str:
    """The document's formula, written out: hex HMAC-SHA256 of ts\\nnonce\\nbody\\n."""
    return hmac.new(SECRET.encode(), ts.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n",
                    hashlib.sha256).hexdigest()


def headers(body: bytes, *, ts: str | None = None, nonce: str | None = None) -> dict[str, str]:
    ts = ts or str(clock.timestamp())
    nonce = nonce or secrets.token_hex(16)
    return {"X-Bank-Timestamp": ts, "X-Bank-Nonce": nonce, "X-Bank-Merchant-No": MERCHANT,
            "X-Bank-Signature": doc_signature(ts, nonce, body),
            "Content-Type": "application/json"}


def signed_by_bank(resp: httpx.Response) -> bool:
    h = resp.headers
    return hmac.compare_digest(doc_signature(h["X-Bank-Timestamp"], h["X-Bank-Nonce"],
                                             resp.content), h["X-Bank-Signature"])


CALLBACKS: list[httpx.Request] = []


def merchant(request: httpx.Request) -> httpx.Response:
    """The merchant's notify_url: records the callback and acknowledges it as documented."""
    CALLBACKS.append(request)
    return httpx.Response(200, json={"code": "SUCCESS"})


@pytest.fixture
async def bank() -> AsyncIterator[httpx.AsyncClient]:
    CALLBACKS.clear()
    outbound = httpx.AsyncClient(transport=httpx.MockTransport(merchant))
    app = build_sandbox(BankpaySandboxConfig(merchant_no=MERCHANT, secret=SECRET,
                                             public_url="http://bank.test"), outbound)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bank.test") as client:
        yield client
    for task in list(app.state.sandbox.tasks):
        task.cancel()
    await outbound.aclose()


async def callback(event_type: str) -> dict[str, object]:
    for _ in range(100):
        for req in CALLBACKS:
            doc: dict[str, object] = orjson.loads(req.content)
            if doc.get("event_type") == event_type:
                h = req.headers
                assert doc_signature(h["X-Bank-Timestamp"], h["X-Bank-Nonce"],
                                     req.content) == h["X-Bank-Signature"]
                return doc
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {event_type} callback")


def test_worked_example_of_the_document() -> None:
    body = b'{"out_trade_no":"ORD000001","amount_fen":100}'
    expected = "e0961da41e0fb5b9dc87386304ca1e8368840b896d1bd6091e0742154b21e831"
    assert doc_signature("1700000000", "c0ffee", body) == expected
    assert signature(SECRET, "1700000000", "c0ffee", body) == expected


def order_body(no: str) -> bytes:
    # byte for byte as the document's order request lists the fields
    return (b'{"merchant_no":"888000000000001","institution_id":"FULEMA","out_trade_no":"'
            + no.encode() + b'","amount_fen":1234,"currency":"CNY","subject":"Noodles",'
            b'"way_code":"QR_DYNAMIC","notify_url":"http://merchant.test/cb",'
            b'"expire_time":"2099-05-01T12:15:00+08:00","client_ip":"127.0.0.1",'
            b'"return_url":null}')


async def test_hand_built_order_request_is_accepted_with_documented_answer(
        bank: httpx.AsyncClient) -> None:
    body = order_body("ORD000001")
    resp = await bank.post("/api/orders", content=body, headers=headers(body))
    assert resp.status_code == 200
    assert signed_by_bank(resp)
    doc = resp.json()
    assert set(doc) == {"code", "message", "data"}
    assert doc["code"] == "SUCCESS"
    data = doc["data"]
    assert set(data) == ORDER_FIELDS
    assert data["trade_state"] == "PAYING"
    assert data["payer"] is None
    assert data["fee_fen"] == 0
    assert data["same_day_settlement"] is True
    assert data["code_url"].startswith("http://bank.test/pay/BP")
    assert data["h5_url"] is None
    assert data["create_time"].endswith("+08:00")
    assert data["expire_time"] == (
        "2099-05-01T12:15:00+08:00")

    get = await bank.get("/api/orders/ORD000001", headers=headers(b""))  # GET: empty body
    assert get.status_code == 200
    assert signed_by_bank(get)
    assert set(get.json()["data"]) == ORDER_FIELDS


async def test_paid_refund_and_statement_have_documented_fields(bank: httpx.AsyncClient) -> None:
    body = order_body("ORD000002")
    created = (await bank.post("/api/orders", content=body, headers=headers(body))).json()
    scan = await bank.post("/wallet/scan", json={"code_url": created["data"]["code_url"],
                                                 "payer_id": "payer_rich"})
    assert scan.status_code == 200
    paid = (await bank.get("/api/orders/ORD000002", headers=headers(b""))).json()["data"]
    assert paid["trade_state"] == "SUCCESS"
    assert set(paid["payer"]) == {"account_masked", "customer_id_masked"}
    event = await callback("TRADE.SUCCESS")
    assert set(event) == {"event_id", "event_type", "create_time", "data"}
    assert isinstance(event["data"], dict)
    assert set(event["data"]) == ORDER_FIELDS

    refund = (b'{"merchant_no":"888000000000001","out_trade_no":"ORD000002",'
              b'"out_refund_no":"REF000002","refund_fen":234,"total_fen":1234,'
              b'"reason":"damaged","notify_url":"http://merchant.test/cb"}')
    resp = await bank.post("/api/refunds", content=refund, headers=headers(refund))
    assert resp.status_code == 200
    assert signed_by_bank(resp)
    data = resp.json()["data"]
    assert set(data) == REFUND_FIELDS
    assert (data["refund_state"], data["record_type"], data["refund_fen"]) == (
        "SUCCESS", "REFUND", 234)
    refunded = await callback("REFUND.SUCCESS")
    assert isinstance(refunded["data"], dict)
    assert set(refunded["data"]) == REFUND_FIELDS

    day = clock.now().astimezone(timezone(timedelta(hours=8))).strftime("%Y%m%d")  # CST
    statement = await bank.get(f"/api/statements/{day}", headers=headers(b""))
    assert statement.status_code == 200
    assert signed_by_bank(statement)
    assert statement.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(statement.text)))
    assert rows[0] == STATEMENT_COLUMNS
    assert b"\r\n" not in statement.content  # LF line ends


@pytest.mark.parametrize(("change", "code"), [
    ({"X-Bank-Signature": "0" * 64}, "SIGNATURE_INVALID"),
    ({"X-Bank-Timestamp": "1700000000"}, "TIMESTAMP_EXPIRED"),
    ({"X-Bank-Nonce": ""}, "SIGNATURE_MISSING"),
])
async def test_refusals_are_documented_and_signed(bank: httpx.AsyncClient,
                                                  change: dict[str, str], code: str) -> None:
    body = order_body("ORD000003")
    resp = await bank.post("/api/orders", content=body, headers={**headers(body), **change})
    assert resp.status_code == 401
    assert resp.json() == {"code": code, "message": f"request refused: {code}"}
    assert signed_by_bank(resp)


async def test_replayed_nonce_and_upper_case_signature_are_refused(
        bank: httpx.AsyncClient) -> None:
    body = order_body("ORD000004")
    h = headers(body)
    upper = await bank.post("/api/orders", content=body,
                            headers={**h, "X-Bank-Signature": h["X-Bank-Signature"].upper()})
    assert upper.json()["code"] == "SIGNATURE_INVALID"  # the document says lower-case hex
    assert (await bank.post("/api/orders", content=body, headers=h)).status_code == 200
    again = await bank.post("/api/orders", content=body, headers=h)
    assert (again.status_code, again.json()["code"]) == (401, "NONCE_REPLAYED")


async def test_wrong_merchant_and_bad_body(bank: httpx.AsyncClient) -> None:
    body = order_body("ORD000005")
    other = {**headers(body), "X-Bank-Merchant-No": "888000000000002"}
    resp = await bank.post("/api/orders", content=body, headers=other)
    assert (resp.status_code, resp.json()["code"]) == (403, "MERCHANT_INVALID")
    junk = b"[1,2]"
    resp = await bank.post("/api/orders", content=junk, headers=headers(junk))
    assert (resp.status_code, resp.json()["code"]) == (400, "PARAM_INVALID")
    bad_way = orjson.loads(order_body("ORD000006"))
    bad_way["way_code"] = "JSAPI"
    raw = orjson.dumps(bad_way)
    resp = await bank.post("/api/orders", content=raw, headers=headers(raw))
    assert (resp.status_code, resp.json()["code"]) == (400, "PARAM_INVALID")


async def test_outage_answers_503_unsigned_without_acting(bank: httpx.AsyncClient) -> None:
    assert (await bank.post("/wallet/faults", json={"mode": "5xx"})).status_code == 200
    body = order_body("ORD000007")
    resp = await bank.post("/api/orders", content=body, headers=headers(body))
    assert resp.status_code == 503
    assert resp.json()["code"] == "SYSTEM_ERROR"
    await bank.post("/wallet/faults", json={"mode": "none"})
    missing = await bank.get("/api/orders/ORD000007", headers=headers(b""))
    assert missing.status_code == 404  # nothing was done during the outage
