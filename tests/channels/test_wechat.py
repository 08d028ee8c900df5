"""WeChat Pay v3 adapter against the WeChat sandbox over HTTP (no mocks of our own code), and a
client written only from WeChat's documentation against the same sandbox."""

from __future__ import annotations

import asyncio
import base64
import gzip
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from fastapi import FastAPI, Request
from fastapi.responses import Response

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
from fulema.channels.wechat.adapter import (
    CST,
    REFUND_STATES,
    TRADE_STATES,
    WechatChannel,
    build_channel,
    parse_tradebill,
    parse_tradebill_summary,
    refund_result,
    trade_result,
)
from fulema.channels.wechat.sign import (
    parse_authorization,
    request_message,
    response_message,
    signed_headers,
)
from fulema.core import crypto
from fulema.core.channel_settings import WechatSection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import FulemaError
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.sandbox.wechat.server import WechatSandbox
from fulema.sandbox.wechat.state import PIN_OPENID, POOR_OPENID, RICH_OPENID
from fulema.sandboxes import sandbox_app
from tests.channels.wechat_doc_client import DocClient, SignatureError, load_private_key

SB = "http://testserver/sandbox/wechat"
NOTIFY = "http://testserver/callbacks/wechat"


@dataclass
class Env:
    channel: WechatChannel
    http: httpx.AsyncClient
    sandbox: WechatSandbox
    settings: Settings
    callbacks: list[CallbackResult] = field(default_factory=list)
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    refuse_next: int = 0

    async def wallet(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(f"{SB}/wallet{path}", json=body or {})

    def doc_client(self, **overrides: Any) -> DocClient:
        keys = self.settings.data_dir / "keys"
        args: dict[str, Any] = {
            "http": self.http, "base_url": SB, "mchid": "1900000001",
            "appid": "wxd678efh567hg6787",
            "serial_no": self.sandbox.merchant_serial,
            "private_key": load_private_key((keys / "wechat_merchant.pem").read_bytes()),
            "platform_public_key": load_private_key(
                (keys / "wechat_platform.pem").read_bytes()).public_key(),
            "platform_key_id": "PUB_KEY_ID_0119000000012025010100000000000001",
            "apiv3_key": self.settings.wechat.apiv3_key.encode()}
        args.update(overrides)
        return DocClient(**args)


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RSA key generation is slow: one merchant and one platform key for the whole module."""
    d = tmp_path_factory.mktemp("wechat_keys")
    crypto.load_or_create_rsa_key(d / "wechat_merchant.pem")
    crypto.load_or_create_rsa_key(d / "wechat_platform.pem")
    return d


@pytest.fixture
async def env(tmp_path: Path, key_dir: Path) -> AsyncIterator[Env]:
    shutil.copytree(key_dir, tmp_path / "keys")
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path)
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    sandbox = sandbox_app("wechat", settings, http)
    app.mount("/sandbox/wechat", sandbox)
    e = Env(build_channel(settings, http), http, sandbox.state.sandbox, settings)

    @app.post("/callbacks/wechat")
    async def callback(request: Request) -> Response:
        body = await request.body()
        e.raw.append((dict(request.headers), body))
        if e.refuse_next > 0:
            e.refuse_next -= 1
            return Response(b'{"code":"FAIL","message":"busy"}', 500)
        try:
            e.callbacks.append(await e.channel.parse_callback(dict(request.headers), body))
            ok = True
        except FulemaError as exc:
            e.rejected.append(exc.message)
            ok = False
        ack = e.channel.callback_ack(ok)
        return Response(ack.body, ack.status_code, media_type=ack.media_type)

    yield e
    for task in list(e.sandbox.tasks):
        task.cancel()
    await http.aclose()


async def until(pred: Callable[[], bool], seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def order(no: str, fen: int = 1234, way: WayCode = WayCode.QR_DYNAMIC,
          payer: str | None = None) -> CreatePaymentRequest:
    return CreatePaymentRequest(order_id=no, amount=Money(fen), subject="Noodles", way_code=way,
                                notify_url=NOTIFY, expire_at=clock.now() + timedelta(minutes=15),
                                payer_id=payer)


async def pay_by_code(e: Env, no: str, payer: str, fen: int = 1000) -> Any:
    code = (await e.wallet(f"/payers/{payer}/code")).json()["auth_code"]
    return await e.channel.barcode_pay(BarcodePayRequest(order_id=no, amount=Money(fen),
                                                         subject="Tea", auth_code=code))


async def paid_order(e: Env, no: str, fen: int = 1000) -> None:
    created = await e.channel.create(order(no, fen))
    assert (await e.wallet("/scan", {"code_url": created.code_url,
                                     "payer_id": RICH_OPENID})).status_code == 200


def rsa_verify(pub: Any, message: str, sig: str) -> bool:
    try:
        pub.verify(base64.b64decode(sig), message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


# ------------------------------------------------------------------ signatures and mappings

def test_request_signing_string_is_the_documented_example() -> None:
    # 签名生成 example: GET /v3/certificates at 1554208460 with nonce 593BEC0C...; empty body
    assert request_message("GET", "/v3/certificates", "1554208460",
                           "593BEC0C930BF1AFEB40B4A08C8FB242", b"") == (
        b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n")
    assert response_message("1554209980", "c5ac7061fccab6bf3e254dcf98995b8c",
                            b'{"data":[]}') == (
        b'1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n{"data":[]}\n')
    header = ('WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C'
              '8FB242",signature="uOVRnA4qG/MNnYzdQxJanN+zU+lTgIcnU9BxGw5dKjK+VdEUz2FeIoC+D5sB/LN+nG'
              'zX3hfZg6r5wT1pl2ZobmIc6p0ldN7J6yDgUzbX8Uk3sD4a4eZVPTBvqNDoUqcYMlZ9uuDdCvNv4TM3c1Wzs'
              'XUrExwVkI1XO5jCNbgDJ25nkT/c1gIFvqoogl7MdSFGc4W4xZsqCItnqbypR3RuGIlR9h9vlRsy7zJR9PBI'
              '83X8alLDIfR1ukt1P7tMnmogZ0cuDY8cZsd8ZlCgLadmvej58SLsIkVxFJ8XyUgx9FmutKSYTmYtWBZ0+tNv'
              'fGmbXU7cob8H/4nLBiCwIUFluw==",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4'
              'A4A16996DE7B47773A8C"')
    parsed = parse_authorization(header)
    assert parsed is not None
    assert parsed["mchid"] == "1900009191"
    assert parsed["timestamp"] == "1554208460"
    assert parsed["serial_no"] == "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"
    assert parsed["signature"].endswith("==")
    assert parse_authorization("Bearer abc") is None
    assert parse_authorization('WECHATPAY2-SHA256-RSA2048 mchid=1900009191') is None


def test_every_wechat_state_is_mapped_and_strangers_are_unknown() -> None:
    assert set(TRADE_STATES) == {"SUCCESS", "REFUND", "NOTPAY", "CLOSED", "REVOKED",
                                 "USERPAYING", "PAYERROR"}
    assert TRADE_STATES["REFUND"] == TradeState.SUCCESS
    assert TRADE_STATES["PAYERROR"] == TradeState.FAILED
    assert set(REFUND_STATES) == {"SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL"}
    assert trade_result({"trade_state": "ACCEPT"}).state == TradeState.UNKNOWN
    assert trade_result({"trade_state": "NOTPAY", "amount": {"total": 5}}).amount is None
    paid = trade_result({"trade_state": "SUCCESS", "amount": {"total": 5},
                         "payer": {"openid": RICH_OPENID},
                         "success_time": "2024-01-02T03:04:05+08:00"})
    assert paid.amount == Money(5)
    assert paid.payer_id == RICH_OPENID
    assert paid.paid_at is not None
    assert paid.paid_at.hour == 19
    assert refund_result({"refund_status": "ABNORMAL"}).state == RefundState.FAILED
    assert refund_result({"status": "WEIRD"}).state == RefundState.UNKNOWN


# ------------------------------------------------------------------ way codes end to end

@pytest.mark.parametrize("way", [WayCode.QR_DYNAMIC, WayCode.H5, WayCode.JSAPI, WayCode.APP,
                                 WayCode.QR_STATIC])
async def test_way_code_end_to_end(env: Env, way: WayCode) -> None:
    no = f"ORD{way.value.replace('_', '')}01"
    payer = RICH_OPENID if way in (WayCode.JSAPI, WayCode.QR_STATIC) else None
    created = await env.channel.create(order(no, 1234, way, payer))
    assert created.state == TradeState.PAYING
    ref: dict[str, Any]
    if way == WayCode.QR_DYNAMIC:
        assert created.code_url is not None
        assert created.code_url.startswith("weixin://wxpay/bizpayurl?pr=")
        ref = {"code_url": created.code_url}
    elif way == WayCode.H5:
        assert created.h5_url is not None
        assert "prepay_id=" in created.h5_url
        ref = {"h5_url": created.h5_url}
    else:
        params = created.pay_params
        assert params is not None
        merchant = env.channel.key.public_key()
        if way == WayCode.APP:
            assert params["package"] == "Sign=WXPay"
            assert params["partnerid"] == "1900000001"
            msg = f"{params['appid']}\n{params['timestamp']}\n{params['noncestr']}\n" \
                  f"{params['prepayid']}\n"
            assert rsa_verify(merchant, msg, params["sign"])
            ref = {"prepay_id": params["prepayid"]}
        else:
            assert params["signType"] == "RSA"
            assert params["package"].startswith("prepay_id=wx")
            msg = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n" \
                  f"{params['package']}\n"
            assert rsa_verify(merchant, msg, params["paySign"])
            ref = {"prepay_id": params["package"].removeprefix("prepay_id=")}
    assert (await env.channel.query(no)).state == TradeState.PAYING
    paid = await env.wallet("/scan", {**ref, "payer_id": RICH_OPENID})
    assert paid.status_code == 200, paid.text
    await until(lambda: len(env.callbacks) == 1)
    cb = env.callbacks[0]
    assert cb.kind == CallbackKind.PAYMENT
    assert cb.order_id == no
    assert cb.trade is not None
    assert cb.trade.state == TradeState.SUCCESS
    assert cb.trade.amount == Money(1234)
    assert cb.trade.payer_id == RICH_OPENID
    result = await env.channel.query(no)
    assert result.state == TradeState.SUCCESS
    assert result.amount == Money(1234)
    assert result.channel_trade_no
    assert result.channel_trade_no.startswith("4200")
    assert result.raw["trade_type"] == {"QR_DYNAMIC": "NATIVE", "H5": "MWEB", "JSAPI": "JSAPI",
                                        "APP": "APP", "QR_STATIC": "JSAPI"}[way.value]


async def test_qr_static_without_openid_is_a_native_code(env: Env) -> None:
    created = await env.channel.create(order("ORDSTATIC02", 100, WayCode.QR_STATIC))
    assert created.code_url is not None
    assert created.pay_params is None


async def test_jsapi_requires_openid_and_only_that_payer_may_pay(env: Env) -> None:
    with pytest.raises(ChannelError):
        await env.channel.create(order("ORDJSAPI0X", 100, WayCode.JSAPI))
    created = await env.channel.create(order("ORDJSAPI0Y", 100, WayCode.JSAPI, RICH_OPENID))
    assert created.pay_params is not None
    prepay = created.pay_params["package"].removeprefix("prepay_id=")
    other = await env.wallet("/scan", {"prepay_id": prepay, "payer_id": PIN_OPENID})
    assert other.status_code == 403
    assert other.json()["code"] == "BUYER_MISMATCH"
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(order("ORDQR00001", 100, WayCode.BARCODE))
    assert exc.value.code == "WAY_CODE_UNSUPPORTED"


async def test_close_then_payment_is_refused(env: Env) -> None:
    created = await env.channel.create(order("ORDCLOSE01", 500))
    await env.channel.close("ORDCLOSE01")
    assert (await env.channel.query("ORDCLOSE01")).state == TradeState.CLOSED
    late = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": RICH_OPENID})
    assert late.status_code == 400
    assert late.json()["code"] == "ORDER_CLOSED"
    await paid_order(env, "ORDCLOSE02")
    with pytest.raises(ChannelError) as exc:
        await env.channel.close("ORDCLOSE02")
    assert exc.value.code == "ORDERPAID"


async def test_scan_with_short_balance_fails_the_attempt_not_the_order(env: Env) -> None:
    created = await env.channel.create(order("ORDPOOR001", 5000))
    resp = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": POOR_OPENID})
    assert resp.status_code == 403
    assert resp.json() == {"code": "NOTENOUGH", "message": "用户余额不足"}
    assert (await env.channel.query("ORDPOOR001")).state == TradeState.PAYING
    ok = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": RICH_OPENID})
    assert ok.status_code == 200


# ------------------------------------------------------------------ refunds

async def test_partial_repeated_refunds_and_refund_query(env: Env) -> None:
    await paid_order(env, "ORDREFUND1", 1000)
    await until(lambda: len(env.callbacks) == 1)
    before = (await env.http.get(f"{SB}/wallet/payers/{RICH_OPENID}")).json()["balance_fen"]

    def req(rid: str, fen: int) -> RefundRequest:
        return RefundRequest(order_id="ORDREFUND1", refund_id=rid, amount=Money(fen),
                             order_amount=Money(1000), reason="broken", notify_url=NOTIFY)

    first = await env.channel.refund(req("RF000001", 300))
    assert first.state == RefundState.PROCESSING
    assert first.channel_refund_no
    again = await env.channel.refund(req("RF000001", 300))  # the same request: the same refund
    assert again.channel_refund_no == first.channel_refund_no
    with pytest.raises(ChannelError) as clash:
        await env.channel.refund(req("RF000001", 301))
    assert clash.value.code == "INVALID_REQUEST"
    second = await env.channel.refund(req("RF000002", 700))
    assert second.state == RefundState.PROCESSING
    with pytest.raises(ChannelError) as over:
        await env.channel.refund(req("RF000003", 1))
    assert over.value.code == "INVALID_REQUEST"
    await until(lambda: sum(c.kind == CallbackKind.REFUND for c in env.callbacks) == 2)
    refunds = [c for c in env.callbacks if c.kind == CallbackKind.REFUND]
    assert {c.refund_id for c in refunds} == {"RF000001", "RF000002"}
    assert all(c.refund and c.refund.state == RefundState.SUCCESS for c in refunds)
    done = await env.channel.refund_query("ORDREFUND1", "RF000001")
    assert done.state == RefundState.SUCCESS
    assert done.raw["amount"]["refund"] == 300
    with pytest.raises(ChannelError):
        await env.channel.refund_query("ANOTHER001", "RF000001")
    with pytest.raises(ChannelError) as missing:
        await env.channel.refund_query("ORDREFUND1", "RF999999")
    assert missing.value.code == "RESOURCE_NOT_EXISTS"
    after = (await env.http.get(f"{SB}/wallet/payers/{RICH_OPENID}")).json()["balance_fen"]
    assert after - before == 1000
    still = await env.channel.query("ORDREFUND1")  # REFUND: it was paid
    assert still.state == TradeState.SUCCESS
    assert still.raw["trade_state"] == "REFUND"


async def test_refund_of_unknown_or_unpaid_order_is_refused(env: Env) -> None:
    def req(no: str) -> RefundRequest:
        return RefundRequest(order_id=no, refund_id="RFX0001", amount=Money(1),
                             order_amount=Money(100), reason="", notify_url=NOTIFY)

    with pytest.raises(ChannelError) as unknown:
        await env.channel.refund(req("NOSUCHORDER"))
    assert unknown.value.code == "RESOURCE_NOT_EXISTS"
    await env.channel.create(order("ORDUNPAID1", 100))
    with pytest.raises(ChannelError) as unpaid:
        await env.channel.refund(req("ORDUNPAID1"))
    assert unpaid.value.code == "INVALID_REQUEST"


# ------------------------------------------------------------------ payer codes

async def test_payer_code_payment_succeeds_at_once_and_sends_no_callback(env: Env) -> None:
    result = await pay_by_code(env, "ORDCODE001", RICH_OPENID, 880)
    assert result.state == TradeState.SUCCESS
    assert result.amount == Money(880)
    assert result.payer_id == RICH_OPENID
    assert result.raw["trade_type"] == "MICROPAY"
    assert (await env.channel.query("ORDCODE001")).state == TradeState.SUCCESS
    await asyncio.sleep(0.05)
    assert env.raw == []  # 付款码支付 has no asynchronous notification


async def test_password_payer_is_userpaying_until_confirmed(env: Env) -> None:
    result = await pay_by_code(env, "ORDPIN0001", PIN_OPENID, 2000)
    assert result.state == TradeState.PAYING
    assert result.raw["trade_state"] == "USERPAYING"
    assert (await env.channel.query("ORDPIN0001")).state == TradeState.PAYING
    confirmed = await env.wallet(f"/payers/{PIN_OPENID}/confirm", {"out_trade_no": "ORDPIN0001"})
    assert confirmed.json()["trade_state"] == "SUCCESS"
    paid = await env.channel.query("ORDPIN0001")
    assert paid.state == TradeState.SUCCESS
    assert paid.amount == Money(2000)


async def test_password_never_entered_becomes_payerror(env: Env) -> None:
    await pay_by_code(env, "ORDPIN0002", PIN_OPENID, 2000)
    clock.advance(timedelta(seconds=61))
    failed = await env.channel.query("ORDPIN0002")
    assert failed.state == TradeState.FAILED
    assert failed.error_code == "PAYERROR"


async def test_cancel_reverses_unpaid_and_paid_payer_code_payments(env: Env) -> None:
    await pay_by_code(env, "ORDPIN0003", PIN_OPENID, 2000)
    await env.channel.cancel("ORDPIN0003")
    revoked = await env.channel.query("ORDPIN0003")
    assert revoked.state == TradeState.CLOSED
    assert revoked.raw["trade_state"] == "REVOKED"
    nothing = await env.wallet(f"/payers/{PIN_OPENID}/confirm")
    assert nothing.status_code == 404

    before = (await env.http.get(f"{SB}/wallet/payers/{RICH_OPENID}")).json()["balance_fen"]
    await pay_by_code(env, "ORDCODE002", RICH_OPENID, 1500)
    await env.channel.cancel("ORDCODE002")
    after = (await env.http.get(f"{SB}/wallet/payers/{RICH_OPENID}")).json()["balance_fen"]
    assert after == before
    assert (await env.channel.query("ORDCODE002")).raw["trade_state"] == "REVOKED"
    await env.channel.cancel("NEVERSENT01")  # nothing reached WeChat: nothing to reverse


async def test_payer_code_refusals_fail_the_payment(env: Env) -> None:
    poor = await pay_by_code(env, "ORDCODE003", POOR_OPENID, 5000)
    assert poor.state == TradeState.FAILED
    assert poor.error_code == "NOTENOUGH"
    assert (await env.channel.query("ORDCODE003")).state == TradeState.FAILED
    bad = await env.channel.barcode_pay(BarcodePayRequest(
        order_id="ORDCODE004", amount=Money(100), subject="x", auth_code="134567890123456789"))
    assert bad.state == TradeState.FAILED
    assert bad.error_code == "AUTH_CODE_INVALID"
    code = (await env.wallet(f"/payers/{RICH_OPENID}/code")).json()["auth_code"]
    assert len(code) == 18
    assert code[:2] in {"10", "11", "12", "13", "14", "15"}
    clock.advance(timedelta(seconds=61))
    expired = await env.channel.barcode_pay(BarcodePayRequest(
        order_id="ORDCODE005", amount=Money(100), subject="x", auth_code=code))
    assert expired.state == TradeState.FAILED
    assert expired.error_code == "AUTHCODEEXPIRE"


# ------------------------------------------------------------------ refusals by the sandbox

async def test_sandbox_rejects_bad_signatures_with_wechats_error(env: Env) -> None:
    stranger = env.doc_client(private_key=crypto.generate_rsa_key(1024))
    resp = await stranger.native("ORDSIGN001", 100, NOTIFY)
    assert resp.status == 401
    assert resp.json()["code"] == "SIGN_ERROR"
    assert set(resp.json()) >= {"code", "message"}

    good = env.doc_client()
    url = SB + "/v3/pay/transactions/native"
    body = b'{"mchid":"1900000001"}'
    auth = good.authorization("POST", url, body.decode())
    tampered = await env.http.post(url, content=b'{"mchid":"1900000002"}',
                                   headers={"Authorization": auth})
    assert tampered.status_code == 401
    assert tampered.json()["code"] == "SIGN_ERROR"
    good.verify(tampered.headers, tampered.content)  # WeChat signs its refusals too

    missing = await env.http.post(url, content=body)
    assert missing.status_code == 401
    assert missing.json()["code"] == "SIGN_ERROR"

    clock.advance(timedelta(minutes=10))  # the sandbox's clock moves; the client's does not
    stale = await good.request("POST", "/v3/pay/transactions/native", {"mchid": "1900000001"},
                               verify=False)
    assert stale.status == 401
    assert "5分钟" in stale.json()["message"]
    clock.reset()

    wrong_mch = env.doc_client(mchid="1900000099")
    resp = await wrong_mch.native("ORDSIGN003", 100, NOTIFY)
    assert resp.status == 400
    assert resp.json()["code"] == "MCH_NOT_EXISTS"
    wrong_serial = env.doc_client(serial_no="0" * 40)
    assert (await wrong_serial.native("ORDSIGN004", 100, NOTIFY)).status == 401


async def test_bad_params_not_found_and_reused_numbers(env: Env) -> None:
    client = env.doc_client()
    resp = await client.request("POST", "/v3/pay/transactions/native", {
        "appid": "wxd678efh567hg6787", "mchid": "1900000001", "description": "x",
        "out_trade_no": "ORDPARAM01", "notify_url": NOTIFY, "amount": {"total": 1.5}})
    assert resp.status == 400
    assert resp.json()["code"] == "PARAM_ERROR"
    not_found = await env.channel.query("ORDNOTHERE")
    assert not_found.state == TradeState.NOT_FOUND
    assert not_found.error_code == "ORDER_NOT_EXIST"
    first = await env.channel.create(order("ORDREUSE01", 100))
    same = await env.channel.create(order("ORDREUSE01", 100))
    assert same.code_url == first.code_url
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(order("ORDREUSE01", 101))
    assert exc.value.code == "INVALID_REQUEST"
    with pytest.raises(ChannelError) as short:
        await env.channel.create(order("ORD1", 100))
    assert short.value.code == "PARAM_ERROR"


# ------------------------------------------------------------------ callbacks

async def test_tampered_stale_or_foreign_callbacks_are_rejected(env: Env) -> None:
    await paid_order(env, "ORDCB00001")
    await until(lambda: len(env.callbacks) == 1)
    headers, body = env.raw[0]
    assert env.callbacks[0].trade is not None
    doc = orjson.loads(body)
    assert doc["resource_type"] == "encrypt-resource"
    assert doc["event_type"] == "TRANSACTION.SUCCESS"
    assert doc["resource"]["original_type"] == "transaction"

    tampered = body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCEZZ")
    with pytest.raises(FulemaError, match="does not verify"):
        await env.channel.parse_callback(headers, tampered)
    with pytest.raises(FulemaError, match="Wechatpay-Serial"):
        await env.channel.parse_callback({**headers, "wechatpay-serial": "PUB_KEY_ID_OTHER"}, body)
    with pytest.raises(FulemaError, match="missing"):
        await env.channel.parse_callback({}, body)
    # correctly signed by the platform, but the ciphertext is not sealed with our APIv3 key
    doc["resource"]["ciphertext"] = base64.b64encode(b"\x00" * 40).decode()
    forged = orjson.dumps(doc)
    with pytest.raises(FulemaError, match="decryption"):
        await env.channel.parse_callback(signed_headers(env.sandbox.platform_key,
                                                        env.sandbox.config.platform_public_key_id,
                                                        forged), forged)
    clock.advance(timedelta(minutes=6))
    with pytest.raises(FulemaError, match="5 minutes"):
        await env.channel.parse_callback(headers, body)
    ack = env.channel.callback_ack(False)
    assert ack.status_code == 400
    assert orjson.loads(ack.body)["code"] == "FAIL"
    assert env.channel.callback_ack(True).status_code in (200, 204)


async def test_unacknowledged_callback_is_retried(env: Env) -> None:
    env.refuse_next = 1
    await paid_order(env, "ORDRETRY01")
    await until(lambda: len(env.callbacks) == 1)
    assert len(env.raw) == 2
    assert env.raw[0][0]["wechatpay-nonce"] != env.raw[1][0]["wechatpay-nonce"]


# ------------------------------------------------------------------ faults: never FAILED

async def test_5xx_garbled_slow_and_forged_answers_are_unavailable(env: Env, tmp_path: Path) -> None:
    await paid_order(env, "ORDFAULT01")
    await env.wallet("/faults", {"mode": "5xx"})
    with pytest.raises(ChannelUnavailable):
        await env.channel.query("ORDFAULT01")
    with pytest.raises(ChannelUnavailable):
        await pay_by_code(env, "ORDFAULT02", RICH_OPENID)
    await env.wallet("/faults", {"mode": "garbled"})
    with pytest.raises(ChannelUnavailable):
        await env.channel.query("ORDFAULT01")
    with pytest.raises(ChannelUnavailable):
        await env.channel.create(order("ORDFAULT03", 100))
    await env.wallet("/faults", {"mode": "slow", "delay_ms": 500})
    hasty = WechatChannel(env.settings, env.http, WechatSection(timeout_seconds=0.05))
    with pytest.raises(ChannelUnavailable):
        await hasty.query("ORDFAULT01")
    await env.wallet("/faults", {"mode": "none"})
    assert (await env.channel.query("ORDFAULT01")).state == TradeState.SUCCESS
    # answers signed by a key we do not trust are not acted on
    distrust = WechatChannel(env.settings, env.http,
                             WechatSection(platform_public_key_id="PUB_KEY_ID_SOMEONE_ELSE"))
    with pytest.raises(ChannelUnavailable, match="unverifiable"):
        await distrust.query("ORDFAULT01")
    other = tmp_path / "other.pem"
    other.write_text(crypto.public_key_pem(crypto.generate_rsa_key(1024)))
    wrong_key = WechatChannel(env.settings, env.http,
                              WechatSection(platform_public_key_path=other))
    with pytest.raises(ChannelUnavailable, match="unverifiable"):
        await wrong_key.query("ORDFAULT01")


def test_production_refuses_development_keys(tmp_path: Path) -> None:
    prod = Settings(environment="production", data_dir=tmp_path)
    with pytest.raises(RuntimeError, match="FULEMA_WECHAT_APIV3_KEY"):
        WechatChannel(prod, httpx.AsyncClient())
    with pytest.raises(RuntimeError, match="32 bytes"):
        WechatSection(apiv3_key="short").check(prod)


# ------------------------------------------------------------------ trade bill

async def test_statement_is_wechats_gzip_bill_built_from_the_sandboxs_records(env: Env) -> None:
    await paid_order(env, "ORDBILL001", 1000)
    await paid_order(env, "ORDBILL002", 250)
    await pay_by_code(env, "ORDBILL003", RICH_OPENID, 333)
    await env.channel.refund(RefundRequest(order_id="ORDBILL001", refund_id="RFBILL01",
                                           amount=Money(400), order_amount=Money(1000),
                                           reason="", notify_url=NOTIFY))
    today = clock.now().astimezone(CST).date()
    data = await env.channel.download_statement(today)
    assert data[:2] == b"\x1f\x8b"
    text = gzip.decompress(data).decode()
    assert text.startswith("交易时间,公众账号ID,商户号,")
    assert "\n`" in text  # every value carries the backtick prefix
    rows = parse_tradebill(data)
    pays = {r["商户订单号"]: r for r in rows if r["交易状态"] == "SUCCESS"}
    assert set(pays) == {"ORDBILL001", "ORDBILL002", "ORDBILL003"}
    assert pays["ORDBILL001"]["应结订单金额"] == "10.00"
    assert pays["ORDBILL003"]["交易类型"] == "MICROPAY"
    assert pays["ORDBILL002"]["手续费"] == "0.02"  # 0.6% of 2.50 = 0.015, half-up
    refunds = [r for r in rows if r["交易状态"] == "REFUND"]
    assert len(refunds) == 1
    assert refunds[0]["商户退款单号"] == "RFBILL01"
    assert refunds[0]["退款金额"] == "4.00"
    summary = parse_tradebill_summary(data)
    assert summary["总交易单数"] == "4"
    assert summary["应结订单总金额"] == "15.83"
    assert summary["退款总金额"] == "4.00"

    await env.wallet("/faults", {"statement_diff": {
        "drop": ["ORDBILL002"], "amount": {"ORDBILL003": 300},
        "extra": [{"out_trade_no": "ORDGHOST01", "amount_fen": 999}]}})
    diffed = {r["商户订单号"]: r for r in parse_tradebill(await env.channel.download_statement(today))
              if r["交易状态"] == "SUCCESS"}
    assert set(diffed) == {"ORDBILL001", "ORDBILL003", "ORDGHOST01"}
    assert diffed["ORDBILL003"]["应结订单金额"] == "3.00"
    assert diffed["ORDGHOST01"]["订单金额"] == "9.99"
    with pytest.raises(ChannelError) as future:
        await env.channel.download_statement(today + timedelta(days=1))
    assert future.value.code == "PARAM_ERROR"


def test_parse_tradebill_reads_by_header_name_not_position() -> None:
    bill = ("商户订单号,交易状态,应结订单金额,交易时间\r\n"
            "`A1,`SUCCESS,`1.00,`2024-01-01 10:00:00\r\n"
            "总交易单数,应结订单总金额\r\n`1,`1.00\r\n").encode()
    assert parse_tradebill(bill) == [{"商户订单号": "A1", "交易状态": "SUCCESS",
                                      "应结订单金额": "1.00", "交易时间": "2024-01-01 10:00:00"}]
    assert parse_tradebill(gzip.compress(bill)) == parse_tradebill(bill)
    with pytest.raises(ValueError, match="not a WeChat Pay trade bill"):
        parse_tradebill(b"a,b\n1,2\n")


async def test_tampered_bill_download_is_unavailable(env: Env) -> None:
    await paid_order(env, "ORDBILL009")
    env.sandbox.bills = _Corrupting()  # a file that changed between the answer and the download
    with pytest.raises(ChannelUnavailable, match="hash"):
        await env.channel.download_statement(clock.now().astimezone(CST).date())


class _Corrupting(dict[str, bytes]):
    def __setitem__(self, key: str, value: bytes) -> None:
        super().__setitem__(key, gzip.compress(gzip.decompress(value) + b"`extra\r\n"))


# ------------------------------------------------------------------ the documented client

async def test_documented_client_native_query_close_refund(env: Env) -> None:
    client = env.doc_client()
    created = await client.native("DOCORDER01", 1200, NOTIFY)
    assert created.status == 200
    assert created.json()["code_url"].startswith("weixin://")
    queried = await client.query("DOCORDER01")
    assert queried.status == 200
    assert queried.json()["trade_state"] == "NOTPAY"
    assert queried.json()["amount"]["total"] == 1200

    await env.wallet("/scan", {"code_url": created.json()["code_url"], "payer_id": RICH_OPENID})
    await until(lambda: len(env.raw) >= 1)
    headers, body = env.raw[0]
    client.verify(headers, body)  # the callback verifies with the documented rule too
    resource = client.decrypt(orjson.loads(body)["resource"])
    assert resource["out_trade_no"] == "DOCORDER01"
    assert resource["trade_state"] == "SUCCESS"
    assert resource["amount"]["total"] == 1200
    assert resource["payer"]["openid"] == RICH_OPENID

    refund = await client.refund("DOCORDER01", "DOCREFUND1", 200, 1200)
    assert refund.status == 200
    assert refund.json()["status"] in ("PROCESSING", "SUCCESS")
    assert refund.json()["amount"] == {**refund.json()["amount"], "refund": 200, "total": 1200}
    await until(lambda: env.sandbox.refunds["DOCREFUND1"].status == "SUCCESS")
    looked_up = await client.refund_query("DOCREFUND1")
    assert looked_up.status == 200
    assert looked_up.json()["status"] == "SUCCESS"

    await client.native("DOCORDER02", 100, NOTIFY)
    closed = await client.close("DOCORDER02")
    assert closed.status == 204
    assert closed.body == b""
    assert (await client.query("DOCORDER02")).json()["trade_state"] == "CLOSED"
    missing = await client.query("DOCNOTHERE")
    assert missing.status == 404
    assert missing.json()["code"] == "ORDER_NOT_EXIST"


async def test_documented_client_rejects_an_answer_it_cannot_verify(env: Env) -> None:
    client = env.doc_client(platform_public_key=crypto.generate_rsa_key(1024).public_key())
    with pytest.raises(SignatureError):
        await client.query("DOCNOTHERE")
    request = request_message("GET", "/x", "1", "n", b"")
    assert request == b"GET\n/x\n1\nn\n\n"


async def test_past_time_expire_refuses_payment_but_the_order_stays_notpay(env: Env) -> None:
    created = await env.channel.create(order("ORDEXPIRE1", 100))
    clock.advance(timedelta(minutes=16))
    late = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": RICH_OPENID})
    assert late.status_code == 400
    assert late.json()["code"] == "ORDER_CLOSED"
    assert (await env.channel.query("ORDEXPIRE1")).raw["trade_state"] == "NOTPAY"


# --- the sandbox as WeChat: paths, headers and fields clients rely on -------------------------

async def _signed_get(env: Env, signed_path: str, sent_to: str,
                      http: httpx.AsyncClient | None = None) -> httpx.Response:
    client = env.doc_client()
    return await (http or env.http).get(sent_to, headers={
        "Authorization": client.authorization("GET", "http://api.mch.weixin.qq.com" + signed_path,
                                              ""), "Accept": "application/json"})


@pytest.mark.parametrize("signed", ["/v3/pay/transactions/out-trade-no/NOSUCH01?mchid=1900000001",
                                    "/sandbox/wechat/v3/pay/transactions/out-trade-no/NOSUCH01"
                                    "?mchid=1900000001"])
async def test_under_the_mount_either_signed_path_verifies(env: Env, signed: str) -> None:
    """A client pointed at .../sandbox/wechat that signs the path WeChat's server sees
    (/v3/...) is as right as one signing the path it sent."""
    resp = await _signed_get(env, signed,
                             f"{SB}/v3/pay/transactions/out-trade-no/NOSUCH01?mchid=1900000001")
    assert resp.status_code == 404, resp.text
    assert resp.json()["code"] == "ORDER_NOT_EXIST"


async def test_a_signature_over_another_path_is_refused(env: Env) -> None:
    for signed in ("/v3/pay/transactions/out-trade-no/OTHER001?mchid=1900000001",
                   "/sandbox/v3/pay/transactions/out-trade-no/NOSUCH01?mchid=1900000001",
                   "/v3/pay/transactions/out-trade-no/NOSUCH01"):  # the query is signed too
        resp = await _signed_get(env, signed, f"{SB}/v3/pay/transactions/out-trade-no/NOSUCH01"
                                              "?mchid=1900000001")
        assert resp.status_code == 401, signed
        assert resp.json()["code"] == "SIGN_ERROR"


async def test_at_its_own_root_the_path_is_exactly_wechats(env: Env) -> None:
    from fulema.sandboxes import standalone_app

    root = standalone_app("wechat", env.settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=root),
                                 base_url="http://sandbox") as http:
        path = "/v3/pay/transactions/out-trade-no/NOSUCH01?mchid=1900000001"
        ok = await _signed_get(env, path, path, http)
        assert ok.status_code == 404, ok.text
        assert ok.json()["code"] == "ORDER_NOT_EXIST"
        prefixed = await _signed_get(env, "/sandbox/wechat" + path, path, http)
        assert prefixed.status_code == 401
        # the same sandbox also answers under /sandbox/wechat, where its links lead
        mounted = await _signed_get(env, path, "/sandbox/wechat" + path, http)
        assert mounted.status_code == 404


async def test_every_signed_answer_and_callback_names_the_signature_type(env: Env) -> None:
    client = env.doc_client()
    created = await client.native("SIGTYPE001", 300, NOTIFY)
    refused = await client.query("NOSUCHORDER")
    closed = await client.close("SIGTYPE001")
    for answer in (created, refused, closed):
        assert answer.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    await client.native("SIGTYPE002", 300, NOTIFY)
    await env.wallet("/scan", {"out_trade_no": "SIGTYPE002", "payer_id": RICH_OPENID})
    await until(lambda: len(env.raw) >= 1)
    headers = {k.lower(): v for k, v in env.raw[0][0].items()}
    assert headers["wechatpay-signature-type"] == "WECHATPAY2-SHA256-RSA2048"


async def test_a_processing_refund_has_no_success_time(env: Env) -> None:
    client = env.doc_client()
    await paid_order(env, "NOSUCCESS1", 500)
    accepted = await client.refund("NOSUCCESS1", "NOSUCCESSR1", 100, 500)
    assert accepted.json()["status"] == "PROCESSING"
    assert "success_time" not in accepted.json()  # omitted, not null
    await until(lambda: env.sandbox.refunds["NOSUCCESSR1"].status == "SUCCESS")
    done = (await client.refund_query("NOSUCCESSR1")).json()
    assert done["status"] == "SUCCESS"
    assert done["success_time"].endswith("+08:00")


async def test_platform_certificate_download(env: Env) -> None:
    """下载平台证书: sealed with the APIv3 key; its public key is the one answers verify with."""
    from cryptography import x509
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    client = env.doc_client()
    resp = await client.request("GET", "/v3/certificates")
    assert resp.status == 200
    client.verify(resp.headers, resp.body)
    (entry,) = resp.json()["data"]
    sealed = entry["encrypt_certificate"]
    assert sealed["algorithm"] == "AEAD_AES_256_GCM"
    assert sealed["associated_data"] == "certificate"
    pem = AESGCM(client.apiv3_key).decrypt(sealed["nonce"].encode(),
                                           base64.b64decode(sealed["ciphertext"]), b"certificate")
    cert = x509.load_pem_x509_certificate(pem)
    assert f"{cert.serial_number:X}" == entry["serial_no"]
    assert cert.public_key().public_numbers() == client.platform_public_key.public_numbers()
