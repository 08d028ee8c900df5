"""Conformance of the UnionPay, e-CNY and bankpay adapters against their independent sandboxes.

Same shape as tests/channels/test_conformance.py (WeChat, Alipay): each adapter, built by the
registry as production builds it (`build_channels`: breaker, timeouts), talks to its sandbox
composed as production composes it (`fulema.sandboxes.sandbox_app`), over HTTP only. Every
channel must: create a QR order a payer's app can pay; report the payment by callback and by
query; close an unpaid order and refuse to close a paid one; refund; list the day's bookings in
its statement; and, while the channel answers 5xx or garbage, report UNKNOWN (or raise
ChannelUnavailable), never FAILED.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from fulema.channels.base import (
    CallbackKind,
    CallbackResult,
    Channel,
    ChannelError,
    ChannelUnavailable,
    CreatePaymentRequest,
    RefundRequest,
    RefundState,
    TradeState,
)
from fulema.channels.registry import build_channels
from fulema.channels.unionpay.bill import parse_zm
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.sandboxes import sandbox_app

CHANNELS = ["unionpay", "ecny", "bankpay"]
CST = timezone(timedelta(hours=8))  # all three book the day in Beijing time
PAYER = {"unionpay": "up_rich", "ecny": "payer_rich", "bankpay": "payer_rich"}
# What a query says about an unpaid QR order after close: e-CNY and the bank close it;
# UnionPay has no close for an order QR (it lapses at payTimeout), and an unscanned QR is no
# transaction at UnionPay, so the query finds none.
CLOSED_STATES = {"unionpay": {TradeState.NOT_FOUND, TradeState.PAYING},
                 "ecny": {TradeState.CLOSED}, "bankpay": {TradeState.CLOSED}}


@dataclass
class Env:
    name: str
    settings: Settings
    http: httpx.AsyncClient
    channel: Channel
    sandbox: object
    callbacks: list[CallbackResult] = field(default_factory=list)
    rejected: list[bytes] = field(default_factory=list)

    async def wallet(self, path: str, body: dict[str, object]) -> httpx.Response:
        return await self.http.post(f"/sandbox/{self.name}/wallet{path}", json=body)

    async def callback(self, kind: CallbackKind, order_id: str) -> CallbackResult:
        for _ in range(300):
            for cb in self.callbacks:
                if cb.kind == kind and cb.order_id == order_id:
                    return cb
            await asyncio.sleep(0.01)
        raise AssertionError(f"no verified {kind} callback for {order_id}: {self.rejected}")


@pytest.fixture(params=CHANNELS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    name: str = request.param
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path,
                        enabled_channels=[name])
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    sandbox = sandbox_app(name, settings, http)
    app.mount(f"/sandbox/{name}", sandbox)
    e = Env(name, settings, http, build_channels(settings, http).get(name),
            sandbox.state.sandbox)

    @app.post(f"/callbacks/{name}")
    async def callback(req: Request) -> Response:
        body = await req.body()
        try:
            e.callbacks.append(await e.channel.parse_callback(dict(req.headers), body))
            ack = e.channel.callback_ack(True)
        except FulemaError:
            e.rejected.append(body)
            ack = e.channel.callback_ack(False)
        return Response(ack.body, ack.status_code, media_type=ack.media_type)

    yield e
    tasks = list(getattr(e.sandbox, "tasks", ()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await http.aclose()


def order(env: Env, amount: int = 1234) -> CreatePaymentRequest:
    return CreatePaymentRequest(order_id=new_id("ord"), amount=Money(amount), subject="Noodles",
                                way_code=WayCode.QR_DYNAMIC,
                                notify_url=env.settings.callback_url(env.name),
                                expire_at=clock.now() + timedelta(minutes=15))


async def paid(env: Env, amount: int = 1234) -> CreatePaymentRequest:
    req = order(env, amount)
    created = await env.channel.create(req)
    assert created.state == TradeState.PAYING
    assert created.code_url
    scan = await env.wallet("/scan", {"code_url": created.code_url, "payer_id": PAYER[env.name]})
    assert scan.status_code == 200, scan.text
    return req


async def faults(env: Env, mode: str) -> None:
    assert (await env.wallet("/faults", {"mode": mode})).status_code == 200


def statement_refs(env: Env, data: bytes) -> list[str]:
    """Our numbers (order, refund) of each booking in the statement, read as a reconciler
    reads the file. UnionPay books a refund under the refund's own orderId."""
    if env.name == "unionpay":
        return [row.order_id.replace("Z", "_") for row in parse_zm(data)]
    return [row["out_refund_no"] or row["out_trade_no"]
            for row in csv.DictReader(io.StringIO(data.decode()))]


