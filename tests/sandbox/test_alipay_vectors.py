"""Known answers for the Alipay sandbox's own protocol code (`fulema.sandbox.alipay.protocol`),
and the same vectors through our adapter (`fulema.channels.alipay.protocol`) in separate tests.

Where each vector comes from (files under tests/sandbox/vectors/, see its README.md):

* 自行实现签名 (https://opendocs.alipay.com/common/02kf5q): the documented request
  (alipay.mobile.public.menu.add, app_id 2014072300007148) and its 待签名字符串. The
  documentation's `sign` is made with a key it does not publish, so openssl signs that string
  with the test app key of alipay-sdk-nodejs-all (test/fixtures/app-private-key.pem).
* alipay-sdk-nodejs-all (github.com/alipay/alipay-sdk-nodejs-all, test/alipay.test.ts):
  - ``checkNotifySign`` "verify sign should delete sign_type": a real trade_status_sync
    notification signed by Alipay, and the Alipay public key that verifies it;
  - ``checkResponseSign`` "should work": a real alipay.open.file.upload answer signed by
    Alipay over the raw ``*_response`` text ("从实测中获取"), verified with
    test/fixtures/alipay-public-key.pem;
  - ``getSignStr`` "normal": Alipay's exact answer text, ``/`` written as ``\\/``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.channels.alipay import protocol as adapter
from fulema.core import crypto
from fulema.core.clock import clock
from fulema.sandbox.alipay import protocol
from fulema.sandbox.alipay.config import AlipaySandboxConfig
from fulema.sandbox.alipay.server import build_sandbox

VECTORS = Path(__file__).parent / "vectors"
APP_KEY = VECTORS / "alipay_sdk_app_private_key.pem"
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl CLI not installed")


def _public(name: str) -> rsa.RSAPublicKey:
    return crypto.load_public_key((VECTORS / name).read_bytes())


def openssl_sign(message: str) -> str:
    """SHA256withRSA by the system openssl with the SDK's test app key (not our code)."""
    out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(APP_KEY)],  # noqa: S603, S607
                         input=message.encode(), capture_output=True, check=True).stdout
    return base64.b64encode(out).decode()


# --- 自行实现签名: the documented request and its string to sign --------------------------------

DOC_BIZ = ('{"button":[{"actionParam":"ZFB_HFCZ","actionType":"out","name":"话费充值"},'
           '{"name":"查询","subButton":[{"actionParam":"ZFB_YECX","actionType":"out","name":"余额查询"},'
           '{"actionParam":"ZFB_LLCX","actionType":"out","name":"流量查询"},'
           '{"actionParam":"ZFB_HFCX","actionType":"out","name":"话费查询"}]},'
           '{"actionParam":"http://m.alipay.com","actionType":"link","name":"最新优惠"}]}')
DOC_REQUEST = {"app_id": "2014072300007148", "method": "alipay.mobile.public.menu.add",
               "charset": "GBK", "sign_type": "RSA2", "timestamp": "2014-07-24 03:07:50",
               "biz_content": DOC_BIZ, "sign": "e9zEAe4TTQ4LPLQvETPoLGXTiURcxiAKfMVQ6Hrrsx2h",
               "version": "1.0"}
DOC_STRING_TO_SIGN = (f"app_id=2014072300007148&biz_content={DOC_BIZ}&charset=GBK"
                      "&method=alipay.mobile.public.menu.add&sign_type=RSA2"
                      "&timestamp=2014-07-24 03:07:50&version=1.0")

# --- alipay-sdk-nodejs-all: a real notification, signed by Alipay ------------------------------

