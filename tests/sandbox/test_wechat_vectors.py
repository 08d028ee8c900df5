"""Known answers for the WeChat Pay sandbox's own protocol code (`fulema.sandbox.wechat`), and
the same vectors through our adapter (`fulema.channels.wechat`) in separate tests.

Where each vector comes from (files under tests/sandbox/vectors/, see its README.md):

* WeChat Pay's documentation publishes a test merchant key (``apiclient_test_key.pem``) with
  worked signatures: the JSAPI order request (签名生成 example, mchid 1900007291, serial
  408B07E7..., https://pay.weixin.qq.com/doc/v3/merchant/4012365336), a refund query with an
  empty body (https://pay.weixin.qq.com/doc/v3/merchant/4012365334) and the mini-program
  ``paySign`` (小程序调起支付签名, https://pay.weixin.qq.com/docs/merchant/development/
  generate-turitup-signature-verification/mini-transfer-payment-signature.html).
  RSA PKCS#1 v1.5 is deterministic, so the published signature is an exact oracle.
* wechatpay-go (github.com/wechatpay-apiv3/wechatpay-go, core/notify/notify_test.go
  ``TestHandler_ParseNotifyRequest`` with the key of utils/sign_test.go): a whole signed,
  encrypted notification, headers and body.
* wechatpay-java (github.com/wechatpay-apiv3/wechatpay-java, core/src/test/java/com/wechat/
  pay/java/core/cipher/AeadAesCipherTest.java and model/TestConfig.java
  ``DOWNLOAD_CERTIFICATE_RESPONSE``): AEAD_AES_256_GCM with a 32-byte APIv3 key.
* API v2 安全规范 worked example (https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=4_3).
* The APP ``sign`` (APP调起支付签名): no published value was found, so openssl signs the
  documented string with the documentation's test key and the adapter must agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fulema.channels.wechat import sign as adapter_sign
from fulema.channels.wechat import v2 as adapter_v2
from fulema.core import crypto
from fulema.core.clock import clock
from fulema.sandbox.wechat import protocol
from fulema.sandbox.wechat.config import WechatSandboxConfig, certificate_serial
from fulema.sandbox.wechat.server import build_sandbox

VECTORS = Path(__file__).parent / "vectors"
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl CLI not installed")


def _key(name: str) -> rsa.RSAPrivateKey:
    return crypto.load_private_key((VECTORS / name).read_bytes())


# --- WeChat's documentation: the test merchant key and its worked signatures ------------------

DOC_KEY = "wechatpay_doc_test_key.pem"
DOC_MCHID, DOC_SERIAL = "1900007291", "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB"
DOC_TIMESTAMP, DOC_NONCE = "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242"
DOC_JSAPI_PATH = "/v3/pay/transactions/jsapi"
DOC_JSAPI_BODY = (
    '{"appid":"wxd678efh567hg6787","mchid":"1900007291","description":"Image形象店-深圳腾大-QQ公仔",'
    '"out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php",'
    '"amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}'
).encode()
DOC_JSAPI_SIGNATURE = (  # doc 4012365336
    "jnks4dlrPw3ZX+ozVvSK39oa0t7OMBsg83BHAwd8BRdUFiVaQNTLTvci+wURgP1OQBbKYhFGvt7iqYpDSTQkp7Uq1sl"
    "taQKyncCyrA1g88m5bsKERQfPyT0ahSwKTYJ1CAn9QiJuSJRq1QsQs07eehbU/k9BCS51jTyc1Jpsi2H77HF9f/BnjXAO"
    "P3/sPObg6V5Ee4EzwLox684hhuMuIwHo7D8KFk3LIHOKDcNI4It1aCXydFWNpNK+SG86VUDe5kwoDpw4Ulqfu9z8OFDGb"
    "Ds9TCxEv8iqQzbpxOlEVoOe2kalSYM5kApQb3nZcxdUtoE0liJGW3RGUNE0t4v01A==")
DOC_REFUND_PATH = "/v3/refund/domestic/refunds/123123123123"
DOC_REFUND_SIGNATURE = (  # doc 4012365334: GET, empty body
    "Lc9VXxmeonkdV8Xk9tmigQFLhl0vRWTerdmoRu01aAnYwIrD/5nsSwE1WlmZGLRlAFTNQ3QsMa0+VRDlJp1Wp5p0nO8"
    "EK68b5sJBbjouxaFciIfq1zfDWWz+jqhcMoKXI1A6dPm1AW7D4d30WsMTNzp6g23OXakIsh9LO3lUmwvTuE0BY8ncf6tN"
    "Gk4wKmvXwERd/ZpoQY3MAVKz+Nakwc+2XBmzT66KcUehU5kr4IvGa/lEU5RZb/q00zP9VLdBhC/jQSX3X1UcJLCtEc4gT"
    "mib4tnmAT+bHF/e17ZAuxDNcx6rqT8gNEXqaJGG+1OflMSTU2tpyG65G4dMKdFcoA==")
DOC_PAY_APPID, DOC_PREPAY_ID = "wx2421b1c4370ec43b", "wx201410272009395522657a690389285100"
DOC_PAY_SIGN = (  # 小程序调起支付签名
    "mI35pfNEQV6777ke/1T+LJLQDNTm7yeoUJH+j/adPGhmCCi0PbgkvYQTRcXH0uibcLVtvFLdGLpmoYO9FV6lBBsTAjuhh"
    "5YOvQi0e2g3e0yytitiNET9FEuqM0pjnKfRW4K6LIZDdbWJv9KhZUx3DrJa5TL7OJ7VdADVivxVySIlPVKjGwuCXzuXSJ"
    "es0UcILgWQUMyha5/3nYofuHtS7r+KYyMuxD+oJ9VM1Qdxk4UIG59CP5Y3wtYIFybyF3bdu1caHTRRX+DLyMXyYA/IrTm"
    "iW01c4RPjpHBX5Dk1sZyY1zVsWNsvMHr2e1NTWtBxKJ+qk5N61J7caYoepHFaxw==")

# --- wechatpay-go core/notify/notify_test.go: a signed, encrypted notification -----------------

GO_KEY = "wechatpay_go_test_key.pem"
GO_BODY = (VECTORS / "wechatpay_go_notification.json").read_bytes()
GO_HEADERS = {
    "Wechatpay-Timestamp": "1624523846",
    "Wechatpay-Nonce": "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz",
    "Wechatpay-Serial": "D7CE59D1F522D701",
    "Wechatpay-Signature": (
        "tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXFlbYZTO"
        "QrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1"
        "VEA1IBLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdk"
        "NO6B2Cke5e8VTxY406ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q=="),
}
GO_APIV3_KEY = b"testMchAPIv3Key0"  # the SDK test's key is 16 bytes (AES-128-GCM, same construction)
GO_PLAINTEXT = (b'{"mchid":"1234567890","appid":"054aa7d7a2a54ab5898df65bd96f001c",'
                b'"create_time":"2020-06-30T12:12:00+08:00",'
                b'"out_contract_code":"21640bdbd08e473e828f3206a2741c6e"}')

# --- wechatpay-java: AEAD_AES_256_GCM with a 32-byte APIv3 key ---------------------------------

JAVA_APIV3_KEY = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"  # model/TestConfig.java API_V3_KEY
JAVA_NONCE, JAVA_AD, JAVA_CIPHERTEXT = "uluk4a9R25RW", "associatedData", "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
JAVA_CERT_NONCE = "14b16c03dc1b"  # TestConfig.DOWNLOAD_CERTIFICATE_RESPONSE
JAVA_CERT_CIPHERTEXT = (VECTORS / "wechatpay_java_certificate_ciphertext.txt").read_text().strip()
JAVA_CERT_SERIAL = "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC"

# --- API v2 安全规范 worked example -------------------------------------------------------------

V2_KEY = "192006250b4c09247ec02edce69f6a2d"
V2_FIELDS = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
             "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA"}
V2_MD5 = "9A0A8659F005D6984697E2CA0A9CF3B7"
V2_HMAC = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"


@pytest.fixture
def fixed_nonces(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Stand in for the sandbox's random source, so a published nonce can be replayed."""
    chosen = {"urlsafe": "", "hex": ""}
    monkeypatch.setattr(protocol, "secrets", SimpleNamespace(
        token_urlsafe=lambda _n: chosen["urlsafe"],
        token_hex=lambda _n: SimpleNamespace(upper=lambda: chosen["hex"])))
    return chosen


