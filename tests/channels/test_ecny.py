"""e-CNY adapter against the e-CNY sandbox over HTTP (SM2 signatures, SM4 envelopes, limits)."""

from __future__ import annotations

import asyncio
import csv
import io
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
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
    RefundResult,
    RefundState,
    TradeResult,
    TradeState,
)
from fulema.channels.ecny.adapter import (
    ECNY_TZ,
    TRADE_STATES,
    EcnyChannel,
    aad_for,
    build_channel,
)
from fulema.channels.ecny.security import (
    ReplayGuard,
    key_serial,
    request_string,
    seal,
    signer_from,
    unseal,
)
from fulema.core.channel_settings import EcnySection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.gm import sm2_public_key_from_private, sm2_verify
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.sandbox.ecny.server import EcnySandbox
from fulema.sandbox.ecny.wallet import WALLET_LEVELS, Wallet
from fulema.sandboxes import sandbox_app as compose_sandbox

SB = "http://testserver/sandbox/ecny"
NOTIFY = "http://testserver/callbacks/ecny"
YUAN = 100


@dataclass
class Env:
    channel: EcnyChannel
    http: httpx.AsyncClient
    sandbox: EcnySandbox
    settings: Settings
    callbacks: list[CallbackResult] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    async def wallet(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(f"{SB}/wallet{path}", json=body or {})

    async def payer(self, pid: str) -> dict[str, Any]:
        data: dict[str, Any] = (await self.http.get(f"{SB}/wallet/payers/{pid}")).json()
        return data


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path)
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    sandbox_app = compose_sandbox("ecny", settings, http)
    app.mount("/sandbox/ecny", sandbox_app)
    e = Env(build_channel(settings, http), http, sandbox_app.state.sandbox, settings)

    @app.post("/callbacks/ecny")
    async def callback(request: Request) -> Response:
        try:
            e.callbacks.append(await e.channel.parse_callback(dict(request.headers),
                                                              await request.body()))
            accepted = True
        except FulemaError as exc:
            e.rejected.append(exc.message)
            accepted = False
        ack = e.channel.callback_ack(accepted)
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


def qr(no: str, fen: int = 1234, way: WayCode = WayCode.QR_DYNAMIC) -> CreatePaymentRequest:
    return CreatePaymentRequest(order_id=no, amount=Money(fen), subject="Dumplings", way_code=way,
                                notify_url=NOTIFY, expire_at=clock.now() + timedelta(minutes=15))


async def pay_code(e: Env, no: str, payer: str, fen: int) -> TradeResult:
    code = (await e.wallet(f"/payers/{payer}/code")).json()["auth_code"]
    return await e.channel.barcode_pay(BarcodePayRequest(no, Money(fen), "Tea", code))


async def settled(e: Env, order_id: str, refund_id: str) -> RefundResult:
    for _ in range(100):
        result = await e.channel.refund_query(order_id, refund_id)
        if result.state != RefundState.PROCESSING:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("refund never settled")


def refund_req(order_id: str, refund_id: str, fen: int, total: int) -> RefundRequest:
    return RefundRequest(order_id, refund_id, Money(fen), Money(total), "returned", NOTIFY)


# ------------------------------------------------------------------ crypto known answers

def test_request_signature_known_answer() -> None:
    # GM/T 0003.5 / GB/T 32918 sample key pair on the recommended curve (a public vector);
    # the signature is one recorded SM2 signature over our documented request string.
    private = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"
    public = sm2_public_key_from_private(private)
    assert public == ("09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
                      "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13")
    signed = request_string("POST", "/v1/orders", "1700000000", "c0ffee",
                            b'{"out_trade_no":"ORD000001","amount_fen":100}')
    assert signed == (b'POST\n/v1/orders\n1700000000\nc0ffee\n'
                      b'{"out_trade_no":"ORD000001","amount_fen":100}\n')
    recorded = ("285d110217e386ae22dab8c22a7a9678ae2b950228059cf4f736a06a6bf62073"
                "b9074a04b34a2550362bcf6bed3bec2d127a0814858499615684a7d5ddd70337")
    assert sm2_verify(public, signed, recorded)
    assert not sm2_verify(public, signed.replace(b"100", b"101"), recorded)
    assert key_serial(public) == "3d92bed6d685f38b"
    fresh = signer_from(private).sign_request("POST", "/v1/orders", b"{}")
    assert fresh["X-Ecny-Serial"] == "3d92bed6d685f38b"


