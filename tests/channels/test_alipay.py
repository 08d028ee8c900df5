"""Alipay adapter against the Alipay sandbox, over HTTP, end to end."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from fulema.channels.alipay.adapter import (
    REFUND_STATES,
    TRADE_STATES,
    AlipayChannel,
    build_channel,
    parse_bill,
)
from fulema.channels.alipay.bill import COLUMNS, bill_files, parse_summary
from fulema.channels.alipay.protocol import (
    BEIJING,
    alipay_public_key,
    app_private_key,
    beijing_time,
    encode_response,
    notify_content,
    platform_dev_key,
    sign_content,
    signed_node_verifies,
    top_level,
    verify_notify,
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
    TradeResult,
    TradeState,
)
from fulema.channels.detect import detect_payer_code
from fulema.core import crypto
from fulema.core.channel_settings import AlipaySection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.sandbox.alipay.server import AlipaySandbox
from fulema.sandboxes import sandbox_app

SB = "/sandbox/alipay"
RICH, POOR, PIN = "2088102146225135", "2088102146225136", "2088102146225137"


@dataclass
class Env:
    settings: Settings
    http: httpx.AsyncClient
    channel: AlipayChannel
    sandbox: AlipaySandbox
    received: list[CallbackResult | bytes] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    refuse_next: int = 0  # answer "fail" to this many deliveries first

    async def wallet(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.http.request(method, f"{SB}/wallet{path}", **kw)

    async def callbacks(self, count: int, kind: CallbackKind | None = None
                        ) -> list[CallbackResult]:
        for _ in range(200):  # bounded wait for the sandbox's background notifications
            got = [r for r in self.received if isinstance(r, CallbackResult)
                   and (kind is None or r.kind == kind)]
            if len(got) >= count:
                return got
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} verified callbacks, got {self.received}")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alipay")  # keys are made once for the whole module


def make_env(settings: Settings, ali: AlipaySection | None = None) -> Env:
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    sandbox = sandbox_app("alipay", settings, http)
    app.mount(SB, sandbox)
    channel = build_channel(settings, http) if ali is None else AlipayChannel(
        settings, ali, http, app_private_key(settings, ali), alipay_public_key(settings, ali))
    env = Env(settings, http, channel, sandbox.state.sandbox)

    @app.post("/callbacks/alipay")
    async def callback(request: Request) -> Response:
        body = await request.body()
        env.raw.append(body)
        if env.refuse_next > 0:
            env.refuse_next -= 1
            return Response(b"fail", media_type="text/plain")
        try:
            env.received.append(await channel.parse_callback(dict(request.headers), body))
            ack = channel.callback_ack(True)
        except FulemaError:
            env.received.append(body)
            ack = channel.callback_ack(False)
        return Response(ack.body, status_code=ack.status_code, media_type=ack.media_type)

    return env


async def close_env(env: Env) -> None:
    for task in list(env.sandbox.tasks):
        task.cancel()
    await asyncio.gather(*env.sandbox.tasks, return_exceptions=True)
    await env.http.aclose()


@pytest.fixture
async def env(data_dir: Path) -> AsyncIterator[Env]:
    e = make_env(Settings(public_base_url="http://testserver", data_dir=data_dir))
    yield e
    await close_env(e)


def create_req(settings: Settings, amount: int = 1000, way: WayCode = WayCode.QR_DYNAMIC,
               payer_id: str | None = None) -> CreatePaymentRequest:
    return CreatePaymentRequest(
        order_id=new_id("pay"), amount=Money(amount), subject="测试商品 A/B", way_code=way,
        notify_url=settings.callback_url("alipay"), payer_id=payer_id,
        expire_at=clock.now() + timedelta(minutes=15),
        return_url="http://testserver/pay/result/x")


async def payer_code(env: Env, payer: str) -> str:
    resp = await env.wallet("POST", f"/payers/{payer}/code")
    assert resp.status_code == 200, resp.text
    code: str = resp.json()["auth_code"]
    return code


async def barcode(env: Env, payer: str, amount: int = 500) -> tuple[str, TradeResult]:
    order_id = new_id("pay")
    result = await env.channel.barcode_pay(BarcodePayRequest(
        order_id=order_id, amount=Money(amount), subject="条码商品",
        auth_code=await payer_code(env, payer)))
    return order_id, result


async def paid_qr(env: Env, amount: int = 1000, payer: str = RICH) -> str:
    req = create_req(env.settings, amount)
    created = await env.channel.create(req)
    resp = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                   "payer_id": payer})
    assert resp.status_code == 200, resp.text
    return req.order_id


async def balance(env: Env, payer: str) -> int:
    fen: int = (await env.wallet("GET", f"/payers/{payer}")).json()["balance_fen"]
    return fen


def refund_req(env: Env, order_id: str, refund_id: str, fen: int,
               order_fen: int = 1000) -> RefundRequest:
    return RefundRequest(order_id=order_id, refund_id=refund_id, amount=Money(fen),
                         order_amount=Money(order_fen), reason="客户退货",
                         notify_url=env.settings.callback_url("alipay"))


# --- wire format and signatures --------------------------------------------------------------

def test_sign_content_matches_alipays_documented_example() -> None:
    # The example of 自行实现签名 (opendocs.alipay.com/common/02kf5q): sorted, raw values,
    # `sign` left out, sign_type kept.
    params = {"method": "alipay.mobile.public.menu.add", "charset": "GBK", "sign_type": "RSA2",
              "timestamp": "2014-07-24 03:07:50", "app_id": "2014072300007148",
              "biz_content": '{"button":[{"actionParam":"ZFB_HFCZ","actionType":"out",'
                             '"name":"话费充值"}]}',
              "version": "1.0", "sign": "ignored", "empty": ""}
    assert sign_content(params) == (
        'app_id=2014072300007148&biz_content={"button":[{"actionParam":"ZFB_HFCZ",'
        '"actionType":"out","name":"话费充值"}]}&charset=GBK&method=alipay.mobile.public.menu.add'
        '&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0')
    # a notification's content leaves out sign_type too
    assert notify_content({"b": "2", "a": "1", "sign": "s", "sign_type": "RSA2"}) == "a=1&b=2"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_rsa2_signature_agrees_with_openssl(data_dir: Path, tmp_path: Path) -> None:
    """Known answer from an independent implementation: openssl dgst -sha256 -sign."""
    key = platform_dev_key(Settings(data_dir=data_dir))
    pem = tmp_path / "k.pem"
    pem.write_text(crypto.private_key_pem(key))
    content = "app_id=2021000000000001&method=alipay.trade.query&total_amount=12.50&中文=是"
    # a fixed argv to the system openssl: nothing untrusted reaches the command line
    out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(pem)],  # noqa: S603, S607
                         input=content.encode(), capture_output=True, check=True).stdout
    assert crypto.rsa_sha256_sign(key, content) == base64.b64encode(out).decode()


def test_response_signature_is_over_the_exact_node_text(data_dir: Path) -> None:
    key = platform_dev_key(Settings(data_dir=data_dir))
    node = {"code": "10000", "msg": "Success", "qr_code": "https://qr.alipay.com/bax01",
            "total_amount": "12.50"}
    body = encode_response("alipay.trade.precreate", node, key)
    assert body.startswith('{"alipay_trade_precreate_response":{"code":"10000"')
    assert "https:\\/\\/qr.alipay.com\\/bax01" in body  # Alipay escapes slashes
    members = top_level(body)
    parsed, text = members["alipay_trade_precreate_response"]
    assert parsed == node
    sign = members["sign"][0]
    assert signed_node_verifies(text, sign, key.public_key())
    # re-serialising the parsed node gives other text: its signature would not verify
    reserialised = json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    assert reserialised != text
    assert not crypto.rsa_sha256_verify(key.public_key(), json.dumps(parsed), sign)
    # whitespace around members is fine; the node text is cut out verbatim
    spaced = body.replace('{"alipay', '{ \n "alipay').replace(',"sign"', ' , "sign"')
    assert top_level(spaced)["alipay_trade_precreate_response"][1] == text
    for bad in ('{"a":1', '["a"]', '{"a":1} trailing', '{1:2}', ""):
        with pytest.raises(ValueError):  # noqa: PT011 - json's and ours, several messages
            top_level(bad)


def test_state_mappings_are_exhaustive() -> None:
    assert set(TRADE_STATES) == {"WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED",
                                 "TRADE_FINISHED"}
    assert TRADE_STATES["TRADE_FINISHED"] == TradeState.SUCCESS
    assert TRADE_STATES["WAIT_BUYER_PAY"] == TradeState.PAYING
    assert TradeState.FAILED not in TRADE_STATES.values()  # only a refusal is FAILED
    assert REFUND_STATES["REFUND_SUCCESS"] == RefundState.SUCCESS


def test_settings_and_development_keys(data_dir: Path, tmp_path: Path) -> None:
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path,
                        alipay=AlipaySection(app_id="2021000000000099",
                                             base_url="https://openapi.alipay.com"))
    channel = build_channel(settings, httpx.AsyncClient())
    assert channel.ali.app_id == "2021000000000099"
    assert channel.gateway == "https://openapi.alipay.com/gateway.do"
    assert (tmp_path / "keys" / "alipay_app.pem").exists()
    assert (tmp_path / "keys" / "alipay_platform.pem").exists()
    # real keys come as Alipay's bare base64 lines; both files are read that way too
    key = platform_dev_key(Settings(data_dir=data_dir))
    bare_pub = "".join(crypto.public_key_pem(key).splitlines()[1:-1])
    (tmp_path / "alipay_pub.txt").write_text(bare_pub)
    bare_priv = "".join(crypto.private_key_pem(key).splitlines()[1:-1])
    (tmp_path / "app_priv.txt").write_text(bare_priv)
    ali = AlipaySection(alipay_public_key_path=tmp_path / "alipay_pub.txt",
                         private_key_path=tmp_path / "app_priv.txt")
    assert alipay_public_key(settings, ali).public_numbers() == key.public_key().public_numbers()
    assert app_private_key(settings, ali).private_numbers() == key.private_numbers()


async def test_payer_codes_have_alipays_prefix_and_length(env: Env) -> None:
    code = await payer_code(env, RICH)
    assert code.isdigit()
    assert 16 <= len(code) <= 24
    assert 25 <= int(code[:2]) <= 30
    assert detect_payer_code(code, env.settings) == ChannelName.ALIPAY


# --- every way code end to end ---------------------------------------------------------------

async def test_qr_payment_end_to_end(env: Env) -> None:
    req = create_req(env.settings, 1250)
    created = await env.channel.create(req)
    assert created.state == TradeState.PAYING
    assert created.code_url
    assert created.code_url.startswith("https://qr.alipay.com/")
    # a precreate code is no trade at Alipay until it is scanned
    assert (await env.channel.query(req.order_id)).state == TradeState.NOT_FOUND
    before = await balance(env, RICH)
    resp = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                   "payer_id": RICH})
    assert resp.status_code == 200
    assert resp.json()["trade_status"] == "TRADE_SUCCESS"
    (cb,) = await env.callbacks(1)
    assert cb.kind == CallbackKind.PAYMENT
    assert cb.order_id == req.order_id
    assert cb.trade is not None
    assert cb.trade.state == TradeState.SUCCESS
    assert cb.trade.amount == Money(1250)
    assert cb.trade.payer_id == RICH
    found = await env.channel.query(req.order_id)
    assert found.state == TradeState.SUCCESS
    assert found.amount == Money(1250)
    assert found.channel_trade_no == cb.trade.channel_trade_no
    assert found.paid_at is not None
    assert found.paid_at.tzinfo is not None
    assert abs(found.paid_at - clock.now()) < timedelta(minutes=1)
    assert await balance(env, RICH) == before - 1250
    # the same code cannot be paid twice
    again = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                    "payer_id": RICH})
    assert again.status_code == 409
    assert again.json()["sub_code"] == "ACQ.TRADE_HAS_SUCCESS"


async def test_jsapi_payment_end_to_end(env: Env) -> None:
    req = create_req(env.settings, 990, WayCode.JSAPI, payer_id=RICH)
    created = await env.channel.create(req)
    assert created.channel_trade_no
    assert created.pay_params == {
        "tradeNO": created.channel_trade_no}
    assert (await env.channel.query(req.order_id)).state == TradeState.PAYING
    wrong = await env.wallet("POST", "/scan", json={"trade_no": created.channel_trade_no,
                                                    "payer_id": POOR})
    assert wrong.status_code == 409
    assert wrong.json()["sub_code"] == "ACQ.TRADE_BUYER_NOT_MATCH"
    ok = await env.wallet("POST", "/scan", json={"trade_no": created.channel_trade_no,
                                                 "payer_id": RICH})
    assert ok.status_code == 200, ok.text
    (cb,) = await env.callbacks(1)
    assert cb.trade is not None
    assert cb.trade.amount == Money(990)
    found = await env.channel.query(req.order_id)
    assert (found.state, found.amount, found.payer_id) == (TradeState.SUCCESS, Money(990), RICH)


async def test_jsapi_needs_a_buyer_the_channel_knows(env: Env) -> None:
    with pytest.raises(ChannelError) as no_payer:
        await env.channel.create(create_req(env.settings, 100, WayCode.JSAPI))
    assert no_payer.value.code == "PAYER_ID_REQUIRED"
    with pytest.raises(ChannelError) as unknown:
        await env.channel.create(create_req(env.settings, 100, WayCode.JSAPI,
                                            payer_id="2088000000000000"))
    assert unknown.value.code == "ACQ.BUYER_NOT_EXIST"


async def test_h5_payment_end_to_end(env: Env) -> None:
    req = create_req(env.settings, 4321, WayCode.H5)
    created = await env.channel.create(req)
    assert created.h5_url
    assert created.h5_url.startswith("http://testserver/sandbox/alipay/"
                                                        "gateway.do?")
    params = dict(parse_qsl(urlsplit(created.h5_url).query))
    assert params["method"] == "alipay.trade.wap.pay"
    assert params["sign_type"] == "RSA2"
    biz = json.loads(params["biz_content"])
    assert biz["total_amount"] == "43.21"
    assert biz["product_code"] == "QUICK_WAP_WAY"
    page = await env.http.get(created.h5_url)  # the payer's browser
    assert page.status_code == 200
    assert "43.21" in page.text
    assert "测试商品" in page.text
    as_json = await env.http.get(created.h5_url, headers={"Accept": "application/json"})
    assert as_json.json()["code"] == "10000"
    paid = await env.wallet("POST", "/scan", json={"code_url": created.h5_url,
                                                   "payer_id": RICH})
    assert paid.status_code == 200, paid.text
    (cb,) = await env.callbacks(1)
    assert cb.order_id == req.order_id
    assert cb.trade is not None
    assert cb.trade.amount == Money(4321)
    found = await env.channel.query(req.order_id)
    assert found.state == TradeState.SUCCESS
    assert found.amount == Money(4321)


async def test_h5_url_with_a_changed_amount_is_refused(env: Env) -> None:
    created = await env.channel.create(create_req(env.settings, 100, WayCode.H5))
    assert created.h5_url
    forged = created.h5_url.replace("%221.00%22", "%220.01%22")
    assert forged != created.h5_url
    page = await env.http.get(forged, headers={"Accept": "application/json"})
    assert page.json()["sub_code"] == "isv.invalid-signature"
    paid = await env.wallet("POST", "/scan", json={"code_url": forged, "payer_id": RICH})
    assert paid.status_code == 400
    assert paid.json()["sub_code"] == "isv.invalid-signature"


async def test_unsupported_way_code(env: Env) -> None:
    with pytest.raises(ChannelError) as exc:
        await env.channel.create(create_req(env.settings, 100, WayCode.APP))
    assert exc.value.code == "UNSUPPORTED_WAY_CODE"


# --- payer codes -----------------------------------------------------------------------------

async def test_barcode_payment_succeeds_at_once(env: Env) -> None:
    order_id, result = await barcode(env, RICH, 500)
    assert result.state == TradeState.SUCCESS
    assert result.amount == Money(500)
    assert result.payer_id == RICH
    assert result.channel_trade_no
    (cb,) = await env.callbacks(1)
    assert cb.order_id == order_id
    assert (await env.channel.query(order_id)).state == TradeState.SUCCESS


async def test_barcode_codes_are_single_use_and_checked(env: Env) -> None:
    code = await payer_code(env, RICH)
    first = await env.channel.barcode_pay(BarcodePayRequest(
        order_id=new_id("pay"), amount=Money(100), subject="x", auth_code=code))
    assert first.state == TradeState.SUCCESS
    reused = await env.channel.barcode_pay(BarcodePayRequest(
        order_id=new_id("pay"), amount=Money(100), subject="x", auth_code=code))
    assert reused.state == TradeState.FAILED
    assert reused.error_code == "ACQ.PAYMENT_AUTH_CODE_INVALID"
    malformed = await env.channel.barcode_pay(BarcodePayRequest(
        order_id=new_id("pay"), amount=Money(100), subject="x", auth_code="134567890123456789"))
    assert malformed.error_code == "ACQ.PAYMENT_AUTH_CODE_INVALID"


async def test_barcode_insufficient_balance_fails_with_alipays_code(env: Env) -> None:
    order_id, result = await barcode(env, POOR, 500)
    assert result.state == TradeState.FAILED
    assert result.error_code == "ACQ.BUYER_BALANCE_NOT_ENOUGH"
    assert result.error_message == "买家余额不足"
    assert await balance(env, POOR) == 100
    assert (await env.channel.query(order_id)).state == TradeState.NOT_FOUND


async def test_qr_scan_with_insufficient_balance_keeps_the_order_open(env: Env) -> None:
    req = create_req(env.settings, 500)
    created = await env.channel.create(req)
    resp = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                   "payer_id": POOR})
    assert resp.status_code == 409
    assert resp.json() == {"code": "40004", "msg": "Business Failed",
                           "sub_code": "ACQ.BUYER_BALANCE_NOT_ENOUGH", "sub_msg": "买家余额不足"}
    assert (await env.channel.query(req.order_id)).state == TradeState.PAYING


async def test_password_payment_waits_for_the_payer(env: Env) -> None:
    order_id, result = await barcode(env, PIN, 800)
    assert result.state == TradeState.PAYING
    assert result.channel_trade_no
    assert (await env.channel.query(order_id)).state == TradeState.PAYING
    assert env.received == []
    confirm = await env.wallet("POST", f"/payers/{PIN}/confirm")
    assert confirm.status_code == 200
    (cb,) = await env.callbacks(1)
    assert cb.order_id == order_id
    assert cb.trade is not None
    assert cb.trade.state == TradeState.SUCCESS
    found = await env.channel.query(order_id)
    assert found.state == TradeState.SUCCESS
    assert found.amount == Money(800)


async def test_password_payment_times_out_closed(env: Env) -> None:
    order_id, result = await barcode(env, PIN, 800)
    assert result.state == TradeState.PAYING
    clock.advance(timedelta(minutes=3))
    assert (await env.channel.query(order_id)).state == TradeState.CLOSED
    late = await env.wallet("POST", f"/payers/{PIN}/confirm")
    assert late.status_code == 404


async def test_cancel_of_a_waiting_payment_closes_it(env: Env) -> None:
    order_id, result = await barcode(env, PIN, 800)
    assert result.state == TradeState.PAYING
    before = await balance(env, PIN)
    await env.channel.cancel(order_id)
    assert (await env.channel.query(order_id)).state == TradeState.CLOSED
    assert (await env.wallet("POST", f"/payers/{PIN}/confirm")).status_code == 404
    assert await balance(env, PIN) == before


async def test_cancel_of_a_paid_payment_reverses_it(env: Env) -> None:
    before = await balance(env, RICH)
    order_id, result = await barcode(env, RICH, 700)
    assert result.state == TradeState.SUCCESS
    await env.channel.cancel(order_id)
    assert await balance(env, RICH) == before
    assert (await env.channel.query(order_id)).state == TradeState.CLOSED  # reversed, not paid
    await env.channel.cancel(order_id)  # idempotent


async def test_cancel_of_a_payment_alipay_never_saw_voids_the_number(env: Env) -> None:
    order_id = new_id("pay")
    await env.channel.cancel(order_id)
    late = await env.channel.barcode_pay(BarcodePayRequest(
        order_id=order_id, amount=Money(100), subject="x",
        auth_code=await payer_code(env, RICH)))
    assert late.state == TradeState.FAILED
    assert late.error_code == "ACQ.TRADE_HAS_CLOSE"


# --- close -----------------------------------------------------------------------------------

async def test_close_of_an_unscanned_qr_stops_a_later_scan(env: Env) -> None:
    req = create_req(env.settings, 300)
    created = await env.channel.create(req)
    await env.channel.close(req.order_id)
    resp = await env.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                   "payer_id": RICH})
    assert resp.status_code == 409
    assert resp.json()["sub_code"] == "ACQ.TRADE_HAS_CLOSE"
    assert (await env.channel.query(req.order_id)).state == TradeState.CLOSED


async def test_close_of_an_open_trade_notifies_closed(env: Env) -> None:
    req = create_req(env.settings, 300, WayCode.JSAPI, payer_id=RICH)
    await env.channel.create(req)
    await env.channel.close(req.order_id)
    await env.channel.close(req.order_id)  # again: still fine
    (cb,) = await env.callbacks(1)
    assert cb.trade is not None
    assert cb.trade.state == TradeState.CLOSED
    assert (await env.channel.query(req.order_id)).state == TradeState.CLOSED


async def test_close_of_a_paid_order_is_refused(env: Env) -> None:
    order_id = await paid_qr(env, 300)
    with pytest.raises(ChannelError) as exc:
        await env.channel.close(order_id)
    assert exc.value.code == "ACQ.TRADE_STATUS_ERROR"


# --- refunds ---------------------------------------------------------------------------------

async def test_partial_repeated_and_full_refunds(env: Env) -> None:
    order_id = await paid_qr(env, 1000)
    await env.callbacks(1)
    before = await balance(env, RICH)
    r1 = new_id("ref")
    first = await env.channel.refund(refund_req(env, order_id, r1, 300))
    assert first.state == RefundState.SUCCESS
    repeat = await env.channel.refund(refund_req(env, order_id, r1, 300))
    assert repeat.state == RefundState.SUCCESS  # fund_change=N, confirmed by query
    assert await balance(env, RICH) == before + 300  # once, not twice
    too_much = await env.channel.refund(refund_req(env, order_id, new_id("ref"), 701))
    assert too_much.state == RefundState.FAILED
    assert too_much.error_code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    r2 = new_id("ref")
    rest = await env.channel.refund(refund_req(env, order_id, r2, 700))
    assert rest.state == RefundState.SUCCESS
    assert await balance(env, RICH) == before + 1000
    # fully refunded: TRADE_CLOSED at Alipay, but it was paid, not "never paid"
    found = await env.channel.query(order_id)
    assert found.raw["trade_status"] == "TRADE_CLOSED"
    assert found.state == TradeState.SUCCESS
    assert found.amount == Money(1000)
    # a retry of the last refund still reaches Alipay and still succeeds
    assert (await env.channel.refund(refund_req(env, order_id, r2, 700))).state == \
        RefundState.SUCCESS
    after_close = await env.channel.refund(refund_req(env, order_id, new_id("ref"), 1))
    assert after_close.state == RefundState.FAILED
    assert after_close.error_code == "ACQ.TRADE_HAS_CLOSE"
    refunds = await env.callbacks(2, CallbackKind.REFUND)
    assert {r.refund_id for r in refunds} == {r1, r2}
    assert all(r.order_id == order_id and r.refund is not None
               and r.refund.state == RefundState.SUCCESS for r in refunds)
    for refund_id in (r1, r2):
        queried = await env.channel.refund_query(order_id, refund_id)
        assert queried.state == RefundState.SUCCESS
    assert queried.raw["refund_amount"] == "7.00"


async def test_refund_query_of_a_refund_alipay_never_got(env: Env) -> None:
    order_id = await paid_qr(env, 1000)
    with pytest.raises(ChannelError) as exc:
        await env.channel.refund_query(order_id, new_id("ref"))
    assert exc.value.code == "REFUND_NOT_FOUND"
    with pytest.raises(ChannelError) as none:
        await env.channel.refund_query(new_id("pay"), new_id("ref"))
    assert none.value.code == "ACQ.TRADE_NOT_EXIST"


async def test_refund_of_an_unpaid_order_is_refused(env: Env) -> None:
    req = create_req(env.settings, 300, WayCode.JSAPI, payer_id=RICH)
    await env.channel.create(req)
    result = await env.channel.refund(refund_req(env, req.order_id, new_id("ref"), 100, 300))
    assert result.state == RefundState.FAILED
    assert result.error_code == "ACQ.TRADE_STATUS_ERROR"


# --- tampering and signatures ----------------------------------------------------------------

async def test_tampered_request_is_refused_with_alipays_error(env: Env) -> None:
    params = env.channel.signed_params("alipay.trade.query", {"out_trade_no": "pay_1"})
    params["biz_content"] = '{"out_trade_no":"pay_2"}'
    resp = await env.http.post(f"{SB}/gateway.do", data=params)
    assert resp.status_code == 200
    members = top_level(resp.text)
    node, text = members["alipay_trade_query_response"]
    assert node["code"] == "40002"
    assert node["msg"] == "Invalid Arguments"
    assert node["sub_code"] == "isv.invalid-signature"
    assert "网关生成的验签字符串为：app_id=2021000000000001&amp;biz_content=" in node["sub_msg"]
    key = env.channel.alipay_key
    assert signed_node_verifies(text, members["sign"][0], key)  # the refusal is signed too


async def test_requests_signed_with_another_key_are_refused(env: Env, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_text(crypto.private_key_pem(crypto.generate_rsa_key(1024)))
    ali = AlipaySection(private_key_path=other)
    wrong = AlipayChannel(env.settings, ali, env.http, app_private_key(env.settings, ali),
                          env.channel.alipay_key)
    with pytest.raises(ChannelError) as exc:
        await wrong.create(create_req(env.settings, 100))
    assert exc.value.code == "isv.invalid-signature"
    result = await wrong.barcode_pay(BarcodePayRequest(
        order_id=new_id("pay"), amount=Money(100), subject="x",
        auth_code=await payer_code(env, RICH)))
    assert result.state == TradeState.FAILED
    assert result.error_code == "isv.invalid-signature"


@pytest.mark.parametrize(("change", "sub_code"), [
    ({"app_id": "2021000000000002"}, "isv.invalid-app-id"),
    ({"sign_type": "RSA"}, "isv.invalid-signature-type"),
    ({"timestamp": "2014-07-24 03:07:50"}, "isv.invalid-timestamp"),
    ({"sign": ""}, "isv.missing-signature"),
])
async def test_gateway_checks_common_parameters(env: Env, change: dict[str, str],
                                                sub_code: str) -> None:
    params = {**env.channel.signed_params("alipay.trade.query", {"out_trade_no": "p"}),
              **change}
    resp = await env.http.post(f"{SB}/gateway.do", data=params)
    node = top_level(resp.text)["alipay_trade_query_response"][0]
    assert node["sub_code"] == sub_code
    assert node["code"] in ("40001", "40002")


@pytest.mark.parametrize(("change", "sub_code", "signed"), [
    ({"app_id": "2021000000000002"}, "isv.invalid-app-id", False),  # no app: no key to sign
    ({"app_id": ""}, "isv.missing-app-id", False),
    ({"timestamp": "2014-07-24 03:07:50"}, "isv.invalid-timestamp", True),
    ({"biz_content": '{"out_trade_no":"q"}'}, "isv.invalid-signature", True),
])
async def test_only_refusals_for_a_known_app_are_signed(env: Env, change: dict[str, str],
                                                        sub_code: str, signed: bool) -> None:
    params = {**env.channel.signed_params("alipay.trade.query", {"out_trade_no": "p"}),
              **change}
    resp = await env.http.post(f"{SB}/gateway.do", data=params)
    members = top_level(resp.text)
    node, text = members["alipay_trade_query_response"]
    assert node["sub_code"] == sub_code
    assert ("sign" in members) is signed
    if signed:
        assert signed_node_verifies(text, members["sign"][0], env.channel.alipay_key)
    assert env.channel._verified_node("alipay.trade.query", resp.text)["sub_code"] == sub_code


async def test_unknown_method_gets_an_unsigned_error_response(env: Env) -> None:
    params = env.channel.signed_params("alipay.trade.nonsense", {})
    resp = await env.http.post(f"{SB}/gateway.do", data=params)
    members = top_level(resp.text)
    assert set(members) == {"error_response"}
    assert members["error_response"][0]["sub_code"] == "isv.invalid-method"


def test_unsigned_success_is_never_trusted(env: Env) -> None:
    body = encode_response("alipay.trade.query", {"code": "10000", "msg": "Success",
                                                  "trade_status": "TRADE_SUCCESS"}, None)
    with pytest.raises(ChannelUnavailable):
        env.channel._verified_node("alipay.trade.query", body)
    refusal = encode_response("alipay.trade.query", {"code": "40004", "msg": "Business Failed",
                                                     "sub_code": "ACQ.TRADE_NOT_EXIST"}, None)
    with pytest.raises(ChannelUnavailable):
        env.channel._verified_node("alipay.trade.query", refusal)
    gateway = encode_response("error_response", {"code": "40002", "msg": "Invalid Arguments",
                                                 "sub_code": "isv.invalid-app-id"}, None)
    assert env.channel._verified_node("alipay.trade.query", gateway)["code"] == "40002"


async def test_tampered_or_foreign_callbacks_are_rejected(env: Env) -> None:
    await paid_qr(env, 1000)
    await env.callbacks(1)
    genuine = dict(parse_qsl(env.raw[0].decode()))
    assert verify_notify(genuine, env.channel.alipay_key)
    assert genuine["notify_type"] == "trade_status_sync"
    assert genuine["total_amount"] == "10.00"
    ch = env.channel
    for forged in ({**genuine, "total_amount": "0.01"},
                   {**genuine, "trade_status": "TRADE_SUCCESS", "sign": genuine["sign"][:-4]
                    + "AAA="},
                   {k: v for k, v in genuine.items() if k != "sign"}):
        with pytest.raises(FulemaError) as exc:
            await ch.parse_callback({}, urlencode(forged).encode())
        assert exc.value.code == ErrorCode.CALLBACK_INVALID
    # signed by the right key but for another app
    key = platform_dev_key(env.settings)
    other = {**genuine, "app_id": "2021000000000002"}
    other["sign"] = crypto.rsa_sha256_sign(key, notify_content(other))
    with pytest.raises(FulemaError):
        await ch.parse_callback({}, urlencode(other).encode())
    for garbage in (b"\xff\xfe", b"", b"sign=abc"):
        with pytest.raises(FulemaError):
            await ch.parse_callback({}, garbage)
    # sign_type is outside the signed content, as documented: changing it changes nothing
    same = {**genuine, "sign_type": "RSA2"}
    assert (await ch.parse_callback({}, urlencode(same).encode())).kind == CallbackKind.PAYMENT
    assert ch.callback_ack(True).body == b"success"
    assert ch.callback_ack(False).body != b"success"


async def test_sandbox_retries_until_it_hears_success(env: Env) -> None:
    env.refuse_next = 2
    order_id = await paid_qr(env, 200)
    (cb,) = await env.callbacks(1)
    assert cb.order_id == order_id
    assert len(env.raw) == 3
    ids = {dict(parse_qsl(b.decode()))["out_trade_no"] for b in env.raw}
    assert ids == {order_id}


# --- transport faults ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["5xx", "garbled", "badsign"])
async def test_faults_are_unavailable_never_failed(env: Env, mode: str) -> None:
    """Every call raises ChannelUnavailable (never FAILED, never a quiet UNKNOWN result): the
    breaker counts it, and payments keeps the order or refund open and queries it later."""
    order_id = await paid_qr(env, 500)
    resp = await env.wallet("POST", "/faults", json={"mode": mode})
    assert resp.status_code == 200
    with pytest.raises(ChannelUnavailable):
        await env.channel.query(order_id)
    with pytest.raises(ChannelUnavailable):
        await barcode(env, RICH, 100)
    with pytest.raises(ChannelUnavailable):
        await env.channel.refund(refund_req(env, order_id, new_id("ref"), 100, 500))
    with pytest.raises(ChannelUnavailable):
        await env.channel.refund_query(order_id, "x")
    with pytest.raises(ChannelUnavailable):
        await env.channel.create(create_req(env.settings, 100))
    with pytest.raises(ChannelUnavailable):
        await env.channel.close(order_id)
    with pytest.raises(ChannelUnavailable):
        await env.channel.download_statement(clock.now().astimezone(BEIJING).date())
    await env.wallet("POST", "/faults", json={"mode": "none"})
    assert (await env.channel.query(order_id)).state == TradeState.SUCCESS


async def test_slow_gateway_times_out_as_unavailable(data_dir: Path) -> None:
    settings = Settings(public_base_url="http://testserver", data_dir=data_dir)
    env = make_env(settings, AlipaySection(timeout_seconds=0.2))
    try:
        await env.wallet("POST", "/faults", json={"mode": "slow", "delay_ms": 2000})
        with pytest.raises(ChannelUnavailable):
            await env.channel.query(new_id("pay"))
        bad = await env.wallet("POST", "/faults", json={"mode": "sideways"})
        assert bad.status_code == 422
    finally:
        await close_env(env)


# --- the bill --------------------------------------------------------------------------------

async def test_statement_is_alipays_gbk_zip_from_the_sandbox_records(env: Env) -> None:
    paid = await paid_qr(env, 1250)
    _, code_paid = await barcode(env, RICH, 300)
    refund_id = new_id("ref")
    assert (await env.channel.refund(refund_req(env, paid, refund_id, 250, 1250))).state == \
        RefundState.SUCCESS
    day = clock.now().astimezone(BEIJING).date()
    data = await env.channel.download_statement(day)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        account = env.sandbox.account
        detail_name = f"{account}_{day:%Y%m%d}_业务明细.csv"
        assert sorted(names) == sorted([detail_name, f"{account}_{day:%Y%m%d}_业务明细(汇总).csv"])
        raw = zf.read(detail_name)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # GBK, as Alipay writes it
    text = raw.decode("gbk")
    lines = text.splitlines()
    assert lines[0] == "#支付宝业务明细查询"
    assert lines[1] == f"#账号：[{account}]"
    assert lines[2].startswith("#起始日期：[")
    assert lines[4] == ",".join(COLUMNS)
    assert "#-----------------------------------------业务明细列表结束" in text
    assert lines[-1].startswith("#导出时间：[")
    rows = parse_bill(data)
    assert len(rows) == 3
    by_kind = {(r["商户订单号"], r["业务类型"]): r for r in rows}
    pay_row = by_kind[(paid, "交易")]
    assert Money.from_yuan(pay_row["订单金额（元）"]) == Money(1250)
    assert pay_row["服务费（元）"] == "-0.08"  # 0.6% of 12.50, half-up
    assert pay_row["支付宝交易号"].isdigit()
    assert len(pay_row["支付宝交易号"]) == 28
    refund_row = by_kind[(paid, "退款")]
    assert refund_row["退款批次号/请求号"] == refund_id
    assert Money.from_yuan(refund_row["商家实收（元）"]) == Money(-250)
    assert code_paid.channel_trade_no in {r["支付宝交易号"] for r in rows}
    summary = parse_summary(data)
    assert summary[-1]["门店编号"] == "合计"
    assert summary[-1]["交易订单总笔数"] == "2"
    assert summary[-1]["订单金额（元）"] == "13.00"  # 12.50 + 3.00 - 2.50
    # nothing on another day
    assert parse_bill(await env.channel.download_statement(day - timedelta(days=1))) == []


async def test_statement_differences_can_be_injected(env: Env) -> None:
    a = await paid_qr(env, 100)
    b = await paid_qr(env, 200)
    await env.wallet("POST", "/faults", json={"statement_diff": {
        "drop_order_ids": [a], "amount_overrides": {b: 250}, "extra_rows": 2}})
    rows = parse_bill(await env.channel.download_statement(clock.now().astimezone(
        BEIJING).date()))
    ids = [r["商户订单号"] for r in rows]
    assert a not in ids
    assert b in ids
    assert len(rows) == 3
    assert next(r for r in rows if r["商户订单号"] == b)["订单金额（元）"] == "2.50"


async def test_bill_links_lapse_and_cannot_be_forged(env: Env) -> None:
    node = await env.channel._call("alipay.data.dataservice.bill.downloadurl.query",
                                   {"bill_type": "trade", "bill_date": "2026-01-05"})
    url = node["bill_download_url"]
    assert "downloadBillFile.resource" in url
    assert "bizDates=20260105" in url
    assert (await env.http.get(url)).status_code == 200
    assert (await env.http.get(url.replace("bizDates=20260105", "bizDates=20260106"))
            ).status_code == 403
    clock.advance(timedelta(seconds=31))
    assert (await env.http.get(url)).status_code == 403
    bad = await env.channel._call("alipay.data.dataservice.bill.downloadurl.query",
                                  {"bill_type": "trade", "bill_date": "not-a-date"})
    assert bad["sub_code"] == "ACQ.INVALID_PARAMETER"


def test_parse_bill_reads_gbk_names_and_rejects_non_zips() -> None:
    text = ("#支付宝业务明细查询\r\n#账号：[20881234567890]\r\n" + ",".join(COLUMNS) + "\r\n"
            + "2026112522001419931441931972\t,ord1\t,交易,商品,2026-11-25 10:00:00,"
              "2026-11-25 10:00:05,\t,\t,\t,\t,*津水(602***@qq.com)\t,12.50,12.50,0.00,0.00,0.00,"
              "0.00,0.00,,0.00,0.00,\t,-0.08,0.00,备注\r\n"
            + "#-----------------------------------------业务明细列表结束------------------------"
              "------------\r\n#导出时间：[2026年11月26日 09:00:00]\r\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("20881234567890_20261125_QQQQQQQQ.csv", text.encode("gbk"))
    # Alipay's zips carry GBK file names without the UTF-8 flag; zipfile cannot write one, so
    # swap the placeholder's bytes for the GBK name's (same length; names are not in the CRC)
    gbk_name = "业务明细".encode("gbk")
    assert len(gbk_name) == 8
    data = buf.getvalue().replace(b"QQQQQQQQ", gbk_name)
    assert "20881234567890_20261125_业务明细.csv" in bill_files(data)
    (row,) = parse_bill(data)
    assert row["支付宝交易号"] == "2026112522001419931441931972"
    assert row["商户订单号"] == "ord1"
    assert row["订单金额（元）"] == "12.50"
    assert row["备注"] == "备注"
    with pytest.raises(ValueError, match="not an Alipay bill zip"):
        parse_bill(b"not a zip")


def test_timestamps_are_beijing_time() -> None:
    assert beijing_time(datetime(2026, 11, 25, 16, 30, tzinfo=UTC)) == "2026-11-26 00:30:00"
