"""WeChat Pay v3 transport for the adapter: signed requests, verified answers, bill download,
and the parameters a page or an app hands to WeChat to start a JSAPI / APP payment.

Rule: an answer is acted on only after its Wechatpay-* signature verifies with the configured
platform public key. A 5xx, a timeout, a missing or wrong signature or a body that is not JSON
is `ChannelUnavailable` (outcome unknown: query again), never a failure.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.channels.base import ChannelError, ChannelUnavailable
from fulema.channels.transport import send
from fulema.channels.wechat.sign import (
    app_pay_sign,
    authorization,
    check_signed,
    jsapi_pay_sign,
    nonce_str,
)
from fulema.core.clock import clock
from fulema.core.vocab import WayCode


def pay_params(way: WayCode, key: rsa.RSAPrivateKey, appid: str, mchid: str,
               prepay_id: str) -> dict[str, str]:
    """JSAPI: the object for WeixinJSBridge.invoke('getBrandWCPayRequest', ...);
    APP: the fields of the open SDK's PayReq. Both signed with the merchant key as documented."""
    ts, nonce = str(clock.timestamp()), nonce_str()
    if way == WayCode.JSAPI:
        package = f"prepay_id={prepay_id}"
        return {"appId": appid, "timeStamp": ts, "nonceStr": nonce, "package": package,
                "signType": "RSA", "paySign": jsapi_pay_sign(key, appid, ts, nonce, package)}
    return {"appid": appid, "partnerid": mchid, "prepayid": prepay_id, "package": "Sign=WXPay",
            "noncestr": nonce, "timestamp": ts,
            "sign": app_pay_sign(key, appid, ts, nonce, prepay_id)}


@dataclass
class WechatApi:
    http: httpx.AsyncClient
    base_url: str
    mchid: str
    serial_no: str
    key: rsa.RSAPrivateKey
    platform_key: rsa.RSAPublicKey
    platform_key_id: str
    timeout: float

    async def _send(self, method: str, url: str, body: bytes) -> httpx.Response:
        parts = urlsplit(url)
        signed_path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Authorization": authorization(
            mchid=self.mchid, serial_no=self.serial_no, key=self.key, method=method,
            url_path=signed_path, body=body), "Accept": "application/json",
            "User-Agent": "fulema-wechatpay-v3"}
        if body:
            headers["Content-Type"] = "application/json"
        return await send(self.http, method, url, content=body, headers=headers,
                          seconds=self.timeout, label=f"wechat {parts.path}")

    async def call(self, method: str, path: str,
                   payload: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON object) of a verified answer; {} for a 204."""
        body = orjson.dumps({k: v for k, v in payload.items() if v is not None}) \
            if payload is not None else b""
        resp = await self._send(method, self.base_url + path, body)
        problem = check_signed(dict(resp.headers), resp.content, self.platform_key,
                               self.platform_key_id)
        if problem is not None:
            raise ChannelUnavailable(f"wechat {path}: unverifiable answer ({problem})")
        if resp.status_code == 204 or not resp.content:
            return resp.status_code, {}
        try:
            doc = orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise ChannelUnavailable(f"wechat {path}: answer is not JSON") from exc
        if not isinstance(doc, dict):
            raise ChannelUnavailable(f"wechat {path}: answer is not an object")
        return resp.status_code, doc

    @staticmethod
    def raise_for(status: int, doc: dict[str, Any]) -> None:
        """WeChat's error shape {code, message, detail?} -> ChannelError."""
        if status >= 400:
            raise ChannelError(str(doc.get("code") or f"HTTP_{status}"),
                               str(doc.get("message", "")))

    async def ok(self, method: str, path: str,
                 payload: dict[str, Any] | None = None) -> dict[str, Any]:
        status, doc = await self.call(method, path, payload)
        self.raise_for(status, doc)
        return doc

    async def download(self, path: str, origin: str | None, hash_type: str,
                       hash_value: str) -> bytes:
        """A bill file: signed GET, not signed back (WeChat documents checking the hash
        instead), SHA1 over the uncompressed bill compared with the tradebill answer's."""
        resp = await self._send("GET", (origin or self.base_url) + path, b"")
        if resp.status_code != 200:
            raise ChannelUnavailable(f"wechat bill download: HTTP {resp.status_code}")
        data = resp.content
        try:
            plain = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        except (OSError, EOFError) as exc:
            raise ChannelUnavailable("wechat bill download: corrupt gzip") from exc
        if hash_type.upper() != "SHA1":
            raise ChannelUnavailable(f"wechat bill download: unsupported hash {hash_type!r}")
        digest = hashlib.sha1(plain, usedforsecurity=False).hexdigest()
        if not hmac.compare_digest(digest.encode(), hash_value.lower().encode()):
            raise ChannelUnavailable("wechat bill download: hash_value does not match")
        return data
