"""UnionPay 全渠道 (ACP 5.1.0) wire format and signatures, as the sandbox implements them.

Written from UnionPay's interface specification (《全渠道平台接入接口规范》 5.1.0) and its
published SDK (`acp_sdk` for Java/PHP/Python: `SDKUtil.buildSignature`, `verify`,
`verifyBySecureKey`, `parseQString`), NOT imported from `fulema.channels.unionpay`: the adapter
has its own implementation, and this duplication is intended. Two independent implementations
of one protocol are what lets the sandbox catch the adapter's mistakes (a bug shared by
both sides would otherwise be accepted by our own sandbox). Generic primitives (RSA, SM2, SM3
in `fulema.core`) are shared; every channel-specific string, field and code is here.

The string to sign is every non-empty field except ``signature``, sorted by key, ``k=v``
joined by ``&``, values neither encoded nor escaped (the SDK's ``createLinkString(req, true,
false)`` after ``filterNoneValue``). Then, by signMethod:

* ``01``: lower-case hex SHA-256 of the string, signed with SHA256withRSA (PKCS#1 v1.5),
  base64; ``certId`` names the merchant's signing certificate (its serial number).
* ``02`` (Fulema's national-cryptography variant): hex SM3 of the string, SM2-signed with
  the default user id; base64 of r||s (64 bytes).
* ``11``: hex SHA-256 of ``string + "&" + hex SHA-256(secureKey)``; no certId.
* ``12``: the same with SM3 in both places.

Requests and back notifications are forms; synchronous answers are ``k=v&k=v`` unencoded
(a PEM ``signPubKeyCert`` keeps its newlines and ``=``), which the SDK's ``parseQString`` reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.core import crypto, gm

VERSION = "5.1.0"
SIGN_RSA, SIGN_SM2, SIGN_SHA256_KEY, SIGN_SM3_KEY = "01", "02", "11", "12"
CERT_METHODS = (SIGN_RSA, SIGN_SM2)  # the message carries certId
SECURE_KEY_METHODS = (SIGN_SHA256_KEY, SIGN_SM3_KEY)
SIGN_METHODS = CERT_METHODS + SECURE_KEY_METHODS
BEIJING = timezone(timedelta(hours=8))  # txnTime, traceTime, settleDate are Beijing time
FORM_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"

# respCode -> respMsg (ACP 5.1.0 appendix, 应答码).
MESSAGES = {
    "00": "成功", "03": "交易通讯超时，请发起查询交易", "04": "交易状态未明，请查询对账结果",
    "05": "交易已受理，请稍后查询交易结果", "06": "系统繁忙，请稍后再试",
    "10": "报文格式错误", "11": "验证签名失败", "12": "重复交易", "13": "报文交易要素缺失",
    "31": "商户状态不正确", "33": "交易金额超限", "34": "查无此交易",
    "35": "原交易不存在或状态不正确", "36": "与原交易信息不符", "38": "银联风险受限",
    "39": "交易不在受理时间范围内", "45": "原交易已被成功退货或已被成功撤销",
    "61": "输入的卡号无效，请确认后输入", "64": "卡上的余额不足", "69": "您的输入超时，交易失败",
}


# --- signing ---------------------------------------------------------------------------------

def string_to_sign(fields: Mapping[str, str]) -> str:
    """Sorted ``k=v&...`` of every field but ``signature`` whose value is not empty."""
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields)
                    if k != "signature" and fields[k] != "")


def _hex_hash(data: bytes, method: str) -> str:
    if method in (SIGN_SM2, SIGN_SM3_KEY):
        return gm.sm3_hex(data)
    return hashlib.sha256(data).hexdigest()


def secure_key_signature(fields: Mapping[str, str], method: str, secure_key: str) -> str:
    """signMethod 11/12: hash(string + "&" + hash(secureKey)), lower-case hex."""
    key_hex = _hex_hash(secure_key.encode("utf-8"), method)
    return _hex_hash(f"{string_to_sign(fields)}&{key_hex}".encode(), method)


def sign(fields: Mapping[str, str], *, rsa_key: rsa.RSAPrivateKey, sm2_key: tuple[str, str],
         secure_key: str) -> str:
    """The ``signature`` for fields that already carry ``signMethod`` (and certId for 01/02)."""
    method = fields["signMethod"]
    if method in SECURE_KEY_METHODS:
        return secure_key_signature(fields, method, secure_key)
    digest = _hex_hash(string_to_sign(fields).encode("utf-8"), method)
    if method == SIGN_RSA:
        return crypto.rsa_sha256_sign(rsa_key, digest)
    if method == SIGN_SM2:
        return base64.b64encode(bytes.fromhex(gm.sm2_sign(sm2_key[0], sm2_key[1],
                                                          digest.encode()))).decode()
    raise ValueError(f"signMethod {method!r}")


def verify(fields: Mapping[str, str], *, rsa_public: rsa.RSAPublicKey, sm2_public: str,
           secure_key: str) -> bool:
    """True only if ``signature`` matches under the declared signMethod."""
    method, signature = fields.get("signMethod", ""), fields.get("signature", "")
    if not signature or method not in SIGN_METHODS:
        return False
    if method in SECURE_KEY_METHODS:
        expected = secure_key_signature(fields, method, secure_key)
        return bool(secure_key) and hmac.compare_digest(expected.encode(), signature.encode())
    digest = _hex_hash(string_to_sign(fields).encode("utf-8"), method)
    if method == SIGN_RSA:
        return crypto.rsa_sha256_verify(rsa_public, digest, signature)
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 64 and gm.sm2_verify(sm2_public, digest.encode(), raw.hex())


def cert_serial(key: rsa.RSAPrivateKey) -> int:
    """The serial number of the sandbox's self-signed signing certificate (a sandbox choice:
    stable per key, so its certId stays the same across restarts)."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return int.from_bytes(hashlib.sha256(der).digest()[:5], "big")


# --- encoding --------------------------------------------------------------------------------

def read_form(body: bytes) -> dict[str, str]:
    """A UTF-8 form as a dict; ValueError on bad encoding or a repeated field."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a UTF-8 form") from exc
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise ValueError(f"repeated field {key}")
        fields[key] = value
    return fields


def write_form(fields: Mapping[str, str]) -> str:
    return urlencode(list(fields.items()))


def write_answer(fields: Mapping[str, str]) -> str:
    """A synchronous answer: ``k=v&...`` without URL encoding, as UnionPay sends it."""
    return "&".join(f"{k}={v}" for k, v in fields.items())


# --- times and ids ---------------------------------------------------------------------------

def parse_txn_time(value: str) -> datetime:
    """yyyyMMddHHmmss, Beijing; ValueError otherwise."""
    if len(value) != 14 or not (value.isascii() and value.isdigit()):
        raise ValueError(f"txnTime {value!r}")
    return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)


def beijing(at: datetime, fmt: str) -> str:
    return at.astimezone(BEIJING).strftime(fmt)


def order_id_candidates(ref: str) -> list[str]:
    """The orderIds a payer's reference may name: itself, and (for the demo cashier, which
    knows Fulema's order id ``ord_...``) the same with '_' as 'Z', since an orderId is AN8..40
    without '_' and a merchant commonly substitutes a letter."""
    return [ref, ref.replace("_", "Z")] if "_" in ref else [ref]