@pytest.mark.parametrize("cipher", ["SM4_GCM", "SM4_CBC"])
def test_envelope_round_trip_and_refusals(cipher: str) -> None:
    key = bytes(range(16))
    env = seal(key, "K1", cipher, {"wallet_id": "0099123456789012", "payer_name": "张*"},
               "M1|ORD1")
    assert "0099123456789012" not in orjson.dumps(env).decode()
    assert unseal(key, "K1", env, "M1|ORD1")["payer_name"] == "张*"
    with pytest.raises(ValueError, match=r"another order|authentication"):
        unseal(key, "K1", env, "M1|ORD2")  # moved to another order
    with pytest.raises(ValueError, match="not ours"):
        unseal(key, "K2", env, "M1|ORD1")
    with pytest.raises(ValueError, match=r"SM4|JSON"):
        unseal(bytes(16), "K1", env, "M1|ORD1")  # wrong key
    with pytest.raises(ValueError, match="base64"):
        unseal(key, "K1", {**env, "data": "!!"}, "M1|ORD1")
    with pytest.raises(ValueError, match="not an SM4 envelope"):
        unseal(key, "K1", "not an envelope", "M1|ORD1")


def test_dev_keys_persist_with_owner_only_permissions(env: Env, tmp_path: Path) -> None:
    for name in ("ecny_merchant.key", "ecny_platform.key", "ecny_sm4.key"):
        mode = stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode)
        assert mode == 0o600, name
    again = EcnyChannel(env.settings, env.http)
    assert again.keys == env.channel.keys  # a second process of this install agrees


def test_wallet_levels_and_sweep() -> None:
    assert WALLET_LEVELS[4].balance == 10_000 * YUAN
    assert WALLET_LEVELS[4].per_payment == 2_000 * YUAN
    assert WALLET_LEVELS[4].daily == 5_000 * YUAN
    w = Wallet("p", "0099000000000001", 4, 9_500 * YUAN, False, None)
    w.credit(1_000 * YUAN)  # a refund above the balance limit goes to the linked account
    assert (w.balance_fen, w.swept_fen) == (10_000 * YUAN, 500 * YUAN)


def test_every_state_is_mapped_and_strangers_are_unknown(env: Env) -> None:
    assert set(TRADE_STATES) == {"WAIT_PAY", "USER_PAYING", "SUCCESS", "REFUND_PART",
                                 "REFUND_FULL", "FAILED", "CLOSED", "REVOKED"}
    assert env.channel._trade({"trade_status": "FROZEN"}).state == TradeState.UNKNOWN


# ------------------------------------------------------------------ QR end to end

@pytest.mark.parametrize("way", [WayCode.QR_DYNAMIC, WayCode.QR_STATIC])
async def test_qr_end_to_end(env: Env, way: WayCode) -> None:
    no = f"ORD-{way.value}"
    created = await env.channel.create(qr(no, 1234, way))
    assert created.state == TradeState.PAYING
    assert created.code_url
    assert created.code_url.startswith(f"{SB}/qr/EC")
    page = await env.http.get(created.code_url)
    assert page.status_code == 200
    assert "12.34" in page.text
    paid = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    await until(lambda: bool(env.callbacks))
    cb = env.callbacks[0]
    assert cb.kind == CallbackKind.PAYMENT
    assert cb.order_id == no
    assert cb.trade is not None
    assert cb.trade.state == TradeState.SUCCESS
    assert cb.trade.amount == Money(1234)
    result = await env.channel.query(no)
    assert result.state == TradeState.SUCCESS
    assert result.amount == Money(1234)
    wallet_id = (await env.payer("payer_rich"))["wallet_id"]
    assert result.payer_id == f"{wallet_id[:4]}********{wallet_id[-4:]}"  # decrypted, masked
    assert wallet_id not in orjson.dumps(result.raw).decode()  # never in clear on the wire
    assert result.raw["payer"]["wallet_level"] == 1
    assert (await env.payer("payer_rich"))["balance_fen"] == 100_000_000 - 1234


