"""The e-CNY sandbox against docs/channels/ecny.md, the published `ecny/1` specification.

No adapter code here: requests are built by hand from the document (the request string, the
SM4-GCM payee envelope, the headers), signed with the GM/T 0003.5 sample key as the merchant's
key, and sent to the sandbox at its own root and under a mount; the answers must carry exactly
the documented fields and verify under the documented response string.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from fulema.core import gm
from fulema.core.clock import clock
from fulema.sandbox.ecny.config import EcnySandboxConfig
from fulema.sandbox.ecny.security import request_bytes, serial_of
from fulema.sandbox.ecny.server import build_sandbox

# GM/T 0003.5 / GB/T 32918.5 sample key pair on the recommended curve: the merchant's key
MERCHANT_PRIVATE = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"
MERCHANT_PUBLIC = ("09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
                   "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13")
INSTITUTION_PRIVATE, INSTITUTION_PUBLIC = gm.generate_sm2_keypair()
DATA_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")  # the GB/T 32907 sample key
MERCHANT_ID, WALLET = "EC320500000001", "0099100000000001"
ORDER_FIELDS = {"merchant_id", "out_trade_no", "trade_no", "trade_status", "way_code",
                "amount_fen", "currency", "refunded_fen", "fee_fen", "subject", "create_time",
                "expire_time", "success_time", "payer", "error_code", "error_message",
                "code_url", "sub_merchant_id"}
REFUND_FIELDS = {"merchant_id", "out_trade_no", "trade_no", "out_refund_no", "refund_no",
                 "refund_fen", "refund_status", "record_type", "reason", "fee_fen",
                 "create_time", "success_time", "error_code", "error_message",
                 "sub_merchant_id"}
BILL_COLUMNS = ["bill_date", "trade_time", "merchant_id", "record_type", "out_trade_no",
                "trade_no", "out_refund_no", "refund_no", "way_code", "amount_fen", "fee_fen",
                "net_fen", "wallet_masked", "wallet_level", "status", "sub_merchant_id"]
CALLBACKS: list[httpx.Request] = []
CST = timezone(timedelta(hours=8))


def test_documented_example_strings() -> None:
    body = b'{"out_trade_no":"ORD000001","amount_fen":100}'
    assert request_bytes("POST", "/v1/orders", "1700000000", "c0ffee", body) == (
        b'POST\n/v1/orders\n1700000000\nc0ffee\n{"out_trade_no":"ORD000001","amount_fen":100}\n')
    recorded = ("285d110217e386ae22dab8c22a7a9678ae2b950228059cf4f736a06a6bf62073"
                "b9074a04b34a2550362bcf6bed3bec2d127a0814858499615684a7d5ddd70337")
    assert gm.sm2_verify(MERCHANT_PUBLIC, request_bytes("POST", "/v1/orders", "1700000000",
                                                        "c0ffee", body), recorded)
    assert serial_of(MERCHANT_PUBLIC) == "3d92bed6d685f38b"


def payee(out_trade_no: str, wallet: str = WALLET) -> dict[str, str]:
    """The documented SM4_GCM envelope: 12-byte IV, data = ciphertext||tag, AAD merchant|order."""
    aad = f"{MERCHANT_ID}|{out_trade_no}"
    iv = secrets.token_bytes(12)
    plain = orjson.dumps({"wallet_id": wallet, "merchant_name": "Fulema demo store"})
    data = gm.sm4_gcm_encrypt(DATA_KEY, iv, plain, aad.encode())
    return {"alg": "SM4_GCM", "key_id": "K1", "iv": base64.b64encode(iv).decode(), "aad": aad,
            "data": base64.b64encode(data).decode()}


def signed(method: str, path: str, body: bytes) -> dict[str, str]:
    ts, nonce = str(clock.timestamp()), secrets.token_hex(16)
    string = (f"{method}\n{path}\n{ts}\n{nonce}\n").encode() + body + b"\n"
    return {"X-Ecny-Merchant-Id": MERCHANT_ID, "X-Ecny-Timestamp": ts, "X-Ecny-Nonce": nonce,
            "X-Ecny-Signature": gm.sm2_sign(MERCHANT_PRIVATE, MERCHANT_PUBLIC, string),
            "X-Ecny-Serial": "3d92bed6d685f38b", "Content-Type": "application/json"}


def by_institution(headers: httpx.Headers, body: bytes) -> bool:
    string = f"{headers['X-Ecny-Timestamp']}\n{headers['X-Ecny-Nonce']}\n".encode() + body + b"\n"
    return (headers["X-Ecny-Serial"] == gm.sm3_hex(bytes.fromhex(INSTITUTION_PUBLIC))[:16]
            and gm.sm2_verify(INSTITUTION_PUBLIC, string, headers["X-Ecny-Signature"]))


def order_body(no: str) -> bytes:
    return orjson.dumps({"merchant_id": MERCHANT_ID, "out_trade_no": no, "amount_fen": 1234,
                         "currency": "CNY", "subject": "Dumplings", "way_code": "QR_DYNAMIC",
                         "notify_url": "http://merchant.test/cb",
                         "expire_time": "2099-05-01T12:15:00+08:00",
                         "client_ip": "127.0.0.1", "payee": payee(no)})


def merchant(request: httpx.Request) -> httpx.Response:
    CALLBACKS.append(request)
    return httpx.Response(200, json={"code": "SUCCESS"})


@pytest.fixture(params=["", "/sandbox/ecny"], ids=["root", "mounted"])
async def inst(request: pytest.FixtureRequest) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The institution served at its own root, and mounted under a prefix."""
    CALLBACKS.clear()
    outbound = httpx.AsyncClient(transport=httpx.MockTransport(merchant))
    sandbox = build_sandbox(EcnySandboxConfig(
        merchant_id=MERCHANT_ID, merchant_wallet_id=WALLET, merchant_public_key=MERCHANT_PUBLIC,
        institution_private_key=INSTITUTION_PRIVATE, data_key=DATA_KEY,
        public_url="http://ecny.test" + request.param), outbound)
    app = sandbox
    if request.param:
        app = FastAPI()
        app.mount(request.param, sandbox)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ecny.test") as client:
        yield client, request.param
    for task in list(sandbox.state.sandbox.tasks):
        task.cancel()
    await outbound.aclose()


