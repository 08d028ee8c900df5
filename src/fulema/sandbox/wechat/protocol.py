"""WeChat Pay's wire protocol as the sandbox (playing WeChat) implements it.

Written from WeChat Pay's documentation (签名生成, 签名验证, 回调报文解密, 下载平台证书,
API v2 安全规范, 交易账单文件格式), not imported from `fulema.channels.wechat`: the sandbox
is a second, independent implementation, so a signing or format bug in our adapter is refused
here instead of being agreed with. The duplicated constants and strings are intended.

API v3:
- a request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
  signature="..",timestamp="..",serial_no=".."``; the signature is SHA256withRSA (base64) with
  the merchant's private key over ``METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``;
- answers and callbacks carry ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``,
  ``Wechatpay-Signature``, ``Wechatpay-Serial`` (the platform public key id, or the platform
  certificate's serial) and ``Wechatpay-Signature-Type: WECHATPAY2-SHA256-RSA2048``; the
  signature covers ``TIMESTAMP\\nNONCE\\nBODY\\n``;
- callback resources and downloaded platform certificates are AEAD_AES_256_GCM with the
  32-byte APIv3 key (a 12-character nonce, associated data beside the ciphertext).

API v2: ``<xml>`` bodies signed with the 32-character API key: the non-empty fields but
``sign``, sorted, ``k=v&...&key=KEY``, MD5 or HMAC-SHA256, upper-case hex.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
import xml.etree.ElementTree as ET  # building XML only; parsing goes through defusedxml
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml

from fulema.core.clock import clock
from fulema.core.crypto import aes_gcm_encrypt, rsa_sha256_sign

CST = timezone(timedelta(hours=8), "CST")  # WeChat's times are Beijing time
SCHEME = "WECHATPAY2-SHA256-RSA2048"
TOLERANCE_SECONDS = 300  # a signed message more than 5 minutes off is refused
AEAD = "AEAD_AES_256_GCM"
MD5, HMAC_SHA256 = "MD5", "HMAC-SHA256"


def rfc3339(at: datetime) -> str:
    """``2018-06-08T10:34:56+08:00``, as WeChat writes times in API v3."""
    return at.astimezone(CST).isoformat(timespec="seconds")


# --- API v3 -----------------------------------------------------------------------------------

def request_message(method: str, path_and_query: str, timestamp: str, nonce: str,
                    body: bytes) -> bytes:
    """What the merchant signed (an empty body still ends in ``\\n``)."""
    return f"{method.upper()}\n{path_and_query}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def parse_authorization(header: str) -> dict[str, str] | None:
    """The key="value" pairs after WeChat's scheme, or None when the header is not one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SCHEME or not rest:
        return None
    out: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or len(value) < 2 or not value.startswith('"') or not value.endswith('"'):
            return None
        out[key] = value[1:-1]
    return out


def platform_headers(key: rsa.RSAPrivateKey, serial: str, body: bytes) -> dict[str, str]:
    """The Wechatpay-* headers WeChat puts on every signed answer and callback."""
    ts, nonce = str(clock.timestamp()), secrets.token_hex(16).upper()
    message = ts.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
    return {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial,
            "Wechatpay-Signature": rsa_sha256_sign(key, message),
            "Wechatpay-Signature-Type": SCHEME}


def seal(apiv3_key: bytes, plaintext: bytes, associated_data: str) -> tuple[str, str]:
    """(nonce, ciphertext): AEAD_AES_256_GCM with a fresh 12-character nonce."""
    nonce = secrets.token_urlsafe(9)[:12]
    return nonce, aes_gcm_encrypt(apiv3_key, nonce.encode(), plaintext, associated_data.encode())


def callback_resource(apiv3_key: bytes, doc: dict[str, Any], original_type: str) -> dict[str, str]:
    """A callback's `resource`: the object sealed, the associated data naming its type."""
    nonce, ct = seal(apiv3_key, orjson.dumps(doc), original_type)
    return {"original_type": original_type, "algorithm": AEAD, "ciphertext": ct,
            "associated_data": original_type, "nonce": nonce}


# --- API v2 -----------------------------------------------------------------------------------

def v2_sign(params: Mapping[str, str], api_key: str, sign_type: str = MD5) -> str:
    pairs = [f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != ""]
    source = "&".join([*pairs, f"key={api_key}"]).encode()
    if sign_type == HMAC_SHA256:
        return hmac.new(api_key.encode(), source, hashlib.sha256).hexdigest().upper()
    if sign_type in (MD5, ""):
        return hashlib.md5(source, usedforsecurity=False).hexdigest().upper()
    raise ValueError(f"unsupported sign_type {sign_type!r}")


def v2_verify(params: Mapping[str, str], api_key: str, sign_type: str = MD5) -> bool:
    given = params.get("sign", "")
    try:
        expected = v2_sign(params, api_key, sign_type)
    except ValueError:
        return False
    return bool(given) and hmac.compare_digest(expected.encode(), given.upper().encode())


def to_xml(params: Mapping[str, str]) -> bytes:
    root = ET.Element("xml")
    for key, value in params.items():
        if value != "":
            ET.SubElement(root, key).text = value
    return ET.tostring(root, encoding="unicode").encode()


def from_xml(body: bytes) -> dict[str, str]:
    """A flat ``<xml>`` document; ValueError for a DTD, nesting or a repeated element."""
    try:
        root = parse_xml(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise ValueError(f"not WeChat XML: {exc}") from exc
    if root.tag != "xml":
        raise ValueError("the root element is not <xml>")
    out: dict[str, str] = {}
    for child in root:
        if len(child) or child.tag in out:
            raise ValueError(f"nested or repeated element <{child.tag}>")
        out[child.tag] = child.text or ""
    return out


# --- trade bill (交易账单, bill_type=ALL) ---------------------------------------------------

BILL_COLUMNS = [
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
]
BILL_SUMMARY_COLUMNS = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额",
                        "手续费总金额", "订单总金额", "申请退款总金额"]


def render_bill(rows: list[dict[str, str]], summary: dict[str, str]) -> bytes:
    """Comma-separated, CRLF, UTF-8; each value prefixed with a backtick, as WeChat's files."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BILL_COLUMNS)
    for row in rows:
        writer.writerow(["`" + row.get(col, "") for col in BILL_COLUMNS])
    writer.writerow(BILL_SUMMARY_COLUMNS)
    writer.writerow(["`" + summary.get(col, "") for col in BILL_SUMMARY_COLUMNS])
    return out.getvalue().encode("utf-8")
