"""Known answers for the UnionPay sandbox's own protocol code (`fulema.sandbox.unionpay`).

* signMethods 11 and 12: the vectors published with UnionPay's Python SDK (`acp_sdk`
  `SDKUtil_test.test_BuildSignature`, as ported in github.com/playniuniu/python-unionpay):
  fields ``transType=01, sysReserved={aaa=a&bbb=b}, merId=888888888888888, version=5.1.0``
  and the SDK's default (empty) secure key.
* The SDK's ``createLinkString`` / ``filterNoneValue`` examples for the string to sign.
* signMethod 01: no usable published vector (the SDK's needs UnionPay's test .pfx), so openssl
  signs and verifies independently; RSA PKCS#1 v1.5 is deterministic.
* A request built by hand, signed by openssl, accepted by the sandbox served at its own root
  (UnionPay's real paths), and its signed answer verified by openssl.
* The ZM file: field offsets from the 文件接口 widths, read back by the adapter's parser.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.channels.unionpay.bill import parse_zm
from fulema.core import crypto, gm
from fulema.sandbox.unionpay import zm
from fulema.sandbox.unionpay.config import UnionpaySandboxConfig
from fulema.sandbox.unionpay.protocol import secure_key_signature, sign, string_to_sign, verify
from fulema.sandbox.unionpay.server import build_sandbox

SDK_FIELDS = {"transType": "01", "sysReserved": "{aaa=a&bbb=b}", "merId": "888888888888888",
              "version": "5.1.0"}
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl CLI not installed")


def test_string_to_sign_matches_the_sdk_examples() -> None:
    assert string_to_sign({"transType": "01", "sysReserved": "{aaa=a&bbb=b}",
                           "merId": "888888888888888"}) == (
        "merId=888888888888888&sysReserved={aaa=a&bbb=b}&transType=01")
    # filterNoneValue: an empty value takes no part; signature never does
    assert string_to_sign({"a": "123", "b": "", "c": "456", "signature": "x"}) == "a=123&c=456"


def test_sign_method_11_published_vector() -> None:
    fields = {**SDK_FIELDS, "signMethod": "11"}
    assert secure_key_signature(fields, "11", "") == (
        "bda8e705fe9d67022f71e8ca14752abc402368ed142b3bc71837ac9dec99c18e")


def test_sign_method_12_published_vector() -> None:
    fields = {**SDK_FIELDS, "signMethod": "12"}
    assert secure_key_signature(fields, "12", "") == (
        "e3d147d4d1b835a3453c7f900acf8ad4370ebea0e750452a4a02db43c398af81")


def test_secure_key_verification_refuses_tamper_and_an_empty_key() -> None:
    fields = {**SDK_FIELDS, "signMethod": "11"}
    fields["signature"] = secure_key_signature(fields, "11", "88888888")
    keys = {"rsa_public": crypto.generate_rsa_key().public_key(), "sm2_public": ""}
    assert verify(fields, secure_key="88888888", **keys)  # type: ignore[arg-type]
    assert not verify({**fields, "merId": "888888888888889"}, secure_key="88888888",
                      **keys)  # type: ignore[arg-type]
    assert not verify(fields, secure_key="", **keys)  # type: ignore[arg-type]


def openssl(tmp: Path, *args: str, data: bytes) -> bytes:
    # a fixed argv to the system openssl: nothing untrusted reaches the command line
    return subprocess.run(["openssl", *args], input=data, capture_output=True,  # noqa: S603, S607
                          check=True, cwd=tmp).stdout


@pytest.fixture(scope="module")
def merchant_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The merchant's RSA key, made by openssl, not by our code."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    tmp = tmp_path_factory.mktemp("up-openssl")
    openssl(tmp, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "merchant.pem", data=b"")
    return tmp / "merchant.pem"


def openssl_sign_01(pem: Path, fields: dict[str, str]) -> str:
    digest = hashlib.sha256(string_to_sign(fields).encode()).hexdigest().encode()
    return base64.b64encode(openssl(pem.parent, "dgst", "-sha256", "-sign", str(pem),
                                    data=digest)).decode()


@needs_openssl
def test_sign_method_01_agrees_with_openssl(merchant_pem: Path) -> None:
    key = crypto.load_private_key(merchant_pem.read_bytes())
    fields = {**SDK_FIELDS, "signMethod": "01", "certId": "68759663125"}
    expected = openssl_sign_01(merchant_pem, fields)
    assert sign(fields, rsa_key=key, sm2_key=("", ""), secure_key="") == expected
    assert verify({**fields, "signature": expected}, rsa_public=key.public_key(),
                  sm2_public="", secure_key="")


@pytest.fixture
def merchant_public(merchant_pem: Path) -> rsa.RSAPublicKey:
    return crypto.load_private_key(merchant_pem.read_bytes()).public_key()


@pytest.fixture
async def unionpay(merchant_public: rsa.RSAPublicKey) -> AsyncIterator[httpx.AsyncClient]:
    """UnionPay's gateway at its own root, knowing the openssl-made merchant key."""
    outbound = httpx.AsyncClient()  # back notifications: none in these tests
    app = build_sandbox(UnionpaySandboxConfig(
        mer_id="777290058110048", platform_rsa=crypto.generate_rsa_key(),
        platform_sm2=gm.generate_sm2_keypair(), merchant_rsa_public=merchant_public,
        merchant_sm2_public=gm.generate_sm2_keypair()[1],
        merchant_cert_ids={"01": "68759663125", "02": "1"}, secure_key="88888888"), outbound)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://gateway.95516.com") as client:
        yield client
    await outbound.aclose()