NOTIFY_KEY = "alipay_sdk_notify_public_key_v1.pem"
NOTIFY = {
    "gmt_create": "2019-08-15 15:56:22", "charset": "utf-8",
    "seller_email": "z97-yuquerevenue@service.aliyun.com", "subject": "语雀空间 500人规模",
    "sign": (
        "QfTb8tqE1BMhS5qAnXtvsF3/jBkEvu9q9en0pdbBUDDjvKycZhQb7h8GDs4FKfi049PynaNuatxSgLb/nLWZpXyyh0L"
        "EWdK2S6Ri7nPwrVgOs08zugLO20vOQz44y3ti2Ncm8/wZts1Fr2gZ7pShnVX3d1B50hbsXnObT1r/U8ONNQjWXd0HIul4"
        "TG+Q3fm3svmSvFEy0WnzuhcyHPX5Gm4ELNctL6Qd5YniGJFNcc7kopHYtI/XD9YCKCH6Ct02rzUs9i11C9CsadtZn+Whx"
        "F26Dqt9sGEFajkJ8cxUTLi8+VCpLHsgPE8P0y095uQcDdK0YjCh4x7wVSov+lrmOQ=="),
    "buyer_id": "2088102534368455", "invoice_amount": "0.10",
    "notify_id": "2019081500222155624068450559358070",
    # a form field; the SDK test holds it parsed and JSON.stringify()s it back to this text
    "fund_bill_list": '[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]',
    "notify_type": "trade_status_sync", "trade_status": "TRADE_SUCCESS",
    "receipt_amount": "0.10", "buyer_pay_amount": "0.10", "sign_type": "RSA2",
    "app_id": "2019073166072302", "seller_id": "2088531891668739",
    "gmt_payment": "2019-08-15 15:56:24", "notify_time": "2019-08-15 15:56:25", "version": "1.0",
    "out_trade_no": "20190815155618536-564-57", "total_amount": "0.10",
    "trade_no": "2019081522001468450512505578", "auth_app_id": "2019073166072302",
    "buyer_logon_id": "xud***@126.com", "point_amount": "0.00",
}

# --- alipay-sdk-nodejs-all: a real answer, signed by Alipay over the raw node ------------------

