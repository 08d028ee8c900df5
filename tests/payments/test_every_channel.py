"""Every channel through the platform: a dynamic QR paid in the channel's own wallet, a payer
code detected from its shape, and a partial refund, all over the channel's real protocol."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fulema.core.clock import clock
from tests.payments.conftest import Platform

RICH = {"wechat": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "alipay": "2088102146225135",
        "unionpay": "up_rich", "ecny": "payer_rich", "bankpay": "payer_rich"}
ALL = ["wechat", "alipay", "unionpay", "ecny", "bankpay"]


def enable(p: Platform, channel: str) -> None:
    """The platform fixture enables wechat and bankpay (RSA keys cost a second each); the
    other channels are built and mounted the same way the app does it."""
    from fulema.channels.registry import build_channels
    from fulema.sandboxes import build_sandboxes

    if channel in p.app.state.channels.channels:
        return
    settings = p.settings.model_copy(update={"enabled_channels": [channel]})
    p.app.state.channels.channels.update(build_channels(settings, p.http).channels)
    for name, sandbox in build_sandboxes(settings, p.http).items():
        p.app.mount(f"/sandbox/{name}", sandbox)


@pytest.mark.parametrize("channel", ALL)
async def test_dynamic_qr_paid_then_partly_refunded(platform: Platform, channel: str) -> None:
    p = platform
    enable(p, channel)
    order = (await p.order(out_trade_no=f"ALL{channel.upper()}01", channel=channel,
                           amount=1250)).json()
    assert order["status"] == "PAYING", order
    assert order["code_url"]
    paid = await p.wallet(channel, "/scan", {"code_url": order["code_url"],
                                             "payer_id": RICH[channel]})
    assert paid.status_code == 200, paid.text
    view = await p.wait_status(order["order_id"], "SUCCESS")
    assert view["amount"] == 1250

    refund = (await p.call("POST", f"/api/v1/orders/{order['order_id']}/refunds",
                           {"out_refund_no": f"RF{channel.upper()}01", "amount": 250})).json()
    assert refund["status"] in {"SUCCESS", "PROCESSING"}, refund
    for _ in range(40):
        await p.settle_background(rounds=1)
        refund = (await p.call("GET", f"/api/v1/refunds/{refund['refund_id']}")).json()
        if refund["status"] == "SUCCESS":
            break
        clock.freeze()
        clock.advance(timedelta(seconds=11))  # let the refund job ask the channel
    assert refund["status"] == "SUCCESS"
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "PARTIALLY_REFUNDED"
    assert view["refunded_amount"] == 250


@pytest.mark.parametrize("channel", ALL)
async def test_payer_code_is_detected_and_paid(platform: Platform, channel: str) -> None:
    p = platform
    enable(p, channel)
    code = (await p.wallet(channel, f"/payers/{RICH[channel]}/code")).json()
    auth_code = code.get("auth_code") or code["data"]["auth_code"]
    resp = await p.order(out_trade_no=f"BAR{channel.upper()}01", way_code="BARCODE",
                         channel=None, auth_code=auth_code, amount=660)
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert order["channel"] == channel
    if order["status"] != "SUCCESS":
        order = await p.wait_status(order["order_id"], "SUCCESS")
    assert order["amount"] == 660
