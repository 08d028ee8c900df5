"""WeChat's silent payer authorisation (网页授权, scope ``snsapi_base``): the `PayerAuth` of the
WeChat channel, for the static-QR cashier (`web/oauth.py` runs the flow around it).

The browser goes to ``/connect/oauth2/authorize`` (open.weixin.qq.com) and comes back with a
``code``; ``/sns/oauth2/access_token`` (api.weixin.qq.com) exchanges it for the payer's openid
under the channel's appid, the id a JSAPI payment needs. Hosts and the Official Account's
AppSecret are the tree's `settings.oauth` (FULEMA_OAUTH_WECHAT_*); empty hosts mean the WeChat
sandbox mounted in this server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlencode

import httpx
import orjson

from fulema.channels.base import ChannelError, ChannelUnavailable, PayerAuth
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError


class WechatPayerAuth:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.appid = settings.wechat.appid  # a JSAPI openid is only valid under the paying appid
        self.oauth = settings.oauth

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        base = (self.oauth.wechat_authorize_base or self.settings.sandbox_url("wechat")).rstrip("/")
        # WeChat matches the link strictly: parameters in this order, then #wechat_redirect
        query = urlencode({"appid": self.appid, "redirect_uri": redirect_uri,
                           "response_type": "code", "scope": "snsapi_base", "state": state})
        return f"{base}/connect/oauth2/authorize?{query}#wechat_redirect"

    def code_of(self, params: Mapping[str, str]) -> str:
        code = params.get("code", "")
        if not code:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, "the callback carries no code")
        return code

    async def payer_id(self, code: str) -> str:
        self.oauth.check(self.settings)  # no published AppSecret outside development
        base = (self.oauth.wechat_api_base or self.settings.sandbox_url("wechat")).rstrip("/")
        query = urlencode({"appid": self.appid, "secret": self.oauth.wechat_app_secret,
                           "code": code, "grant_type": "authorization_code"})
        timeout = self.settings.channel_timeout_seconds
        try:
            async with asyncio.timeout(timeout):  # in-process transports ignore httpx timeouts
                resp = await self.http.get(f"{base}/sns/oauth2/access_token?{query}",
                                           timeout=timeout)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ChannelUnavailable(f"wechat oauth: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise ChannelUnavailable(f"wechat oauth: HTTP {resp.status_code}")
        try:
            doc = orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise ChannelUnavailable("wechat oauth: answer is not JSON") from exc
        if not isinstance(doc, dict):
            raise ChannelUnavailable("wechat oauth: answer is not an object")
        if doc.get("errcode"):  # WeChat refuses with HTTP 200 {errcode, errmsg}
            raise ChannelError(str(doc["errcode"]), str(doc.get("errmsg", "")))
        openid = doc.get("openid")
        if not isinstance(openid, str) or not openid:
            raise ChannelUnavailable("wechat oauth: answer has no openid")
        return openid


def build_payer_auth(settings: Settings, http: httpx.AsyncClient) -> PayerAuth:
    return WechatPayerAuth(settings, http)
