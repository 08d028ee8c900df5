"""Every channel adapter against its own sandbox, one contract for all five.

The adapters come from `fulema.channels.registry.build_channels` (wrapped as the platform
wraps them: breaker, timeouts) and the sandboxes from `fulema.sandboxes.sandbox_app`, mounted
where the platform mounts them. Each channel must: create a dynamic-QR payment the payer's
wallet can pay; report it paid on query and in a verified callback; close an unpaid order;
refund (now or after a query); hand over a statement with the day's payment; and, when its
sandbox answers 5xx, report UNKNOWN or ChannelUnavailable, never FAILED.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from fulema.channels.base import (
    CallbackKind,
    CallbackResult,
    Channel,
    ChannelUnavailable,
    CreatePaymentRequest,
    RefundRequest,
    RefundState,
    TradeState,
)
from fulema.channels.registry import build_channels
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.sandboxes import sandbox_app

CHANNELS = ["wechat", "alipay", "unionpay", "ecny", "bankpay"]
RICH = {"wechat": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "alipay": "2088102146225135",
        "unionpay": "up_rich", "ecny": "payer_rich", "bankpay": "payer_rich"}
BASE = "http://testserver"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")  # keys are made once for the module


@dataclass
class Env:
    name: str
    channel: Channel
    http: httpx.AsyncClient
    sandbox: Any
    callbacks: list[CallbackResult] = field(default_factory=list)

    async def wallet(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(f"{BASE}/sandbox/{self.name}/wallet{path}", json=body)

    def request(self, amount: int = 1200) -> CreatePaymentRequest:
        return CreatePaymentRequest(
            order_id=new_id("ord"), amount=Money(amount), subject="一致性测试",
            way_code=WayCode.QR_DYNAMIC, notify_url=f"{BASE}/callbacks/{self.name}",
            expire_at=clock.now() + timedelta(minutes=15))


@pytest.fixture(params=CHANNELS)
async def env(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[Env]:
    name: str = request.param
    settings = Settings(public_base_url=BASE, data_dir=data_dir, enabled_channels=[name])
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    sandbox = sandbox_app(name, settings, http)
    app.mount(f"/sandbox/{name}", sandbox)
    e = Env(name, build_channels(settings, http).get(name), http, sandbox.state.sandbox)

    @app.post(f"/callbacks/{name}")
    async def callback(req: Request) -> Response:
        try:
            e.callbacks.append(await e.channel.parse_callback(dict(req.headers), await req.body()))
            ack = e.channel.callback_ack(True)
        except Exception:
            ack = e.channel.callback_ack(False)
        return Response(ack.body, ack.status_code, media_type=ack.media_type)

    yield e
    for task in list(getattr(e.sandbox, "tasks", ())):
        task.cancel()
    await http.aclose()


async def until(check: Any, rounds: int = 100) -> None:
    for _ in range(rounds):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def paid(e: Env, amount: int = 1200) -> CreatePaymentRequest:
    req = e.request(amount)
    made = await e.channel.create(req)
    assert made.state in (TradeState.PAYING, TradeState.UNKNOWN), made
    assert made.code_url
    scanned = await e.wallet("/scan", {"code_url": made.code_url, "payer_id": RICH[e.name]})
    assert scanned.status_code == 200, scanned.text
    return req


def _plain(data: bytes) -> bytes:
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return b"".join(zf.read(n) for n in zf.namelist())
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    return data


async def test_create_pay_query_callback(env: Env) -> None:
    req = await paid(env)
    result = await env.channel.query(req.order_id)
    assert result.state == TradeState.SUCCESS, result
    assert result.amount == req.amount
    await until(lambda: any(c.order_id == req.order_id for c in env.callbacks))
    notice = next(c for c in env.callbacks if c.order_id == req.order_id)
    assert notice.kind == CallbackKind.PAYMENT
    assert notice.trade is not None
    assert notice.trade.state == TradeState.SUCCESS


async def test_close_an_unpaid_order(env: Env) -> None:
    req = env.request(500)
    made = await env.channel.create(req)
    await env.channel.close(req.order_id)
    # UnionPay has no trade until a QR is scanned: a closed, never-scanned QR is not found
    assert (await env.channel.query(req.order_id)).state in (TradeState.CLOSED,
                                                             TradeState.NOT_FOUND)
    if env.name == "unionpay":
        return  # a UnionPay QR cannot be withdrawn before it is scanned (a later payment is a
        # late payment the platform refunds): its sandbox still lets the payer pay it
    scanned = await env.wallet("/scan", {"code_url": made.code_url, "payer_id": RICH[env.name]})
    assert scanned.status_code >= 400, scanned.text  # the payer can no longer pay it


async def test_refund_then_query(env: Env) -> None:
    req = await paid(env, 1500)
    refund_id = new_id("rf")
    result = await env.channel.refund(RefundRequest(
        order_id=req.order_id, refund_id=refund_id, amount=Money(400),
        order_amount=req.amount, reason="退一部分", notify_url=f"{BASE}/callbacks/{env.name}"))
    assert result.state in (RefundState.SUCCESS, RefundState.PROCESSING), result
    for _ in range(50):
        result = await env.channel.refund_query(req.order_id, refund_id)
        if result.state == RefundState.SUCCESS:
            break
        await asyncio.sleep(0.02)
    assert result.state == RefundState.SUCCESS


async def test_statement_has_the_days_payment(env: Env) -> None:
    req = await paid(env, 880)
    trade = await env.channel.query(req.order_id)
    day = (clock.now() + timedelta(hours=8)).date()  # every channel's day is Beijing's
    plain = _plain(await env.channel.download_statement(day))
    refs = [req.order_id, trade.channel_trade_no or req.order_id]  # UnionPay lists its queryId
    assert any(ref.encode() in plain for ref in refs), plain[:300]


async def test_an_outage_is_never_a_failure(env: Env) -> None:
    req = await paid(env, 300)
    assert (await env.wallet("/faults", {"mode": "5xx"})).status_code == 200
    try:
        result = await env.channel.query(req.order_id)
        assert result.state == TradeState.UNKNOWN
    except ChannelUnavailable:
        pass
    with pytest.raises(ChannelUnavailable):
        await env.channel.create(env.request(100))
    await env.wallet("/faults", {"mode": "none"})
    assert (await env.channel.query(req.order_id)).state == TradeState.SUCCESS