ANSWER_KEY = "alipay_sdk_alipay_public_key.pem"
ANSWER_METHOD = "alipay.open.file.upload"
ANSWER_NODE = {"code": "10000", "msg": "Success", "file_id": "CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}
ANSWER_SIGN = (
    "F+LDzpTNiavn7xVZPGuPCSSVRSmWzJGgtuji6tVELGEaqMaNj0jRKXUEr5nloZJBBmwEnddOyCjjepMmrTKTvoOqQ0Efx"
    "pr/R1iEeHTHVbb/Q8TTh6Up5gHJDkILdaWS2q1cWeQ6VT+HQY9P3WRXS7uhILHuDODIhpAyCu5KhWGt0rMCIG+Im6NODJ"
    "P2oohtSCtmTFXg58HH587Z2y2bdbjzOxLvzD9IrU1imghXQ2S/Q+wMIvRk9on6cWnBLkrNvJKapA2ReNGWOwyuASvB9zD"
    "VzhMPbR+3mfRGkVDxsq5HYLjBKGskJMXHw0HuugZij6ScRuaLPODhmHwr/pJ9yw==")
ANSWER_RAW = ('{"alipay_open_file_upload_response":{"code":"10000","msg":"Success",'
              '"file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"},"sign":"' + ANSWER_SIGN + '"}')
# getSignStr "normal": the node text as Alipay writes it (signed with a key not published)
IMAGE_NODE = {"code": "10000", "msg": "Success", "image_id": "Zp1Nm6FDTZaEuSSniGd5awAAACMAAQED",
              "image_url": "http://oalipay-dl-django.alicdn.com/rest/1.0/image"
                           "?fileIds=Zp1Nm6FDTZaEuSSniGd5awAAACMAAQED&zoom=original"}
IMAGE_NODE_TEXT = ('{"code":"10000","msg":"Success","image_id":"Zp1Nm6FDTZaEuSSniGd5awAAACMAAQED",'
                   '"image_url":"http:\\/\\/oalipay-dl-django.alicdn.com\\/rest\\/1.0\\/image'
                   '?fileIds=Zp1Nm6FDTZaEuSSniGd5awAAACMAAQED&zoom=original"}')


# === the sandbox's own code ====================================================================

def test_string_to_sign_is_the_documented_one() -> None:
    assert protocol.sign_content(DOC_REQUEST) == DOC_STRING_TO_SIGN
    # empty values take no part; a request keeps sign_type in (only notifications drop it)
    assert protocol.sign_content({**DOC_REQUEST, "notify_url": "", "app_auth_token": ""}) == (
        DOC_STRING_TO_SIGN)


@needs_openssl
def test_sandbox_verifies_the_documented_request_signed_by_openssl() -> None:
    app_public = crypto.load_private_key(APP_KEY.read_bytes()).public_key()
    signed = {**DOC_REQUEST, "sign": openssl_sign(DOC_STRING_TO_SIGN)}
    assert protocol.request_verifies(signed, app_public)
    # the same signature over anything else, or without sign_type, is refused
    assert not protocol.request_verifies({**signed, "version": "1.1"}, app_public)
    no_type = {k: v for k, v in DOC_REQUEST.items() if k != "sign_type"}
    assert not protocol.request_verifies(
        {**signed, "sign": openssl_sign(protocol.sign_content(no_type))}, app_public)
    assert not protocol.request_verifies({**DOC_REQUEST, "sign": ""}, app_public)


def test_notification_string_to_sign_matches_a_real_alipay_notification() -> None:
    key = _public(NOTIFY_KEY)
    content = protocol.sign_content(NOTIFY, exclude=("sign", "sign_type"))
    assert content.startswith("app_id=2019073166072302&auth_app_id=2019073166072302&buyer_id=")
    assert "sign_type" not in content
    assert crypto.rsa_sha256_verify(key, content, NOTIFY["sign"])
    # the request rule (sign_type kept) does not reproduce what Alipay signed
    assert not crypto.rsa_sha256_verify(key, protocol.sign_content(NOTIFY), NOTIFY["sign"])


def test_sandbox_writes_a_real_answer_byte_for_byte() -> None:
    unsigned = protocol.encode_answer(ANSWER_METHOD, ANSWER_NODE, None)
    assert unsigned == ANSWER_RAW.split(',"sign":')[0] + "}"
    node_text = unsigned[len('{"alipay_open_file_upload_response":'):-1]
    # Alipay's own signature covers exactly the text the sandbox wrote
    assert crypto.rsa_sha256_verify(_public(ANSWER_KEY), node_text, ANSWER_SIGN)


def test_sandbox_escapes_slashes_as_alipay_does() -> None:
    body = protocol.encode_answer("alipay.offline.material.image.upload", IMAGE_NODE, None)
    assert body == '{"alipay_offline_material_image_upload_response":' + IMAGE_NODE_TEXT + "}"


@needs_openssl
def test_sandbox_signs_the_node_text_it_wrote() -> None:
    key = crypto.load_private_key(APP_KEY.read_bytes())  # any key: PKCS#1 v1.5 is deterministic
    body = protocol.encode_answer(ANSWER_METHOD, ANSWER_NODE, key)
    node_text = body[len('{"alipay_open_file_upload_response":'):body.index(',"sign":')]
    assert body.endswith(f',"sign":"{openssl_sign(node_text)}"}}')
    error = protocol.encode_answer(protocol.ERROR_NODE, {"code": "40002"}, None)
    assert error == '{"error_response":{"code":"40002"}}'


@pytest.fixture
async def doc_app_gateway() -> AsyncIterator[httpx.AsyncClient]:
    """Alipay's gateway knowing the SDK's test app key under the documented app_id."""
    clock.freeze(protocol.parse_beijing("2014-07-24 03:07:50"))
    app_public = crypto.load_private_key(APP_KEY.read_bytes()).public_key()
    config = AlipaySandboxConfig(public_url="http://alipay.test", app_id="2014072300007148",
                                 seller_id="2088102146225135", app_public_key=app_public,
                                 platform_key=crypto.generate_rsa_key())
    async with httpx.AsyncClient() as out, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_sandbox(config, out)),
            base_url="https://openapi.alipay.com") as client:
        yield client


