"""WeChat Pay v2 (XML) payer-code payments against the WeChat sandbox over HTTP: micropay,
USERPAYING and the password, reverse with recall, refusals, signatures both ways."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fulema.channels.base import (
    BarcodePayRequest,
    ChannelUnavailable,
    RefundRequest,
    RefundState,
    SubMerchantRefused,
    TradeState,
)
from fulema.channels.wechat.adapter import build_channel
from fulema.channels.wechat.v2 import (
    HMAC_SHA256,
    MD5,
    WechatV2Codepay,
    from_xml,
    sign,
    sign_source,
    to_xml,
)
from fulema.core.channel_settings import WechatSection, WechatV2Section
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.sandbox.wechat.state import PIN_OPENID, RICH_OPENID, WechatSandbox
from fulema.sandbox.wechat.v2 import add_v2_routes
from fulema.sandboxes import sandbox_app

SB = "/sandbox/wechat"
# WeChat's documented example (安全规范 / 签名算法)
DOC_PARAMS = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
              "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA"}
DOC_KEY = "192006250b4c09247ec02edce69f6a2d"


class Tamper(httpx.AsyncBaseTransport):
    """A man in the middle: rewrites the body of answers to one path."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str,
                 edit: Callable[[bytes], bytes]) -> None:
        self.inner, self.path, self.edit = inner, path, edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        if not request.url.path.endswith(self.path):
            return resp
        body = await resp.aread()
        headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
        return httpx.Response(resp.status_code, headers=headers, content=self.edit(body))


@dataclass
class Env:
    app: FastAPI
    http: httpx.AsyncClient
    settings: Settings
    sb: WechatSandbox
    client: WechatV2Codepay

    def v2(self, **kw: object) -> WechatV2Codepay:
        return WechatV2Codepay(self.settings, self.http,
                               v2=WechatV2Section(reverse_retry_seconds=0, **kw))  # type: ignore[arg-type]

    async def code(self, payer: str) -> str:
        resp = await self.http.post(f"{SB}/wallet/payers/{payer}/code")
        assert resp.status_code == 200, resp.text
        code: str = resp.json()["auth_code"]
        return code

    async def balance(self, payer: str) -> int:
        fen: int = (await self.http.get(f"{SB}/wallet/payers/{payer}")).json()["balance_fen"]
        return fen

    async def post_xml(self, path: str, params: dict[str, str]) -> dict[str, str]:
        resp = await self.http.post(SB + path, content=to_xml(params))
        assert resp.status_code == 200
        return from_xml(resp.content)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wechat_v2")  # RSA keys are made once per module


@pytest.fixture
async def env(data_dir: Path) -> AsyncIterator[Env]:
    settings = Settings(public_base_url="http://testserver", data_dir=data_dir)
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    sandbox = sandbox_app("wechat", settings, http)
    sb: WechatSandbox = sandbox.state.sandbox
    add_v2_routes(sandbox, sb)
    app.mount(SB, sandbox)
    yield Env(app, http, settings, sb, WechatV2Codepay(
        settings, http, v2=WechatV2Section(reverse_retry_seconds=0)))
    for task in list(sb.tasks):
        task.cancel()
    await http.aclose()


def pay(amount: int, code: str, order_id: str | None = None) -> BarcodePayRequest:
    return BarcodePayRequest(order_id=order_id or new_id("ord"), amount=Money(amount),
                             subject="测试门店-咖啡", auth_code=code, client_ip="10.1.2.3")


# --- signatures ------------------------------------------------------------------------------

def test_sign_matches_wechats_documented_example() -> None:
    assert sign_source(DOC_PARAMS, DOC_KEY) == (
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100"
        "&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d")
    assert sign(DOC_PARAMS, DOC_KEY, MD5) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert sign(DOC_PARAMS, DOC_KEY, HMAC_SHA256) == \
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"