def _authorization(signature: str) -> str:
    return (f'WECHATPAY2-SHA256-RSA2048 mchid="{DOC_MCHID}",nonce_str="{DOC_NONCE}",'
            f'signature="{signature}",timestamp="{DOC_TIMESTAMP}",serial_no="{DOC_SERIAL}"')


@pytest.fixture
async def doc_merchant_sandbox() -> AsyncIterator[httpx.AsyncClient]:
    """WeChat's server at its own root, knowing the documentation's test merchant."""
    clock.freeze(datetime.fromtimestamp(int(DOC_TIMESTAMP), UTC))
    config = WechatSandboxConfig(
        public_url="http://wechat.test", mchid=DOC_MCHID, appid="wxd678efh567hg6787",
        apiv3_key=JAVA_APIV3_KEY, merchant_public_key=_key(DOC_KEY).public_key(),
        merchant_serial_no=DOC_SERIAL, platform_key=_key(GO_KEY),
        platform_public_key_id="PUB_KEY_ID_0119000072912024", v2_api_key=V2_KEY,
        oauth_app_secret="s" * 32)
    async with httpx.AsyncClient() as out, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_sandbox(config, out)),
            base_url="https://api.mch.weixin.qq.com") as client:
        yield client


# === the sandbox's own code ====================================================================

