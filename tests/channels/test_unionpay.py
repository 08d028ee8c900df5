"""UnionPay QR adapter against the UnionPay sandbox, over HTTP, end to end."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import zipfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from fulema.channels.base import (
    BarcodePayRequest,
    CallbackKind,
    CallbackResult,
    ChannelError,
    ChannelUnavailable,
    CreatePaymentRequest,
    RefundRequest,
    RefundState,
    TradeState,
)
from fulema.channels.detect import detect_payer_code
from fulema.channels.unionpay.adapter import (
    TRADE_STATES,
    UnionpayChannel,
    build_channel,
)
from fulema.channels.unionpay.bill import (
    CONSUME,
    LINE_LENGTH,
    REFUND,
    VOID,
    parse_zm,
    zm_from_archive,
)
from fulema.channels.unionpay.config import adapter_keys, platform_dev_keys
from fulema.channels.unionpay.sign import (
    BEIJING,
    decode_form,
    decode_response,
    digest_hex,
    encode_form,
    from_order_id,
    sign_fields,
    sign_string,
    to_order_id,
    txn_time_for,
    verify_fields,
)
from fulema.core import crypto
from fulema.core.channel_settings import UnionpaySection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.sandbox.unionpay.server import UnionpaySandbox, _self_signed
from fulema.sandboxes import sandbox_app as compose_sandbox

SB = "/sandbox/unionpay"


@dataclass
class Env:
    settings: Settings
    http: httpx.AsyncClient
    channel: UnionpayChannel
    sandbox: UnionpaySandbox
    received: list[CallbackResult | bytes] = field(default_factory=list)

    async def wallet(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.http.request(method, f"{SB}/wallet{path}", **kw)

    async def callbacks(self, count: int) -> list[CallbackResult]:
        for _ in range(200):  # bounded wait for the sandbox's background notifications
            got = [r for r in self.received if isinstance(r, CallbackResult)]
            if len(got) >= count:
                return got
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} verified callbacks, got {self.received}")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("unionpay")  # keys are made once for the whole module


def make_env(settings: Settings, up: UnionpaySection | None = None) -> tuple[Env, FastAPI]:
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    sandbox_app = compose_sandbox("unionpay", settings, http)
    app.mount(SB, sandbox_app)
    channel = (build_channel(settings, http) if up is None
               else UnionpayChannel(settings, up, http, adapter_keys(settings, up)))
    env = Env(settings, http, channel, sandbox_app.state.sandbox)

    @app.post("/callbacks/unionpay")
    async def callback(request: Request) -> Response:
        body = await request.body()
        try:
            env.received.append(await channel.parse_callback(dict(request.headers), body))
            ack = channel.callback_ack(True)
        except FulemaError:
            env.received.append(body)
            ack = channel.callback_ack(False)
        return Response(ack.body, status_code=ack.status_code, media_type=ack.media_type)

    return env, app


async def close_env(env: Env) -> None:
    for task in list(env.sandbox.tasks):
        task.cancel()
    await asyncio.gather(*env.sandbox.tasks, return_exceptions=True)
    await env.http.aclose()


@pytest.fixture
async def env(data_dir: Path) -> AsyncIterator[Env]:
    e, _ = make_env(Settings(public_base_url="http://testserver", data_dir=data_dir))
    yield e
    await close_env(e)


def create_req(settings: Settings, amount: int = 1000,
               way: WayCode = WayCode.QR_DYNAMIC) -> CreatePaymentRequest:
    return CreatePaymentRequest(
        order_id=new_id("ord"), amount=Money(amount), subject="测试商品", way_code=way,
        notify_url=settings.callback_url("unionpay"),
        expire_at=clock.now() + timedelta(minutes=15))


async def paid_order_qr(env: Env, amount: int = 1000, payer: str = "up_rich") -> str:
    req = create_req(env.settings, amount)
    created = await env.channel.create(req)
    resp = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                   "payer_id": payer})
    assert resp.status_code == 200, resp.text
    return req.order_id


async def payer_code(env: Env, payer: str) -> str:
    resp = await env.wallet("POST", f"/payers/{payer}/code")
    assert resp.status_code == 200
    code: str = resp.json()["auth_code"]
    return code


async def barcode(env: Env, payer: str, amount: int = 500) -> tuple[str, Any]:
    order_id = new_id("ord")
    result = await env.channel.barcode_pay(BarcodePayRequest(
        order_id=order_id, amount=Money(amount), subject="x",
        auth_code=await payer_code(env, payer)))
    return order_id, result


# --- wire format and signatures --------------------------------------------------------------

def test_sign_string_sorts_and_excludes_signature() -> None:
    fields = {"txnAmt": "100", "merId": "777290058110048", "signature": "zz", "accessType": "0"}
    assert sign_string(fields) == "accessType=0&merId=777290058110048&txnAmt=100"
    # signMethod 01 signs hex(SHA-256) of that string; the SDK log's example digest of "123":
    assert hashlib.sha256(b"123").hexdigest() == (
        "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3")
    assert digest_hex(fields, "01") == hashlib.sha256(sign_string(fields).encode()).hexdigest()


@pytest.mark.parametrize("method", ["01", "02"])
def test_signature_round_trip_and_tamper(data_dir: Path, method: str) -> None:
    keys = platform_dev_keys(Settings(data_dir=data_dir))
    fields = {"signMethod": method, "txnAmt": "100", "orderId": "ordZ01"}
    fields["signature"] = sign_fields(fields, method=method, rsa_key=keys.rsa, sm2_key=keys.sm2)
    assert verify_fields(fields, rsa_public=keys.rsa.public_key(), sm2_public=keys.sm2[1])
    assert not verify_fields({**fields, "txnAmt": "101"}, rsa_public=keys.rsa.public_key(),
                             sm2_public=keys.sm2[1])
    other = "02" if method == "01" else "01"
    assert not verify_fields({**fields, "signMethod": other}, rsa_public=keys.rsa.public_key(),
                             sm2_public=keys.sm2[1])
    assert not verify_fields({**fields, "signature": ""}, rsa_public=keys.rsa.public_key(),
                             sm2_public=keys.sm2[1])


def test_sm2_signature_is_base64_of_64_bytes(data_dir: Path) -> None:
    keys = platform_dev_keys(Settings(data_dir=data_dir))
    sig = sign_fields({"signMethod": "02", "a": "1"}, method="02", rsa_key=keys.rsa,
                      sm2_key=keys.sm2)
    assert len(base64.b64decode(sig)) == 64


def test_response_parsing_like_the_sdk() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB+w==\n-----END CERTIFICATE-----"
    parsed = decode_response(f"respCode=00&signPubKeyCert={pem}&reserved={{a=1&b=2}}&x=")
    assert parsed == {"respCode": "00", "signPubKeyCert": pem, "reserved": "{a=1&b=2}",
                      "x": ""}
    for garbage in ("<html>502</html>", "", "a=1&a=2", "=1", "a=1&&b=2"):
        with pytest.raises(ValueError, match="malformed"):
            decode_response(garbage)


def test_form_round_trip_and_refusals() -> None:
    fields = {"orderId": "ordZ1", "respMsg": "成功 & more=yes"}
    assert decode_form(encode_form(fields).encode()) == fields
    for bad in (b"a=1&a=2", b"\xff\xfe", b"a"):
        with pytest.raises(ValueError, match=r"form|repeated"):
            decode_form(bad)


def test_order_id_mapping_is_reversible() -> None:
    oid = new_id("ord")
    up = to_order_id(oid)
    assert up.isalnum()
    assert "_" not in up
    assert from_order_id(up) == oid
    assert len(txn_time_for(oid)) == 14
    for bad in ("short", "ORD_UPPERCASE_1234", "ord-with-dash-123", "x" * 41):
        with pytest.raises(ValueError, match="orderId"):
            to_order_id(bad)


def test_status_mapping_covers_documented_codes() -> None:
    assert TRADE_STATES["00"] == TradeState.SUCCESS
    assert {TRADE_STATES[c] for c in ("03", "04", "05")} == {TradeState.PAYING}
    assert TRADE_STATES["64"] == TradeState.FAILED
    assert TRADE_STATES["45"] == TradeState.CLOSED
    assert "ZZ" not in TRADE_STATES  # undocumented codes are UNKNOWN in the adapter


# --- 主扫: the payer scans the merchant-presented order QR ------------------------------------

@pytest.mark.parametrize("way", [WayCode.QR_DYNAMIC, WayCode.QR_STATIC])
async def test_order_qr_end_to_end(env: Env, way: WayCode) -> None:
    req = create_req(env.settings, 1234, way)
    created = await env.channel.create(req)
    assert created.state == TradeState.PAYING
    assert created.code_url is not None
    assert created.code_url.startswith("https://qr.95516.com/00010000/")
    assert (await env.channel.query(req.order_id)).state == TradeState.NOT_FOUND  # unpaid

    resp = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                   "payer_id": "up_rich"})
    assert resp.status_code == 200
    assert resp.json()["respCode"] == "00"

    [cb] = await env.callbacks(1)
    assert cb.kind == CallbackKind.PAYMENT
    assert cb.order_id == req.order_id
    assert cb.trade is not None
    assert cb.trade.state == TradeState.SUCCESS
    assert cb.trade.amount == Money(1234)
    found = await env.channel.query(req.order_id)
    assert found.state == TradeState.SUCCESS
    assert found.amount == Money(1234)
    assert found.channel_trade_no == cb.trade.channel_trade_no
    assert found.paid_at is not None
    assert found.raw["accNo"].startswith("6216")


async def test_order_qr_with_sm2_signatures(data_dir: Path) -> None:
    settings = Settings(public_base_url="http://testserver", data_dir=data_dir)
    e, _ = make_env(settings, UnionpaySection(sign_method="02"))
    try:
        req = create_req(settings, 888)
        created = await e.channel.create(req)
        resp = await e.wallet("POST", "/scan", json={"order_id": req.order_id,
                                                     "payer_id": "up_rich"})
        assert resp.status_code == 200
        [cb] = await e.callbacks(1)
        assert cb.trade is not None
        assert cb.trade.raw["signMethod"] == "02"
        assert "signPubKeyCert" not in cb.trade.raw
        found = await e.channel.query(req.order_id)
        assert (found.state, found.amount) == (TradeState.SUCCESS, Money(888))
        assert created.raw["signMethod"] == "02"
    finally:
        await close_env(e)


async def test_order_qr_insufficient_balance_leaves_order_payable(env: Env) -> None:
    req = create_req(env.settings, 5000)
    created = await env.channel.create(req)
    resp = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                   "payer_id": "up_poor"})
    assert resp.status_code == 409
    assert resp.json() == {"respCode": "64", "respMsg": "卡上的余额不足"}
    assert (await env.channel.query(req.order_id)).state == TradeState.NOT_FOUND
    again = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                    "payer_id": "up_rich"})
    assert again.status_code == 200
    twice = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                    "payer_id": "up_rich"})
    assert twice.json()["respCode"] == "12"


async def test_unsupported_way_code_is_refused(env: Env) -> None:
    with pytest.raises(ChannelError) as err:
        await env.channel.create(create_req(env.settings, way=WayCode.JSAPI))
    assert err.value.code == "UNSUPPORTED_WAY_CODE"


async def test_close_unpaid_then_code_lapses_at_expiry(env: Env) -> None:
    req = create_req(env.settings)
    created = await env.channel.create(req)
    await env.channel.close(req.order_id)
    clock.freeze(req.expire_at + timedelta(seconds=1))
    resp = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                   "payer_id": "up_rich"})
    assert resp.json()["respCode"] == "39"


async def test_close_paid_order_is_refused(env: Env) -> None:
    order_id = await paid_order_qr(env)
    with pytest.raises(ChannelError) as err:
        await env.channel.close(order_id)
    assert err.value.code == "ORDER_PAID"


# --- refunds ---------------------------------------------------------------------------------

def refund_req(env: Env, order_id: str, amount: int, order_amount: int = 1000,
               refund_id: str | None = None) -> RefundRequest:
    return RefundRequest(order_id=order_id, refund_id=refund_id or new_id("rfd"),
                         amount=Money(amount), order_amount=Money(order_amount), reason="r",
                         notify_url=env.settings.callback_url("unionpay"))


async def test_partial_and_repeated_refunds(env: Env) -> None:
    order_id = await paid_order_qr(env, 1000)
    first = refund_req(env, order_id, 300)
    result = await env.channel.refund(first)
    assert result.state == RefundState.PROCESSING  # 受理成功; outcome by notify / query
    callbacks = await env.callbacks(2)
    refund_cb = callbacks[1]
    assert refund_cb.kind == CallbackKind.REFUND
    assert (refund_cb.order_id, refund_cb.refund_id) == (order_id, first.refund_id)
    assert refund_cb.refund is not None
    assert refund_cb.refund.state == RefundState.SUCCESS
    assert (await env.channel.refund_query(order_id, first.refund_id)).state == (
        RefundState.SUCCESS)

    again = await env.channel.refund(first)  # same refund id: 重复交易 -> its real state
    assert again.state == RefundState.SUCCESS
    assert (await env.channel.refund(refund_req(env, order_id, 700))).state == (
        RefundState.PROCESSING)
    over = await env.channel.refund(refund_req(env, order_id, 1))
    assert (over.state, over.error_code) == (RefundState.FAILED, "36")
    payer = (await env.wallet("GET", "/payers/up_rich")).json()
    assert payer["balance_fen"] == 100_000_000  # fully refunded
    assert (await env.channel.refund_query(order_id, new_id("rfd"))).state == RefundState.FAILED


async def test_refund_of_unpaid_order_fails(env: Env) -> None:
    req = create_req(env.settings)
    await env.channel.create(req)
    result = await env.channel.refund(refund_req(env, req.order_id, 100))
    assert result.state == RefundState.FAILED


# --- 被扫: the merchant scans the payer's C2B码 (付款码) ----------------------------------------

async def test_payer_code_format_and_detection(env: Env) -> None:
    code = await payer_code(env, "up_rich")
    assert len(code) == 19
    assert code.startswith("62")
    assert code.isdigit()
    assert detect_payer_code(code, env.settings) == ChannelName.UNIONPAY
    assert (await env.wallet("POST", "/payers/nobody/code")).status_code == 404


async def test_barcode_success_and_code_is_single_use(env: Env) -> None:
    code = await payer_code(env, "up_rich")
    order_id = new_id("ord")
    result = await env.channel.barcode_pay(BarcodePayRequest(
        order_id=order_id, amount=Money(500), subject="x", auth_code=code))
    assert (result.state, result.amount) == (TradeState.SUCCESS, Money(500))
    [cb] = await env.callbacks(1)
    assert cb.order_id == order_id
    found = await env.channel.query(order_id)
    assert (found.state, found.amount) == (TradeState.SUCCESS, Money(500))
    reused = await env.channel.barcode_pay(BarcodePayRequest(
        order_id=new_id("ord"), amount=Money(500), subject="x", auth_code=code))
    assert (reused.state, reused.error_code) == (TradeState.FAILED, "61")


async def test_barcode_insufficient_balance(env: Env) -> None:
    order_id, result = await barcode(env, "up_poor", 500)
    assert (result.state, result.error_code) == (TradeState.FAILED, "64")
    assert result.error_message == "卡上的余额不足"
    found = await env.channel.query(order_id)
    assert (found.state, found.error_code) == (TradeState.FAILED, "64")


async def test_barcode_password_then_confirm(env: Env) -> None:
    order_id, result = await barcode(env, "up_pin", 700)
    assert result.state == TradeState.PAYING
    assert (await env.channel.query(order_id)).state == TradeState.PAYING
    resp = await env.wallet("POST", "/payers/up_pin/confirm")
    assert resp.status_code == 200
    assert resp.json()["confirmed"][0]["origRespCode"] == "00"
    [cb] = await env.callbacks(1)
    assert cb.trade is not None
    assert cb.trade.state == TradeState.SUCCESS
    found = await env.channel.query(order_id)
    assert (found.state, found.amount) == (TradeState.SUCCESS, Money(700))


async def test_barcode_password_times_out(env: Env) -> None:
    order_id, _ = await barcode(env, "up_pin", 700)
    clock.freeze(clock.now() + timedelta(seconds=61))
    found = await env.channel.query(order_id)
    assert (found.state, found.error_code) == (TradeState.FAILED, "69")
    assert (await env.wallet("POST", "/payers/up_pin/confirm")).status_code == 404


async def test_cancel_waiting_payment(env: Env) -> None:
    order_id, _ = await barcode(env, "up_pin", 700)
    await env.channel.cancel(order_id)
    assert (await env.channel.query(order_id)).state == TradeState.CLOSED
    assert (await env.wallet("POST", "/payers/up_pin/confirm")).status_code == 404
    await env.channel.cancel(order_id)  # idempotent


async def test_cancel_paid_payment_voids_and_returns_money(env: Env) -> None:
    before = (await env.wallet("GET", "/payers/up_rich")).json()["balance_fen"]
    order_id, result = await barcode(env, "up_rich", 900)
    assert result.state == TradeState.SUCCESS
    await env.channel.cancel(order_id)
    callbacks = await env.callbacks(2)
    void_cb = callbacks[1]
    assert void_cb.order_id == order_id
    assert void_cb.trade is not None
    assert void_cb.trade.state == TradeState.CLOSED
    assert (await env.channel.query(order_id)).state == TradeState.CLOSED
    assert (await env.wallet("GET", "/payers/up_rich")).json()["balance_fen"] == before
    refund = await env.channel.refund(refund_req(env, order_id, 100, 900))
    assert refund.state == RefundState.FAILED


# --- refusals and faults ---------------------------------------------------------------------

async def test_sandbox_rejects_tampered_request_with_11(env: Env) -> None:
    req = create_req(env.settings)
    form = env.channel._signed({
        "txnType": "01", "txnSubType": "07", "bizType": "000000", "channelType": "08",
        "orderId": to_order_id(req.order_id), "txnTime": txn_time_for(req.order_id),
        "txnAmt": "100", "currencyCode": "156", "backUrl": req.notify_url})
    for tampered in ({**form, "txnAmt": "1"}, {**form, "certId": "1"}):
        resp = await env.http.post(f"{SB}/gateway/api/backTransReq.do",
                                   content=encode_form(tampered))
        answer = decode_response(resp.text)
        assert (answer["respCode"], answer["respMsg"]) == ("11", "验证签名失败")
        assert env.channel._verified(answer)  # the refusal itself is signed
    missing = {k: v for k, v in form.items() if k != "certId"}
    resp = await env.http.post(f"{SB}/gateway/api/backTransReq.do", content=encode_form(missing))
    assert decode_response(resp.text)["respCode"] == "13"


def _books_snapshot(sandbox: UnionpaySandbox) -> tuple[object, ...]:
    books = sandbox.books
    return (dict(books.txns), dict(books.by_query_id), dict(books.by_qr), dict(books.codes),
            {p: payer.balance_fen for p, payer in books.payers.items()})


def _valid_forms(env: Env, qr_no: str) -> dict[str, tuple[str, dict[str, str]]]:
    """A well-formed request per txnType: (endpoint, fields before signing)."""
    order_id, refund_id = new_id("ord"), new_id("rfd")
    back = {"bizType": "000000", "channelType": "08", "backUrl": env.settings.callback_url(
        "unionpay"), "orderId": to_order_id(order_id), "txnTime": txn_time_for(order_id)}
    return {
        "apply": ("gateway/api/backTransReq.do", {**back, "txnType": "01", "txnSubType": "07",
                                                  "txnAmt": "100", "currencyCode": "156"}),
        "consume": ("gateway/api/backTransReq.do", {**back, "txnType": "01",
                                                    "txnSubType": "06", "txnAmt": "100",
                                                    "currencyCode": "156", "qrNo": qr_no}),
        "void": ("gateway/api/backTransReq.do", {**back, "txnType": "31", "txnSubType": "00",
                                                 "txnAmt": "100",
                                                 "origQryId": "2026010112000000000001"}),
        "refund": ("gateway/api/backTransReq.do", {
            **back, "txnType": "04", "txnSubType": "00", "orderId": to_order_id(refund_id),
            "txnTime": txn_time_for(refund_id), "txnAmt": "100", "currencyCode": "156",
            "origQryId": "2026010112000000000001"}),
        "query": ("gateway/api/queryTrans.do", {
            "txnType": "00", "txnSubType": "00", "bizType": "000000",
            "orderId": to_order_id(order_id), "txnTime": txn_time_for(order_id)}),
    }


_COMMON_REQUIRED = ("version", "encoding", "signMethod", "txnType", "txnSubType", "bizType",
                    "accessType", "merId", "orderId", "txnTime")
_MISSING = [
    *((kind, key) for kind in ("apply", "consume", "void", "refund")
      for key in (*_COMMON_REQUIRED, "channelType")),
    *((kind, key) for kind in ("apply", "consume", "refund") for key in ("txnAmt",
                                                                          "currencyCode")),
    ("void", "origQryId"), ("refund", "origQryId"),
    *(("query", key) for key in _COMMON_REQUIRED),
]


async def _post_signed(env: Env, endpoint: str, form: dict[str, str]) -> dict[str, str]:
    resp = await env.http.post(f"{SB}/{endpoint}", content=encode_form(form))
    answer = decode_response(resp.text)
    assert env.channel._verified(answer)  # the refusal itself is signed
    return answer


@pytest.mark.parametrize(("kind", "key"), _MISSING)
async def test_sandbox_refuses_missing_required_field_with_13(env: Env, kind: str,
                                                              key: str) -> None:
    qr_no = await payer_code(env, "up_rich")
    endpoint, fields = _valid_forms(env, qr_no)[kind]
    before = _books_snapshot(env.sandbox)
    form = env.channel._signed(fields)
    form.pop(key)  # signed without it, so only the missing field is wrong
    form["signature"] = sign_fields({k: v for k, v in form.items() if k != "signature"},
                                    method=env.channel.up.sign_method,
                                    rsa_key=env.channel.keys.merchant.rsa,
                                    sm2_key=env.channel.keys.merchant.sm2,
                                    secure_key=env.channel.keys.secure_key)
    answer = await _post_signed(env, endpoint, form)
    assert answer["respCode"] == "13"
    assert answer["respMsg"] == f"报文交易要素缺失[{key}]"
    assert _books_snapshot(env.sandbox) == before


@pytest.mark.parametrize(("key", "value"), [
    ("txnTime", "2026010112000"), ("txnTime", "202601011200000"), ("txnTime", "20261301120000"),
    ("txnTime", "2026-01-01 12:00"), ("txnAmt", "0"), ("txnAmt", "-100"), ("txnAmt", "1.00"),
    ("txnAmt", "0100"), ("txnAmt", "abc"), ("currencyCode", "840"), ("currencyCode", "CNY"),
])
@pytest.mark.parametrize("kind", ["apply", "consume", "refund"])
async def test_sandbox_refuses_malformed_field_with_10(env: Env, kind: str, key: str,
                                                       value: str) -> None:
    qr_no = await payer_code(env, "up_rich")
    endpoint, fields = _valid_forms(env, qr_no)[kind]
    before = _books_snapshot(env.sandbox)
    answer = await _post_signed(env, endpoint, env.channel._signed({**fields, key: value}))
    assert (answer["respCode"], answer["respMsg"]) == ("10", f"报文格式错误[{key}]")
    assert _books_snapshot(env.sandbox) == before


async def test_sandbox_accepts_old_txn_time_no_staleness_window(env: Env) -> None:
    qr_no = await payer_code(env, "up_rich")
    endpoint, fields = _valid_forms(env, qr_no)["query"]
    answer = await _post_signed(env, endpoint, env.channel._signed(
        {**fields, "txnTime": "20200101120000"}))
    assert answer["respCode"] == "34"  # well formed; simply no such transaction


async def test_valid_forms_are_accepted(env: Env) -> None:
    qr_no = await payer_code(env, "up_rich")
    endpoint, fields = _valid_forms(env, qr_no)["consume"]
    answer = await _post_signed(env, endpoint, env.channel._signed(fields))
    assert answer["respCode"] == "00"


async def test_adapter_with_wrong_key_gets_channel_error(env: Env, tmp_path: Path) -> None:
    up = UnionpaySection(merchant_key_path=tmp_path / "other.pem",
                          cert_id=env.channel.cert_id)
    stranger = UnionpayChannel(env.settings, up, env.http, adapter_keys(env.settings, up))
    with pytest.raises(ChannelError) as err:
        await stranger.create(create_req(env.settings))
    assert err.value.code == "11"


async def test_adapter_rejects_tampered_callbacks(env: Env) -> None:
    platform = platform_dev_keys(env.settings)
    oid = new_id("ord")
    fields = {"version": "5.1.0", "signMethod": "01", "txnType": "01", "txnSubType": "07",
              "merId": env.channel.up.mer_id, "orderId": to_order_id(oid), "txnAmt": "100",
              "respCode": "00", "origRespCode": "00", "queryId": "1" * 21}
    fields["signature"] = sign_fields(fields, method="01", rsa_key=platform.rsa,
                                      sm2_key=platform.sm2)
    good = await env.channel.parse_callback({}, encode_form(fields).encode())
    assert good.order_id == oid
    stranger = crypto.generate_rsa_key()
    forged = {**fields, "signature": sign_fields(fields, method="01", rsa_key=stranger,
                                                 sm2_key=platform.sm2)}
    other_mer = {**fields, "merId": "898000000000001"}
    other_mer["signature"] = sign_fields(other_mer, method="01", rsa_key=platform.rsa,
                                         sm2_key=platform.sm2)
    for body in (encode_form({**fields, "txnAmt": "1"}).encode(), encode_form(forged).encode(),
                 encode_form({k: v for k, v in fields.items() if k != "signature"}).encode(),
                 encode_form(other_mer).encode(), b"\xff", b"<xml/>"):
        with pytest.raises(FulemaError) as err:
            await env.channel.parse_callback({}, body)
        assert err.value.code == ErrorCode.CALLBACK_INVALID
    assert env.channel.callback_ack(True).status_code == 200
    assert env.channel.callback_ack(False).status_code != 200


@pytest.mark.parametrize("mode", ["5xx", "garbled", "slow"])
async def test_faults_are_unavailable_never_failed(env: Env, mode: str) -> None:
    """Every call raises ChannelUnavailable (never FAILED, never a quiet UNKNOWN result): the
    breaker counts it, and payments keeps the order or refund open and queries it later."""
    order_id = await paid_order_qr(env)
    env.channel.timeout = 0.2
    await env.wallet("POST", "/faults", json={"mode": mode, "delay_ms": 1000})
    with pytest.raises(ChannelUnavailable):
        await env.channel.create(create_req(env.settings))
    with pytest.raises(ChannelUnavailable):
        await env.channel.query(order_id)
    with pytest.raises(ChannelUnavailable):
        await barcode(env, "up_rich")
    with pytest.raises(ChannelUnavailable):
        await env.channel.refund(refund_req(env, order_id, 100))
    with pytest.raises(ChannelUnavailable):
        await env.channel.refund_query(order_id, new_id("ref"))
    with pytest.raises(ChannelUnavailable):
        await env.channel.cancel(order_id)
    await env.wallet("POST", "/faults", json={"mode": "none"})
    assert (await env.channel.query(order_id)).state == TradeState.SUCCESS


async def test_response_with_foreign_certificate_is_unverifiable(env: Env) -> None:
    stranger = crypto.generate_rsa_key()
    env.sandbox.cert_pem = env.sandbox.cert_pem.replace("A", "B")  # no longer parses
    with pytest.raises(ChannelUnavailable):
        await env.channel.query(new_id("ord"))
    env.sandbox.cert_pem = _self_signed(stranger, 1)
    with pytest.raises(ChannelUnavailable):
        await env.channel.query(new_id("ord"))


# --- statement and wallet --------------------------------------------------------------------

async def test_statement_is_a_zm_file_of_the_sandbox_records_with_injected_differences(
        env: Env) -> None:
    qr_order = await paid_order_qr(env, 1000)
    code_order, _ = await barcode(env, "up_rich", 250)
    voided, _ = await barcode(env, "up_rich", 900)
    await env.channel.cancel(voided)
    refund = refund_req(env, qr_order, 400)
    await env.channel.refund(refund)
    today = clock.now().astimezone(BEIJING).date()
    qr_row = (await env.wallet("GET", f"/orders/{qr_order}")).json()

    data = await env.channel.download_statement(today)
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) == LINE_LENGTH for line in lines[:-1])
    rows = parse_zm(data)
    by_order = {r.order_id: r for r in rows}
    void_id = to_order_id(voided).replace("Z", "V")
    assert set(by_order) == {to_order_id(qr_order), to_order_id(code_order), to_order_id(voided), void_id,
                             to_order_id(refund.refund_id)}
    consume, back = by_order[to_order_id(qr_order)], by_order[to_order_id(refund.refund_id)]
    assert (consume.trade_code, consume.txn_type, consume.txn_sub_type) == (CONSUME, "01", "07")
    assert (consume.txn_amt, consume.settle_amt) == (Money(1000), Money(1000))
    assert consume.query_id == qr_row["queryId"]
    assert consume.fields["settleAmt"] == "C000000001000"
    assert (back.trade_code, back.txn_type, back.txn_amt, back.settle_amt) == (
        REFUND, "04", Money(400), Money(-400))
    assert back.orig_query_id == consume.query_id
    assert back.fields["origTradeSysTraceNo"] == consume.trace_no
    void = by_order[void_id]
    assert (void.trade_code, void.txn_type, void.txn_amt, void.settle_amt) == (
        VOID, "31", Money(900), Money(-900))
    assert void.orig_query_id == by_order[to_order_id(voided)].query_id
    assert all(r.mer_id == "777290058110048" and r.mer_charge == Money(0) for r in rows)
    assert all(len(r.query_id) == 21 and len(r.txn_time) == 10 for r in rows)

    await env.wallet("POST", "/faults", json={"statement_diff": {
        "drop_order_ids": [to_order_id(code_order)],
        "amount_overrides": {to_order_id(qr_order): 999}, "extra_rows": 1}})
    changed = {r.order_id: r for r in parse_zm(await env.channel.download_statement(today))}
    assert to_order_id(code_order) not in changed
    assert (changed[to_order_id(qr_order)].txn_amt, changed[to_order_id(qr_order)].settle_amt) == (
        Money(999), Money(999))
    assert [r.trade_code for k, r in changed.items() if k.startswith("PHANTOM")] == [CONSUME]
    assert len(changed) == 5
    await env.wallet("POST", "/faults", json={"mode": "none"})
    assert await env.channel.download_statement(today - timedelta(days=3)) == b""


async def test_statement_archive_is_named_as_unionpay_names_it(env: Env) -> None:
    await paid_order_qr(env, 100)
    today = clock.now().astimezone(BEIJING).date()
    answer = env.sandbox.file({"txnType": "76", "settleDate": f"{today:%m%d}"})
    archive = zlib.decompress(base64.b64decode(answer["fileContent"]))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.namelist() == [f"INN{today:%y%m%d}88ZM_777290058110048"]
    assert zm_from_archive(archive) == await env.channel.download_statement(today)


async def test_wallet_payers_and_orders(env: Env) -> None:
    resp = await env.wallet("POST", "/payers", json={"payer_id": "alice", "balance_fen": 50,
                                                     "password_required": True})
    assert resp.json()["payer_id"] == "alice"
    assert resp.json()["balance_fen"] == 50
    assert (await env.wallet("POST", "/payers", json={"balance_fen": -1})).status_code == 422
    order_id = await paid_order_qr(env, 300)
    order = (await env.wallet("GET", f"/orders/{order_id}")).json()
    assert (order["paid"], order["txnAmt"], order["payer_id"]) == (True, 300, "up_rich")
    assert (await env.wallet("GET", "/orders/nothing")).status_code == 404
    assert (await env.wallet("POST", "/scan", json={"code_url": "x", "payer_id": "alice"})
            ).status_code == 404
