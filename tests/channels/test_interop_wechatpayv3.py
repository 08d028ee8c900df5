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


def _client(settings: Settings, gateway: str, inbox: Inbox, *, certificate: bool,
            partner: bool = False) -> Any:
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
                        appid=APPID, apiv3_key=wx.apiv3_key, notify_url=inbox.url,
                        partner_mode=partner, **public)
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


# -- the service-provider (partner) form -------------------------------------------------------

APPLICATION = {
    "contact_info": {"contact_type": "LEGAL", "contact_name": "张三",
                     "mobile_phone": "13800000000", "contact_email": "zhangsan@example.com"},
    "subject_info": {"subject_type": "SUBJECT_TYPE_ENTERPRISE",
                     "business_license_info": {"license_number": "91330106MA2B000000",
                                               "merchant_name": "杭州面馆有限公司",
                                               "legal_person": "张三"},
                     "identity_info": {"id_doc_type": "IDENTIFICATION_TYPE_IDCARD",
                                       "id_card_info": {"id_card_name": "张三"}}},
    "business_info": {"merchant_shortname": "面馆", "service_phone": "057188886666",
                      "sales_info": {"sales_scenes_type": ["SALES_SCENES_STORE"],
                                     "biz_store_info": {"biz_store_name": "面馆",
                                                        "biz_store_address": "杭州市西湖区"}}},
    "settlement_info": {"settlement_id": "716", "qualification_type": "餐饮"},
    "bank_account_info": {"bank_account_type": "BANK_ACCOUNT_TYPE_CORPORATE",
                          "account_name": "杭州面馆有限公司", "account_bank": "中国工商银行",
                          "account_number": "6230910000000000001"},
}


@pytest.fixture
def provider(settings: Settings) -> Iterator[Merchant]:
    """The bank as a service provider (partner_mode) against `fulema sandbox wechat`."""
    inbox = Inbox(b"")
    with serve(standalone_app("wechat", settings)) as base:
        yield Merchant(_client(settings, base, inbox, certificate=False, partner=True), base,
                       inbox)
    inbox.close()


def _onboard(p: Merchant, business_code: str) -> str:
    """The library submits the applyment (encrypting the identity fields itself); the sandbox
    operator approves it; the library reads the sub_mchid back."""
    code, text = p.pay.applyment_submit(business_code=business_code,
                                        **json.loads(json.dumps(APPLICATION)))
    assert code == 200, text
    resp = requests.post(f"{p.base}/sandbox-ops/applyments/{business_code}", timeout=5,
                         json={"decision": "approve"})
    assert resp.status_code == 200, resp.text
    code, text = p.pay.applyment_query(business_code=business_code)
    state = json.loads(text)
    assert (code, state["applyment_state"]) == (200, "APPLYMENT_STATE_FINISHED"), text
    sub: str = state["sub_mchid"]
    return sub


def test_partner_mode_pays_queries_refunds_and_closes_for_a_sub_merchant(
        provider: Merchant) -> None:
    pay = provider.pay
    sub = _onboard(provider, "V3SPAPPLY01")
    code, text = pay.pay(description="面馆-牛肉面", out_trade_no="V3SP0001",
                         amount={"total": 1800}, sub_mchid=sub)
    assert code == 200, text
    assert json.loads(text)["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    code, text = pay.query(out_trade_no="V3SP0001", sub_mchid=sub)
    order = json.loads(text)
    assert (code, order["trade_state"], order["sp_mchid"], order["sub_mchid"]) == (
        200, "NOTPAY", MCHID, sub)
    assert "mchid" not in order

    provider.scan("V3SP0001")
    headers, body = provider.inbox.wait(1)[0]
    notice = pay.callback(headers, body)
    assert notice is not None, "wechatpayv3 refused the sandbox's partner callback"
    resource = notice["resource"]
    assert (resource["sp_mchid"], resource["sub_mchid"], resource["trade_state"]) == (
        MCHID, sub, "SUCCESS")
    assert resource["payer"]["sp_openid"] == RICH_OPENID

    code, text = pay.refund(out_refund_no="V3SPR0001", out_trade_no="V3SP0001",
                            amount={"refund": 300, "total": 1800, "currency": "CNY"},
                            sub_mchid=sub)
    assert (code, json.loads(text)["status"]) == (200, "PROCESSING"), text
    code, text = pay.query_refund(out_refund_no="V3SPR0001", sub_mchid=sub)
    assert (code, json.loads(text)["amount"]["refund"]) == (200, 300)
    # the refund is the sub-merchant's: asked under another sub_mchid it is not found
    code, _ = pay.query_refund(out_refund_no="V3SPR0001", sub_mchid="1999999999")
    assert code == 404

    pay.pay(description="面馆-可乐", out_trade_no="V3SP0002", amount={"total": 500},
            sub_mchid=sub)
    code, _ = pay.close(out_trade_no="V3SP0002", sub_mchid=sub)
    assert code == 204
    code, text = pay.query(out_trade_no="V3SP0002", sub_mchid=sub)
    assert json.loads(text)["trade_state"] == "CLOSED"


def test_partner_mode_refuses_an_unknown_or_suspended_sub_merchant(provider: Merchant) -> None:
    pay = provider.pay
    code, text = pay.pay(description="无此商户", out_trade_no="V3SPX001", amount={"total": 100},
                         sub_mchid="1999999999")
    assert (code, json.loads(text)["code"]) == (400, "MCH_NOT_EXISTS")
    sub = _onboard(provider, "V3SPAPPLY02")
    resp = requests.post(f"{provider.base}/sandbox-ops/applyments/V3SPAPPLY02", timeout=5,
                         json={"decision": "suspend"})
    assert resp.status_code == 200, resp.text
    code, text = pay.pay(description="暂停交易", out_trade_no="V3SPX002", amount={"total": 100},
                         sub_mchid=sub)
    assert (code, json.loads(text)["code"]) == (403, "NO_AUTH")
    # a partner order is not found in the direct form, nor a direct one in the partner form
    requests.post(f"{provider.base}/sandbox-ops/applyments/V3SPAPPLY02", timeout=5,
                  json={"decision": "resume"})
    code, _ = pay.pay(description="恢复", out_trade_no="V3SPX003", amount={"total": 100},
                      sub_mchid=sub)
    assert code == 200
    code, text = pay.query(out_trade_no="V3SPX003", sub_mchid="1999999999")
    assert (code, json.loads(text)["code"]) == (404, "ORDER_NOT_EXIST")
