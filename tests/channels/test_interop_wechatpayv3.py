"""The WeChat sandbox against a published client: wechatpayv3 (minibear2021/wechatpayv3),
which knows nothing of Fulema. It runs over real HTTP against the sandbox served as
`fulema sandbox wechat` serves it, at its own root and under /sandbox/wechat, in both ways a
merchant knows WeChat's key: the 微信支付公钥 (public_key + public_key_id) and the platform
certificate it downloads from /v3/certificates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

from fulema.channels.wechat import config as wx_keys
from fulema.core import crypto
from fulema.core.config import Settings
from fulema.sandbox.wechat.config import WechatSandboxConfig
from fulema.sandbox.wechat.server import build_sandbox
from fulema.sandbox.wechat.state import RICH_OPENID
from fulema.sandboxes import standalone_app
from tests.channels.live_server import Inbox, serve

wechatpayv3 = pytest.importorskip("wechatpayv3")
WeChatPay, WeChatPayType = wechatpayv3.WeChatPay, wechatpayv3.WeChatPayType

MCHID, APPID = "1900000001", "wxd678efh567hg6787"
PUB_KEY_ID = "PUB_KEY_ID_0119000000012025010100000000000001"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    d = tmp_path_factory.mktemp("wechatpayv3")
    crypto.load_or_create_rsa_key(d / "keys" / "wechat_merchant.pem")
    crypto.load_or_create_rsa_key(d / "keys" / "wechat_platform.pem")
    return Settings(public_base_url="http://127.0.0.1", data_dir=d)


@dataclass
class Merchant:
    pay: Any  # wechatpayv3.WeChatPay
    base: str  # where the sandbox listens (its root)
    inbox: Inbox

    def scan(self, out_trade_no: str) -> dict[str, Any]:
        resp = requests.post(f"{self.base}/wallet/scan", timeout=5,
                             json={"out_trade_no": out_trade_no, "payer_id": RICH_OPENID})
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body


def _client(settings: Settings, gateway: str, inbox: Inbox, *, certificate: bool) -> Any:
    wx = settings.wechat
    key = wx_keys.merchant_private_key(settings, wx)
    platform = wx_keys.dev_platform_private_key(settings)
    public: dict[str, Any] = {} if certificate else {
        "public_key": crypto.public_key_pem(platform), "public_key_id": PUB_KEY_ID}
    # The library's gateway is a constant (https://api.mch.weixin.qq.com); point it here.
    # In certificate mode the constructor downloads the certificates at once, so the
    # gateway must be set before that download too.
    from wechatpayv3 import core

    download = core.Core._init_certificates

    def init_certificates(self: Any) -> None:
        self._gate_way = gateway
        download(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core.Core, "_init_certificates", init_certificates)
        pay = WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=MCHID,
                        private_key=crypto.private_key_pem(key),
                        cert_serial_no=wx_keys.merchant_serial_no(settings, wx),
                        appid=APPID, apiv3_key=wx.apiv3_key, notify_url=inbox.url, **public)
    pay._core._gate_way = gateway
    return pay


@pytest.fixture(params=["root", "mounted"])
def merchant(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Merchant]:
    """Public-key mode against `fulema sandbox wechat`'s app; the client's gateway is the
    root (paths exactly WeChat's) or /sandbox/wechat (it still signs /v3/...)."""
    inbox = Inbox(b"")
    with serve(standalone_app("wechat", settings)) as base:
        gateway = base if request.param == "root" else base + "/sandbox/wechat"
        yield Merchant(_client(settings, gateway, inbox, certificate=False), base, inbox)
    inbox.close()


def test_native_pay_query_callback_refund_close(merchant: Merchant) -> None:
    pay = merchant.pay
    code, text = pay.pay(description="面馆-牛肉面", out_trade_no="V3LIB0001", amount={"total": 1800})
    assert code == 200, text
    assert json.loads(text)["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")

    code, text = pay.query(out_trade_no="V3LIB0001")
    assert (code, json.loads(text)["trade_state"]) == (200, "NOTPAY")

    merchant.scan("V3LIB0001")
    headers, body = merchant.inbox.wait(1)[0]
    notice = pay.callback(headers, body)  # the library verifies the signature and decrypts
    assert notice is not None, "wechatpayv3 refused the sandbox's callback"
    assert notice["event_type"] == "TRANSACTION.SUCCESS"
    assert notice["resource"]["out_trade_no"] == "V3LIB0001"
    assert notice["resource"]["trade_state"] == "SUCCESS"
    assert notice["resource"]["amount"]["total"] == 1800

    code, text = pay.query(out_trade_no="V3LIB0001")
    paid = json.loads(text)
    assert (code, paid["trade_state"], paid["payer"]["openid"]) == (200, "SUCCESS", RICH_OPENID)

    code, text = pay.refund(out_refund_no="V3LIBR0001", out_trade_no="V3LIB0001",
                            amount={"refund": 300, "total": 1800, "currency": "CNY"})
    refund = json.loads(text)
    assert (code, refund["status"]) == (200, "PROCESSING")
    assert "success_time" not in refund
    code, text = pay.query_refund(out_refund_no="V3LIBR0001")
    assert code == 200
    assert json.loads(text)["amount"]["refund"] == 300

    pay.pay(description="面馆-可乐", out_trade_no="V3LIB0002", amount={"total": 500})
    code, _ = pay.close(out_trade_no="V3LIB0002")
    assert code == 204
    code, text = pay.query(out_trade_no="V3LIB0002")
    assert json.loads(text)["trade_state"] == "CLOSED"


def test_refusals_reach_the_library_as_wechat_sends_them(merchant: Merchant) -> None:
    code, text = merchant.pay.query(out_trade_no="V3NOSUCH01")
    assert code == 404
    assert json.loads(text)["code"] == "ORDER_NOT_EXIST"


def test_certificate_mode_downloads_the_platform_certificate(settings: Settings) -> None:
    """A merchant still on platform certificates: the library downloads /v3/certificates
    when it starts, then verifies answers and callbacks by the certificate's serial."""
    wx = settings.wechat
    merchant_key = wx_keys.merchant_private_key(settings, wx).public_key()
    inbox = Inbox(b"")

    async def build() -> Any:
        return build_sandbox(WechatSandboxConfig(
            public_url="http://127.0.0.1", mchid=MCHID, appid=APPID,
            apiv3_key=wx.apiv3_key.encode(), merchant_public_key=merchant_key,
            merchant_serial_no=wx_keys.merchant_serial_no(settings, wx, merchant_key),
            platform_key=wx_keys.dev_platform_private_key(settings),
            platform_public_key_id=PUB_KEY_ID, v2_api_key="x" * 32, oauth_app_secret="s",
            identity="certificate"), httpx.AsyncClient())

    app = asyncio.run(build())
    try:
        with serve(app) as base:
            pay = _client(settings, base, inbox, certificate=True)
            serial = app.state.sandbox.serial
            assert serial != PUB_KEY_ID
            assert [f"{c.serial_number:X}" for c in pay._core._certificates] == [serial]
            code, text = pay.pay(description="证书模式", out_trade_no="V3CERT001",
                                 amount={"total": 100})
            assert code == 200, text
            Merchant(pay, base, inbox).scan("V3CERT001")
            headers, body = inbox.wait(1)[0]
            assert headers["Wechatpay-Serial"] == serial
            notice = pay.callback(headers, body)
            assert notice is not None
            assert notice["resource"]["trade_state"] == "SUCCESS"
    finally:
        inbox.close()