async def call(inst: tuple[httpx.AsyncClient, str], method: str, path: str,
               body: bytes = b"", *, sign_prefix: bool = False) -> httpx.Response:
    client, prefix = inst
    signed_path = prefix + path if sign_prefix else path
    return await client.request(method, prefix + path, content=body,
                                headers=signed(method, signed_path, body))


async def test_hand_built_qr_order_is_accepted_with_documented_answer(
        inst: tuple[httpx.AsyncClient, str]) -> None:
    body = order_body("ORD000001")
    resp = await call(inst, "POST", "/v1/orders", body)
    assert resp.status_code == 200, resp.text
    assert by_institution(resp.headers, resp.content)
    doc = resp.json()
    assert set(doc) == {"code", "message", "data"}
    assert doc["code"] == "SUCCESS"
    assert set(doc["data"]) == ORDER_FIELDS
    assert doc["data"]["trade_status"] == "WAIT_PAY"
    assert doc["data"]["payer"] is None
    assert doc["data"]["code_url"].startswith(f"http://ecny.test{inst[1]}/qr/EC")
    got = await call(inst, "GET", "/v1/orders/ORD000001")
    assert got.status_code == 200
    assert set(got.json()["data"]) == ORDER_FIELDS


async def test_mount_prefix_may_be_signed_or_not(inst: tuple[httpx.AsyncClient, str]) -> None:
    body = order_body("ORD000002")
    resp = await call(inst, "POST", "/v1/orders", body, sign_prefix=True)
    assert resp.status_code == 200, resp.text
    plain = await call(inst, "POST", "/v1/orders", order_body("ORD000003"))
    assert plain.status_code == 200
    client, prefix = inst
    other = order_body("ORD000004")
    moved = await client.post(prefix + "/v1/orders", content=other,
                              headers=signed("POST", "/v1/refunds", other))
    assert (moved.status_code, moved.json()["code"]) == (401, "SIGNATURE_INVALID")