async def test_unsupported_way_and_bad_input(env: Env) -> None:
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(qr("ORD-H5", way=WayCode.H5))
    assert exc.value.code == "WAY_CODE_UNSUPPORTED"
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(qr("ORD-ZERO", fen=0))
    assert exc.value.code == "PARAM_INVALID"
    await env.channel.create(qr("ORD-SAME", 500))
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(qr("ORD-SAME", 501))
    assert exc.value.code == "ORDER_EXISTS"
    assert (await env.channel.query("ORD-NONE")).state == TradeState.NOT_FOUND


async def test_close_and_expiry(env: Env) -> None:
    created = await env.channel.create(qr("ORD-CLOSE"))
    await env.channel.close("ORD-CLOSE")
    await env.channel.close("ORD-CLOSE")
    assert (await env.channel.query("ORD-CLOSE")).state == TradeState.CLOSED
    scan = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": "payer_rich"})
    assert scan.json()["code"] == "ORDER_CLOSED"
    paid = await env.channel.create(qr("ORD-PAIDCLOSE"))
    await env.wallet("/scan", {"code_url": paid.code_url})
    with pytest.raises(ChannelError) as exc:
        await env.channel.close("ORD-PAIDCLOSE")
    assert exc.value.code == "ORDER_PAID"
    await env.channel.create(qr("ORD-EXPIRE"))
    clock.advance(timedelta(minutes=16))
    expired = await env.channel.query("ORD-EXPIRE")
    assert expired.state == TradeState.CLOSED
    assert expired.error_code == "ORDER_EXPIRED"


# ------------------------------------------------------------------ wallet limits

async def test_level4_per_payment_and_daily_limits(env: Env) -> None:
    a = await pay_code(env, "ORD-LIM-A", "payer_anon", 2_000 * YUAN)
    assert a.state == TradeState.SUCCESS
    over = await pay_code(env, "ORD-LIM-X", "payer_anon", 2_000 * YUAN + 1)
    assert over.state == TradeState.FAILED
    assert over.error_code == "WALLET_SINGLE_LIMIT_EXCEEDED"
    b = await pay_code(env, "ORD-LIM-B", "payer_anon", 2_000 * YUAN)
    assert b.state == TradeState.SUCCESS
    c = await pay_code(env, "ORD-LIM-C", "payer_anon", 1_000 * YUAN + 1)
    assert c.state == TradeState.FAILED
    assert c.error_code == "WALLET_DAILY_LIMIT_EXCEEDED"

    # a refund returns the money but not the day's headroom (documented choice)
    await env.channel.refund(refund_req("ORD-LIM-A", "REF-LIM-A", 2_000 * YUAN, 2_000 * YUAN))
    assert (await settled(env, "ORD-LIM-A", "REF-LIM-A")).state == RefundState.SUCCESS
    anon = await env.payer("payer_anon")
    assert anon["balance_fen"] == 3_000 * YUAN
    assert anon["paid_today_fen"] == 4_000 * YUAN
    d = await pay_code(env, "ORD-LIM-D", "payer_anon", 1_000 * YUAN + 1)
    assert d.error_code == "WALLET_DAILY_LIMIT_EXCEEDED"

    # a reversal voids the payment, so its headroom comes back
    await env.channel.cancel("ORD-LIM-B")
    assert (await env.payer("payer_anon"))["paid_today_fen"] == 2_000 * YUAN
    e = await pay_code(env, "ORD-LIM-E", "payer_anon", 1_000 * YUAN + 1)
    assert e.state == TradeState.SUCCESS

    # the next day (CST) starts afresh
    clock.advance(timedelta(days=1))
    assert (await env.payer("payer_anon"))["paid_today_fen"] == 0


