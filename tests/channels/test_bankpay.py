"""bankpay adapter against the bankpay sandbox over HTTP (no mocks of our own code)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
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

from fulema.channels.bankpay.adapter import (
    BANK_TZ,
    TRADE_STATES,
    BankpayChannel,
    build_channel,
    sign,
    signed_headers,
    signing_string,
    trade_result,
)
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
from fulema.core.channel_settings import BankpaySection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.sandbox.bankpay.server import BankpaySandbox
from fulema.sandboxes import sandbox_app as compose_sandbox

SB = "http://testserver/sandbox/bankpay"


@dataclass
class Env:
    channel: BankpayChannel
    http: httpx.AsyncClient
    sandbox: BankpaySandbox
    settings: Settings
    callbacks: list[CallbackResult] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    async def wallet(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(f"{SB}/wallet{path}", json=body or {})


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path)
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    sandbox_app = compose_sandbox("bankpay", settings, http)
    app.mount("/sandbox/bankpay", sandbox_app)
    e = Env(build_channel(settings, http), http, sandbox_app.state.sandbox, settings)

    @app.post("/callbacks/bankpay")
    async def callback(request: Request) -> Response:
        try:
            e.callbacks.append(await e.channel.parse_callback(dict(request.headers),
                                                              await request.body()))
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


def order(no: str, fen: int = 1234, way: WayCode = WayCode.QR_DYNAMIC) -> CreatePaymentRequest:
    return CreatePaymentRequest(order_id=no, amount=Money(fen), subject="Noodles", way_code=way,
                                notify_url="http://testserver/callbacks/bankpay",
                                expire_at=clock.now() + timedelta(minutes=15))


async def pay_by_code(e: Env, no: str, payer: str, fen: int = 1000) -> Any:
    code = (await e.wallet(f"/payers/{payer}/code")).json()["auth_code"]
    return await e.channel.barcode_pay(BarcodePayRequest(order_id=no, amount=Money(fen),
                                                         subject="Tea", auth_code=code))


# ------------------------------------------------------------------ signing

def test_signing_string_known_answer() -> None:
    # The worked example in docs/channels/bankpay.md, computed independently with hmac.
    body = b'{"out_trade_no":"ORD000001","amount_fen":100}'
    expected = hmac.new(b"example-secret",
                        b'1700000000\nc0ffee\n{"out_trade_no":"ORD000001","amount_fen":100}\n',
                        hashlib.sha256).hexdigest()
    assert signing_string("1700000000", "c0ffee", body).endswith(b"}\n")
    assert sign("example-secret", "1700000000", "c0ffee", body) == expected
    assert expected == "e0961da41e0fb5b9dc87386304ca1e8368840b896d1bd6091e0742154b21e831"


def test_every_bank_state_is_mapped_and_strangers_are_unknown() -> None:
    assert set(TRADE_STATES) == {"PAYING", "SUCCESS", "REFUND", "FAILED", "CLOSED", "REVOKED"}
    assert trade_result({"trade_state": "SETTLING"}).state == TradeState.UNKNOWN
    assert trade_result({"trade_state": "REFUND", "amount_fen": 5}).amount == Money(5)


# ------------------------------------------------------------------ way codes end to end

@pytest.mark.parametrize("way", [WayCode.QR_DYNAMIC, WayCode.QR_STATIC, WayCode.H5])
async def test_way_code_end_to_end(env: Env, way: WayCode) -> None:
    created = await env.channel.create(order(f"ORD-{way.value}", 1234, way))
    assert created.state == TradeState.PAYING
    assert created.raw["same_day_settlement"] is True
    link = created.h5_url if way == WayCode.H5 else created.code_url
    assert link
    assert link.startswith(f"{SB}/pay/BP")
    paid = await env.wallet("/scan", {"h5_url" if way == WayCode.H5 else "code_url": link,
                                      "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    await until(lambda: bool(env.callbacks))
    cb = env.callbacks[0]
    assert cb.kind == CallbackKind.PAYMENT
    assert cb.order_id == f"ORD-{way.value}"
    assert cb.trade is not None
    assert cb.trade.state == TradeState.SUCCESS
    assert cb.trade.amount == Money(1234)
    result = await env.channel.query(f"ORD-{way.value}")
    assert result.state == TradeState.SUCCESS
    assert result.amount == Money(1234)
    assert result.channel_trade_no == created.channel_trade_no
    assert result.raw["same_day_settlement"] is True
    assert result.raw["fee_fen"] == 0
    assert result.payer_id
    assert "******" in result.payer_id
    assert result.paid_at is not None
    rich = (await env.http.get(f"{SB}/wallet/payers/payer_rich")).json()
    assert rich["balance_fen"] == 100_000_000 - 1234


async def test_unsupported_way_code_and_bad_amount_are_refused(env: Env) -> None:
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(order("ORD-JSAPI", way=WayCode.JSAPI))
    assert exc.value.code == "WAY_CODE_UNSUPPORTED"
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(order("ORD-ZERO", fen=0))
    assert exc.value.code == "PARAM_INVALID"


async def test_same_out_trade_no_is_idempotent_but_not_with_other_amount(env: Env) -> None:
    first = await env.channel.create(order("ORD-IDEM", 500))
    again = await env.channel.create(order("ORD-IDEM", 500))
    assert again.channel_trade_no == first.channel_trade_no
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(order("ORD-IDEM", 501))
    assert exc.value.code == "ORDER_EXISTS"


async def test_query_unknown_order_is_not_found(env: Env) -> None:
    assert (await env.channel.query("ORD-NOPE")).state == TradeState.NOT_FOUND


# ------------------------------------------------------------------ close, expiry

async def test_close_then_scan_is_refused_and_paid_order_cannot_close(env: Env) -> None:
    created = await env.channel.create(order("ORD-CLOSE"))
    await env.channel.close("ORD-CLOSE")
    assert (await env.channel.query("ORD-CLOSE")).state == TradeState.CLOSED
    await env.channel.close("ORD-CLOSE")  # closing twice is harmless
    scan = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": "payer_rich"})
    assert scan.status_code == 409
    assert scan.json()["code"] == "ORDER_CLOSED"

    paid = await env.channel.create(order("ORD-PAID"))
    await env.wallet("/scan", {"code_url": paid.code_url, "payer_id": "payer_rich"})
    with pytest.raises(ChannelError) as exc:
        await env.channel.close("ORD-PAID")
    assert exc.value.code == "ORDER_PAID"
    with pytest.raises(ChannelError) as exc:
        await env.channel.close("ORD-NEVER")
    assert exc.value.code == "ORDER_NOT_FOUND"


async def test_unpaid_order_expires_closed(env: Env) -> None:
    await env.channel.create(order("ORD-EXPIRE"))
    clock.advance(timedelta(minutes=16))
    result = await env.channel.query("ORD-EXPIRE")
    assert result.state == TradeState.CLOSED
    assert result.error_code == "ORDER_EXPIRED"


# ------------------------------------------------------------------ refunds

async def test_partial_and_repeated_refunds(env: Env) -> None:
    created = await env.channel.create(order("ORD-REFUND", 1000))
    await env.wallet("/scan", {"code_url": created.code_url, "payer_id": "payer_rich"})

    def refund(rid: str, fen: int) -> RefundRequest:
        return RefundRequest(order_id="ORD-REFUND", refund_id=rid, amount=Money(fen),
                             order_amount=Money(1000), reason="returned",
                             notify_url="http://testserver/callbacks/bankpay")

    first = await env.channel.refund(refund("REF-0001", 300))
    assert first.state == RefundState.SUCCESS
    assert first.channel_refund_no
    assert first.raw["same_day_settlement"] is True
    again = await env.channel.refund(refund("REF-0001", 300))  # a retry: same refund
    assert again.channel_refund_no == first.channel_refund_no
    second = await env.channel.refund(refund("REF-0002", 700))
    assert second.state == RefundState.SUCCESS
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund(refund("REF-0003", 1))
    assert exc.value.code == "REFUND_AMOUNT_EXCEEDED"
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund(refund("REF-0001", 301))
    assert exc.value.code == "REFUND_EXISTS"

    queried = await env.channel.refund_query("ORD-REFUND", "REF-0002")
    assert queried.state == RefundState.SUCCESS
    assert queried.raw["refund_fen"] == 700
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund_query("ORD-REFUND", "REF-NONE")
    assert exc.value.code == "REFUND_NOT_FOUND"
    await until(lambda: sum(c.kind == CallbackKind.REFUND for c in env.callbacks) == 2)
    refund_cbs = [c for c in env.callbacks if c.kind == CallbackKind.REFUND]
    assert {c.refund_id for c in refund_cbs} == {"REF-0001", "REF-0002"}
    assert all(c.refund and c.refund.state == RefundState.SUCCESS for c in refund_cbs)
    result = await env.channel.query("ORD-REFUND")
    assert result.state == TradeState.SUCCESS
    assert result.raw["trade_state"] == "REFUND"
    assert result.raw["refunded_fen"] == 1000
    rich = (await env.http.get(f"{SB}/wallet/payers/payer_rich")).json()
    assert rich["balance_fen"] == 100_000_000


async def test_refund_of_unpaid_order_is_refused(env: Env) -> None:
    await env.channel.create(order("ORD-UNPAID", 1000))
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund(RefundRequest("ORD-UNPAID", "REF-X00001", Money(1), Money(1000),
                                               "x", "http://testserver/callbacks/bankpay"))
    assert exc.value.code == "ORDER_NOT_PAID"


# ------------------------------------------------------------------ payer code

async def test_payer_code_pays_at_once(env: Env) -> None:
    code = (await env.wallet("/payers/payer_rich/code")).json()["auth_code"]
    assert len(code) == 18
    assert code.startswith("88")
    assert code.isdigit()
    result = await env.channel.barcode_pay(BarcodePayRequest("ORD-CODE", Money(1000), "Tea", code))
    assert result.state == TradeState.SUCCESS
    assert result.amount == Money(1000)
    assert result.raw["same_day_settlement"] is True
    # a code is single use
    reused = await env.channel.barcode_pay(BarcodePayRequest("ORD-CODE2", Money(1000), "Tea",
                                                             code))
    assert reused.state == TradeState.FAILED
    assert reused.error_code == "AUTH_CODE_INVALID"


async def test_expired_payer_code_fails(env: Env) -> None:
    code = (await env.wallet("/payers/payer_rich/code")).json()["auth_code"]
    clock.advance(timedelta(seconds=61))
    result = await env.channel.barcode_pay(BarcodePayRequest("ORD-OLD", Money(10), "Tea", code))
    assert result.state == TradeState.FAILED
    assert result.error_code == "AUTH_CODE_EXPIRED"


async def test_password_payer_is_userpaying_until_confirm(env: Env) -> None:
    result = await pay_by_code(env, "ORD-PIN", "payer_pin")
    assert result.state == TradeState.PAYING
    assert (await env.channel.query("ORD-PIN")).state == TradeState.PAYING
    confirmed = await env.wallet("/payers/payer_pin/confirm")
    assert confirmed.status_code == 200
    assert confirmed.json()["trade_state"] == "SUCCESS"
    assert (await env.channel.query("ORD-PIN")).state == TradeState.SUCCESS
    await until(lambda: any(c.order_id == "ORD-PIN" for c in env.callbacks))


async def test_password_payer_who_never_confirms_fails_and_cancel_closes(env: Env) -> None:
    await pay_by_code(env, "ORD-SLOWPIN", "payer_pin")
    clock.advance(timedelta(seconds=61))
    late = await env.channel.query("ORD-SLOWPIN")
    assert late.state == TradeState.FAILED
    assert late.error_code == "PAYER_CONFIRM_TIMEOUT"

    await pay_by_code(env, "ORD-CANCEL", "payer_pin")
    await env.channel.cancel("ORD-CANCEL")
    assert (await env.channel.query("ORD-CANCEL")).state == TradeState.CLOSED
    nothing = await env.wallet("/payers/payer_pin/confirm", {"out_trade_no": "ORD-CANCEL"})
    assert nothing.status_code == 404


async def test_cancel_of_paid_code_payment_reverses_it(env: Env) -> None:
    paid = await pay_by_code(env, "ORD-REVERSE", "payer_rich", 2500)
    assert paid.state == TradeState.SUCCESS
    await env.channel.cancel("ORD-REVERSE")
    result = await env.channel.query("ORD-REVERSE")
    assert result.state == TradeState.CLOSED
    assert result.raw["trade_state"] == "REVOKED"
    rich = (await env.http.get(f"{SB}/wallet/payers/payer_rich")).json()
    assert rich["balance_fen"] == 100_000_000
    # cancelled before it arrived: a late payment with that number is refused
    await env.channel.cancel("ORD-LATE")
    code = (await env.wallet("/payers/payer_rich/code")).json()["auth_code"]
    with pytest.raises(ChannelError) as exc:
        await env.channel.barcode_pay(BarcodePayRequest("ORD-LATE", Money(5), "Tea", code))
    assert exc.value.code == "ORDER_REVOKED"


async def test_insufficient_balance(env: Env) -> None:
    result = await pay_by_code(env, "ORD-POOR", "payer_poor", 101)
    assert result.state == TradeState.FAILED
    assert result.error_code == "BALANCE_NOT_ENOUGH"
    created = await env.channel.create(order("ORD-POORQR", 101))
    scan = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": "payer_poor"})
    assert scan.status_code == 409
    assert scan.json()["code"] == "BALANCE_NOT_ENOUGH"
    assert (await env.channel.query("ORD-POORQR")).state == TradeState.PAYING  # may retry


async def test_new_payer_and_declined_confirmation(env: Env) -> None:
    made = await env.wallet("/payers", {"payer_id": "alice", "balance_fen": 500,
                                        "password_required": True})
    assert made.status_code == 200
    assert made.json()["account_masked"].count("*") == 6
    assert (await env.wallet("/payers", {"payer_id": "alice"})).status_code == 409
    assert (await env.wallet("/payers", {"balance_fen": -1})).status_code == 400
    await pay_by_code(env, "ORD-DECLINE", "alice", 100)
    declined = await env.wallet("/payers/alice/confirm", {"approve": False})
    assert declined.json()["error_code"] == "PAYER_DECLINED"
    assert (await env.channel.query("ORD-DECLINE")).state == TradeState.FAILED


# ------------------------------------------------------------------ tampering

async def test_tampered_replayed_and_stale_requests_are_refused(env: Env) -> None:
    body = orjson.dumps({"merchant_no": "888000000000001", "out_trade_no": "ORD-TAMPER",
                         "amount_fen": 100, "way_code": "QR_DYNAMIC"})
    secret = env.settings.bankpay.secret
    headers = {**signed_headers(secret, body), "X-Bank-Merchant-No": "888000000000001"}
    tampered = body.replace(b"100", b"1")
    resp = await env.http.post(f"{SB}/api/orders", content=tampered, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["code"] == "SIGNATURE_INVALID"
    assert resp.headers["x-bank-signature"]  # even the refusal is signed
    ok = await env.http.post(f"{SB}/api/orders", content=body, headers=headers)
    assert ok.status_code == 200
    replay = await env.http.post(f"{SB}/api/orders", content=body, headers=headers)
    assert replay.json()["code"] == "NONCE_REPLAYED"
    stale = {**headers, "X-Bank-Nonce": "fresh", "X-Bank-Timestamp": str(clock.timestamp() - 301)}
    stale["X-Bank-Signature"] = sign(secret, stale["X-Bank-Timestamp"], "fresh", body)
    assert (await env.http.post(f"{SB}/api/orders", content=body,
                                headers=stale)).json()["code"] == "TIMESTAMP_EXPIRED"
    bare = await env.http.post(f"{SB}/api/orders", content=body)
    assert bare.json()["code"] == "SIGNATURE_MISSING"
    other = {**signed_headers(secret, body), "X-Bank-Merchant-No": "999"}
    assert (await env.http.post(f"{SB}/api/orders", content=body,
                                headers=other)).json()["code"] == "MERCHANT_INVALID"


async def test_answer_signed_with_another_key_is_unverifiable(env: Env) -> None:
    wrong = BankpayChannel(env.settings, env.http, BankpaySection(secret="not-the-bank-s"))
    with pytest.raises(ChannelUnavailable):  # the answer is signed with a key we do not hold
        await wrong.query("ORD-ANY")


async def test_tampered_or_replayed_callback_is_rejected(env: Env) -> None:
    data = {"merchant_no": "888000000000001", "out_trade_no": "ORD-CB", "trade_no": "BP1",
            "trade_state": "SUCCESS", "amount_fen": 100, "same_day_settlement": True}
    body = orjson.dumps({"event_id": "E1", "event_type": "TRADE.SUCCESS", "data": data})
    headers = signed_headers(env.settings.bankpay.secret, body)
    good = await env.channel.parse_callback(headers, body)
    assert good.trade is not None
    assert good.trade.amount == Money(100)
    with pytest.raises(FulemaError) as exc:
        await env.channel.parse_callback(headers, body)  # the same nonce again
    assert exc.value.code == ErrorCode.CALLBACK_INVALID
    headers = signed_headers(env.settings.bankpay.secret, body)
    with pytest.raises(FulemaError):
        await env.channel.parse_callback(headers, body.replace(b"100", b"999"))
    forged = orjson.dumps({"event_type": "TRADE.SUCCESS", "data": {**data, "merchant_no": "x"}})
    with pytest.raises(FulemaError):
        await env.channel.parse_callback(signed_headers(env.settings.bankpay.secret, forged), forged)
    with pytest.raises(FulemaError):
        await env.channel.parse_callback({}, body)
    garbage = b"not json"
    with pytest.raises(FulemaError):
        await env.channel.parse_callback(signed_headers(env.settings.bankpay.secret, garbage),
                                         garbage)
    assert env.channel.callback_ack(False).status_code == 400
    assert env.channel.callback_ack(True).body == b'{"code":"SUCCESS"}'


# ------------------------------------------------------------------ faults

async def test_5xx_and_garbled_are_unknown_never_failed(env: Env) -> None:
    await env.wallet("/faults", {"mode": "5xx"})
    with pytest.raises(ChannelUnavailable):
        await env.channel.query("ORD-X")
    with pytest.raises(ChannelUnavailable):
        await pay_by_code(env, "ORD-5XX", "payer_rich")
    await env.wallet("/faults", {"mode": "garbled"})
    with pytest.raises(ChannelUnavailable):
        await pay_by_code(env, "ORD-GARBLED", "payer_rich", 700)
    await env.wallet("/faults", {"mode": "none"})
    # the garbled answer hid a real payment; the query finds it
    result = await env.channel.query("ORD-GARBLED")
    assert result.state == TradeState.SUCCESS
    assert result.amount == Money(700)
    assert (await env.wallet("/faults", {"mode": "bogus"})).status_code == 400


async def test_slow_channel_times_out_as_unavailable(env: Env) -> None:
    quick = BankpayChannel(env.settings, env.http, BankpaySection(timeout_seconds=0.1))
    await env.wallet("/faults", {"mode": "slow", "delay_ms": 400})
    with pytest.raises(ChannelUnavailable):
        await quick.query("ORD-SLOW")


# ------------------------------------------------------------------ statement

async def test_statement_lists_the_days_bookings_and_injected_differences(env: Env) -> None:
    a = await env.channel.create(order("ORD-ST-A", 1000))
    await env.wallet("/scan", {"code_url": a.code_url, "payer_id": "payer_rich"})
    await pay_by_code(env, "ORD-ST-B", "payer_rich", 250)
    await env.channel.refund(RefundRequest("ORD-ST-A", "REF-ST-1", Money(400), Money(1000), "r",
                                           "http://testserver/callbacks/bankpay"))
    await env.channel.create(order("ORD-ST-UNPAID", 10))
    today = clock.now().astimezone(BANK_TZ).date()

    rows = list(csv.DictReader(io.StringIO((await env.channel.download_statement(today))
                                           .decode())))
    assert [(r["record_type"], r["out_trade_no"], r["amount_fen"], r["settle_fen"])
            for r in sorted(rows, key=lambda r: (r["out_trade_no"], r["record_type"]))] == [
        ("PAY", "ORD-ST-A", "1000", "1000"), ("REFUND", "ORD-ST-A", "400", "-400"),
        ("PAY", "ORD-ST-B", "250", "250")]
    assert all(r["fee_fen"] == "0" and r["same_day_settlement"] == "true"
               and r["settle_date"] == today.isoformat() for r in rows)
    assert (await env.channel.download_statement(today - timedelta(days=1))).count(b"\n") == 1

    await env.wallet("/faults", {"statement_diff": {
        "drop": ["ORD-ST-B"], "amount": {"REF-ST-1": 401},
        "extra": [{"out_trade_no": "ORD-GHOST", "amount_fen": 99}]}})
    rows = list(csv.DictReader(io.StringIO((await env.channel.download_statement(today))
                                           .decode())))
    keyed = {(r["out_refund_no"] or r["out_trade_no"]): r for r in rows}
    assert "ORD-ST-B" not in keyed
    assert keyed["REF-ST-1"]["amount_fen"] == "401"
    assert keyed["ORD-GHOST"]["amount_fen"] == "99"
