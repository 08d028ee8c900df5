"""An order is CLOSED here only when the channel has closed it too (or never had it): otherwise
the merchant would be told "closed" while the payer can still pay, and money would arrive for
an order nobody expects. WeChat's sandbox keeps an expired order NOTPAY until it is closed, as
WeChat does, so a CLOSED there proves our close call reached the channel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from fulema.channels.base import ChannelError, TradeState
from fulema.core.clock import clock
from tests.payments.conftest import Platform


async def _channel_state(platform: Platform, channel: str, order_id: str) -> TradeState:
    result = await platform.app.state.channels.get(channel).query(order_id)
    state: TradeState = result.state
    return state


async def test_a_close_the_channel_refuses_leaves_the_order_payable_and_open(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    order = (await platform.order(out_trade_no="CLOSEREF01", amount=300)).json()
    channel = platform.app.state.channels.get("bankpay")

    async def refuse(order_id: str, *, sub_merchant_id: str | None = None) -> Any:
        raise ChannelError("SYSTEM_BUSY", "try again later")

    monkeypatch.setattr(channel, "close", refuse)
    refused = await platform.call("POST", f"/api/v1/orders/{order['order_id']}/close")

    assert refused.status_code == 502
    assert refused.json()["code"] == "CHANNEL_ERROR"
    assert "SYSTEM_BUSY" in refused.json()["message"]
    assert (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()[
        "status"] == "PAYING"
    # the payer pays meanwhile: the money is the merchant's, not lost in a CLOSED order
    paid = await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                                      "payer_id": "payer_rich"})
    assert paid.status_code == 200
    await platform.wait_status(order["order_id"], "SUCCESS")


async def test_a_close_refused_because_the_channel_already_closed_it_is_a_close(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    order = (await platform.order(out_trade_no="CLOSEREF02", amount=300)).json()
    channel = platform.app.state.channels.get("bankpay")
    real_close = channel.close

    async def close_then_complain(order_id: str, *, sub_merchant_id: str | None = None) -> Any:
        await real_close(order_id, sub_merchant_id=sub_merchant_id)
        raise ChannelError("ORDER_CLOSED", "the order is already closed")

    monkeypatch.setattr(channel, "close", close_then_complain)
    resp = await platform.call("POST", f"/api/v1/orders/{order['order_id']}/close")

    assert resp.status_code == 200
    assert resp.json()["status"] == "CLOSED"


async def test_expired_wechat_order_is_closed_at_wechat(platform: Platform) -> None:
    clock.freeze()  # before the order: a slow create must not eat into the 60 seconds
    order = (await platform.order(out_trade_no="EXPIREWX01", amount=300, channel="wechat",
                                  expire_seconds=60)).json()
    assert order["status"] == "PAYING"
    clock.advance(timedelta(seconds=59))
    await platform.settle_background(rounds=1)
    assert await _channel_state(platform, "wechat", order["order_id"]) == TradeState.PAYING

    clock.advance(timedelta(seconds=2))
    await platform.settle_background(rounds=1)

    view = (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "CLOSED"
    assert await _channel_state(platform, "wechat", order["order_id"]) == TradeState.CLOSED


async def test_expiry_waits_while_the_channel_refuses_to_close(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    order = (await platform.order(out_trade_no="EXPIREWX02", amount=300, channel="wechat",
                                  expire_seconds=60)).json()
    channel = platform.app.state.channels.get("wechat")
    real_close = channel.close

    async def busy(order_id: str, *, sub_merchant_id: str | None = None) -> Any:
        raise ChannelError("SYSTEM_ERROR", "系统错误")

    monkeypatch.setattr(channel, "close", busy)
    clock.freeze()
    clock.advance(timedelta(seconds=61))
    await platform.settle_background(rounds=1)
    assert (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()[
        "status"] == "PAYING"

    monkeypatch.setattr(channel, "close", real_close)
    clock.advance(timedelta(seconds=31))  # the job's claim on the order lapses
    await platform.settle_background(rounds=1)

    assert (await platform.call("GET", f"/api/v1/orders/{order['order_id']}")).json()[
        "status"] == "CLOSED"
    assert await _channel_state(platform, "wechat", order["order_id"]) == TradeState.CLOSED
