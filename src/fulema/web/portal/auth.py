"""Who is asking, on every portal page: the session (web/sessions.py, realm "portal"), its
user and merchant as of now, the CSRF check on every POST, and the role check.

A session is refused (and ended) when its user is disabled, its merchant is no longer ACTIVE
(a freeze ends every session at once), or the password changed after it started. Every page
is scoped to `Ctx.merchant_id`: the id of the session's merchant, never one from the URL.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fulema.core.errors import ErrorCode, FulemaError
from fulema.merchants import users
from fulema.merchants.user_rules import Permission, may
from fulema.messaging import notices
from fulema.web import sessions
from fulema.web.render import render

P = ParamSpec("P")
LOGIN = "/portal/login"
_NOT_FOUND = {ErrorCode.ORDER_NOT_FOUND, ErrorCode.NOT_FOUND, ErrorCode.PLATE_NOT_FOUND,
              ErrorCode.SETTLEMENT_BATCH_NOT_FOUND, ErrorCode.APP_NOT_FOUND,
              ErrorCode.MERCHANT_USER_NOT_FOUND, ErrorCode.REFUND_NOT_FOUND,
              ErrorCode.NOTICE_NOT_FOUND}

ROLE_LABELS = {"owner": "店主 Owner", "cashier": "收银员 Cashier", "accountant": "财务 Accountant"}


@dataclass(frozen=True)
class Ctx:
    session: sessions.Session
    principal: users.Principal
    unread_notices: int = 0  # the merchant's, counted when the session is loaded

    @property
    def merchant_id(self) -> str:
        return self.principal.user.merchant_id

    @property
    def role(self) -> str:
        return self.principal.user.role

    def may(self, permission: Permission) -> bool:
        return may(self.role, permission)

    def page(self) -> dict[str, Any]:
        """What every portal template needs from the session."""
        nav = [("/portal/", "今日 Today"), ("/portal/orders", "订单 Orders"),
               ("/portal/reports", "报表 Reports"), ("/portal/statements", "结算 Statements"),
               ("/portal/plates", "码牌 Plates"), ("/portal/speakers", "云音箱 Speakers"),
               ("/portal/notices", "消息 Notices")]
        if self.may(Permission.MANAGE):
            nav += [("/portal/credentials", "密钥 API keys"), ("/portal/notify", "通知 Notify"),
                    ("/portal/users", "用户 Users")]
        user = self.principal.user
        unread = self.unread_notices
        badge = "" if unread <= 0 else (
            str(unread) if unread <= notices.UNREAD_SHOWN_MAX else f"{notices.UNREAD_SHOWN_MAX}+")
        return {"nav": nav, "csrf_token": self.session.csrf_token,
                "nav_badges": {"/portal/notices": badge} if badge else {},
                "user_label": f"{self.principal.merchant_name} · {user.display_name} "
                              f"({ROLE_LABELS.get(user.role, user.role)})",
                "ctx": self}


async def load(request: Request) -> Ctx | None:
    db = request.app.state.db
    cookie = request.cookies.get(sessions.cookie_name("portal"))
    session = await sessions.load(db, realm="portal", cookie=cookie)
    if session is None:
        return None
    who = await users.principal(db, user_id=session.principal_id)
    if (who is None or not who.may_use_portal
            or session.created_at < who.password_changed_at):
        await sessions.end(db, realm="portal", cookie=cookie)
        return None
    # one bounded count per page, for the unread badge in the navigation
    unread = await notices.unread_count(db, merchant_id=who.user.merchant_id)
    return Ctx(session=session, principal=who, unread_notices=unread)


def error_page(request: Request, ctx: Ctx | None, exc: FulemaError) -> Response:
    status = 404 if exc.code in _NOT_FOUND else exc.http_status
    if status >= 500:
        status = 400
    extra = ctx.page() if ctx else {}
    return render(request, "portal/error.html", status_code=status, code=exc.code.value,
                  message=exc.message if status != 404 else "未找到 · Not found", **extra)


def page(permission: Permission | None = None
         ) -> Callable[[Callable[P, Awaitable[Response]]], Callable[P, Awaitable[Response]]]:
    """Decorates a portal route (which takes `request: Request` by keyword): logged in or sent
    to the login page; a POST must carry the session's CSRF token; the role must hold
    `permission`; a FulemaError becomes the page again with its message (never JSON)."""

    def decorate(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
        @functools.wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
            request = kwargs["request"]
            assert isinstance(request, Request)
            ctx = await load(request)
            if ctx is None:
                return RedirectResponse(LOGIN, status_code=303)
            if request.method == "POST":
                form = await request.form()
                token = form.get("csrf_token")
                if not sessions.csrf_ok(ctx.session, token if isinstance(token, str) else None):
                    return error_page(request, ctx, FulemaError(
                        ErrorCode.PORTAL_FORBIDDEN,
                        "表单已过期，请刷新后重试 · The form expired (CSRF): reload and try again"))
            if permission is not None and not ctx.may(permission):
                return error_page(request, ctx, FulemaError(
                    ErrorCode.PORTAL_FORBIDDEN, "当前角色无此权限 · Your role may not do this"))
            request.state.portal = ctx
            try:
                return await handler(*args, **kwargs)
            except FulemaError as exc:
                return error_page(request, ctx, exc)

        return wrapper

    return decorate


def ctx_of(request: Request) -> Ctx:
    ctx = request.state.portal
    assert isinstance(ctx, Ctx)
    return ctx
