"""Console login and logout.

The login form has no session yet, so its CSRF defence is a double submit: the GET sets a
random cookie (SameSite=Strict, path /console) and the form carries the same value; a forged
cross-site post has neither. A wrong name and a wrong password answer the same words; the
lockout (operators/passwords.py) answers its own, since the operator must know to wait.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fulema.operators import passwords
from fulema.operators.passwords import LoginOutcome
from fulema.web import sessions
from fulema.web.console.common import (
    REALM,
    db_of,
    form_of,
    guard,
    nav_for,
    page,
    settings_of,
)
from fulema.web.render import render

router = APIRouter()
LOGIN_COOKIE = "fulema_console_login"


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    if target and target.startswith("/console/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return "/console/"


def _login_page(request: Request, *, error: str = "", status_code: int = 200,
                name: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    answer = render(request, "console/login.html", status_code=status_code, error=error,
                    login_token=token, name=name,
                    next=_safe_next(request.query_params.get("next")))
    answer.set_cookie(LOGIN_COOKIE, token, path="/console", httponly=True, samesite="strict",
                      secure=not settings_of(request).is_development, max_age=3600)
    return answer


@router.get("/console/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/console/login")
async def login(request: Request) -> Response:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    name, password = fields.get("name", "").strip(), fields.get("password", "")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    posted = fields.get("login_token", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), posted.encode()):
        return _login_page(request, status_code=403, name=name,
                           error="登录表单已过期，请重试 The login form expired (CSRF): try again")
    if not name or not password or len(name) > 40 or len(password) > 128:
        return _login_page(request, status_code=400, name=name,
                           error="请输入用户名和密码 Enter your name and password")
    result = await passwords.login(db_of(request), name=name, password=password)
    if result.outcome is LoginOutcome.LOCKED:
        return _login_page(request, status_code=429, name=name,
                           error="失败次数过多，账户已锁定 15 分钟 Too many failures: locked for "
                                 "15 minutes")
    if result.outcome is not LoginOutcome.OK or result.operator_id is None:
        return _login_page(request, status_code=401, name=name,
                           error="用户名或密码错误 Wrong name or password")
    value, _ = await sessions.start(db_of(request), realm=REALM, principal_id=result.operator_id)
    answer = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
    sessions.set_cookie(answer, realm=REALM, value=value,
                        secure=not settings_of(request).is_development)
    answer.delete_cookie(LOGIN_COOKIE, path="/console")
    return answer


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    user = await guard(request, ("reviewer", "risk", "finance", "admin"))
    if isinstance(user, Response):
        return user
    fields = await form_of(request, user)
    if isinstance(fields, Response):
        return fields
    await sessions.end(db_of(request), realm=REALM,
                       cookie=request.cookies.get(sessions.cookie_name(REALM)))
    answer = RedirectResponse("/console/login", status_code=303)
    sessions.clear_cookie(answer, realm=REALM)
    return answer


@router.get("/console")
@router.get("/console/")
async def home(request: Request) -> Response:
    user = await guard(request, ("reviewer", "risk", "finance", "admin"))
    if isinstance(user, Response):
        return user
    return page(request, user, "console/home.html", links=nav_for(user))
