"""Finding 5: an unsupported channel/way pair is refused before anything is written, from one
table that each adapter declares (`Channel.supported_ways`), and the table is true: every pair
it names really works on the channel's sandbox."""

from __future__ import annotations

import pytest

from fulema.core.vocab import ChannelName, WayCode
from tests.payments.conftest import Platform
from tests.payments.test_every_channel import ALL, RICH, enable

# The nine pairs the penetration test found answering 502 CHANNEL_ERROR with a FAILED order.
UNSUPPORTED = [("unionpay", "APP"), ("unionpay", "H5"), ("unionpay", "JSAPI"),
               ("ecny", "APP"), ("ecny", "H5"), ("ecny", "JSAPI"),
               ("alipay", "APP"), ("bankpay", "APP"), ("bankpay", "JSAPI")]
MERCHANT_WAYS = [w for w in WayCode if w is not WayCode.QR_STATIC]
SUPPORTED = [(c, w.value) for c in ALL for w in MERCHANT_WAYS if (c, w.value) not in UNSUPPORTED]


@pytest.mark.parametrize(("channel", "way"), UNSUPPORTED)
async def test_an_unsupported_pair_is_refused_and_leaves_no_order(
        platform: Platform, channel: str, way: str) -> None:
    p = platform
    enable(p, channel)
    out_trade_no = f"WAY{channel.upper()}{way}"
    resp = await p.order(out_trade_no=out_trade_no, channel=channel, way_code=way,
                         payer_id=RICH[channel])
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "WAY_NOT_SUPPORTED"
    assert channel in resp.json()["message"]
    assert way in resp.json()["message"]
    found = await p.call("GET", f"/api/v1/orders/by-out-trade-no/{out_trade_no}")
    assert found.status_code == 404  # nothing was recorded: no FAILED order behind
    # and the same number is still free for a pair that works
    again = await p.order(out_trade_no=out_trade_no, channel=channel, way_code="QR_DYNAMIC")
    assert again.status_code == 200, again.text


def test_the_table_is_the_adapters_own(platform: Platform) -> None:
    p = platform
    for channel in ALL:
        enable(p, channel)
    table = p.app.state.channels.ways()
    for channel in ALL:
        ways = table[ChannelName(channel)]
        assert WayCode.QR_STATIC in ways  # every channel takes the plate's cashier
        for way in MERCHANT_WAYS:
            assert (way in ways) == ((channel, way.value) not in UNSUPPORTED), (channel, way)


@pytest.mark.parametrize(("channel", "way"), SUPPORTED)
async def test_every_supported_pair_really_works_on_the_sandbox(
        platform: Platform, channel: str, way: str) -> None:
    p = platform
    enable(p, channel)
    extra: dict[str, object] = {}
    if way == "BARCODE":
        code = (await p.wallet(channel, f"/payers/{RICH[channel]}/code")).json()
        extra = {"auth_code": code.get("auth_code") or code["data"]["auth_code"]}
    resp = await p.order(out_trade_no=f"OK{channel.upper()}{way}", channel=channel,
                         way_code=way, payer_id=RICH[channel], **extra)
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert order["status"] in {"PAYING", "SUCCESS"}, order
    if way in {"QR_DYNAMIC"}:
        assert order["code_url"]
    if way == "H5":
        assert order["h5_url"]
    if way in {"JSAPI", "APP"}:
        assert order["pay_params"]
