"""Alipay's silent payer authorisation (``auth_base``): the `PayerAuth` of the Alipay channel,
for the static-QR cashier (`web/oauth.py` runs the flow around it).

The browser goes to ``/oauth2/publicAppAuthorize.htm`` (openauth.alipay.com) and comes back
with an ``auth_code``; ``alipay.system.oauth.token``, a gateway call signed and verified with
the channel's own keys, exchanges it for the payer's user id, what ``alipay.trade.create``
takes as ``buyer_id``. The authorize host is the tree's `settings.oauth.alipay_authorize_base`
(empty: the Alipay sandbox mounted in this server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from fulema.channels.alipay.client import AlipayGateway
from fulema.channels.alipay.protocol import (
    CHARSET,
    FORMAT,
    SIGN_TYPE,
    VERSION,
    alipay_public_key,
    app_private_key,
    beijing_time,
    sign_params,
)
from fulema.channels.base import ChannelUnavailable, PayerAuth
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError

OAUTH_TOKEN_METHOD = "alipay.system.oauth.token"  # noqa: S105 - a method name, not a secret


class AlipayPayerAuth(AlipayGateway):
    """alipay.system.oauth.token: grant_type and code are top-level parameters, not
    biz_content, so the request is built here; the answer is verified as every other."""

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        oauth = self.settings.oauth
        base = (oauth.alipay_authorize_base or self.settings.sandbox_url("alipay")).rstrip("/")
        query = urlencode({"app_id": self.ali.app_id, "scope": "auth_base",
                           "redirect_uri": redirect_uri, "state": state})
        return f"{base}/oauth2/publicAppAuthorize.htm?{query}"

    def code_of(self, params: Mapping[str, str]) -> str:
        code = params.get("auth_code", "")
        if not code:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, "the callback carries no auth_code")
        if params.get("app_id", self.ali.app_id) != self.ali.app_id:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, "the callback is for another app")
        return code

    async def payer_id(self, code: str) -> str:
        params = {"app_id": self.ali.app_id, "method": OAUTH_TOKEN_METHOD, "format": FORMAT,
                  "charset": CHARSET, "sign_type": SIGN_TYPE, "version": VERSION,
                  "timestamp": beijing_time(clock.now()), "grant_type": "authorization_code",
                  "code": code}
        params["sign"] = sign_params(params, self.private_key)
        try:
            async with asyncio.timeout(self.timeout):
                resp = await self.http.post(self.gateway, data=params, timeout=self.timeout)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ChannelUnavailable(f"alipay oauth: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise ChannelUnavailable(f"alipay oauth: HTTP {resp.status_code}")
        node: dict[str, Any] = self._verified_node(OAUTH_TOKEN_METHOD, resp.text)
        self._raise_for(node)
        # user_id (2088...) is what alipay.trade.create takes as buyer_id; apps created since
        # 2023 may be given only open_id, which trade.create takes as buyer_open_id.
        found = node.get("user_id") or node.get("open_id")
        if not isinstance(found, str) or not found:
            raise ChannelUnavailable("alipay oauth: answer has no user_id")
        return found


def build_payer_auth(settings: Settings, http: httpx.AsyncClient) -> PayerAuth:
    ali = settings.alipay
    return AlipayPayerAuth(settings, ali, http, app_private_key(settings, ali),
                           alipay_public_key(settings, ali))
