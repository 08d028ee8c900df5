"""Alipay user authorisation (用户信息授权, scope auth_base) on the Alipay sandbox.

    GET /oauth2/publicAppAuthorize.htm?app_id=..&scope=auth_base&redirect_uri=..&state=..
        -> 302 redirect_uri?app_id=..&source=alipay_wallet&scope=auth_base&auth_code=..&state=..
           (the payer: `payer_id`, which the sandbox wallet adds, or the rich default payer)
    gateway method alipay.system.oauth.token (grant_type=authorization_code, code: top-level
        parameters, signed like any call) -> user_id, open_id, access_token, expires_in,
        refresh_token, re_expires_in, auth_start

An auth_code is good for one exchange (Alipay: single use, lapses within a day; the sandbox
gives it 10 minutes); a bad one answers 40002 isv.code-invalid 授权码code无效. The user ids
are the payment sandbox's payers, so the id a page obtains pays a JSAPI order as buyer_id.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulema.core.clock import clock
from fulema.sandbox.alipay.protocol import INVALID_ARGUMENTS, beijing_time
from fulema.sandbox.appshell import APP_PAYER_COOKIE

if TYPE_CHECKING:
    from fulema.sandbox.alipay.server import AlipaySandbox

CODE_TTL = timedelta(minutes=10)
DEFAULT_PAYER = "2088102146225135"  # the sandbox's rich payer
SCOPES = ("auth_base", "auth_user")


@dataclass
class Grant:
    user_id: str
    expires_at: datetime
    used: bool = False


def _page(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>支付宝</title>"
                        f"<h1>授权失败</h1><p>{message}</p>", status)


def open_id(app_id: str, user_id: str) -> str:
    """A stable per-app id in the shape of Alipay's open_id (a sandbox stand-in)."""
    return "0" + hashlib.sha256(f"{app_id}|{user_id}".encode()).hexdigest()[:47]


def add_oauth_routes(app: FastAPI, sb: AlipaySandbox) -> None:
    """Idempotent: a second call on the same app changes nothing."""
    if "alipay.system.oauth.token" in sb.handlers:
        return
    grants: dict[str, Grant] = {}

    @app.get("/oauth2/publicAppAuthorize.htm", include_in_schema=False, response_model=None)
    async def authorize(request: Request) -> Response:
        q = request.query_params
        if q.get("app_id") != sb.app_id:
            return _page(400, "app_id 无效")
        scopes = str(q.get("scope", "")).split(",")
        if not scopes or any(s not in SCOPES for s in scopes):
            return _page(400, "scope 参数错误")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri.startswith(("https://", "http://")):
            return _page(400, "redirect_uri 参数错误")
        # who is signed in to the app (a test's payer_id, or the app shell's cookie)
        user_id = q.get("payer_id") or request.cookies.get(APP_PAYER_COOKIE) or DEFAULT_PAYER
        if user_id not in sb.books.wallet.payers:
            return _page(404, "sandbox: no such payer")
        now = clock.now()
        for stale in [c for c, g in grants.items() if g.expires_at < now]:
            del grants[stale]
        code = secrets.token_hex(16)
        grants[code] = Grant(user_id, now + CODE_TTL)
        query = urlencode({"app_id": sb.app_id, "source": "alipay_wallet",
                           "scope": q.get("scope", ""), "auth_code": code,
                           "state": q.get("state", "")})
        return RedirectResponse(redirect_uri + ("&" if "?" in redirect_uri else "?") + query, 302)

    def oauth_token(params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        """Handler for the gateway (signature already checked by AlipaySandbox.check)."""
        if params.get("grant_type") != "authorization_code":
            return {"code": INVALID_ARGUMENTS, "sub_code": "isv.grant-type-invalid",
                    "sub_msg": "grant_type参数不正确"}
        grant = grants.get(params.get("code", ""))
        if grant is None or grant.used or grant.expires_at < clock.now():
            return {"code": INVALID_ARGUMENTS, "sub_code": "isv.code-invalid",
                    "sub_msg": "授权码code无效"}
        grant.used = True
        return {"user_id": grant.user_id, "open_id": open_id(sb.app_id, grant.user_id),
                "access_token": "authbseB" + secrets.token_hex(16), "expires_in": 1296000,
                "refresh_token": "authbseB" + secrets.token_hex(16), "re_expires_in": 2592000,
                "auth_start": beijing_time(clock.now())}

    sb.handlers["alipay.system.oauth.token"] = oauth_token