def test_sign_leaves_out_empty_values_and_the_sign_itself() -> None:
    params = {**DOC_PARAMS, "attach": "", "sign": "WHATEVER"}
    assert sign(params, DOC_KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    with pytest.raises(ValueError, match="sign_type"):
        sign(DOC_PARAMS, DOC_KEY, "SHA1")


def test_xml_round_trip_and_refusals() -> None:
    params = {"body": "a<b>&c]]>d", "total_fee": "1"}
    assert from_xml(to_xml(params)) == params
    cdata = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><n>1</n></xml>"
    assert from_xml(cdata) == {"return_code": "SUCCESS", "n": "1"}
    bomb = (b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><x>&b;</x></xml>')
    for bad in (bomb, b"<xml><a>1</a><a>2</a></xml>", b"<xml><a><b>1</b></a></xml>",
                b"<root><a>1</a></root>", b"not xml", b""):
        with pytest.raises(ValueError, match=r"XML|element|root"):
            from_xml(bad)


# --- payments --------------------------------------------------------------------------------

async def test_micropay_success_then_query(env: Env) -> None:
    before = await env.balance(RICH_OPENID)
    code = await env.code(RICH_OPENID)
    assert re.fullmatch(r"1[0-5]\d{16}", code)
    req = pay(1234, code)
    result = await env.client.barcode_pay(req)
    assert result.state == TradeState.SUCCESS
    assert result.amount == Money(1234)
    assert result.payer_id == RICH_OPENID
    assert result.channel_trade_no
    assert result.channel_trade_no.startswith("4200")
    assert result.paid_at is not None
    assert abs(result.paid_at - clock.now()) < timedelta(minutes=1)
    assert await env.balance(RICH_OPENID) == before - 1234

    queried = await env.client.query(req.order_id)
    assert (queried.state, queried.amount, queried.channel_trade_no) == \
        (TradeState.SUCCESS, Money(1234), result.channel_trade_no)
    # the same request again (a retry after a lost answer) is the same payment, not a second one
    again = await env.client.barcode_pay(req)
    assert (again.state, again.amount) == (TradeState.SUCCESS, Money(1234))
    assert await env.balance(RICH_OPENID) == before - 1234
    # a payer code is single use
    reused = await env.client.barcode_pay(pay(100, code))
    assert (reused.state, reused.error_code) == (TradeState.FAILED, "AUTH_CODE_INVALID")


async def test_micropay_signed_with_hmac_sha256(env: Env) -> None:
    client = env.v2(sign_type="HMAC-SHA256")
    result = await client.barcode_pay(pay(99, await env.code(RICH_OPENID)))
    assert (result.state, result.amount) == (TradeState.SUCCESS, Money(99))


async def test_userpaying_then_the_payer_confirms(env: Env) -> None:
    req = pay(5000, await env.code(PIN_OPENID))
    first = await env.client.barcode_pay(req)
    assert (first.state, first.error_code) == (TradeState.PAYING, "USERPAYING")
    waiting = await env.client.query(req.order_id)
    assert (waiting.state, waiting.raw["trade_state"]) == (TradeState.PAYING, "USERPAYING")
    assert waiting.amount is None

    resp = await env.http.post(f"{SB}/wallet/payers/{PIN_OPENID}/confirm",
                               json={"out_trade_no": req.order_id})
    assert resp.status_code == 200, resp.text
    paid = await env.client.query(req.order_id)
    assert (paid.state, paid.amount, paid.payer_id) == (TradeState.SUCCESS, Money(5000),
                                                        PIN_OPENID)


async def test_userpaying_never_confirmed_is_reversed(env: Env) -> None:
    before = await env.balance(PIN_OPENID)
    req = pay(700, await env.code(PIN_OPENID))
    assert (await env.client.barcode_pay(req)).state == TradeState.PAYING
    await env.client.cancel(req.order_id)
    closed = await env.client.query(req.order_id)
    assert (closed.state, closed.raw["trade_state"]) == (TradeState.CLOSED, "REVOKED")
    # the password arriving late pays nothing
    late = await env.http.post(f"{SB}/wallet/payers/{PIN_OPENID}/confirm", json={})
    assert late.status_code == 404
    assert await env.balance(PIN_OPENID) == before
    # reversing again is harmless; so is reversing an order WeChat never saw
    await env.client.cancel(req.order_id)
    await env.client.cancel(new_id("ord"))


async def test_reverse_retries_while_recall_is_y(env: Env) -> None:
    before = await env.balance(RICH_OPENID)
    req = pay(800, await env.code(RICH_OPENID))
    assert (await env.client.barcode_pay(req)).state == TradeState.SUCCESS
    resp = await env.http.post(f"{SB}/wallet/v2/faults", json={"reverse_recall": 2})
    assert resp.status_code == 200
    await env.client.cancel(req.order_id)  # attempts 1 and 2 answer recall=Y, 3 reverses
    assert (await env.client.query(req.order_id)).state == TradeState.CLOSED
    assert await env.balance(RICH_OPENID) == before  # a paid payment reversed is refunded

    other = pay(300, await env.code(RICH_OPENID))
    await env.client.barcode_pay(other)
    await env.http.post(f"{SB}/wallet/v2/faults", json={"reverse_recall": 5})
    with pytest.raises(ChannelUnavailable, match="recall=Y"):
        await env.client.cancel(other.order_id)  # 3 attempts, all recall=Y: outcome unknown
    assert (await env.client.query(other.order_id)).state == TradeState.SUCCESS
    bad = await env.http.post(f"{SB}/wallet/v2/faults", json={"reverse_recall": -1})
    assert bad.status_code == 400


async def test_notenough_is_a_failed_payment(env: Env) -> None:
    resp = await env.http.post(f"{SB}/wallet/payers", json={"balance_fen": 100})
    poor = resp.json()["payer_id"]
    req = pay(200, await env.code(poor))
    result = await env.client.barcode_pay(req)
    assert (result.state, result.error_code) == (TradeState.FAILED, "NOTENOUGH")
    assert result.error_message
    queried = await env.client.query(req.order_id)
    assert (queried.state, queried.error_code) == (TradeState.FAILED, "PAYERROR")
    assert await env.balance(poor) == 100


async def test_an_order_wechat_never_saw_is_not_found(env: Env) -> None:
    result = await env.client.query(new_id("ord"))
    assert (result.state, result.error_code) == (TradeState.NOT_FOUND, "ORDERNOTEXIST")


# --- the sandbox checks requests as WeChat does -----------------------------------------------

def _signed(wx: WechatSection, key: str, **fields: str) -> dict[str, str]:
    params = {"appid": wx.appid, "mch_id": wx.mchid, "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
              **fields}
    params["sign"] = sign(params, key, params.get("sign_type", MD5))
    return params


async def test_sandbox_rejects_a_bad_sign(env: Env) -> None:
    wx, key = env.settings.wechat, env.settings.wechat_v2.api_key
    code = await env.code(RICH_OPENID)
    order = {"body": "x", "out_trade_no": "T" + new_id("o")[-20:], "total_fee": "100",
             "spbill_create_ip": "10.0.0.1", "auth_code": code}
    tampered = {**_signed(wx, key, **order), "total_fee": "1"}  # changed after signing
    for params in (tampered, _signed(wx, "x" * 32, **order),  # the wrong key
                   {**_signed(wx, key, **order), "sign_type": HMAC_SHA256},  # MD5 sign, claims HMAC
                   {k: v for k, v in _signed(wx, key, **order).items() if k != "sign"}):
        doc = await env.post_xml("/pay/micropay", params)
        assert doc["return_code"] == "FAIL"
        assert doc["return_msg"] in ("签名错误", "缺少参数sign")
        assert "sign" not in doc
        assert "result_code" not in doc
    assert (await env.http.get(f"{SB}/wallet/orders/{order['out_trade_no']}")).status_code == 404
    # the code was not consumed by the refused requests: a properly signed one pays
    doc = await env.post_xml("/pay/micropay", _signed(wx, key, **order))
    assert (doc["return_code"], doc["result_code"], doc["total_fee"]) == ("SUCCESS", "SUCCESS",
                                                                          "100")
    assert from_xml(to_xml(doc)) == doc
    assert sign(doc, key) == doc["sign"]

    garbage = await env.http.post(f"{SB}/pay/micropay", content=b"<xml><a>")
    assert from_xml(garbage.content) == {"return_code": "FAIL", "return_msg": "XML格式错误"}
    other_mch = await env.post_xml("/pay/orderquery", {
        **_signed(WechatSection(mchid="1900000002"), key, out_trade_no=order["out_trade_no"])})
    assert (other_mch["result_code"], other_mch["err_code"]) == ("FAIL", "MCHID_NOT_EXIST")


async def test_adapter_with_the_wrong_key_never_calls_it_failed(env: Env) -> None:
    client = env.v2(api_key="y" * 32)
    with pytest.raises(ChannelUnavailable, match="签名错误"):
        await client.barcode_pay(pay(100, await env.code(RICH_OPENID)))


async def test_adapter_rejects_a_tampered_answer(env: Env) -> None:
    def lower_amount(body: bytes) -> bytes:
        return re.sub(rb"<total_fee>\d+</total_fee>", b"<total_fee>1</total_fee>", body)

    inner = httpx.ASGITransport(app=env.app)
    mitm = httpx.AsyncClient(transport=Tamper(inner, "/pay/micropay", lower_amount),
                             base_url="http://testserver")
    try:
        client = WechatV2Codepay(env.settings, mitm)
        req = pay(4321, await env.code(RICH_OPENID))
        with pytest.raises(ChannelUnavailable, match="sign does not verify"):
            await client.barcode_pay(req)
        # it was paid: which is why an unverifiable answer is UNKNOWN, never FAILED
        assert (await env.client.query(req.order_id)).amount == Money(4321)
    finally:
        await mitm.aclose()


async def test_5xx_garbled_and_slow_answers_are_unavailable(env: Env) -> None:
    code = await env.code(RICH_OPENID)
    for mode in ("5xx", "garbled"):
        await env.http.post(f"{SB}/wallet/faults", json={"mode": mode})
        with pytest.raises(ChannelUnavailable):
            await env.client.query(new_id("ord"))
    req = pay(100, code)
    with pytest.raises(ChannelUnavailable):  # garbled: it paid, the answer is unreadable
        await env.client.barcode_pay(req)
    await env.http.post(f"{SB}/wallet/faults", json={"mode": "slow", "delay_ms": 1000})
    fast = WechatV2Codepay(env.settings, env.http, wx=WechatSection(timeout_seconds=0.2))
    with pytest.raises(ChannelUnavailable, match="Timeout"):
        await fast.query(req.order_id)
    await env.http.post(f"{SB}/wallet/faults", json={"mode": "none"})
    assert (await env.client.query(req.order_id)).state == TradeState.SUCCESS


# --- one sandbox, two APIs -------------------------------------------------------------------

async def test_v2_and_v3_share_payers_codes_and_orders(env: Env) -> None:
    v3 = build_channel(env.settings, env.http)
    req = pay(1000, await env.code(RICH_OPENID))
    assert (await env.client.barcode_pay(req)).state == TradeState.SUCCESS
    assert (await v3.query(req.order_id)).amount == Money(1000)  # paid via v2, seen by v3

    refund = await v3.refund(RefundRequest(order_id=req.order_id, refund_id="R" + req.order_id,
                                           amount=Money(400), order_amount=Money(1000),
                                           reason="退货", notify_url="http://testserver/cb"))
    assert refund.state in (RefundState.PROCESSING, RefundState.SUCCESS)
    state = RefundState.PROCESSING
    for _ in range(40):  # the sandbox completes refunds in the background
        state = (await env.client.refund_query(req.order_id, "R" + req.order_id)).state
        if state == RefundState.SUCCESS:
            break
        await asyncio.sleep(0.05)
    assert state == RefundState.SUCCESS
    assert (await env.client.query(req.order_id)).raw["trade_state"] == "REFUND"

    # a v3 payer-code payment (codepay) is reversed through v2
    v3_req = pay(200, await env.code(PIN_OPENID))
    assert (await v3.barcode_pay(v3_req)).state == TradeState.PAYING
    await env.client.cancel(v3_req.order_id)
    assert (await v3.query(v3_req.order_id)).state == TradeState.CLOSED


# --- the service-provider form: sub_mch_id ---------------------------------------------------

async def test_micropay_for_a_sub_merchant_is_checked_like_v3(env: Env) -> None:
    """sub_mch_id must name a sub-merchant whose applyment WeChat completed and has not
    suspended (MCHID_NOT_EXIST / NO_AUTH, raised as SubMerchantRefused, nothing charged); a
    completed one pays, and its order is found only under its sub_mch_id."""
    from fulema.sandbox.wechat.applyment import Applyment

    sub = "1900000777"
    applyment = Applyment("V2SUB0001", 777, "测试特约商户")
    assert env.sb.applyments is not None
    env.sb.applyments.by_code[applyment.business_code] = applyment
    before = await env.balance(RICH_OPENID)
    with pytest.raises(SubMerchantRefused) as refused:  # still under review
        await env.client.barcode_pay(replace(pay(100, await env.code(RICH_OPENID)),
                                             sub_merchant_id=sub))
    assert refused.value.code == "MCHID_NOT_EXIST"
    applyment.state, applyment.sub_mchid = "APPLYMENT_STATE_FINISHED", sub
    applyment.suspended = True
    with pytest.raises(SubMerchantRefused) as refused:
        await env.client.barcode_pay(replace(pay(100, await env.code(RICH_OPENID)),
                                             sub_merchant_id=sub))
    assert refused.value.code == "NO_AUTH"
    assert await env.balance(RICH_OPENID) == before

    applyment.suspended = False
    req = replace(pay(100, await env.code(RICH_OPENID)), sub_merchant_id=sub)
    paid = await env.client.barcode_pay(req)
    assert paid.state == TradeState.SUCCESS
    assert env.sb.orders[req.order_id].sub_mchid == sub
    assert (await env.client.query(req.order_id, sub_merchant_id=sub)).state == \
        TradeState.SUCCESS
    assert (await env.client.query(req.order_id)).state == TradeState.NOT_FOUND  # not ours
