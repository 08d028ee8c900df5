"""A payer refused by the channel's risk control, or over the payer's limit, fails the payer-code
payment at once with the channel's own code, and nobody is charged.

Each sandbox plays such a payer (`POST /wallet/payers {"risk_refused": true}` or
`{"limit_fen": n}`); the adapters must read the channel's code as FAILED (not UNKNOWN: the
payment would otherwise be polled and then reversed for nothing, and the cashier would wait).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.payments.conftest import Platform
from tests.payments.test_every_channel import enable

BALANCE = 1_000_000
LIMIT = 500

CASES = [
    ("wechat", "risk", "ACCOUNT_ERROR"),
    ("wechat", "limit", "RULE_LIMIT"),
    ("wechat_v2", "risk", "TRADE_ERROR"),
    ("wechat_v2", "limit", "TRADE_ERROR"),
    ("alipay", "risk", "ACQ.PAYMENT_REQUEST_HAS_RISK"),
    ("alipay", "limit", "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR"),
    ("unionpay", "risk", "38"),  # 银联风险受限
    ("unionpay", "limit", "33"),  # 交易金额超限
    ("ecny", "risk", "WALLET_RISK_REJECTED"),
    ("ecny", "limit", "WALLET_SINGLE_LIMIT_EXCEEDED"),
    ("bankpay", "risk", "PAYER_RISK_REJECTED"),
    ("bankpay", "limit", "PAYER_LIMIT_EXCEEDED"),
]


def use_channel(p: Platform, name: str) -> str:
    """Enable the channel; `wechat_v2` is WeChat with payer codes over the v2 XML API."""
    if name != "wechat_v2":
        enable(p, name)
        return name
    from fulema.channels.registry import build_channels

    settings = p.settings.model_copy(update={
        "enabled_channels": ["wechat"],
        "wechat_v2": p.settings.wechat_v2.model_copy(update={"enabled": True})})
    p.app.state.channels.channels.update(build_channels(settings, p.http).channels)
    return "wechat"


async def new_payer(p: Platform, channel: str, controls: dict[str, Any]) -> str:
    resp = await p.wallet(channel, "/payers", {"balance_fen": BALANCE, **controls})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["payer_id"])


async def pay_with_code(p: Platform, channel: str, payer: str, out_trade_no: str,
                        amount: int) -> dict[str, Any]:
    code = (await p.wallet(channel, f"/payers/{payer}/code")).json()
    auth_code = code.get("auth_code") or code["data"]["auth_code"]
    resp = await p.order(out_trade_no=out_trade_no, way_code="BARCODE", channel=None,
                         auth_code=auth_code, amount=amount)
    assert resp.status_code == 200, resp.text
    order: dict[str, Any] = resp.json()
    assert order["channel"] == channel
    return order


async def balance(p: Platform, channel: str, payer: str) -> int:
    return int((await p.http.get(f"/sandbox/{channel}/wallet/payers/{payer}")).json()
               ["balance_fen"])


@pytest.mark.parametrize(("name", "reason", "code"), CASES)
async def test_payer_refused_by_the_channel_fails_with_its_code(
        platform: Platform, name: str, reason: str,
        code: str) -> None:
    p = platform
    channel = use_channel(p, name)
    controls = {"risk_refused": True} if reason == "risk" else {"limit_fen": LIMIT}
    payer = await new_payer(p, channel, controls)

    order = await pay_with_code(p, channel, payer, f"REF{name[:3].upper()}{reason[:3].upper()}1",
                                LIMIT + 380)
    assert order["status"] == "FAILED", order
    assert order["failure_code"] == code
    assert await balance(p, channel, payer) == BALANCE  # nobody was charged

    # The same payer within the limit pays; a risky payer stays refused whatever the amount.
    small = await pay_with_code(p, channel, payer, f"REF{name[:3].upper()}{reason[:3].upper()}2",
                                LIMIT)
    if reason == "limit":
        assert small["status"] == "SUCCESS", small
        assert await balance(p, channel, payer) == BALANCE - LIMIT
    else:
        assert small["status"] == "FAILED", small
        assert small["failure_code"] == code


@pytest.mark.parametrize("channel", ["wechat", "alipay", "unionpay", "ecny", "bankpay"])
async def test_controls_that_make_no_sense_are_refused(platform: Platform, channel: str) -> None:
    enable(platform, channel)
    for bad in ({"risk_refused": "yes"}, {"limit_fen": -1}):
        resp = await platform.wallet(channel, "/payers", {"balance_fen": 100, **bad})
        assert resp.status_code in (400, 422), (bad, resp.text)
