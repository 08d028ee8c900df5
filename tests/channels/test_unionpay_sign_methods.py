"""UnionPay 5.1.0 signMethods 11/12 (secure key, SHA-256 / SM3) end to end against the
sandbox, and a known answer for signMethod 01 from an independent implementation (openssl)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from fulema.channels.base import RefundRequest, RefundState, TradeState
from fulema.channels.unionpay.config import merchant_keys, platform_dev_keys
from fulema.channels.unionpay.sign import (
    decode_response,
    digest_hex,
    encode_form,
    secure_key_signature,
    sign_fields,
    sign_string,
    to_order_id,
    txn_time_for,
    verify_fields,
)
from fulema.core import crypto, gm
from fulema.core.channel_settings import UnionpaySection
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from tests.channels.test_unionpay import SB, close_env, create_req, make_env

FIELDS = {"version": "5.1.0", "encoding": "UTF-8", "txnType": "00", "txnSubType": "00",
          "merId": "777290058110048", "orderId": "ordZ0190abcdef", "txnAmt": "100",
          "respCode": "00", "respMsg": "成功"}
SECURE_KEY = "88888888"


# --- known answers ---------------------------------------------------------------------------

def test_sign_method_11_known_answer() -> None:
    fields = {**FIELDS, "signMethod": "11"}
    string = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    key_hex = hashlib.sha256(SECURE_KEY.encode()).hexdigest()
    expected = hashlib.sha256(f"{string}&{key_hex}".encode()).hexdigest()
    signature = sign_fields(fields, method="11", rsa_key=None,  # type: ignore[arg-type]
                            sm2_key=("", ""), secure_key=SECURE_KEY)
    assert signature == expected
    assert verify_fields({**fields, "signature": signature}, rsa_public=None,  # type: ignore[arg-type]
                         sm2_public="", secure_key=SECURE_KEY)


def test_sign_method_12_uses_sm3_in_both_places() -> None:
    # SM3 itself, GB/T 32905 example 1: SM3("abc")
    assert gm.sm3_hex(b"abc") == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    fields = {**FIELDS, "signMethod": "12"}
    key_hex = gm.sm3_hex(SECURE_KEY.encode())
    expected = gm.sm3_hex(f"{sign_string(fields)}&{key_hex}".encode())
    assert secure_key_signature(fields, "12", SECURE_KEY) == expected
    assert expected != secure_key_signature({**fields, "signMethod": "11"}, "11", SECURE_KEY)


@pytest.mark.parametrize("method", ["11", "12"])
def test_secure_key_signature_refuses_tamper_and_wrong_key(method: str) -> None:
    fields = {**FIELDS, "signMethod": method}
    fields["signature"] = secure_key_signature(fields, method, SECURE_KEY)

    def ok(f: dict[str, str], key: str = SECURE_KEY) -> bool:
        return verify_fields(f, rsa_public=None, sm2_public="",  # type: ignore[arg-type]
                             secure_key=key)

    assert ok(fields)
    assert not ok({**fields, "txnAmt": "101"})
    assert not ok(fields, "88888889")
    assert not ok(fields, "")  # no secure key configured: never accepted
    assert not ok({**fields, "signature": fields["signature"].upper()[:-1]})
    other = "12" if method == "11" else "11"
    assert not ok({**fields, "signMethod": other})
    with pytest.raises(ValueError, match="secure key"):
        secure_key_signature(fields, method, "")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_sign_method_01_agrees_with_openssl(tmp_path: Path) -> None:
    """RSA PKCS#1 v1.5 is deterministic: openssl signs hex(SHA-256(string)) independently."""
    settings = Settings(data_dir=tmp_path)
    keys = merchant_keys(settings, settings.unionpay)
    pem = tmp_path / "key.pem"
    pem.write_text(crypto.private_key_pem(keys.rsa))
    fields = {**FIELDS, "signMethod": "01", "certId": keys.rsa_cert_id}
    digest = hashlib.sha256(sign_string(fields).encode()).hexdigest()
    assert digest == digest_hex(fields, "01")
    # a fixed argv to the system openssl: nothing untrusted reaches the command line
    out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(pem)],  # noqa: S603, S607
                         input=digest.encode(), capture_output=True, check=True).stdout
    expected = base64.b64encode(out).decode()
    assert sign_fields(fields, method="01", rsa_key=keys.rsa, sm2_key=keys.sm2) == expected
    assert verify_fields({**fields, "signature": expected}, rsa_public=keys.rsa.public_key(),
                         sm2_public=keys.sm2[1])


# --- end to end against the sandbox ----------------------------------------------------------