async def test_qr_scan_over_limit_keeps_the_order_payable(env: Env) -> None:
    created = await env.channel.create(qr("ORD-QRLIM", 2_500 * YUAN))
    scan = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": "payer_anon"})
    assert scan.status_code == 409
    assert scan.json()["code"] == "WALLET_SINGLE_LIMIT_EXCEEDED"
    still = await env.channel.query("ORD-QRLIM")
    assert still.state == TradeState.PAYING
    assert still.error_code == "WALLET_SINGLE_LIMIT_EXCEEDED"
    ok = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": "payer_rich"})
    assert ok.status_code == 200
    assert (await env.channel.query("ORD-QRLIM")).state == TradeState.SUCCESS


async def test_wallet_creation_respects_the_level(env: Env) -> None:
    too_rich = await env.wallet("/payers", {"balance_fen": 10_000 * YUAN + 1, "wallet_level": 4})
    assert too_rich.status_code == 400
    assert too_rich.json()["code"] == "WALLET_BALANCE_LIMIT"
    assert (await env.wallet("/payers", {"wallet_level": 5})).status_code == 400
    assert (await env.wallet("/payers", {"payer_id": "payer_rich"})).status_code == 409
    made = await env.wallet("/payers", {"payer_id": "li", "balance_fen": 10_000 * YUAN,
                                        "wallet_level": 4})
    assert made.status_code == 200
    assert made.json()["payer_name"] is None  # level 4 is anonymous
    assert made.json()["limits"]["daily_fen"] == 5_000 * YUAN
    assert len(made.json()["wallet_id"]) == 16


# ------------------------------------------------------------------ refunds

async def test_partial_repeated_refunds_and_refund_query(env: Env) -> None:
    created = await env.channel.create(qr("ORD-REFUND", 1000))
    await env.wallet("/scan", {"code_url": created.code_url, "payer_id": "payer_rich"})
    first = await env.channel.refund(refund_req("ORD-REFUND", "REF-0001", 300, 1000))
    assert first.state == RefundState.PROCESSING
    again = await env.channel.refund(refund_req("ORD-REFUND", "REF-0001", 300, 1000))
    assert again.channel_refund_no == first.channel_refund_no
    second = await env.channel.refund(refund_req("ORD-REFUND", "REF-0002", 700, 1000))
    assert second.channel_refund_no != first.channel_refund_no
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund(refund_req("ORD-REFUND", "REF-0003", 1, 1000))
    assert exc.value.code == "REFUND_AMOUNT_EXCEEDED"
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund(refund_req("ORD-REFUND", "REF-0001", 301, 1000))
    assert exc.value.code == "REFUND_EXISTS"
    assert (await settled(env, "ORD-REFUND", "REF-0001")).state == RefundState.SUCCESS
    assert (await settled(env, "ORD-REFUND", "REF-0002")).state == RefundState.SUCCESS
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund_query("ORD-REFUND", "REF-NONE")
    assert exc.value.code == "REFUND_NOT_FOUND"
    await until(lambda: sum(c.kind == CallbackKind.REFUND for c in env.callbacks) == 2)
    assert {c.refund_id for c in env.callbacks if c.kind == CallbackKind.REFUND} == {
        "REF-0001", "REF-0002"}
    result = await env.channel.query("ORD-REFUND")
    assert result.state == TradeState.SUCCESS
    assert result.raw["trade_status"] == "REFUND_FULL"
    assert (await env.payer("payer_rich"))["balance_fen"] == 100_000_000


async def test_refund_to_a_closed_wallet_fails_and_frees_the_amount(env: Env) -> None:
    await pay_code(env, "ORD-GONE", "payer_poor", 100)
    await env.wallet("/payers/payer_poor/close")
    await env.channel.refund(refund_req("ORD-GONE", "REF-GONE", 100, 100))
    failed = await settled(env, "ORD-GONE", "REF-GONE")
    assert failed.state == RefundState.FAILED
    assert failed.error_code == "WALLET_CLOSED"
    assert (await env.channel.query("ORD-GONE")).raw["refunded_fen"] == 0
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund(refund_req("ORD-NOTPAID", "REF-NP", 1, 1))
    assert exc.value.code == "ORDER_NOT_FOUND"


