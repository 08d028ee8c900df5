"""Who is paying at a static QR plate: silent OAuth inside WeChat and Alipay.

A JSAPI payment needs the payer's id under our app: the openid inside WeChat (网页授权,
scope ``snsapi_base``: no consent page), the user id inside Alipay (``auth_base``, exchanged
through ``alipay.system.oauth.token``). The cashier sends the browser to the app's authorize
page; the app sends it back to ``/pay/oauth/{channel}/callback`` with a one-time code; we
exchange the code server-to-server and send the browser on to ``/pay/q/{plate}?pid=<token>``.

This module is the channel-independent flow (signed values, redirects, error pages). What each
app does (its authorize link, its code exchange) is the channel's `PayerAuth`
(`channels/<name>/oauth.py`), which the registry builds with the adapter and hands out as
`ChannelRegistry.payer_auth(channel)`: a channel without one gets no OAuth step.

Two values cross the browser, so both are signed with HMAC-SHA256 under
``settings.platform_secret`` and expire:
- ``state`` carries the plate (and is bound to the channel); WeChat allows only ``[a-zA-Z0-9]``
  and 128 bytes, so it is ``NN`` (plate length) + plate + 8 hex digits of expiry + 32 hex of MAC.
- ``pid`` carries the payer id. The cashier must take a payer id only from
  `verify_payer_token`, never from a raw query or form field: anyone can type an openid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from html import escape
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulema.channels.base import ChannelError, ChannelUnavailable
from fulema.channels.registry import ChannelRegistry
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vocab import ChannelName
from fulema.web import pages

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


# --- the flow around a channel's PayerAuth ----------------------------------------------------

def callback_url(settings: Settings, channel: str) -> str:
    return f"{settings.public_base_url}/pay/oauth/{channel}/callback"


def authorize_url(channels: ChannelRegistry, settings: Settings, channel: ChannelName | str,
                  return_to: str) -> str | None:
    """Where to send the browser for a silent authorisation; None for a channel without one
    (its payment needs no payer id). `return_to` is the plate code (or its /pay/q/{plate} path)."""
    auth = channels.payer_auth(channel)
    if auth is None:
        return None
    chan = str(channel)
    state = make_state(settings, chan, _plate_of(return_to), settings.oauth.state_ttl_seconds)
    return auth.authorize_url(callback_url(settings, chan), state)


async def payer_id_from_callback(channels: ChannelRegistry, settings: Settings,
                                 channel: ChannelName | str, params: Mapping[str, str]) -> str:
    """Exchange the callback's code for the payer's id. The state must be genuine too: a caller
    cannot forget to check it. FulemaError for a bad callback, ChannelError when the app
    refuses the code, ChannelUnavailable when it cannot be asked."""
    chan = str(channel)
    auth = channels.payer_auth(chan)
    if auth is None:
        raise FulemaError(ErrorCode.NOT_FOUND, f"no payer authorisation for {chan}")
    if verify_state(settings, chan, params.get("state", "")) is None:
        raise FulemaError(ErrorCode.SIGNATURE_INVALID, "state is forged or expired")
    return await auth.payer_id(auth.code_of(params))


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
    channels: ChannelRegistry = request.app.state.channels
    if channels.payer_auth(channel) is None:
        return _problem(404, "no such authorisation")
    params = dict(request.query_params)
    plate = verify_state(settings, channel, params.get("state", ""))
    if plate is None:
        return _problem(400, "the link is forged or has expired")
    try:
        payer_id = await payer_id_from_callback(channels, settings, channel, params)
    except FulemaError as exc:
        return _problem(exc.http_status, exc.message)
    except ChannelError as exc:
        return _problem(400, f"{exc.code}: {exc.message}")
    except ChannelUnavailable:
        return _problem(502, "the payment app did not answer; try again")
    token = payer_token(settings, channel, payer_id, settings.oauth.payer_token_ttl_seconds)
    # a path, never an absolute URL from the request: the plate is all that came from outside
    return RedirectResponse(f"/pay/q/{plate}?{urlencode({'pid': token})}", status_code=302)
