"""The Alipay sandbox against two published clients that know nothing of Fulema:
python-alipay-sdk (fzlee) and alipay-sdk-python (Ant Group's official SDK). Both talk plain
HTTP to the sandbox served as `fulema sandbox alipay` serves it, sign their requests, verify
its answers and (python-alipay-sdk) its asynchronous notifications.

Both SDKs stamp requests with the machine's local time, which Alipay reads as Beijing time;
the tests run them with TZ=Asia/Shanghai as a merchant's server in China would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from fulema.channels.alipay import protocol as ali_keys
from fulema.core import crypto
from fulema.core.config import Settings
from fulema.sandboxes import standalone_app
from tests.channels.live_server import Inbox, serve

RICH = "2088102146225135"  # the sandbox's rich payer
APP_ID = "2021000000000001"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    d = tmp_path_factory.mktemp("alipay_interop")
    crypto.load_or_create_rsa_key(d / "keys" / "alipay_app.pem")
    crypto.load_or_create_rsa_key(d / "keys" / "alipay_platform.pem")
    return Settings(public_base_url="http://127.0.0.1", data_dir=d)


@pytest.fixture
def beijing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def gateway(settings: Settings, beijing: None) -> Iterator[str]:
    with serve(standalone_app("alipay", settings)) as base:
        yield base


def keys(settings: Settings) -> tuple[str, str]:
    """(the app's private key as PKCS#1 PEM, Alipay's public key as PEM)."""
    app = ali_keys.app_private_key(settings, settings.alipay)
    pkcs1 = app.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode()
    return pkcs1, crypto.public_key_pem(ali_keys.platform_dev_key(settings))


def scan(base: str, qr_code: str) -> None:
    resp = requests.post(f"{base}/wallet/scan", json={"code_url": qr_code, "payer_id": RICH},
                         timeout=5)
    assert resp.status_code == 200, resp.text


# --- python-alipay-sdk -------------------------------------------------------------------------

def fzlee(settings: Settings, base: str, app_id: str = APP_ID) -> Any:
    alipay = pytest.importorskip("alipay", reason="python-alipay-sdk")
    if not hasattr(alipay, "AliPay"):  # alipay-sdk-python's alipay/__init__.py won the install
        pytest.skip("python-alipay-sdk's alipay package is shadowed by alipay-sdk-python")
    private, public = keys(settings)
    client = alipay.AliPay(appid=app_id, app_notify_url=None, app_private_key_string=private,
                           alipay_public_key_string=public, sign_type="RSA2")
    client._gateway = base + "/gateway.do"  # the library's gateway is a constant
    return client


def test_python_alipay_sdk_precreate_notify_query_refund_close(settings: Settings,
                                                               gateway: str) -> None:
    client, inbox = fzlee(settings, gateway), Inbox(b"success")
    try:
        made = client.api_alipay_trade_precreate(subject="面馆-牛肉面", out_trade_no="FZ0001",
                                                 total_amount="18.00", notify_url=inbox.url)
        assert made["code"] == "10000", made
        assert made["out_trade_no"] == "FZ0001"
        scan(gateway, made["qr_code"])

        _, body = inbox.wait(1)[0]
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        signature = fields.pop("sign")
        assert client.verify(fields, signature), "python-alipay-sdk refused the notification"
        assert (fields["out_trade_no"], fields["trade_status"]) == ("FZ0001", "TRADE_SUCCESS")

        queried = client.api_alipay_trade_query(out_trade_no="FZ0001")
        assert (queried["code"], queried["trade_status"], queried["total_amount"]) == \
            ("10000", "TRADE_SUCCESS", "18.00")
        refunded = client.api_alipay_trade_refund(refund_amount="3.00", out_trade_no="FZ0001",
                                                  out_request_no="FZR0001")
        assert (refunded["code"], refunded["fund_change"], refunded["refund_fee"]) == \
            ("10000", "Y", "3.00")
        again = client.api_alipay_trade_fastpay_refund_query(out_request_no="FZR0001",
                                                             out_trade_no="FZ0001")
        assert again["refund_amount"] == "3.00"

        client.api_alipay_trade_create(subject="可乐", out_trade_no="FZ0002",
                                       total_amount="5.00", buyer_id=RICH)
        closed = client.api_alipay_trade_close(out_trade_no="FZ0002")
        assert closed["code"] == "10000", closed
        missing = client.api_alipay_trade_query(out_trade_no="FZNOSUCH")
        assert (missing["code"], missing["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")
    finally:
        inbox.close()


def test_python_alipay_sdk_sees_an_unknown_app_refused_unsigned(settings: Settings,
                                                                gateway: str) -> None:
    """Its own docstring shows this answer: the method's node, no sign (Alipay cannot sign
    for an app it does not know); the SDK raises with the gateway's code."""
    from alipay.exceptions import AliPayException

    client = fzlee(settings, gateway, app_id="2021000000000999")
    with pytest.raises(AliPayException) as exc:
        client.api_alipay_trade_query(out_trade_no="FZ0001")
    assert "isv.invalid-app-id" in str(exc.value)