def test_request_message_is_the_documented_five_lines() -> None:
    message = protocol.request_message("POST", DOC_JSAPI_PATH, DOC_TIMESTAMP, DOC_NONCE,
                                       DOC_JSAPI_BODY)
    assert message == (b"POST\n/v3/pay/transactions/jsapi\n1554208460\n"
                       b"593BEC0C930BF1AFEB40B4A08C8FB242\n" + DOC_JSAPI_BODY + b"\n")
    # an empty body (GET) still ends its line
    assert protocol.request_message("get", DOC_REFUND_PATH, "1", "N", b"") == (
        b"GET\n/v3/refund/domestic/refunds/123123123123\n1\nN\n\n")
    assert crypto.rsa_sha256_verify(_key(DOC_KEY).public_key(), message, DOC_JSAPI_SIGNATURE)


def test_the_documented_authorization_header_parses() -> None:
    assert protocol.parse_authorization(_authorization(DOC_JSAPI_SIGNATURE)) == {
        "mchid": DOC_MCHID, "nonce_str": DOC_NONCE, "signature": DOC_JSAPI_SIGNATURE,
        "timestamp": DOC_TIMESTAMP, "serial_no": DOC_SERIAL}
    assert protocol.parse_authorization("WECHATPAY2-SHA256-RSA2048") is None
    assert protocol.parse_authorization('WECHATPAY2-SHA256 mchid="1"') is None
    assert protocol.parse_authorization('WECHATPAY2-SHA256-RSA2048 mchid=1900007291') is None


