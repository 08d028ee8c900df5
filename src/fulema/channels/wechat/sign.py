"""WeChat Pay API v3 signatures and callback encryption, shared by the adapter and the sandbox.

The rules, as WeChat Pay documents them (签名生成 / 签名验证 / 回调报文解密):

- A request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
  signature="..",timestamp="..",serial_no=".."``; the signature is base64 SHA256withRSA with the
  merchant's private key over ``METHOD\\nURL_PATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``.
- Answers and callbacks carry ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``,
  ``Wechatpay-Signature`` and ``Wechatpay-Serial`` (the platform public key id
  ``PUB_KEY_ID_...``); the signature covers ``TIMESTAMP\\nNONCE\\nBODY\\n``.
- A callback's ``resource`` is AEAD_AES_256_GCM with the 32-byte APIv3 key; the nonce and the
  associated data travel next to the ciphertext.
- JSAPI ``paySign`` covers ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``; the APP SDK's ``sign``
  covers ``appid\\ntimestamp\\nnoncestr\\nprepayid\\n``.

Hand-written because WeChat's own SDKs are Java/Go/PHP/Node; each piece is a few lines over
`fulema.core.crypto` and matches the documented strings exactly (tested against the doc's examples).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.core.clock import clock
from fulema.core.crypto import aes_gcm_decrypt, aes_gcm_encrypt, rsa_sha256_sign, rsa_sha256_verify
from fulema.core.text import is_ascii_digits

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
H_TIMESTAMP = "Wechatpay-Timestamp"
H_NONCE = "Wechatpay-Nonce"
H_SIGNATURE = "Wechatpay-Signature"
H_SERIAL = "Wechatpay-Serial"
TOLERANCE_SECONDS = 300  # WeChat: reject a signed message whose timestamp is > 5 minutes off
AEAD = "AEAD_AES_256_GCM"


def nonce_str() -> str:
    """32 upper-case hex characters, like the examples in WeChat's documentation."""
    return secrets.token_hex(16).upper()


def request_message(method: str, url_path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The five-line string a request signature covers (an empty body still ends in ``\\n``)."""
    head = f"{method.upper()}\n{url_path}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The three-line string an answer or callback signature covers."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def authorization(*, mchid: str, serial_no: str, key: rsa.RSAPrivateKey, method: str,
                  url_path: str, body: bytes, timestamp: str | None = None,
                  nonce: str | None = None) -> str:
    ts = timestamp or str(clock.timestamp())
    nc = nonce or nonce_str()
    sig = rsa_sha256_sign(key, request_message(method, url_path, ts, nc, body))
    return (f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nc}",signature="{sig}",'
            f'timestamp="{ts}",serial_no="{serial_no}"')


def parse_authorization(header: str) -> dict[str, str] | None:
    """The key="value" pairs of an Authorization header, or None if it is not WeChat's scheme."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != AUTH_SCHEME or not rest:
        return None
    out: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            return None
        out[key] = value[1:-1]
    return out


def signed_headers(key: rsa.RSAPrivateKey, serial: str, body: bytes) -> dict[str, str]:
    """The four Wechatpay-* headers for an answer or a callback body."""
    ts, nonce = str(clock.timestamp()), nonce_str()
    return {H_TIMESTAMP: ts, H_NONCE: nonce, H_SERIAL: serial,
            H_SIGNATURE: rsa_sha256_sign(key, response_message(ts, nonce, body))}


def check_signed(headers: dict[str, str], body: bytes, key: rsa.RSAPublicKey,
                 expected_serial: str, tolerance: int = TOLERANCE_SECONDS) -> str | None:
    """None when the Wechatpay-* headers prove `body` came from the platform, else why not."""
    h = {k.lower(): v for k, v in headers.items()}
    ts, nonce = h.get(H_TIMESTAMP.lower(), ""), h.get(H_NONCE.lower(), "")
    sig, serial = h.get(H_SIGNATURE.lower(), ""), h.get(H_SERIAL.lower(), "")
    if not ts or not nonce or not sig or not serial:
        return "missing Wechatpay-* signature headers"
    if serial != expected_serial:
        return f"unknown Wechatpay-Serial {serial!r}"
    if not is_ascii_digits(ts) or abs(clock.timestamp() - int(ts)) > tolerance:
        return "Wechatpay-Timestamp is more than 5 minutes off"
    if not rsa_sha256_verify(key, response_message(ts, nonce, body), sig):
        return "Wechatpay-Signature does not verify"
    return None


def jsapi_pay_sign(key: rsa.RSAPrivateKey, app_id: str, time_stamp: str, nonce: str,
                   package: str) -> str:
    """paySign for WeixinJSBridge getBrandWCPayRequest / wx.requestPayment (signType RSA)."""
    return rsa_sha256_sign(key, f"{app_id}\n{time_stamp}\n{nonce}\n{package}\n")


def app_pay_sign(key: rsa.RSAPrivateKey, appid: str, timestamp: str, nonce: str,
                 prepay_id: str) -> str:
    """sign for the APP SDK's PayReq (package is the constant "Sign=WXPay")."""
    return rsa_sha256_sign(key, f"{appid}\n{timestamp}\n{nonce}\n{prepay_id}\n")


def encrypt_resource(apiv3_key: bytes, plaintext: dict[str, Any], original_type: str,
                     associated_data: str) -> dict[str, str]:
    """A callback's `resource` object: the plaintext JSON sealed with the APIv3 key."""
    nonce = secrets.token_urlsafe(9)[:12]  # WeChat uses a 12-character ASCII nonce
    ct = aes_gcm_encrypt(apiv3_key, nonce.encode(), orjson.dumps(plaintext),
                         associated_data.encode())
    return {"original_type": original_type, "algorithm": AEAD, "ciphertext": ct,
            "associated_data": associated_data, "nonce": nonce}


def decrypt_resource(apiv3_key: bytes, resource: dict[str, Any]) -> dict[str, Any]:
    """The plaintext object of a callback's resource; ValueError if it is not authentic."""
    if resource.get("algorithm") != AEAD:
        raise ValueError(f"unsupported algorithm {resource.get('algorithm')!r}")
    nonce, ct = resource.get("nonce"), resource.get("ciphertext")
    ad = resource.get("associated_data") or ""
    if not isinstance(nonce, str) or not isinstance(ct, str) or not isinstance(ad, str):
        raise ValueError("resource lacks nonce or ciphertext")
    doc = orjson.loads(aes_gcm_decrypt(apiv3_key, nonce.encode(), ct, ad.encode()))
    if not isinstance(doc, dict):
        raise ValueError("resource plaintext is not an object")
    return doc


def key_serial(key: rsa.RSAPublicKey) -> str:
    """A stable 40-hex-digit serial for a development key (real ones come from the certificate)."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