@needs_openssl
async def test_gateway_accepts_a_request_signed_by_openssl(
        doc_app_gateway: httpx.AsyncClient) -> None:
    params = {"app_id": "2014072300007148", "method": "alipay.trade.query", "charset": "utf-8",
              "sign_type": "RSA2", "timestamp": protocol.beijing_time(clock.now()),
              "version": "1.0", "biz_content": '{"out_trade_no":"20150320010101001"}'}
    params["sign"] = openssl_sign("&".join(f"{k}={params[k]}" for k in sorted(params)))
    resp = await doc_app_gateway.post("/gateway.do", data=params)
    node = resp.json()["alipay_trade_query_response"]
    # past the signature: the trade is simply unknown to this gateway
    assert node["sub_code"] == "ACQ.TRADE_NOT_EXIST", node
    # charset passes its own check case-blind, but the signed text changed
    recased = await doc_app_gateway.post("/gateway.do", data={**params, "charset": "UTF-8"})
    assert recased.json()["alipay_trade_query_response"]["sub_code"] == "isv.invalid-signature"
    tampered = await doc_app_gateway.post(
        "/gateway.do", data={**params, "biz_content": '{"out_trade_no":"20150320010101002"}'})
    assert tampered.json()["alipay_trade_query_response"]["sub_code"] == "isv.invalid-signature"


# === the same vectors through our adapter (fulema.channels.alipay.protocol) ====================

def test_adapter_string_to_sign_is_the_documented_one() -> None:
    assert adapter.sign_content(DOC_REQUEST) == DOC_STRING_TO_SIGN


@needs_openssl
def test_adapter_signs_the_documented_request_as_openssl_does() -> None:
    key = crypto.load_private_key(APP_KEY.read_bytes())
    assert adapter.sign_params(DOC_REQUEST, key) == openssl_sign(DOC_STRING_TO_SIGN)
    assert adapter.verify_params({**DOC_REQUEST, "sign": openssl_sign(DOC_STRING_TO_SIGN)},
                                 key.public_key())


def test_adapter_verifies_a_real_alipay_notification() -> None:
    key = _public(NOTIFY_KEY)
    assert adapter.verify_notify(NOTIFY, key)
    assert adapter.verify_notify({k: v for k, v in NOTIFY.items() if k != "sign_type"}, key)
    assert not adapter.verify_notify({**NOTIFY, "total_amount": "100.10"}, key)
    assert not adapter.verify_notify({**NOTIFY, "sign": ""}, key)


def test_adapter_verifies_a_real_alipay_answer_over_the_raw_node() -> None:
    members = adapter.top_level(ANSWER_RAW)
    value, node_text = members["alipay_open_file_upload_response"]
    assert value == ANSWER_NODE
    assert node_text == '{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}'
    assert adapter.signed_node_verifies(node_text, members["sign"][0], _public(ANSWER_KEY))
    # the same answer with spacing Alipay did not send (a re-serialised node) does not verify
    spaced = node_text.replace(",", ", ")
    assert not adapter.signed_node_verifies(spaced, ANSWER_SIGN, _public(ANSWER_KEY))
    # whitespace around members (getSignStr "include \\r\\n\\s") does not change the node
    loose = ANSWER_RAW.replace('":{"code"', '"\n  :\n  {"code"').replace('},"sign"', '},\n "sign"  ')
    assert adapter.top_level(loose)["alipay_open_file_upload_response"][1] == node_text


def test_adapter_writes_answers_as_alipay_does() -> None:
    assert adapter.encode_response(ANSWER_METHOD, ANSWER_NODE, None) == (
        ANSWER_RAW.split(',"sign":')[0] + "}")
    assert adapter.encode_response("alipay.offline.material.image.upload", IMAGE_NODE, None) == (
        '{"alipay_offline_material_image_upload_response":' + IMAGE_NODE_TEXT + "}")


def test_beijing_time_round_trips_the_documented_timestamp() -> None:
    at = protocol.parse_beijing("2014-07-24 03:07:50")
    assert at == datetime.fromisoformat("2014-07-23T19:07:50+00:00")
    assert protocol.beijing_time(at) == "2014-07-24 03:07:50"
    assert adapter.beijing_time(adapter.parse_beijing("2014-07-24 03:07:50")) == (
        "2014-07-24 03:07:50")