async def test_sandbox_accepts_the_documented_jsapi_request(
        doc_merchant_sandbox: httpx.AsyncClient) -> None:
    resp = await doc_merchant_sandbox.post(DOC_JSAPI_PATH, content=DOC_JSAPI_BODY, headers={
        "Authorization": _authorization(DOC_JSAPI_SIGNATURE), "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["prepay_id"].startswith("wx")
    # the answer is signed over TIMESTAMP\nNONCE\nBODY\n with the platform key
    h = resp.headers
    assert h["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    message = f"{h['Wechatpay-Timestamp']}\n{h['Wechatpay-Nonce']}\n".encode() + resp.content + b"\n"
    assert crypto.rsa_sha256_verify(_key(GO_KEY).public_key(), message, h["Wechatpay-Signature"])


async def test_sandbox_refuses_the_documented_signature_over_another_body(
        doc_merchant_sandbox: httpx.AsyncClient) -> None:
    tampered = DOC_JSAPI_BODY.replace(b'"total":100', b'"total":1')
    resp = await doc_merchant_sandbox.post(DOC_JSAPI_PATH, content=tampered, headers={
        "Authorization": _authorization(DOC_JSAPI_SIGNATURE), "Content-Type": "application/json"})
    assert resp.status_code == 401
    assert resp.json()["code"] == "SIGN_ERROR"


async def test_sandbox_accepts_the_documented_empty_body_signature(
        doc_merchant_sandbox: httpx.AsyncClient) -> None:
    resp = await doc_merchant_sandbox.get(DOC_REFUND_PATH, headers={
        "Authorization": _authorization(DOC_REFUND_SIGNATURE)})
    # past the signature check: the refund is simply unknown here
    assert resp.status_code == 404
    assert resp.json()["code"] == "RESOURCE_NOT_EXISTS"
    wrong = await doc_merchant_sandbox.get(DOC_REFUND_PATH + "4", headers={
        "Authorization": _authorization(DOC_REFUND_SIGNATURE)})
    assert wrong.status_code == 401


def test_sandbox_signs_a_callback_exactly_as_wechatpay_go_expects(
        fixed_nonces: dict[str, str]) -> None:
    clock.freeze(datetime.fromtimestamp(int(GO_HEADERS["Wechatpay-Timestamp"]), UTC))
    fixed_nonces["hex"] = GO_HEADERS["Wechatpay-Nonce"]
    headers = protocol.platform_headers(_key(GO_KEY), GO_HEADERS["Wechatpay-Serial"], GO_BODY)
    assert headers == {**GO_HEADERS, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}


def test_sandbox_seals_a_callback_resource_as_wechatpay_go_expects(
        fixed_nonces: dict[str, str]) -> None:
    fixed_nonces["urlsafe"] = "Kj7QIyUiYx1q"
    resource = orjson.loads(GO_BODY)["resource"]
    doc = orjson.loads(GO_PLAINTEXT)
    assert protocol.callback_resource(GO_APIV3_KEY, doc, "payscore") == resource


def test_sandbox_seal_reproduces_the_wechatpay_java_aead_vector(
        fixed_nonces: dict[str, str]) -> None:
    fixed_nonces["urlsafe"] = JAVA_NONCE
    assert protocol.seal(JAVA_APIV3_KEY, b"message", JAVA_AD) == (JAVA_NONCE, JAVA_CIPHERTEXT)


def test_sandbox_seals_a_downloaded_certificate_as_wechatpay_java_expects(
        fixed_nonces: dict[str, str]) -> None:
    # the plaintext comes from decrypting the published ciphertext with `cryptography` alone
    pem = AESGCM(JAVA_APIV3_KEY).decrypt(JAVA_CERT_NONCE.encode(),
                                         base64.b64decode(JAVA_CERT_CIPHERTEXT), b"certificate")
    cert = x509.load_pem_x509_certificate(pem)
    fixed_nonces["urlsafe"] = JAVA_CERT_NONCE
    assert protocol.seal(JAVA_APIV3_KEY, pem, "certificate") == (JAVA_CERT_NONCE,
                                                                 JAVA_CERT_CIPHERTEXT)
    # and the fields beside it, as the published download answer writes them
    assert certificate_serial(cert) == JAVA_CERT_SERIAL
    assert protocol.rfc3339(cert.not_valid_before_utc) == "2023-09-19T23:15:58+08:00"
    assert protocol.rfc3339(cert.not_valid_after_utc) == "2028-09-17T23:15:58+08:00"


def test_v2_sign_matches_the_documented_example() -> None:
    assert protocol.v2_sign(V2_FIELDS, V2_KEY) == V2_MD5
    assert protocol.v2_sign(V2_FIELDS, V2_KEY, protocol.MD5) == V2_MD5
    assert protocol.v2_sign(V2_FIELDS, V2_KEY, protocol.HMAC_SHA256) == V2_HMAC
    # sign, and empty values, take no part
    assert protocol.v2_sign({**V2_FIELDS, "sign": "X", "attach": ""}, V2_KEY) == V2_MD5
    # independently: the documented stringSignTemp through hashlib
    temp = ("appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100"
            f"&nonce_str=ibuaiVcKdpRxkhJA&key={V2_KEY}").encode()
    assert hashlib.md5(temp, usedforsecurity=False).hexdigest().upper() == V2_MD5
    assert hmac.new(V2_KEY.encode(), temp, hashlib.sha256).hexdigest().upper() == V2_HMAC


def test_v2_verify_accepts_the_example_and_refuses_everything_else() -> None:
    assert protocol.v2_verify({**V2_FIELDS, "sign": V2_MD5}, V2_KEY)
    assert protocol.v2_verify({**V2_FIELDS, "sign": V2_MD5.lower()}, V2_KEY)
    assert protocol.v2_verify({**V2_FIELDS, "sign": V2_HMAC}, V2_KEY, protocol.HMAC_SHA256)
    assert not protocol.v2_verify({**V2_FIELDS, "sign": V2_HMAC}, V2_KEY)  # wrong sign_type
    assert not protocol.v2_verify({**V2_FIELDS, "sign": V2_MD5}, V2_KEY[:-1] + "e")
    assert not protocol.v2_verify({**V2_FIELDS, "body": "test2", "sign": V2_MD5}, V2_KEY)
    assert not protocol.v2_verify(V2_FIELDS, V2_KEY)  # no sign at all
    assert not protocol.v2_verify({**V2_FIELDS, "sign": V2_MD5}, V2_KEY, "SHA1")


def test_v2_xml_is_the_documented_request() -> None:
    xml = protocol.to_xml({**V2_FIELDS, "sign": V2_MD5})
    assert xml == (b"<xml><appid>wxd930ea5d5a258f4f</appid><mch_id>10000100</mch_id>"
                   b"<device_info>1000</device_info><body>test</body>"
                   b"<nonce_str>ibuaiVcKdpRxkhJA</nonce_str>"
                   b"<sign>9A0A8659F005D6984697E2CA0A9CF3B7</sign></xml>")
    assert protocol.from_xml(xml) == {**V2_FIELDS, "sign": V2_MD5}


async def test_sandbox_v2_accepts_a_request_signed_like_the_example() -> None:
    """The documented merchant (appid, mch_id, key) asks the v2 API: the sign passes, so the
    answer is a business answer (return_code SUCCESS), signed the way the example is."""
    config = WechatSandboxConfig(
        public_url="http://wechat.test", mchid=V2_FIELDS["mch_id"], appid=V2_FIELDS["appid"],
        apiv3_key=JAVA_APIV3_KEY, merchant_public_key=_key(DOC_KEY).public_key(),
        merchant_serial_no=DOC_SERIAL, platform_key=_key(GO_KEY),
        platform_public_key_id="PUB_KEY_ID_1", v2_api_key=V2_KEY, oauth_app_secret="s" * 32)
    request = {"appid": V2_FIELDS["appid"], "mch_id": V2_FIELDS["mch_id"],
               "nonce_str": V2_FIELDS["nonce_str"], "out_trade_no": "1217752501201407033233368018"}
    source = "&".join(f"{k}={request[k]}" for k in sorted(request)) + f"&key={V2_KEY}"
    request["sign"] = hashlib.md5(source.encode(), usedforsecurity=False).hexdigest().upper()
    async with httpx.AsyncClient() as out, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_sandbox(config, out)),
            base_url="https://api.mch.weixin.qq.com") as client:
        resp = await client.post("/pay/orderquery", content=protocol.to_xml(request))
        forged = await client.post("/pay/orderquery",
                                   content=protocol.to_xml({**request, "sign": V2_MD5}))
    answer = protocol.from_xml(resp.content)
    assert answer["return_code"] == "SUCCESS"
    assert answer["err_code"] == "ORDERNOTEXIST"
    unsigned = "&".join(f"{k}={answer[k]}" for k in sorted(answer) if k != "sign" and answer[k])
    assert answer["sign"] == hashlib.md5(f"{unsigned}&key={V2_KEY}".encode(),
                                         usedforsecurity=False).hexdigest().upper()
    assert protocol.from_xml(forged.content) == {"return_code": "FAIL", "return_msg": "签名错误"}


# === the same vectors through our adapter (fulema.channels.wechat) =============================

def test_adapter_signs_the_documented_requests() -> None:
    key = _key(DOC_KEY)
    header = adapter_sign.authorization(
        mchid=DOC_MCHID, serial_no=DOC_SERIAL, key=key, method="POST", url_path=DOC_JSAPI_PATH,
        body=DOC_JSAPI_BODY, timestamp=DOC_TIMESTAMP, nonce=DOC_NONCE)
    assert header == _authorization(DOC_JSAPI_SIGNATURE)
    refund = adapter_sign.authorization(
        mchid=DOC_MCHID, serial_no=DOC_SERIAL, key=key, method="GET", url_path=DOC_REFUND_PATH,
        body=b"", timestamp=DOC_TIMESTAMP, nonce=DOC_NONCE)
    assert refund == _authorization(DOC_REFUND_SIGNATURE)


def test_adapter_verifies_the_wechatpay_go_notification() -> None:
    clock.freeze(datetime.fromtimestamp(int(GO_HEADERS["Wechatpay-Timestamp"]), UTC))
    public = _key(GO_KEY).public_key()
    serial = GO_HEADERS["Wechatpay-Serial"]
    assert adapter_sign.response_message(
        GO_HEADERS["Wechatpay-Timestamp"], GO_HEADERS["Wechatpay-Nonce"], GO_BODY) == (
        b"1624523846\nEcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz\n" + GO_BODY + b"\n")
    assert adapter_sign.check_signed(GO_HEADERS, GO_BODY, public, serial) is None
    assert adapter_sign.check_signed(GO_HEADERS, GO_BODY + b" ", public, serial) == (
        "Wechatpay-Signature does not verify")
    assert adapter_sign.check_signed(GO_HEADERS, GO_BODY, public, "OTHER") is not None
    resource = orjson.loads(GO_BODY)["resource"]
    assert adapter_sign.decrypt_resource(GO_APIV3_KEY, resource) == orjson.loads(GO_PLAINTEXT)
    with pytest.raises(ValueError):  # noqa: PT011 - any authentication failure
        adapter_sign.decrypt_resource(GO_APIV3_KEY, {**resource, "associated_data": "x"})


def test_adapter_decrypts_the_wechatpay_java_vectors() -> None:
    # decrypt_resource wants a JSON object; the AEAD layer itself is checked on the raw vector
    assert crypto.aes_gcm_decrypt(JAVA_APIV3_KEY, JAVA_NONCE.encode(), JAVA_CIPHERTEXT,
                                  JAVA_AD.encode()) == b"message"
    pem = crypto.aes_gcm_decrypt(JAVA_APIV3_KEY, JAVA_CERT_NONCE.encode(),
                                 JAVA_CERT_CIPHERTEXT, b"certificate")
    assert f"{x509.load_pem_x509_certificate(pem).serial_number:X}" == JAVA_CERT_SERIAL


def test_adapter_jsapi_pay_sign_matches_the_documented_example() -> None:
    assert adapter_sign.jsapi_pay_sign(_key(DOC_KEY), DOC_PAY_APPID, DOC_TIMESTAMP, DOC_NONCE,
                                       f"prepay_id={DOC_PREPAY_ID}") == DOC_PAY_SIGN


@needs_openssl
def test_adapter_app_pay_sign_agrees_with_openssl() -> None:
    # no published value: openssl signs appid\ntimestamp\nnoncestr\nprepayid\n itself
    message = f"{DOC_PAY_APPID}\n{DOC_TIMESTAMP}\n{DOC_NONCE}\n{DOC_PREPAY_ID}\n".encode()
    expected = base64.b64encode(subprocess.run(  # noqa: S603 - a fixed argv to the system openssl
        ["openssl", "dgst", "-sha256", "-sign", str(VECTORS / DOC_KEY)],  # noqa: S607
        input=message, capture_output=True, check=True).stdout).decode()
    assert adapter_sign.app_pay_sign(_key(DOC_KEY), DOC_PAY_APPID, DOC_TIMESTAMP, DOC_NONCE,
                                     DOC_PREPAY_ID) == expected


def test_adapter_v2_sign_matches_the_documented_example() -> None:
    assert adapter_v2.sign(V2_FIELDS, V2_KEY) == V2_MD5
    assert adapter_v2.sign(V2_FIELDS, V2_KEY, adapter_v2.HMAC_SHA256) == V2_HMAC
    assert adapter_v2.verify({**V2_FIELDS, "sign": V2_MD5}, V2_KEY)
    assert adapter_v2.verify({**V2_FIELDS, "sign": V2_HMAC}, V2_KEY, adapter_v2.HMAC_SHA256)
    assert not adapter_v2.verify({**V2_FIELDS, "sign": V2_MD5}, V2_KEY, adapter_v2.HMAC_SHA256)
