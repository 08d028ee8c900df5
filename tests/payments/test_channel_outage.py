"""A channel's outage trips its breaker within one window; the other channels keep taking
payments; the cashier stops offering the broken one; it closes again after recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fulema.core.clock import clock
from tests.payments.conftest import Platform

WECHAT = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47"
OPS = {"Authorization": "Bearer test-operator"}


async def wechat_state(p: Platform) -> str:
    doc = (await p.http.get("/ops/v1/channels", headers=OPS)).json()
    wechat = next(c for c in doc["channels"] if c["channel"] == "wechat")
    return str(wechat["endpoints"][0]["state"])


async def test_breaker_opens_on_outage_and_closes_after_recovery(platform: Platform) -> None:
    p = platform
    clock.freeze()
    await p.wallet("wechat", "/faults", {"mode": "5xx"})
    codes = []
    for i in range(20):  # one window (FULEMA_BREAKER_WINDOW_SIZE=20)
        r = await p.order(out_trade_no=f"WXDOWN{i:04d}", channel="wechat", amount=100)
        codes.append(r.json().get("code"))
        bank = await p.order(out_trade_no=f"BPUP{i:06d}", channel="bankpay", amount=100)
        assert bank.status_code == 200, bank.text
        assert bank.json()["status"] == "PAYING"
    assert set(codes) == {"CHANNEL_UNAVAILABLE"}
    assert await wechat_state(p) == "open"

    # while open: the WeChat payer's cashier names the apps that work now
    page = await p.http.get("/pay/q/DEMO000001", headers={"User-Agent": WECHAT})
    assert 'name="amount"' not in page.text
    assert "Mobile banking" in page.text
    # and a WeChat payer code is refused at once; the order is failed, nothing was sent
    code = (await p.wallet("wechat", "/payers/oUpF8uMuAJO_M2pxb1Q9zNjWeS6o/code")).json()
    r = await p.order(out_trade_no="WXBAR00001", way_code="BARCODE", channel=None,
                      auth_code=code["auth_code"])
    assert r.status_code == 503
    assert r.json()["code"] == "CHANNEL_UNAVAILABLE"
    failed = (await p.call("GET", "/api/v1/orders/by-out-trade-no/WXBAR00001")).json()
    assert failed["status"] == "FAILED"
    assert failed["failure_code"] == "CHANNEL_UNAVAILABLE"
    sandbox = await p.http.get(f"/sandbox/wechat/wallet/orders/{failed['order_id']}")
    assert sandbox.status_code == 404  # never reached WeChat: the payer was not charged

    await p.wallet("wechat", "/faults", {"mode": "none"})
    clock.advance(timedelta(seconds=31))  # FULEMA_BREAKER_OPEN_SECONDS=30 -> half-open
    for i in range(3):
        r = await p.order(out_trade_no=f"WXBACK{i:04d}", channel="wechat", amount=100)
        assert r.status_code == 200, r.text
    assert await wechat_state(p) == "closed"


async def test_wechat_fails_over_to_its_backup_domain(platform: Platform,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Primary pointed at a dead port, backup at the sandbox: queries fail over, and once the
    primary's breaker opens new orders go straight to the backup."""
    from fulema.channels.registry import build_channels

    monkeypatch.setenv("FULEMA_WECHAT_BASE_URL", "http://127.0.0.1:9/down")
    monkeypatch.setenv("FULEMA_WECHAT_BACKUP_BASE_URL", "http://testserver/sandbox/wechat")
    settings = platform.settings.model_copy(update={"enabled_channels": ["wechat"]})
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