def parse_answer(text: str) -> dict[str, str]:
    """The SDK's parseQString: split on '&' outside {...}, then on the first '='."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "&" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return dict(part.split("=", 1) for part in parts)


def openssl_verifies_answer(tmp: Path, answer: dict[str, str]) -> bool:
    (tmp / "up.pem").write_text(answer["signPubKeyCert"])
    pub = openssl(tmp, "x509", "-in", "up.pem", "-pubkey", "-noout", data=b"")
    (tmp / "up_pub.pem").write_bytes(pub)
    (tmp / "sig.bin").write_bytes(base64.b64decode(answer["signature"]))
    digest = hashlib.sha256(string_to_sign(answer).encode()).hexdigest().encode()
    return b"Verified OK" in openssl(tmp, "dgst", "-sha256", "-verify", "up_pub.pem",
                                     "-signature", "sig.bin", data=digest)


@needs_openssl
async def test_hand_built_query_at_the_real_path(unionpay: httpx.AsyncClient,
                                                 merchant_pem: Path) -> None:
    form = {"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01",
            "certId": "68759663125", "txnType": "00", "txnSubType": "00", "bizType": "000000",
            "accessType": "0", "merId": "777290058110048", "orderId": "ORD20240501000001",
            "txnTime": "20240501120000"}
    form["signature"] = openssl_sign_01(merchant_pem, form)
    resp = await unionpay.post("/gateway/api/queryTrans.do", data=form)
    answer = parse_answer(resp.text)
    assert answer["respCode"] == "34"  # 查无此交易: the signature was accepted
    assert answer["respMsg"] == "查无此交易"
    # The answer is signed as UnionPay signs: openssl verifies it with signPubKeyCert's key.
    assert openssl_verifies_answer(merchant_pem.parent, answer)

    tampered = {**form, "txnTime": "20240501120001"}
    bad = parse_answer((await unionpay.post("/gateway/api/queryTrans.do", data=tampered)).text)
    assert bad["respCode"] == "11"  # 验证签名失败
    missing = {k: v for k, v in form.items() if k != "certId"}
    assert parse_answer((await unionpay.post("/gateway/api/queryTrans.do",
                                             data=missing)).text)["respCode"] == "13"


def test_zm_line_layout_and_the_adapter_reads_it() -> None:
    row = {"tradeNo": zm.CONSUME, "acqInsCode": "48020000", "sendInsCode": "00010000",
           "traceNo": "123", "txnTime": "0501120000", "txnAmt": "1234",
           "queryId": "202405011200001234567", "orderId": "ORD20240501000001",
           "subMerAbbr": "面馆", "settleAmt": zm.signed_fen(1234), "merId": "777290058110048",
           "txnType": "01", "txnSubType": "07", "bizType": "000000"}
    data = zm.render([row])
    assert data.endswith(b"\r\n")
    line = data[:-2]
    assert len(line) == 607
    assert line[0:4] == b"S22 "
    assert line[4:16] == b"48020000    "  # 11 bytes, left-aligned, then the separator
    assert line[28:34] == b"000123"  # traceNo zero-padded
    assert line[66:78] == b"000000001234"  # txnAmt zero-padded, 12 bytes
    assert line[112:144] == b"ORD20240501000001".ljust(32)
    assert "面馆".encode("gbk") in line  # GBK: two bytes per character
    assert zm.file_name(date(2024, 5, 1), "777290058110048") == "INN24050188ZM_777290058110048"
    assert zm.signed_fen(-5) == "D000000000005"
    [parsed] = parse_zm(data)
    assert parsed.order_id == "ORD20240501000001"
    assert parsed.txn_amt.fen == 1234
    assert parsed.settle_amt.fen == 1234
    with pytest.raises(ValueError, match="longer than"):
        zm.render([{"merCatCode": "59999"}])