async def test_create_pay_callback_query(env: Env) -> None:
    req = await paid(env, 1234)
    cb = await env.callback(CallbackKind.PAYMENT, req.order_id)
    assert cb.trade is not None
    assert cb.trade.state == TradeState.SUCCESS
    assert cb.trade.amount == Money(1234)
    found = await env.channel.query(req.order_id)
    assert found.state == TradeState.SUCCESS
    assert found.amount == Money(1234)
    assert found.channel_trade_no


async def test_unknown_order_is_not_found_or_refused(env: Env) -> None:
    try:
        found = await env.channel.query(new_id("ord"))
    except ChannelError:
        return  # a documented refusal is an answer too
    assert found.state == TradeState.NOT_FOUND


async def test_close_unpaid_and_refuse_close_paid(env: Env) -> None:
    req = order(env)
    await env.channel.create(req)
    await env.channel.close(req.order_id)
    assert (await env.channel.query(req.order_id)).state in CLOSED_STATES[env.name]

    done = await paid(env)
    with pytest.raises(ChannelError) as refused:
        await env.channel.close(done.order_id)
    assert refused.value.code == "ORDER_PAID"
    assert (await env.channel.query(done.order_id)).state == TradeState.SUCCESS


async def test_refund_then_statement_lists_the_day(env: Env) -> None:
    req = await paid(env, 5000)
    refund = RefundRequest(order_id=req.order_id, refund_id=new_id("ref"), amount=Money(2000),
                           order_amount=Money(5000), reason="damaged",
                           notify_url=env.settings.callback_url(env.name))
    result = await env.channel.refund(refund)
    assert result.state in (RefundState.SUCCESS, RefundState.PROCESSING)
    for _ in range(100):
        result = await env.channel.refund_query(req.order_id, refund.refund_id)
        if result.state != RefundState.PROCESSING:
            break
        await asyncio.sleep(0.02)
    assert result.state == RefundState.SUCCESS
    cb = await env.callback(CallbackKind.REFUND, req.order_id)
    assert cb.refund_id == refund.refund_id
    assert cb.refund is not None
    assert cb.refund.state == RefundState.SUCCESS
    again = await env.channel.refund(refund)  # the same refund again: the first one's answer
    assert again.state == RefundState.SUCCESS

    day = clock.now().astimezone(CST).date()
    booked = statement_refs(env, await env.channel.download_statement(day))
    assert booked.count(req.order_id) == 1  # the payment
    assert booked.count(refund.refund_id) == 1  # and its refund, once


async def test_outage_is_unknown_never_failed(env: Env) -> None:
    done = await paid(env)
    for mode in ("5xx", "garbled"):
        await faults(env, mode)
        try:
            found = await env.channel.query(done.order_id)
        except ChannelUnavailable:
            pass
        else:
            assert found.state == TradeState.UNKNOWN, mode
        with pytest.raises(ChannelUnavailable):
            await env.channel.create(order(env))
        refund = RefundRequest(order_id=done.order_id, refund_id=new_id("ref"),
                               amount=Money(1), order_amount=Money(1234), reason="x",
                               notify_url=env.settings.callback_url(env.name))
        try:
            answer = await env.channel.refund(refund)
        except ChannelUnavailable:
            pass
        else:
            assert answer.state not in (RefundState.FAILED,), mode
    await faults(env, "none")
    assert (await env.channel.query(done.order_id)).state == TradeState.SUCCESS

