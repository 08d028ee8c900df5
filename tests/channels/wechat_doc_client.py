"""A minimal WeChat Pay API v3 client written only from WeChat Pay's public documentation.

It deliberately imports nothing from fulema: its signing, verification and decryption are its
own (on `cryptography`), following 签名生成, 应答与回调的签名验证 and 证书和回调报文解密. The tests
run it against the sandbox to show that any client written to the documentation works there
unchanged.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SignatureError(Exception):
    """The answer's Wechatpay-Signature did not verify with the platform public key."""


@dataclass
class DocResponse:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def build_message(*lines: str) -> bytes:
    """Each line ends with "\\n", the last one too (签名串一共有N行...行尾以\\n结束)."""
    return "".join(line + "\n" for line in lines).encode("utf-8")


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


class DocClient:
    def __init__(self, *, http: httpx.AsyncClient, base_url: str, mchid: str, appid: str,
                 serial_no: str, private_key: rsa.RSAPrivateKey,
                 platform_public_key: rsa.RSAPublicKey, platform_key_id: str,
                 apiv3_key: bytes) -> None:
        self.http, self.base_url = http, base_url.rstrip("/")
        self.mchid, self.appid, self.serial_no = mchid, appid, serial_no
        self.private_key, self.platform_public_key = private_key, platform_public_key
        self.platform_key_id, self.apiv3_key = platform_key_id, apiv3_key

    # 签名生成 -----------------------------------------------------------------
    def sign(self, message: bytes) -> str:
        signature = self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def authorization(self, method: str, url: str, body: str) -> str:
        parts = urlsplit(url)
        canonical_url = parts.path + ("?" + parts.query if parts.query else "")
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16).upper()
        signature = self.sign(build_message(method, canonical_url, timestamp, nonce, body))
        return (f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mchid}",nonce_str="{nonce}",'
                f'signature="{signature}",timestamp="{timestamp}",serial_no="{self.serial_no}"')

    # 签名验证 -----------------------------------------------------------------
    def verify(self, headers: httpx.Headers | dict[str, str], body: bytes) -> None:
        h = {k.lower(): v for k, v in headers.items()}
        if h.get("wechatpay-serial") != self.platform_key_id:
            raise SignatureError(f"unexpected Wechatpay-Serial {h.get('wechatpay-serial')!r}")
        timestamp = h.get("wechatpay-timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            raise SignatureError("Wechatpay-Timestamp is stale")
        message = build_message(timestamp, h.get("wechatpay-nonce", ""), body.decode("utf-8"))
        try:
            self.platform_public_key.verify(base64.b64decode(h.get("wechatpay-signature", "")),
                                            message, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError("Wechatpay-Signature does not verify") from exc

    async def request(self, method: str, path: str, payload: dict[str, Any] | None = None,
                      *, verify: bool = True) -> DocResponse:
        url = self.base_url + path
        body = json.dumps(payload, ensure_ascii=False) if payload is not None else ""
        headers = {"Authorization": self.authorization(method, url, body),
                   "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        resp = await self.http.request(method, url, content=body.encode("utf-8"), headers=headers)
        if verify:
            self.verify(resp.headers, resp.content)
        return DocResponse(resp.status_code, resp.headers, resp.content)

    # 回调报文解密 -------------------------------------------------------------
    def decrypt(self, resource: dict[str, str]) -> dict[str, Any]:
        assert resource["algorithm"] == "AEAD_AES_256_GCM"
        plain = AESGCM(self.apiv3_key).decrypt(
            resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
            resource.get("associated_data", "").encode())
        doc: dict[str, Any] = json.loads(plain)
        return doc

    # a few documented APIs ----------------------------------------------------
    async def native(self, out_trade_no: str, total: int, notify_url: str) -> DocResponse:
        return await self.request("POST", "/v3/pay/transactions/native", {
            "appid": self.appid, "mchid": self.mchid, "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": out_trade_no, "notify_url": notify_url,
            "amount": {"total": total, "currency": "CNY"}})

    async def query(self, out_trade_no: str) -> DocResponse:
        return await self.request(
            "GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={self.mchid}")

    async def close(self, out_trade_no: str) -> DocResponse:
        return await self.request("POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
                                  {"mchid": self.mchid})

    async def refund(self, out_trade_no: str, out_refund_no: str, refund: int,
                     total: int) -> DocResponse:
        return await self.request("POST", "/v3/refund/domestic/refunds", {
            "out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "reason": "商品已售完",
            "amount": {"refund": refund, "total": total, "currency": "CNY"}})

    async def refund_query(self, out_refund_no: str) -> DocResponse:
        return await self.request("GET", f"/v3/refund/domestic/refunds/{out_refund_no}")