async def test_paid_order_callback_refund_and_bill(inst: tuple[httpx.AsyncClient, str]) -> None:
    client, prefix = inst
    created = (await call(inst, "POST", "/v1/orders", order_body("ORD000005"))).json()["data"]
    scan = await client.post(f"{prefix}/wallet/scan", json={"code_url": created["code_url"],
                                                            "payer_id": "payer_rich"})
    assert scan.status_code == 200, scan.text
    paid = (await call(inst, "GET", "/v1/orders/ORD000005")).json()["data"]
    assert paid["trade_status"] == "SUCCESS"
    assert set(paid["payer"]) == {"wallet_id_masked", "wallet_level", "encrypted"}
    envelope = paid["payer"]["encrypted"]
    assert set(envelope) == {"alg", "key_id", "iv", "aad", "data"}
    opened = orjson.loads(gm.sm4_gcm_decrypt(
        DATA_KEY, base64.b64decode(envelope["iv"]), base64.b64decode(envelope["data"]),
        f"{MERCHANT_ID}|ORD000005".encode()))
    assert set(opened) == {"wallet_id", "payer_name", "wallet_level"}
    assert paid["payer"]["wallet_id_masked"] == f"{opened['wallet_id'][:4]}********" + (
        opened["wallet_id"][-4:])

    event = await callback("TRADE.SUCCESS")
    assert set(event) == {"event_id", "event_type", "create_time", "data"}
    assert set(event["data"]) == ORDER_FIELDS

    refund = orjson.dumps({"merchant_id": MERCHANT_ID, "out_trade_no": "ORD000005",
                           "out_refund_no": "REF000005", "refund_fen": 234, "total_fen": 1234,
                           "reason": "cold", "notify_url": "http://merchant.test/cb"})
    resp = await call(inst, "POST", "/v1/refunds", refund)
    assert resp.status_code == 200
    assert by_institution(resp.headers, resp.content)
    assert set(resp.json()["data"]) == REFUND_FIELDS
    assert resp.json()["data"]["refund_status"] == "PROCESSING"
    done = await callback("REFUND.SUCCESS")
    assert set(done["data"]) == REFUND_FIELDS

    day = clock.now().astimezone(CST).strftime("%Y%m%d")
    bill = await call(inst, "GET", f"/v1/bills/{day}")
    assert bill.status_code == 200
    assert by_institution(bill.headers, bill.content)
    lines = bill.text.split("\n")
    assert lines[0].split(",") == BILL_COLUMNS
    assert {line.split(",")[3] for line in lines[1:] if line} == {"PAY", "REFUND"}


@pytest.mark.parametrize(("change", "code"), [
    ({"X-Ecny-Signature": "00" * 64}, "SIGNATURE_INVALID"),
    ({"X-Ecny-Timestamp": "1700000000"}, "TIMESTAMP_EXPIRED"),
    ({"X-Ecny-Serial": "0000000000000000"}, "KEY_SERIAL_UNKNOWN"),
    ({"X-Ecny-Nonce": ""}, "SIGNATURE_MISSING"),
])
async def test_refusals_are_documented_and_signed(inst: tuple[httpx.AsyncClient, str],
                                                  change: dict[str, str], code: str) -> None:
    client, prefix = inst
    body = order_body("ORD000006")
    resp = await client.post(prefix + "/v1/orders", content=body,
                             headers={**signed("POST", "/v1/orders", body), **change})
    assert resp.status_code == 401
    assert resp.json()["code"] == code
    assert set(resp.json()) == {"code", "message"}
    assert by_institution(resp.headers, resp.content)


async def test_wrong_payee_wallet_and_replay(inst: tuple[httpx.AsyncClient, str]) -> None:
    client, prefix = inst
    doc = orjson.loads(order_body("ORD000007"))
    doc["payee"] = payee("ORD000008")  # an envelope made for another order
    resp = await call(inst, "POST", "/v1/orders", orjson.dumps(doc))
    assert (resp.status_code, resp.json()["code"]) == (400, "DECRYPT_FAILED")
    doc["payee"] = payee("ORD000007", wallet="0099999999999999")
    resp = await call(inst, "POST", "/v1/orders", orjson.dumps(doc))
    assert (resp.status_code, resp.json()["code"]) == (400, "PAYEE_WALLET_INVALID")
    body = order_body("ORD000009")
    h = signed("POST", "/v1/orders", body)
    assert (await client.post(prefix + "/v1/orders", content=body, headers=h)).status_code == 200
    again = await client.post(prefix + "/v1/orders", content=body, headers=h)
    assert (again.status_code, again.json()["code"]) == (401, "NONCE_REPLAYED")


async def callback(event_type: str) -> dict[str, Any]:
    for _ in range(200):
        for req in CALLBACKS:
            doc: dict[str, Any] = orjson.loads(req.content)
            if doc.get("event_type") == event_type:
                assert by_institution(req.headers, req.content)
                return doc
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {event_type} callback")