# --- alipay-sdk-python (Ant Group) -------------------------------------------------------------

@pytest.fixture
def ant_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """alipay-sdk-python only reaches ports 80/443 (it ignores the URL's port): give its
    connection the port. Signing, verifying and parsing stay the SDK's own."""
    import http.client

    from alipay.aop.api.util import WebUtils

    def get_http_connection(url: str, query_string: str, timeout: int) -> tuple[str, Any]:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
        return f"{parts.scheme}://{parts.netloc}{parts.path}?{query_string}", conn

    monkeypatch.setattr(WebUtils, "get_http_connection", get_http_connection)


def ant(settings: Settings, base: str, app_id: str = APP_ID) -> Any:
    pytest.importorskip("alipay.aop.api.DefaultAlipayClient", reason="alipay-sdk-python")
    from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
    from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient

    private, public = keys(settings)
    config = AlipayClientConfig()
    config.server_url = base + "/gateway.do"
    config.app_id, config.app_private_key, config.alipay_public_key = app_id, private, public
    return DefaultAlipayClient(alipay_client_config=config)


def test_ant_sdk_precreate_query_refund_close(settings: Settings, gateway: str,
                                              ant_http: None) -> None:
    from alipay.aop.api.domain.AlipayTradeCloseModel import AlipayTradeCloseModel
    from alipay.aop.api.domain.AlipayTradePrecreateModel import AlipayTradePrecreateModel
    from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
    from alipay.aop.api.domain.AlipayTradeRefundModel import AlipayTradeRefundModel
    from alipay.aop.api.request.AlipayTradeCloseRequest import AlipayTradeCloseRequest
    from alipay.aop.api.request.AlipayTradePrecreateRequest import AlipayTradePrecreateRequest
    from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
    from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
    from alipay.aop.api.response.AlipayTradePrecreateResponse import AlipayTradePrecreateResponse
    from alipay.aop.api.response.AlipayTradeQueryResponse import AlipayTradeQueryResponse
    from alipay.aop.api.response.AlipayTradeRefundResponse import AlipayTradeRefundResponse

    client = ant(settings, gateway)
    model = AlipayTradePrecreateModel()
    model.out_trade_no, model.total_amount, model.subject = "ANT0001", "12.50", "面馆-拌面"
    made = AlipayTradePrecreateResponse()
    made.parse_response_content(client.execute(AlipayTradePrecreateRequest(biz_model=model)))
    assert made.is_success(), made.sub_msg
    scan(gateway, made.qr_code)

    query = AlipayTradeQueryModel()
    query.out_trade_no = "ANT0001"
    paid = AlipayTradeQueryResponse()
    paid.parse_response_content(client.execute(AlipayTradeQueryRequest(biz_model=query)))
    assert (paid.trade_status, paid.total_amount, paid.buyer_user_id) == \
        ("TRADE_SUCCESS", "12.50", RICH)

    refund = AlipayTradeRefundModel()
    refund.out_trade_no, refund.refund_amount, refund.out_request_no = "ANT0001", "2.50", "AR1"
    refunded = AlipayTradeRefundResponse()
    refunded.parse_response_content(client.execute(AlipayTradeRefundRequest(biz_model=refund)))
    assert (refunded.is_success(), refunded.fund_change, refunded.refund_fee) == \
        (True, "Y", "2.50")

    close = AlipayTradeCloseModel()
    close.out_trade_no = "ANTNOSUCH"
    node = client.execute(AlipayTradeCloseRequest(biz_model=close))  # signed refusal: verified
    assert '"sub_code":"ACQ.TRADE_NOT_EXIST"' in node


def test_ant_sdk_refuses_the_unsigned_unknown_app_answer(settings: Settings, gateway: str,
                                                         ant_http: None) -> None:
    """Ant's SDK insists on a sign in every answer; Alipay's answer for an unknown app has
    none, so the SDK raises, quoting the answer."""
    from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
    from alipay.aop.api.exception.Exception import ResponseException
    from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest

    query = AlipayTradeQueryModel()
    query.out_trade_no = "ANT0001"
    with pytest.raises(ResponseException) as exc:
        ant(settings, gateway, app_id="2021000000000999").execute(
            AlipayTradeQueryRequest(biz_model=query))
    assert "isv.invalid-app-id" in str(exc.value)
    assert '"sign"' not in str(exc.value)