# ------------------------------------------------------------------ payer code

async def test_payer_code_format_single_use_and_expiry(env: Env) -> None:
    code = (await env.wallet("/payers/payer_rich/code")).json()["auth_code"]
    assert len(code) == 19
    assert code.startswith("01")
    assert code.isdigit()
    paid = await env.channel.barcode_pay(BarcodePayRequest("ORD-CODE1", Money(500), "Tea", code))
    assert paid.state == TradeState.SUCCESS
    assert paid.amount == Money(500)
    reused = await env.channel.barcode_pay(BarcodePayRequest("ORD-CODE2", Money(500), "Tea", code))
    assert reused.state == TradeState.FAILED
    assert reused.error_code == "PAYER_CODE_INVALID"
    late = (await env.wallet("/payers/payer_rich/code")).json()["auth_code"]
    clock.advance(timedelta(seconds=61))
    old = await env.channel.barcode_pay(BarcodePayRequest("ORD-CODE3", Money(500), "Tea", late))
    assert old.error_code == "PAYER_CODE_EXPIRED"


async def test_password_payer_is_user_paying_until_confirm(env: Env) -> None:
    waiting = await pay_code(env, "ORD-PIN", "payer_pin", 800)
    assert waiting.state == TradeState.PAYING
    assert waiting.raw["trade_status"] == "USER_PAYING"
    confirmed = await env.wallet("/payers/payer_pin/confirm")
    assert confirmed.json()["trade_status"] == "SUCCESS"
    assert (await env.channel.query("ORD-PIN")).state == TradeState.SUCCESS
    await until(lambda: any(c.order_id == "ORD-PIN" for c in env.callbacks))

    await pay_code(env, "ORD-PINLATE", "payer_pin", 800)
    clock.advance(timedelta(seconds=61))
    late = await env.channel.query("ORD-PINLATE")
    assert late.state == TradeState.FAILED
    assert late.error_code == "PAYER_CONFIRM_TIMEOUT"


async def test_cancel_user_paying_and_paid_and_unknown(env: Env) -> None:
    await pay_code(env, "ORD-REV1", "payer_pin", 800)
    await env.channel.cancel("ORD-REV1")
    assert (await env.channel.query("ORD-REV1")).state == TradeState.CLOSED
    nothing = await env.wallet("/payers/payer_pin/confirm", {"out_trade_no": "ORD-REV1"})
    assert nothing.status_code == 404

    await pay_code(env, "ORD-REV2", "payer_rich", 2500)
    await env.channel.cancel("ORD-REV2")
    reversed_ = await env.channel.query("ORD-REV2")
    assert reversed_.state == TradeState.CLOSED
    assert reversed_.raw["trade_status"] == "REVOKED"
    assert (await env.payer("payer_rich"))["balance_fen"] == 100_000_000

    await env.channel.cancel("ORD-REV3")  # never arrived: a late payment is refused
    with pytest.raises(ChannelError) as exc:
        await pay_code(env, "ORD-REV3", "payer_rich", 1)
    assert exc.value.code == "ORDER_REVOKED"


async def test_insufficient_balance(env: Env) -> None:
    result = await pay_code(env, "ORD-POOR", "payer_poor", 101)
    assert result.state == TradeState.FAILED
    assert result.error_code == "WALLET_BALANCE_NOT_ENOUGH"


# ------------------------------------------------------------------ tampering

