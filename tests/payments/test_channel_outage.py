"""A channel's outage trips its breaker within one window; the other channels keep taking
payments; the cashier stops offering the broken one; it closes again after recovery.

Run for every channel, tripped once by dynamic-QR creates and once by payer-code payments:
an adapter that swallowed transport failures into a quiet result (as Alipay and UnionPay once
did for payer codes) would never open its breaker, and this is where that shows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from fulema.core.clock import clock
from fulema.core.config import DEFAULT_UA_MARKERS
from tests.payments.conftest import Platform
from tests.payments.test_every_channel import ALL, RICH, enable

OPS = {"Authorization": "Bearer test-operator"}
WINDOW = 20  # FULEMA_BREAKER_WINDOW_SIZE default
APP_NAMES = {"wechat": "WeChat", "alipay": "Alipay", "unionpay": "UnionPay", "ecny": "e-CNY",
             "bankpay": "Mobile banking"}


async def breaker_state(p: Platform, channel: str) -> str:
    doc = (await p.http.get("/ops/v1/channels", headers=OPS)).json()
    found = next(c for c in doc["channels"] if c["channel"] == channel)
    return str(found["endpoints"][0]["state"])


async def payer_code(p: Platform, channel: str) -> str:
    resp = await p.wallet(channel, f"/payers/{RICH[channel]}/code")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return str(body.get("auth_code") or body["data"]["auth_code"])


async def barcode(p: Platform, channel: str, out_trade_no: str, code: str) -> Any:
    return await p.order(out_trade_no=out_trade_no, way_code="BARCODE", channel=None,
                         auth_code=code, amount=100)


@pytest.mark.parametrize("trip_with", ["create", "barcode"])
@pytest.mark.parametrize("channel", ALL)
async def test_outage_opens_the_breaker_and_recovery_closes_it(
        platform: Platform, channel: str, trip_with: str) -> None:
    p = platform
    for name in ALL:
        enable(p, name)
    others = [c for c in ALL if c != channel]
    tag = channel[:2].upper()
    clock.freeze()
    codes = [await payer_code(p, channel) for _ in range(WINDOW)] if trip_with == "barcode" \
        else []
    assert (await p.wallet(channel, "/faults", {"mode": "5xx"})).status_code == 200

    calls = 0
    while calls < WINDOW and await breaker_state(p, channel) != "open":
        if trip_with == "create":
            r = await p.order(out_trade_no=f"DOWN{tag}{calls:04d}", channel=channel, amount=100)
            assert (r.status_code, r.json()["code"]) == (503, "CHANNEL_UNAVAILABLE"), r.text
        else:
            # Sent and unanswered: the payer may have been charged, so the order stays open
            # and is queried (never FAILED), but the breaker counts the failure.
            r = await barcode(p, channel, f"DOWN{tag}{calls:04d}", codes[calls])
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "PAYING"
        other = others[calls % len(others)]
        up = await p.order(out_trade_no=f"UP{tag}{other[:2].upper()}{calls:04d}", channel=other,
                           amount=100)
        assert up.status_code == 200, up.text
        assert up.json()["status"] == "PAYING"
        calls += 1
    assert await breaker_state(p, channel) == "open", f"still closed after {calls} calls"
    for other in others:
        assert await breaker_state(p, other) == "closed"

    # While open: the payer's app gets a cashier that names the apps that work now ...
    ua = f"Mozilla/5.0 (iPhone) Mobile/15E148 {DEFAULT_UA_MARKERS[channel][0]}/8.0"
    page = await p.http.get("/pay/q/DEMO000001", headers={"User-Agent": ua})
    assert 'name="amount"' not in page.text
    assert any(APP_NAMES[o] in page.text for o in others)
    # ... and a payer code for it is refused at once: the order fails, nothing was sent.
    code = await payer_code(p, channel)
    r = await barcode(p, channel, f"REFUSED{tag}01", code)
    assert (r.status_code, r.json()["code"]) == (503, "CHANNEL_UNAVAILABLE"), r.text
    failed = (await p.call("GET", f"/api/v1/orders/by-out-trade-no/REFUSED{tag}01")).json()
    assert failed["status"] == "FAILED"
    assert failed["failure_code"] == "CHANNEL_UNAVAILABLE"
    await p.wallet(channel, "/faults", {"mode": "none"})
    seen = await p.http.get(f"/sandbox/{channel}/wallet/orders/{failed['order_id']}")
    assert seen.status_code == 404  # never reached the channel: the payer was not charged

    clock.advance(timedelta(seconds=31))  # FULEMA_BREAKER_OPEN_SECONDS=30 -> half-open
    for i in range(2):  # FULEMA_BREAKER_HALF_OPEN_PROBES=2
        r = await p.order(out_trade_no=f"BACK{tag}{i:04d}", channel=channel, amount=100)
        assert r.status_code == 200, r.text
    assert await breaker_state(p, channel) == "closed"
    paid = await barcode(p, channel, f"BACKBAR{tag}1", await payer_code(p, channel))
    assert paid.status_code == 200, paid.text
    order = paid.json()
    if order["status"] != "SUCCESS":
        order = await p.wait_status(order["order_id"], "SUCCESS")
    assert order["channel"] == channel


async def test_wechat_fails_over_to_its_backup_domain(platform: Platform) -> None:
    """Primary pointed at a dead port, backup at the sandbox: queries fail over, and once the
    primary's breaker opens new orders go straight to the backup."""
    from fulema.channels.registry import build_channels

    wechat = platform.settings.wechat.model_copy(update={
        "base_url": "http://127.0.0.1:9/down",
        "backup_base_url": "http://testserver/sandbox/wechat"})
    settings = platform.settings.model_copy(update={"enabled_channels": ["wechat"],
                                                    "wechat": wechat})
    platform.app.state.channels.channels.update(build_channels(settings, platform.http).channels)
    codes = []
    for i in range(12):
        r = await platform.order(out_trade_no=f"WXFAIL{i:04d}", channel="wechat", amount=100)
        codes.append(r.status_code)
    doc = (await platform.http.get("/ops/v1/channels", headers=OPS)).json()
    wechat = next(c for c in doc["channels"] if c["channel"] == "wechat")
    states = {e["endpoint"]: e["state"] for e in wechat["endpoints"]}
    assert states["primary"] == "open"
    assert states["backup"] == "closed"
    assert codes[-1] == 200  # after the primary opened, creates reach the backup
    assert 503 in codes  # before that, a create that hit the dead primary was not retried
