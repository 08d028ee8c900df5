"""A payer-code payment whose payer must enter a password, through the platform, per channel:
the order answers PAYING, the platform polls the channel about every 5 s, and either the payer
confirms in the channel's wallet (SUCCESS, one notification) or, after about 30 s, the platform
reverses the payment at the channel (CLOSED here, reversed/closed there, nobody charged).

WeChat is run twice: API v3 codepay (trade_state USERPAYING) and API v2 micropay (err_code
USERPAYING), the latter chosen the way FULEMA_WECHAT_V2_ENABLED chooses it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from fulema.channels.base import TradeState
from fulema.channels.registry import build_channels
from fulema.channels.routing import GuardedChannel
from fulema.channels.wechat.adapter import WechatChannel
from fulema.core.clock import clock
from fulema.payments.models import Order
from tests.payments.conftest import Platform
from tests.payments.test_every_channel import enable


@dataclass(frozen=True)
class Case:
    name: str  # the test id
    channel: str  # the platform's channel (and its sandbox's mount)
    pin_payer: str  # a sandbox payer who must enter a password for payer-code payments
    # the sandbox's wallet order view, in the channel's own words, says "reversed / cancelled"
    reversed_there: Callable[[dict[str, Any]], bool]


WECHAT_PIN = "oUpF8uPwd8RequiredVm2kZs4Lx1"
CASES = [
    Case("wechat_v3_codepay", "wechat", WECHAT_PIN, lambda v: v["trade_state"] == "REVOKED"),
    Case("wechat_v2_micropay", "wechat", WECHAT_PIN, lambda v: v["trade_state"] == "REVOKED"),
    Case("alipay", "alipay", "2088102146225137",  # alipay.trade.cancel of an unpaid trade
         lambda v: v["trade_status"] == "TRADE_CLOSED" and v["cancelled"] is True),
    Case("unionpay", "unionpay", "up_pin",  # 45: 原交易已被成功退货或已被成功撤销
         lambda v: v["origRespCode"] == "45" and v["paid"] is False),
    Case("ecny", "ecny", "payer_pin", lambda v: v["trade_status"] == "REVOKED"),
]


def data(resp: Any) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()
    inner = body.get("data")
    return inner if isinstance(inner, dict) else body


def setup(p: Platform, case: Case) -> None:
    enable(p, case.channel)
    if case.name != "wechat_v2_micropay":
        return
    # The wechat channel again, built as FULEMA_WECHAT_V2_ENABLED=true builds it: payer codes
    # go through v2 micropay / orderquery / reverse on the same sandbox host.
    v2 = p.settings.wechat_v2.model_copy(update={"enabled": True, "reverse_retry_seconds": 0})
    settings = p.settings.model_copy(update={"enabled_channels": ["wechat"], "wechat_v2": v2})
    p.app.state.channels.channels.update(build_channels(settings, p.http).channels)
    guarded = p.app.state.channels.get("wechat")
    assert isinstance(guarded, GuardedChannel)
    inner = guarded.endpoints[0].channel
    assert isinstance(inner, WechatChannel)
    assert inner.v2 is not None


async def balance(p: Platform, case: Case) -> int:
    resp = await p.http.get(f"/sandbox/{case.channel}/wallet/payers/{case.pin_payer}")
    assert resp.status_code == 200, resp.text
    return int(data(resp)["balance_fen"])


async def pay_with_code(p: Platform, case: Case, out_trade_no: str) -> dict[str, Any]:
    code = data(await p.wallet(case.channel, f"/payers/{case.pin_payer}/code"))["auth_code"]
    resp = await p.order(out_trade_no=out_trade_no, way_code="BARCODE", auth_code=code,
                         channel=None, amount=880)
    assert resp.status_code == 200, resp.text
    order: dict[str, Any] = resp.json()
    assert order["channel"] == case.channel
    assert order["status"] == "PAYING", order
    return order


async def status(p: Platform, order_id: str) -> str:
    """The order's row as the platform keeps it (no query to the channel on the way)."""
    async with p.db.transaction() as s:
        row = await s.get(Order, order_id)
        assert row is not None
        return str(row.status)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_password_payer_is_polled_until_confirmed(
        platform: Platform, case: Case) -> None:
    p = platform
    setup(p, case)
    before = await balance(p, case)
    order = await pay_with_code(p, case, f"PIN{case.name.upper()[:8]}1")
    clock.freeze()
    clock.advance(timedelta(seconds=5))
    await p.settle_background(rounds=1)  # the first poll: still entering the password
    assert await status(p, order["order_id"]) == "PAYING"
    assert await balance(p, case) == before

    confirm = await p.wallet(case.channel, f"/payers/{case.pin_payer}/confirm", {})
    assert confirm.status_code == 200, confirm.text
    clock.advance(timedelta(seconds=5))
    await p.settle_background(rounds=1)  # the next poll sees the payment
    assert await status(p, order["order_id"]) == "SUCCESS"
    for _ in range(3):  # the notification, and time for any (wrong) second one
        clock.advance(timedelta(seconds=16))
        await p.settle_background(rounds=2)
    notes = [n["json"] for n in p.receiver.received
             if n["json"]["data"].get("order_id") == order["order_id"]]
    assert len(notes) == 1, p.receiver.received
    assert notes[0]["type"] == "payment.succeeded", notes
    assert notes[0]["data"]["status"] == "SUCCESS", notes
    assert await balance(p, case) == before - 880


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_password_never_entered_is_reversed_at_the_channel(
        platform: Platform, case: Case) -> None:
    p = platform
    setup(p, case)
    before = await balance(p, case)
    order = await pay_with_code(p, case, f"PIN{case.name.upper()[:8]}2")
    clock.freeze()
    for _ in range(5):  # polled every 5 s; at 25 s the payer may still enter the password
        clock.advance(timedelta(seconds=5))
        await p.settle_background(rounds=1)
        assert await status(p, order["order_id"]) == "PAYING"
    for _ in range(2):  # past ~30 s the platform gives up and reverses at the channel
        clock.advance(timedelta(seconds=5))
        await p.settle_background(rounds=1)
    assert await status(p, order["order_id"]) in {"CLOSED", "FAILED"}

    # The channel itself has it reversed (well before its own password timeout of >= 60 s),
    # through the adapter and in the sandbox's wallet view, and the payer kept the money.
    result = await p.app.state.channels.get(case.channel).query(order["order_id"])
    assert result.state == TradeState.CLOSED, result
    if case.name == "wechat_v2_micropay":
        assert result.raw.get("return_code") == "SUCCESS", result.raw  # v2 orderquery's XML
    elif case.channel == "wechat":
        assert "return_code" not in result.raw, result.raw  # v3's JSON transaction
    view = data(await p.http.get(f"/sandbox/{case.channel}/wallet/orders/{order['order_id']}"))
    assert case.reversed_there(view), view
    assert await balance(p, case) == before
