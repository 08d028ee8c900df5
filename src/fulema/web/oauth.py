"""Who is paying at a static QR plate: silent OAuth inside WeChat and Alipay.

A JSAPI payment needs the payer's id under our app: the openid inside WeChat (网页授权,
scope ``snsapi_base``: no consent page), the user id inside Alipay (``auth_base``, exchanged
through ``alipay.system.oauth.token``). The cashier sends the browser to the app's authorize
page; the app sends it back to ``/pay/oauth/{channel}/callback`` with a one-time code; we
exchange the code server-to-server and send the browser on to ``/pay/q/{plate}?pid=<token>``.

Two values cross the browser, so both are signed with HMAC-SHA256 under
``settings.platform_secret`` and expire:
- ``state`` carries the plate (and is bound to the channel); WeChat allows only ``[a-zA-Z0-9]``
  and 128 bytes, so it is ``NN`` (plate length) + plate + 8 hex digits of expiry + 32 hex of MAC.
- ``pid`` carries the payer id. The cashier must take a payer id only from
  `verify_payer_token`, never from a raw query or form field: anyone can type an openid.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

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
from fulema.channels.base import ChannelError, ChannelUnavailable
from fulema.core.channel_settings import OAuthSection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vocab import ChannelName
from fulema.web import pages

OAUTH_TOKEN_METHOD = "alipay.system.oauth.token"  # noqa: S105 - a method name, not a secret
CHANNELS = (ChannelName.WECHAT, ChannelName.ALIPAY)


# The section lives in the core settings tree (`Settings.oauth`); this name stays for the
# WeChat sandbox, which builds one from the environment until it has its own configuration.
OAuthSettings = OAuthSection


# --- signed values ---------------------------------------------------------------------------

def _mac(settings: Settings, purpose: str, *parts: str) -> str:
    message = "|".join((purpose, *parts)).encode()
    return hmac.new(settings.platform_secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def _plate_of(return_to: str) -> str:
    plate = return_to.removeprefix("/pay/q/")
    if not (1 <= len(plate) <= 32 and plate.isascii() and plate.isalnum()):
        raise ValueError(f"not a plate code: {return_to!r}")
    return plate


def make_state(settings: Settings, channel: str, plate: str, ttl_seconds: int = 600) -> str:
    exp = f"{clock.timestamp() + ttl_seconds:08x}"
    return f"{len(plate):02d}{plate}{exp}{_mac(settings, 'oauth-state', channel, plate, exp)}"


def verify_state(settings: Settings, channel: str, state: str) -> str | None:
    """The plate a genuine, unexpired state for this channel carries; None otherwise."""
    if not (state[:2].isascii() and state[:2].isdigit()):
        return None
    n = int(state[:2])
    plate, exp, mac = state[2:2 + n], state[2 + n:10 + n], state[10 + n:]
    if len(plate) != n or len(exp) != 8 or len(mac) != 32:
        return None
    try:
        _plate_of(plate)
        expires = int(exp, 16)
    except ValueError:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(settings, "oauth-state", channel, plate,
                                                  exp).encode()):
        return None
    return plate if clock.timestamp() <= expires else None


def payer_token(settings: Settings, channel: str, payer_id: str, ttl_seconds: int = 1800) -> str:
    exp = f"{clock.timestamp() + ttl_seconds:x}"
    pid = base64.urlsafe_b64encode(payer_id.encode()).decode().rstrip("=")
    return f"{channel}.{exp}.{pid}.{_mac(settings, 'payer-token', channel, exp, payer_id)}"


def verify_payer_token(settings: Settings, token: str, channel: str | None = None) -> str | None:
    """The payer id a genuine, unexpired `pid` token carries (for `channel`, if given)."""
    parts = token.split(".")
    if len(parts) != 4:
        return None
    chan, exp, pid, mac = parts
    try:
        payer_id = base64.urlsafe_b64decode(pid + "=" * (-len(pid) % 4)).decode()
        expires = int(exp, 16)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not payer_id or (channel is not None and chan != channel):
        return None
    if not hmac.compare_digest(mac.encode(), _mac(settings, "payer-token", chan, exp,
                                                  payer_id).encode()):
        return None
    return payer_id if clock.timestamp() <= expires else None


# --- the two apps ----------------------------------------------------------------------------

def callback_url(settings: Settings, channel: str) -> str:
    return f"{settings.public_base_url}/pay/oauth/{channel}/callback"


async def authorize_url(channel: ChannelName | str, settings: Settings, return_to: str,
                        oauth: OAuthSettings | None = None) -> str | None:
    """Where to send the browser for a silent authorisation; None for a channel without one.
    `return_to` is the plate code (or its /pay/q/{plate} path)."""
    oauth = oauth or settings.oauth
    chan = str(channel)
    if chan not in CHANNELS:
        return None
    state = make_state(settings, chan, _plate_of(return_to), oauth.state_ttl_seconds)
    if chan == ChannelName.WECHAT:
        base = (oauth.wechat_authorize_base or settings.sandbox_url("wechat")).rstrip("/")
        # WeChat matches the link strictly: parameters in this order, then #wechat_redirect
        query = urlencode({"appid": settings.wechat.appid,
                           "redirect_uri": callback_url(settings, chan),
                           "response_type": "code", "scope": "snsapi_base", "state": state})
        return f"{base}/connect/oauth2/authorize?{query}#wechat_redirect"
    base = (oauth.alipay_authorize_base or settings.sandbox_url("alipay")).rstrip("/")
    query = urlencode({"app_id": settings.alipay.app_id, "scope": "auth_base",
                       "redirect_uri": callback_url(settings, chan), "state": state})
    return f"{base}/oauth2/publicAppAuthorize.htm?{query}"


async def _wechat_openid(settings: Settings, http: httpx.AsyncClient, oauth: OAuthSettings,
                         code: str) -> str:
    oauth.check(settings)
    base = (oauth.wechat_api_base or settings.sandbox_url("wechat")).rstrip("/")
    query = urlencode({"appid": settings.wechat.appid, "secret": oauth.wechat_app_secret,
                       "code": code, "grant_type": "authorization_code"})
    timeout = settings.channel_timeout_seconds
    try:
        async with asyncio.timeout(timeout):  # in-process transports ignore httpx timeouts
            resp = await http.get(f"{base}/sns/oauth2/access_token?{query}", timeout=timeout)
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
    if doc.get("errcode"):
        raise ChannelError(str(doc["errcode"]), str(doc.get("errmsg", "")))
    openid = doc.get("openid")
    if not isinstance(openid, str) or not openid:
        raise ChannelUnavailable("wechat oauth: answer has no openid")
    return openid


class _OAuthGateway(AlipayGateway):
    """alipay.system.oauth.token: grant_type and code are top-level parameters, not
    biz_content, so the request is built here; the answer is verified as every other."""

    async def user_id(self, code: str) -> str:
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


async def payer_id_from_callback(channel: ChannelName | str, settings: Settings,
                                 http: httpx.AsyncClient, params: Mapping[str, str],
                                 oauth: OAuthSettings | None = None) -> str:
    """Exchange the callback's code for the payer's id. The state must be genuine too: a caller
    cannot forget to check it. FulemaError for a bad callback, ChannelError when the app
    refuses the code, ChannelUnavailable when it cannot be asked."""
    oauth = oauth or settings.oauth
    chan = str(channel)
    if chan not in CHANNELS:
        raise FulemaError(ErrorCode.NOT_FOUND, f"no payer authorisation for {chan}")
    if verify_state(settings, chan, params.get("state", "")) is None:
        raise FulemaError(ErrorCode.SIGNATURE_INVALID, "state is forged or expired")
    if chan == ChannelName.WECHAT:
        code = params.get("code", "")
        if not code:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, "the callback carries no code")
        return await _wechat_openid(settings, http, oauth, code)
    ali = settings.alipay
    code = params.get("auth_code", "")
    if not code:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "the callback carries no auth_code")
    if params.get("app_id", ali.app_id) != ali.app_id:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "the callback is for another app")
    gateway = _OAuthGateway(settings, ali, http, app_private_key(settings, ali),
                            alipay_public_key(settings, ali))
    return await gateway.user_id(code)


# --- HTTP ------------------------------------------------------------------------------------

router = APIRouter(tags=["cashier"], include_in_schema=False)


def _problem(status: int, message: str) -> HTMLResponse:
    body = (f'<div class="card"><h1>无法识别付款人 · Cannot identify the payer</h1>'
            f'<p class="err" role="alert">{escape(message)}</p>'
            f'<p class="muted">请重新扫码 · Please scan the code again.</p></div>')
    return HTMLResponse(pages.page("请重新扫码", body), status_code=status)


@router.get("/pay/oauth/{channel}/callback", response_model=None)
async def oauth_callback(channel: str, request: Request) -> Response:
    settings: Settings = request.app.state.settings
    http: httpx.AsyncClient = request.app.state.http
    if channel not in CHANNELS:
        return _problem(404, "no such authorisation")
    params = dict(request.query_params)
    plate = verify_state(settings, channel, params.get("state", ""))
    if plate is None:
        return _problem(400, "the link is forged or has expired")
    oauth = settings.oauth
    try:
        payer_id = await payer_id_from_callback(channel, settings, http, params, oauth)
    except FulemaError as exc:
        return _problem(exc.http_status, exc.message)
    except ChannelError as exc:
        return _problem(400, f"{exc.code}: {exc.message}")
    except ChannelUnavailable:
        return _problem(502, "the payment app did not answer; try again")
    token = payer_token(settings, channel, payer_id, oauth.payer_token_ttl_seconds)
    # a path, never an absolute URL from the request: the plate is all that came from outside
    return RedirectResponse(f"/pay/q/{plate}?{urlencode({'pid': token})}", status_code=302)
