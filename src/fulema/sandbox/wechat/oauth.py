"""WeChat 网页授权 (OAuth 2.0 for Official Account pages) on the WeChat sandbox.

    GET /connect/oauth2/authorize?appid=..&redirect_uri=..&response_type=code&scope=..&state=..
        -> 302 redirect_uri?code=CODE&state=STATE  (the payer: `payer_id`, which the sandbox
           wallet adds, or the rich default payer; snsapi_base asks the payer nothing)
    GET /sns/oauth2/access_token?appid=..&secret=..&code=..&grant_type=authorization_code
        -> {access_token, expires_in, refresh_token, openid, scope} or {errcode, errmsg}

As WeChat documents it: a code is good for one exchange within 5 minutes (40029 invalid code,
40163 code been used); a wrong secret is 40125, a wrong appid 40013, a wrong grant_type 40002;
errors are HTTP 200 with errcode. The openids are the payment sandbox's, so the openid a page
obtains pays a JSAPI order. The fault switch (POST /wallet/faults) applies to the token call.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fulema.core.clock import clock
from fulema.sandbox.appshell import APP_PAYER_COOKIE
from fulema.sandbox.wechat.state import RICH_OPENID, WechatSandbox

CODE_TTL = timedelta(minutes=5)
SCOPES = ("snsapi_base", "snsapi_userinfo")


@dataclass
class Grant:
    openid: str
    scope: str
    expires_at: datetime
    used: bool = False


def with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _page(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>微信</title>"
                        f"<h1>Oops! Something went wrong:(</h1><p>{message}</p>", status)


def _error(errcode: int, errmsg: str) -> JSONResponse:
    rid = secrets.token_hex(4) + "-" + secrets.token_hex(4)
    return JSONResponse({"errcode": errcode, "errmsg": f"{errmsg}, rid: {rid}"})


def add_oauth_routes(app: FastAPI, sb: WechatSandbox) -> None:
    """Idempotent: a second call on the same app changes nothing. The AppSecret it checks is
    the sandbox's own (`WechatSandboxConfig.oauth_app_secret`)."""
    if getattr(app.state, "wechat_oauth", False):
        return
    app.state.wechat_oauth = True
    grants: dict[str, Grant] = {}

    @app.get("/connect/oauth2/authorize", include_in_schema=False, response_model=None)
    async def authorize(request: Request) -> Response:
        q = request.query_params
        if q.get("appid") != sb.config.appid:
            return _page(400, "appid参数错误")
        if q.get("response_type") != "code" or q.get("scope") not in SCOPES:
            return _page(400, "scope参数错误或没有scope权限")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri.startswith(("https://", "http://")):
            return _page(400, "redirect_uri参数错误")
        # who is signed in to the app: a test names the payer, the app shell (sandbox/appshell)
        # keeps it in a cookie, as the real app knows its own user
        payer = sb.wallet.get(q.get("payer_id") or request.cookies.get(APP_PAYER_COOKIE)
                              or RICH_OPENID)
        if payer is None:
            return _page(404, "sandbox: no such payer")
        now = clock.now()
        for stale in [c for c, g in grants.items() if g.expires_at < now]:
            del grants[stale]
        code = secrets.token_hex(16)
        grants[code] = Grant(payer.openid, str(q.get("scope")), now + CODE_TTL)
        return RedirectResponse(with_query(redirect_uri, {"code": code,
                                                          "state": q.get("state", "")}), 302)

    @app.get("/sns/oauth2/access_token", include_in_schema=False, response_model=None)
    async def access_token(request: Request) -> Response:
        if sb.faults.mode == "slow":
            await asyncio.sleep(sb.faults.delay_ms / 1000)
        if sb.faults.mode == "5xx":
            return JSONResponse({"errcode": -1, "errmsg": "system error"}, 500)
        q = request.query_params
        if q.get("grant_type") != "authorization_code":
            return _error(40002, "invalid grant_type")
        if q.get("appid") != sb.config.appid:
            return _error(40013, "invalid appid")
        if q.get("secret") != sb.config.oauth_app_secret:
            return _error(40125, "invalid appsecret")
        grant = grants.get(q.get("code", ""))
        if grant is None or grant.expires_at < clock.now():
            return _error(40029, "invalid code")
        if grant.used:
            return _error(40163, "code been used")
        grant.used = True
        body = {"access_token": secrets.token_urlsafe(48), "expires_in": 7200,
                "refresh_token": secrets.token_urlsafe(48), "openid": grant.openid,
                "scope": grant.scope}
        if sb.faults.mode == "garbled":
            return Response(b'{"access_token":"', 200, media_type="application/json")
        return JSONResponse(body)
