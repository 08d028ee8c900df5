"""Silent OAuth for the static-QR cashier, against the WeChat and Alipay sandboxes over ASGI:
every redirect followed by hand, forged states and payer tokens refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from fulema.channels.alipay import adapter as alipay_channel
from fulema.channels.base import CreatePaymentRequest, TradeState
from fulema.channels.registry import ChannelRegistry, build_channels
from fulema.channels.wechat import adapter as wechat_channel
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import WayCode
from fulema.sandbox.alipay.oauth import add_oauth_routes as add_alipay_oauth
from fulema.sandbox.wechat.oauth import add_oauth_routes as add_wechat_oauth
from fulema.sandbox.wechat.state import PIN_OPENID, RICH_OPENID
from fulema.sandboxes import sandbox_app
from fulema.web.oauth import (
    authorize_url,
    make_state,
    payer_id_from_callback,
    payer_token,
    router,
    verify_payer_token,
    verify_state,
)

PLATE = "K7QX2M9PZR"
ALIPAY_DEFAULT_PAYER = "2088102146225135"


@dataclass
class Env:
    http: httpx.AsyncClient
    settings: Settings
    channels: ChannelRegistry

    async def hop(self, url: str, expect: int = 302) -> httpx.Response:
        """One request, redirects not followed; the fragment stays in the browser."""
        resp = await self.http.get(url.split("#", 1)[0])
        assert resp.status_code == expect, resp.text
        return resp

    async def dance(self, channel: str, payer_id: str | None = None) -> str:
        """Cashier -> app authorize page -> our callback -> the plate page; the payer id the
        plate page accepts."""
        url = authorize_url(self.channels, self.settings, channel, PLATE)
        assert url is not None
        if payer_id:  # the sandbox wallet says which payer is looking at the page
            url = url.replace("?", f"?payer_id={payer_id}&", 1)
        back = (await self.hop(url)).headers["location"]
        assert back.startswith(f"http://testserver/pay/oauth/{channel}/callback?")
        onward = (await self.hop(back)).headers["location"]
        assert onward.startswith(f"/pay/q/{PLATE}?pid=")
        page = (await self.hop(onward, 200)).json()
        assert page["plate"] == PLATE
        found: str = page["payer_id"]
        return found


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oauth")  # RSA keys are made once per module


@pytest.fixture
async def env(data_dir: Path) -> AsyncIterator[Env]:
    settings = Settings(public_base_url="http://testserver", data_dir=data_dir)
    app = FastAPI()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    channels = build_channels(settings, http)  # every channel: payer auth where there is one
    app.state.settings, app.state.http, app.state.channels = settings, http, channels
    app.include_router(router)

    @app.get("/pay/q/{plate}")  # stands in for the cashier: what it would accept
    async def plate_page(plate: str, pid: str = "") -> dict[str, str | None]:
        return {"plate": plate, "payer_id": verify_payer_token(settings, pid)}

    wx = sandbox_app("wechat", settings, http)
    add_wechat_oauth(wx, wx.state.sandbox)
    ali = sandbox_app("alipay", settings, http)
    add_alipay_oauth(ali, ali.state.sandbox)
    app.mount("/sandbox/wechat", wx)
    app.mount("/sandbox/alipay", ali)
    yield Env(http, settings, channels)
    for task in [*wx.state.sandbox.tasks, *ali.state.sandbox.tasks]:
        task.cancel()
    await http.aclose()


def order(payer_id: str) -> CreatePaymentRequest:
    return CreatePaymentRequest(order_id=new_id("ord"), amount=Money(1800), subject="面馆",
                                way_code=WayCode.QR_STATIC, notify_url="http://testserver/cb",
                                expire_at=clock.now() + timedelta(minutes=15), payer_id=payer_id)


async def test_authorize_urls_are_the_apps_real_ones(env: Env) -> None:
    wx = authorize_url(env.channels, env.settings, "wechat", f"/pay/q/{PLATE}")
    assert wx is not None
    parts = urlsplit(wx)
    assert parts.path == "/sandbox/wechat/connect/oauth2/authorize"
    assert parts.fragment == "wechat_redirect"
    q = parse_qs(parts.query)
    assert list(q) == ["appid", "redirect_uri", "response_type", "scope", "state"]
    assert q["appid"] == [env.settings.wechat.appid]
    assert q["redirect_uri"] == ["http://testserver/pay/oauth/wechat/callback"]
    assert (q["response_type"], q["scope"]) == (["code"], ["snsapi_base"])
    assert q["state"][0].isalnum()  # WeChat allows a-zA-Z0-9 only, up to 128 bytes
    assert len(q["state"][0]) <= 128
    assert verify_state(env.settings, "wechat", q["state"][0]) == PLATE

    ali = authorize_url(env.channels, env.settings, "alipay", PLATE)
    assert ali is not None
    parts = urlsplit(ali)
    assert parts.path == "/sandbox/alipay/oauth2/publicAppAuthorize.htm"
    q = parse_qs(parts.query)
    assert (q["app_id"], q["scope"]) == ([env.settings.alipay.app_id], ["auth_base"])
    assert q["redirect_uri"] == ["http://testserver/pay/oauth/alipay/callback"]

    assert authorize_url(env.channels, env.settings, "unionpay", PLATE) is None
    with pytest.raises(ValueError, match="plate"):
        authorize_url(env.channels, env.settings, "wechat", "https://evil.example/x")


async def test_wechat_dance_gives_an_openid_that_pays_jsapi(env: Env) -> None:
    assert await env.dance("wechat") == RICH_OPENID  # no payer named: the default payer
    openid = await env.dance("wechat", PIN_OPENID)
    assert openid == PIN_OPENID

    channel = wechat_channel.build_channel(env.settings, env.http)
    created = await channel.create(order(openid))
    assert created.pay_params is not None  # QR_STATIC with an openid is JSAPI
    prepay_id = created.pay_params["package"].removeprefix("prepay_id=")
    paid = await env.http.post("/sandbox/wechat/wallet/scan",
                               json={"prepay_id": prepay_id, "payer_id": openid})
    assert paid.json()["trade_state"] == "SUCCESS"


async def test_alipay_dance_gives_a_user_id_that_pays_jsapi(env: Env) -> None:
    assert await env.dance("alipay") == ALIPAY_DEFAULT_PAYER
    resp = await env.http.post("/sandbox/alipay/wallet/payers", json={"balance_fen": 10_000})
    newcomer = resp.json()["payer_id"]
    user_id = await env.dance("alipay", newcomer)
    assert user_id == newcomer

    channel = alipay_channel.build_channel(env.settings, env.http)
    req = order(user_id)
    created = await channel.create(CreatePaymentRequest(**{**req.__dict__,
                                                           "way_code": WayCode.JSAPI}))
    assert created.pay_params is not None
    resp = await env.http.post("/sandbox/alipay/wallet/scan",
                               json={"trade_no": created.pay_params["tradeNO"],
                                     "payer_id": user_id})
    assert resp.status_code == 200, resp.text
    paid = await channel.query(req.order_id)
    assert (paid.state, paid.amount, paid.payer_id) == (TradeState.SUCCESS, Money(1800), user_id)


async def test_a_forged_or_expired_state_is_refused(env: Env) -> None:
    url = authorize_url(env.channels, env.settings, "wechat", PLATE)
    assert url is not None
    back = (await env.hop(url)).headers["location"]
    q = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    good = q["state"]
    forged = [good.replace(PLATE, "AAAAAAAAAA"),  # another plate, old MAC
              good[:-1] + ("0" if good[-1] != "0" else "1"),  # MAC altered
              make_state(Settings(platform_secret="another-secret"), "wechat", "AAAAAAAAAA"),
              make_state(env.settings, "alipay", PLATE),  # an Alipay state on the WeChat door
              "", "99" + PLATE, "not a state"]
    for state in forged:
        resp = await env.http.get("/pay/oauth/wechat/callback",
                                  params={"code": q["code"], "state": state})
        assert resp.status_code == 400, state
        assert "location" not in resp.headers
        with pytest.raises(FulemaError, match="forged"):
            await payer_id_from_callback(env.channels, env.settings, "wechat",
                                         {"code": q["code"], "state": state})
    # the code was never spent on a forged state: the genuine callback still works
    ok = await env.http.get("/pay/oauth/wechat/callback", params=q)
    assert ok.status_code == 302
    # a code is single use
    again = await env.http.get("/pay/oauth/wechat/callback", params=q)
    assert again.status_code == 400
    assert "40163" in again.text

    expiring = make_state(env.settings, "alipay", PLATE, ttl_seconds=600)
    clock.advance(timedelta(seconds=601))
    assert verify_state(env.settings, "alipay", expiring) is None


async def test_a_bad_code_is_a_page_not_a_payer(env: Env) -> None:
    for channel, key in (("wechat", "code"), ("alipay", "auth_code")):
        state = make_state(env.settings, channel, PLATE)
        resp = await env.http.get(f"/pay/oauth/{channel}/callback",
                                  params={key: "0" * 32, "state": state})
        assert resp.status_code == 400
        assert "40029" in resp.text or "isv.code-invalid" in resp.text
        missing = await env.http.get(f"/pay/oauth/{channel}/callback", params={"state": state})
        assert missing.status_code == 400
    assert (await env.http.get("/pay/oauth/bankpay/callback")).status_code == 404


async def test_a_forged_payer_token_is_refused(env: Env) -> None:
    token = payer_token(env.settings, "wechat", PIN_OPENID)
    assert verify_payer_token(env.settings, token) == PIN_OPENID
    assert verify_payer_token(env.settings, token, channel="wechat") == PIN_OPENID
    assert verify_payer_token(env.settings, token, channel="alipay") is None

    chan, exp, pid, mac = token.split(".")
    other = payer_token(env.settings, "wechat", RICH_OPENID).split(".")[2]
    forged = [f"{chan}.{exp}.{other}.{mac}",  # someone else's openid under this MAC
              f"{chan}.{int(exp, 16) + 10**6:x}.{pid}.{mac}",  # expiry pushed out
              f"alipay.{exp}.{pid}.{mac}",  # another channel
              payer_token(Settings(platform_secret="another-secret"), "wechat", RICH_OPENID),
              PIN_OPENID, "", "a.b.c.d", f"{chan}.{exp}.!!.{mac}"]
    for bad in forged:
        assert verify_payer_token(env.settings, bad) is None, bad
        page = await env.http.get(f"/pay/q/{PLATE}", params={"pid": bad})
        assert page.json()["payer_id"] is None
    clock.advance(timedelta(minutes=31))
    assert verify_payer_token(env.settings, token) is None
