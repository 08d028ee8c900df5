"""The Alipay gateway client: signed calls to /gateway.do and verified answers.

`AlipayChannel` builds on it; kept apart so the adapter reads as the business mapping only.
Every failure to get a trustworthy answer (transport, HTTP status, garbled JSON, a signature
that does not verify, an unsigned success) is `ChannelUnavailable`, never a refusal.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.channels.alipay.protocol import (
    BUSINESS_FAILED,
    CHARSET,
    ERROR_NODE,
    FORMAT,
    GATEWAY_PATH,
    PAYING,
    SIGN_TYPE,
    SUCCESS,
    VERSION,
    beijing_time,
    response_key,
    sign_params,
    signed_node_verifies,
    top_level,
)
from fulema.channels.base import ChannelError, ChannelUnavailable, SubMerchantRefused
from fulema.core.channel_settings import AlipaySection
from fulema.core.clock import clock
from fulema.core.config import Settings

# Sub-codes refusing the indirect sub-merchant (`sub_merchant.merchant_id`, smid) itself: not
# registered (or not yet approved) under our app, or its payments stopped.
SUB_MERCHANT_REFUSALS = frozenset({"ACQ.SECONDARY_MERCHANT_ID_INVALID",
                                   "ACQ.SECONDARY_MERCHANT_STATUS_ERROR"})
# Sub-codes that mean "no answer yet", never a refusal.
RETRYABLE = ("ACQ.SYSTEM_ERROR", "AQC.SYSTEM_ERROR", "isp.unknow-error", "isp.unknown-error")


def refusal(node: dict[str, Any]) -> tuple[str, str]:
    """(sub_code, sub_msg) of an answer, falling back to code and msg."""
    return (str(node.get("sub_code") or node.get("code") or ""),
            str(node.get("sub_msg") or node.get("msg") or ""))


class AlipayGateway:
    """Signs requests with the app's key and verifies answers with Alipay's public key."""

    def __init__(self, settings: Settings, ali: AlipaySection, http: httpx.AsyncClient,
                 private_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPublicKey) -> None:
        self.settings = settings
        self.ali = ali
        self.http = http
        self.private_key = private_key
        self.alipay_key = alipay_key
        self.base_url = (ali.base_url or settings.sandbox_url("alipay")).rstrip("/")
        self.gateway = self.base_url + GATEWAY_PATH
        self.timeout = ali.timeout_seconds or settings.channel_timeout_seconds

    def signed_params(self, method: str, biz: dict[str, Any], *, notify_url: str | None = None,
                      return_url: str | None = None) -> dict[str, str]:
        """The common parameters plus biz_content, signed with the app's private key."""
        params = {"app_id": self.ali.app_id, "method": method, "format": FORMAT,
                  "charset": CHARSET, "sign_type": SIGN_TYPE, "version": VERSION,
                  "timestamp": beijing_time(clock.now()),
                  "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":"))}
        if notify_url:
            params["notify_url"] = notify_url
        if return_url:
            params["return_url"] = return_url
        params["sign"] = sign_params(params, self.private_key)
        return params

    async def _call(self, method: str, biz: dict[str, Any],
                    notify_url: str | None = None) -> dict[str, Any]:
        """POST one gateway call; the verified `*_response` node, or ChannelUnavailable."""
        try:
            # A whole-call deadline as well as httpx's: the in-process ASGI transport (sandbox,
            # tests) ignores httpx timeouts.
            async with asyncio.timeout(self.timeout):
                resp = await self.http.post(
                    self.gateway, data=self.signed_params(method, biz, notify_url=notify_url),
                    timeout=self.timeout,
                    headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ChannelUnavailable(f"alipay: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise ChannelUnavailable(f"alipay: HTTP {resp.status_code}")
        return self._verified_node(method, resp.text)

    def _verified_node(self, method: str, body: str) -> dict[str, Any]:
        try:
            members = top_level(body)
        except ValueError as exc:
            raise ChannelUnavailable("alipay: garbled response") from exc
        name = response_key(method)
        found = members.get(name) or members.get(ERROR_NODE)
        if found is None or not isinstance(found[0], dict) or "code" not in found[0]:
            raise ChannelUnavailable("alipay: no response node")
        node: dict[str, Any] = found[0]
        text = found[1]
        sign = members.get("sign", (None, ""))[0]
        if isinstance(sign, str) and sign:
            if not signed_node_verifies(text, sign, self.alipay_key):
                raise ChannelUnavailable("alipay: response signature does not verify")
        elif node.get("code") in (SUCCESS, PAYING, BUSINESS_FAILED):
            # Alipay's SDKs accept an unsigned answer only for gateway errors (40001/40002...):
            # an unsigned success or business refusal could be anyone's.
            raise ChannelUnavailable("alipay: unsigned response")
        return node

    def _raise_for(self, node: dict[str, Any]) -> None:
        """Anything but success: 20000 / system errors are unknown, the rest refusals."""
        code = node.get("code")
        if code == SUCCESS:
            return
        sub_code, sub_msg = refusal(node)
        if code == "20000" or sub_code in RETRYABLE:
            raise ChannelUnavailable(f"alipay: {sub_code} {sub_msg}".strip())
        if sub_code in SUB_MERCHANT_REFUSALS:
            raise SubMerchantRefused(sub_code, sub_msg)
        raise ChannelError(sub_code, sub_msg)

