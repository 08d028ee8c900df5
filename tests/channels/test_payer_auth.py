"""What each channel says about a static QR plate: how its payment is made
(`Channel.static_code_way`) and whether its app authorises the payer first (`PayerAuth`, from
the registry). Payments and the cashier ask these instead of naming channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fulema.channels.registry import ChannelRegistry, build_channels
from fulema.channels.routing import GuardedChannel
from fulema.core.channel_settings import OAuthSection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vocab import WayCode
from fulema.web.oauth import authorize_url, make_state, payer_id_from_callback, router

ALL = ["wechat", "alipay", "unionpay", "ecny", "bankpay"]
PLATE = "K7QX2M9PZR"
WECHAT_BACK = "http%3A%2F%2Ftestserver%2Fpay%2Foauth%2Fwechat%2Fcallback"
ALIPAY_BACK = "http%3A%2F%2Ftestserver%2Fpay%2Foauth%2Falipay%2Fcallback"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("payer-auth")  # channel keys are made once per module


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = httpx.AsyncClient(base_url="http://testserver")  # never called: nothing is sent
    yield client
    await client.aclose()


def registry(data_dir: Path, http: httpx.AsyncClient, enabled: list[str] = ALL,
             oauth: OAuthSection | None = None) -> tuple[Settings, ChannelRegistry]:
    settings = Settings(public_base_url="http://testserver", data_dir=data_dir,
                        enabled_channels=enabled, oauth=oauth or OAuthSection())
    return settings, build_channels(settings, http)


@pytest.mark.parametrize(("name", "with_payer", "without_payer"), [
    ("wechat", WayCode.JSAPI, WayCode.QR_DYNAMIC),  # the cashier runs inside WeChat
    ("alipay", WayCode.JSAPI, WayCode.QR_DYNAMIC),  # ... and inside Alipay
    ("unionpay", WayCode.QR_STATIC, WayCode.QR_STATIC),  # these apps confirm the plate
    ("ecny", WayCode.QR_STATIC, WayCode.QR_STATIC),  # payment themselves
    ("bankpay", WayCode.QR_STATIC, WayCode.QR_STATIC),
])
async def test_each_channel_says_how_a_plate_is_paid(
        data_dir: Path, http: httpx.AsyncClient, name: str, with_payer: WayCode,
        without_payer: WayCode) -> None:
    _, channels = registry(data_dir, http)
    guarded = channels.get(name)
    assert isinstance(guarded, GuardedChannel)
    for channel in (guarded, guarded.primary):  # the router answers what its adapter does
        assert channel.static_code_way("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o") == with_payer
        assert channel.static_code_way(None) == without_payer
        assert channel.static_code_way("") == without_payer  # an empty id is no payer


async def test_only_apps_that_authorise_payers_have_payer_auth(
        data_dir: Path, http: httpx.AsyncClient) -> None:
    _, channels = registry(data_dir, http)
    assert channels.payer_auth("wechat") is not None
    assert channels.payer_auth("alipay") is not None
    for name in ("unionpay", "ecny", "bankpay", "paypal", "", "WECHAT"):
        assert channels.payer_auth(name) is None, name
    _, bank_only = registry(data_dir, http, ["bankpay"])
    assert bank_only.payer_auth("wechat") is None  # not enabled: no authorisation either


async def test_a_channel_without_payer_auth_gets_no_oauth_redirect(
        data_dir: Path, http: httpx.AsyncClient) -> None:
    settings, channels = registry(data_dir, http, ["wechat", "bankpay"])
    for name in ("bankpay", "unionpay", "alipay"):  # alipay: its channel is not enabled
        assert authorize_url(channels, settings, name, PLATE) is None
        with pytest.raises(FulemaError) as refused:
            await payer_id_from_callback(channels, settings, name,
                                         {"state": make_state(settings, name, PLATE),
                                          "code": "0" * 32, "auth_code": "0" * 32})
        assert refused.value.code == ErrorCode.NOT_FOUND
    # the callback door of such a channel is a 404 page, not a redirect
    app = FastAPI()
    app.state.settings, app.state.channels = settings, channels
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        for name in ("bankpay", "alipay", "nosuch"):
            page = await client.get(f"/pay/oauth/{name}/callback",
                                    params={"state": make_state(settings, name, PLATE),
                                            "auth_code": "x"})
            assert page.status_code == 404
            assert "location" not in page.headers


async def test_authorize_urls_are_exactly_the_apps_links(
        data_dir: Path, http: httpx.AsyncClient) -> None:
    """Byte for byte: WeChat matches its link strictly (this parameter order, then
    #wechat_redirect); an empty host is the sandbox in this server."""
    clock.freeze(datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    settings, channels = registry(data_dir, http)
    wx, ali = make_state(settings, "wechat", PLATE), make_state(settings, "alipay", PLATE)
    assert authorize_url(channels, settings, "wechat", PLATE) == (
        "http://testserver/sandbox/wechat/connect/oauth2/authorize?appid=wxd678efh567hg6787"
        f"&redirect_uri={WECHAT_BACK}&response_type=code&scope=snsapi_base&state={wx}"
        "#wechat_redirect")
    assert authorize_url(channels, settings, "alipay", f"/pay/q/{PLATE}") == (
        "http://testserver/sandbox/alipay/oauth2/publicAppAuthorize.htm?app_id=2021000000000001"
        f"&scope=auth_base&redirect_uri={ALIPAY_BACK}&state={ali}")

    real = OAuthSection(wechat_authorize_base="https://open.weixin.qq.com/",
                        alipay_authorize_base="https://openauth.alipay.com")
    settings, channels = registry(data_dir, http, ["wechat", "alipay"], real)
    wechat, alipay = channels.payer_auth("wechat"), channels.payer_auth("alipay")
    assert wechat is not None
    assert alipay is not None
    assert wechat.authorize_url("https://pay.example.cn/pay/oauth/wechat/callback", "S1") == (
        "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wxd678efh567hg6787"
        "&redirect_uri=https%3A%2F%2Fpay.example.cn%2Fpay%2Foauth%2Fwechat%2Fcallback"
        "&response_type=code&scope=snsapi_base&state=S1#wechat_redirect")
    assert alipay.authorize_url("https://pay.example.cn/pay/oauth/alipay/callback", "S1") == (
        "https://openauth.alipay.com/oauth2/publicAppAuthorize.htm?app_id=2021000000000001"
        "&scope=auth_base&redirect_uri=https%3A%2F%2Fpay.example.cn%2Fpay%2Foauth%2Falipay"
        "%2Fcallback&state=S1")


async def test_each_app_takes_its_own_code_from_the_callback(
        data_dir: Path, http: httpx.AsyncClient) -> None:
    _, channels = registry(data_dir, http, ["wechat", "alipay"])
    wechat, alipay = channels.payer_auth("wechat"), channels.payer_auth("alipay")
    assert wechat is not None
    assert alipay is not None
    assert wechat.code_of({"code": "061abc", "state": "s"}) == "061abc"
    assert alipay.code_of({"auth_code": "4b20", "app_id": "2021000000000001"}) == "4b20"
    assert alipay.code_of({"auth_code": "4b20"}) == "4b20"  # app_id is optional
    refused = [(wechat, {"auth_code": "4b20"}, "no code"),  # the other app's parameter
               (wechat, {"code": ""}, "no code"),
               (alipay, {"code": "061abc"}, "no auth_code"),
               (alipay, {"auth_code": "4b20", "app_id": "2021000000000002"}, "another app")]
    for auth, params, message in refused:
        with pytest.raises(FulemaError, match=message) as exc:
            auth.code_of(params)
        assert exc.value.code == ErrorCode.VALIDATION_ERROR
