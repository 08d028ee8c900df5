"""Logging in and out of the portal, and changing one's own password.

The login form is protected by a double-submit token (a random cookie and the same value in a
hidden field: there is no session yet to carry one). A wrong name and a wrong password get the
same message; the fifth wrong password in a row locks the user for 15 minutes
(merchants/user_rules.py), which the page says.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from fulema.core.errors import FulemaError
from fulema.merchants import users
from fulema.web import sessions
from fulema.web.portal import auth
from fulema.web.render import render

router = APIRouter(prefix="/portal", include_in_schema=False)
_LOGIN_COOKIE = "fulema_portal_login"


def _login_form(request: Request, *, error: str = "", login_name: str = "",
                status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "portal/login.html", status_code=status_code, error=error,
                      login_name=login_name, login_token=token)
    response.set_cookie(_LOGIN_COOKIE, token, max_age=3600, path="/portal", httponly=True,
                        samesite="strict",
                        secure=not request.app.state.settings.is_development)
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await auth.load(request) is not None:
        return RedirectResponse("/portal/", status_code=303)
    return _login_form(request)


@router.post("/login")
async def login(request: Request, login_name: str = Form("", max_length=64),
                password: str = Form("", max_length=128),
                login_token: str = Form("", max_length=64)) -> Response:
    cookie = request.cookies.get(_LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), login_token.encode()):
        return _login_form(request, login_name=login_name, status_code=403,
                           error="表单已过期，请重试 · The form expired (CSRF): try again")
    db = request.app.state.db
    try:
        user = await users.authenticate(db, login_name=login_name, password=password,
                                        client_ip=request.client.host if request.client else "")
    except FulemaError as exc:
        return _login_form(request, login_name=login_name, error=exc.message,
                           status_code=exc.http_status)
    value, _ = await sessions.start(db, realm="portal", principal_id=user.user_id)
    response = RedirectResponse("/portal/", status_code=303)
    sessions.set_cookie(response, realm="portal", value=value,
                        secure=not request.app.state.settings.is_development)
    response.delete_cookie(_LOGIN_COOKIE, path="/portal")
    return response


@router.post("/logout")
@auth.page()
async def logout(request: Request) -> Response:
    await sessions.end(request.app.state.db, realm="portal",
                       cookie=request.cookies.get(sessions.cookie_name("portal")))
    response = RedirectResponse(auth.LOGIN, status_code=303)
    sessions.clear_cookie(response, realm="portal")
    return response


@router.get("/password")
@auth.page()
async def password_page(request: Request) -> Response:
    return render(request, "portal/password.html", error="", **auth.ctx_of(request).page())


@router.post("/password")
@auth.page()
async def change_password(request: Request, old_password: str = Form("", max_length=128),
                          new_password: str = Form("", max_length=128)) -> Response:
    ctx = auth.ctx_of(request)
    try:
        await users.change_password(request.app.state.db, user_id=ctx.principal.user.user_id,
                                    old_password=old_password, new_password=new_password)
    except FulemaError as exc:
        return render(request, "portal/password.html", status_code=400, error=exc.message,
                      **ctx.page())
    await sessions.end_all(request.app.state.db, realm="portal",
                           principal_id=ctx.principal.user.user_id)
    response = RedirectResponse(auth.LOGIN, status_code=303)
    sessions.clear_cookie(response, realm="portal")
    return response