async def test_tampered_requests_are_refused_with_signed_errors(env: Env) -> None:
    body = orjson.dumps({"merchant_id": env.channel.ecny.merchant_id, "out_trade_no": "ORD-T1",
                         "amount_fen": 100, "way_code": "QR_DYNAMIC",
                         "payee": env.channel._payee("ORD-T1")})
    headers = {**env.channel.signer.sign_request("POST", "/v1/orders", body),
               "X-Ecny-Merchant-Id": env.channel.ecny.merchant_id}
    tampered = await env.http.post(f"{SB}/v1/orders", content=body.replace(b"100", b"1"),
                                   headers=headers)
    assert tampered.status_code == 401
    assert tampered.json()["code"] == "SIGNATURE_INVALID"
    assert ReplayGuard().check(env.channel.keys.platform_public, dict(tampered.headers),
                               tampered.content, remember=False) is None  # signed refusal
    other_path = await env.http.post(f"{SB}/v1/orders/micropay", content=body, headers=headers)
    assert other_path.json()["code"] == "SIGNATURE_INVALID"  # the path is signed too
    assert (await env.http.post(f"{SB}/v1/orders", content=body,
                                headers=headers)).status_code == 200
    replay = await env.http.post(f"{SB}/v1/orders", content=body, headers=headers)
    assert replay.json()["code"] == "NONCE_REPLAYED"
    bare = await env.http.post(f"{SB}/v1/orders", content=body)
    assert bare.json()["code"] == "SIGNATURE_MISSING"
    stranger = signer_from("11" * 32).sign_request("POST", "/v1/orders", body)
    forged = await env.http.post(f"{SB}/v1/orders", content=body, headers={
        **stranger, "X-Ecny-Merchant-Id": env.channel.ecny.merchant_id})
    assert forged.json()["code"] == "KEY_SERIAL_UNKNOWN"


async def test_payee_envelope_is_checked(env: Env) -> None:
    wrong_key = EcnyChannel(env.settings, env.http,
                            EcnySection(data_key_hex="00" * 16))
    with pytest.raises(ChannelError) as exc:
        await wrong_key.create(qr("ORD-WRONGKEY"))
    assert exc.value.code == "DECRYPT_FAILED"
    wrong_wallet = EcnyChannel(env.settings, env.http,
                               EcnySection(merchant_wallet_id="0099999999999999"))
    with pytest.raises(ChannelError) as exc:
        await wrong_wallet.create(qr("ORD-WRONGWALLET"))
    assert exc.value.code == "PAYEE_WALLET_INVALID"
    cbc = EcnyChannel(env.settings, env.http, EcnySection(field_cipher="SM4_CBC"))
    assert (await cbc.create(qr("ORD-CBC"))).state == TradeState.PAYING


async def test_tampered_forged_or_replayed_callbacks_are_rejected(env: Env) -> None:
    await pay_code(env, "ORD-CB", "payer_rich", 100)
    data = (await env.http.get(f"{SB}/wallet/orders/ORD-CB")).json()
    data.pop("payer_id")
    data.pop("refunds")
    body = orjson.dumps({"event_id": "E1", "event_type": "TRADE.SUCCESS", "data": data})
    good_headers = env.sandbox.signer.sign_message(body)
    good = await env.channel.parse_callback(good_headers, body)
    assert good.trade is not None
    assert good.trade.amount == Money(100)
    with pytest.raises(FulemaError) as exc:
        await env.channel.parse_callback(good_headers, body)  # replayed nonce
    assert exc.value.code == ErrorCode.CALLBACK_INVALID
    with pytest.raises(FulemaError):
        await env.channel.parse_callback(env.sandbox.signer.sign_message(body),
                                         body.replace(b'"amount_fen":100', b'"amount_fen":999'))
    with pytest.raises(FulemaError):  # signed by someone else
        await env.channel.parse_callback(signer_from("22" * 32).sign_message(body), body)
    # correctly signed, but the payer envelope was lifted from another order
    moved = {**data, "out_trade_no": "ORD-OTHER"}
    moved_body = orjson.dumps({"event_type": "TRADE.SUCCESS", "data": moved})
    with pytest.raises(FulemaError):
        await env.channel.parse_callback(env.sandbox.signer.sign_message(moved_body), moved_body)
    junk = b"{not json"
    with pytest.raises(FulemaError):
        await env.channel.parse_callback(env.sandbox.signer.sign_message(junk), junk)
    assert env.channel.callback_ack(False).status_code == 400
    assert env.channel.callback_ack(True).body == b'{"code":"SUCCESS"}'
    assert unseal(env.channel.keys.data_key, "K1", data["payer"]["encrypted"],
                  aad_for(env.channel.ecny.merchant_id, "ORD-CB"))["wallet_level"] == 1