@pytest.mark.parametrize("method", ["11", "12"])
async def test_secure_key_round_trip_end_to_end(tmp_path: Path, method: str) -> None:
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path)
    e, _ = make_env(settings, UnionpaySection(sign_method=method))  # type: ignore[arg-type]
    try:
        assert e.channel.cert_id == ""
        req = create_req(settings, 777)
        created = await e.channel.create(req)
        assert created.raw["signMethod"] == method
        assert "signPubKeyCert" not in created.raw
        assert "certId" not in created.raw
        resp = await e.wallet("POST", "/scan", json={"code_url": created.code_url,
                                                     "payer_id": "up_rich"})
        assert resp.status_code == 200, resp.text
        [cb] = await e.callbacks(1)  # signed by the sandbox with the same method and key
        assert cb.trade is not None
        assert cb.trade.raw["signMethod"] == method
        assert (cb.trade.state, cb.trade.amount) == (TradeState.SUCCESS, Money(777))
        found = await e.channel.query(req.order_id)
        assert (found.state, found.amount) == (TradeState.SUCCESS, Money(777))
        assert found.raw["signMethod"] == method
        refund = await e.channel.refund(RefundRequest(
            order_id=req.order_id, refund_id=new_id("rfd"), amount=Money(100),
            order_amount=Money(777), reason="r", notify_url=req.notify_url))
        assert refund.state in (RefundState.PROCESSING, RefundState.SUCCESS)
    finally:
        await close_env(e)


@pytest.mark.parametrize("method", ["11", "12"])
async def test_sandbox_refuses_tampered_secure_key_request_with_11(tmp_path: Path,
                                                                    method: str) -> None:
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path)
    e, _ = make_env(settings, UnionpaySection(sign_method=method))  # type: ignore[arg-type]
    try:
        req = create_req(settings)
        form = e.channel._signed({
            "txnType": "01", "txnSubType": "07", "bizType": "000000", "channelType": "08",
            "orderId": to_order_id(req.order_id), "txnTime": txn_time_for(req.order_id),
            "txnAmt": "100", "currencyCode": "156", "backUrl": req.notify_url})
        assert "certId" not in form
        wrong_key = {**form, "signature": secure_key_signature(form, method, "not-the-key")}
        for tampered in ({**form, "txnAmt": "1"}, wrong_key):
            resp = await e.http.post(f"{SB}/gateway/api/backTransReq.do",
                                     content=encode_form(tampered))
            answer = decode_response(resp.text)
            assert (answer["respCode"], answer["respMsg"]) == ("11", "验证签名失败")
            assert answer["signMethod"] == method
            assert e.channel._verified(answer)  # the refusal itself is signed
        resp = await e.http.post(f"{SB}/gateway/api/backTransReq.do", content=encode_form(form))
        assert decode_response(resp.text)["respCode"] == "00"
    finally:
        await close_env(e)


@pytest.mark.parametrize("method", ["11", "12"])
async def test_adapter_refuses_callback_signed_with_another_secure_key(tmp_path: Path,
                                                                       method: str) -> None:
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path)
    e, _ = make_env(settings, UnionpaySection(sign_method=method))  # type: ignore[arg-type]
    try:
        oid = new_id("ord")
        fields = {"version": "5.1.0", "signMethod": method, "txnType": "01",
                  "txnSubType": "07", "merId": e.channel.up.mer_id,
                  "orderId": to_order_id(oid), "txnAmt": "100", "respCode": "00",
                  "origRespCode": "00", "queryId": "1" * 21}
        platform = platform_dev_keys(settings)
        good = {**fields, "signature": sign_fields(fields, method=method, rsa_key=platform.rsa,
                                                   sm2_key=platform.sm2,
                                                   secure_key=e.channel.keys.secure_key)}
        assert (await e.channel.parse_callback({}, encode_form(good).encode())).order_id == oid
        forged = {**fields, "signature": secure_key_signature(fields, method, "stranger")}
        with pytest.raises(FulemaError) as err:
            await e.channel.parse_callback({}, encode_form(forged).encode())
        assert err.value.code == ErrorCode.CALLBACK_INVALID
    finally:
        await close_env(e)


async def test_rsa_configured_adapter_ignores_secure_key_signatures(tmp_path: Path) -> None:
    """Set up for 01 with no SECURE_KEY, the adapter holds no secure key: an 11-signed
    callback (even under the install's development key) is refused."""
    settings = Settings(public_base_url="http://testserver", data_dir=tmp_path)
    e, _ = make_env(settings)
    try:
        assert e.channel.keys.secure_key == ""
        fields = {"version": "5.1.0", "signMethod": "11", "txnType": "01", "txnSubType": "07",
                  "merId": e.channel.up.mer_id, "orderId": to_order_id(new_id("ord")),
                  "txnAmt": "100", "respCode": "00", "queryId": "1" * 21}
        fields["signature"] = secure_key_signature(fields, "11", e.sandbox.secure_key)
        with pytest.raises(FulemaError) as err:
            await e.channel.parse_callback({}, encode_form(fields).encode())
        assert err.value.code == ErrorCode.CALLBACK_INVALID
    finally:
        await close_env(e)