# ------------------------------------------------------------------ faults

async def test_5xx_garbled_and_slow_are_unknown_never_failed(env: Env) -> None:
    await env.wallet("/faults", {"mode": "5xx"})
    with pytest.raises(ChannelUnavailable):
        await env.channel.query("ORD-X")
    await env.wallet("/faults", {"mode": "garbled"})
    with pytest.raises(ChannelUnavailable):
        await pay_code(env, "ORD-GARBLED", "payer_rich", 700)
    await env.wallet("/faults", {"mode": "none"})
    found = await env.channel.query("ORD-GARBLED")  # the hidden payment is found by query
    assert found.state == TradeState.SUCCESS
    assert found.amount == Money(700)
    quick = EcnyChannel(env.settings, env.http, EcnySection(timeout_seconds=0.1))
    await env.wallet("/faults", {"mode": "slow", "delay_ms": 400})
    with pytest.raises(ChannelUnavailable):
        await quick.query("ORD-SLOW")
    assert (await env.wallet("/faults", {"mode": "bogus"})).status_code == 400


# ------------------------------------------------------------------ bill file

async def test_bill_file_from_sandbox_records_with_injected_differences(env: Env) -> None:
    a = await env.channel.create(qr("ORD-BILL-A", 1000))
    await env.wallet("/scan", {"code_url": a.code_url, "payer_id": "payer_anon"})
    await pay_code(env, "ORD-BILL-B", "payer_rich", 250)
    await pay_code(env, "ORD-BILL-C", "payer_rich", 90)
    await env.channel.cancel("ORD-BILL-C")
    await env.channel.refund(refund_req("ORD-BILL-A", "REF-BILL-1", 400, 1000))
    await settled(env, "ORD-BILL-A", "REF-BILL-1")
    today = clock.now().astimezone(ECNY_TZ).date()

    rows = list(csv.DictReader(io.StringIO((await env.channel.download_statement(today))
                                           .decode())))
    got = sorted((r["out_trade_no"], r["record_type"], r["amount_fen"], r["net_fen"])
                 for r in rows)
    assert got == [("ORD-BILL-A", "PAY", "1000", "1000"), ("ORD-BILL-A", "REFUND", "400", "-400"),
                   ("ORD-BILL-B", "PAY", "250", "250"), ("ORD-BILL-C", "PAY", "90", "90"),
                   ("ORD-BILL-C", "REVERSE", "90", "-90")]
    anon_row = next(r for r in rows if r["out_trade_no"] == "ORD-BILL-A")
    assert anon_row["wallet_level"] == "4"
    assert "********" in anon_row["wallet_masked"]
    assert all(r["fee_fen"] == "0" for r in rows)
    empty = await env.channel.download_statement(today - timedelta(days=1))
    assert empty.decode().splitlines() == [",".join(
        ["bill_date", "trade_time", "merchant_id", "record_type", "out_trade_no", "trade_no",
         "out_refund_no", "refund_no", "way_code", "amount_fen", "fee_fen", "net_fen",
         "wallet_masked", "wallet_level", "status", "sub_merchant_id"])]

    await env.wallet("/faults", {"statement_diff": {
        "drop": ["ORD-BILL-B"], "amount": {"REF-BILL-1": 401},
        "extra": [{"out_trade_no": "ORD-GHOST", "amount_fen": 99}]}})
    rows = list(csv.DictReader(io.StringIO((await env.channel.download_statement(today))
                                           .decode())))
    keyed = {(r["out_refund_no"] or r["out_trade_no"]): r for r in rows}
    assert "ORD-BILL-B" not in keyed
    assert keyed["REF-BILL-1"]["amount_fen"] == "401"
    assert keyed["ORD-GHOST"]["amount_fen"] == "99"
