"""What every console page shares: who is logged in (`guard`), the navigation an operator's
roles open, CSRF on every form, and the Chinese-first wording of refusals.

Each page asks for the same roles as its /ops/v1 twin (the role constants below are copied from
each context's api.py, and tests/web/test_console_roles.py checks both agree), and every
action calls the same service function as the API, so the audit trail names the operator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import FulemaError
from fulema.operators import passwords
from fulema.web import sessions
from fulema.web.render import render

REALM: sessions.Realm = "console"

# The roles of each page, as its /ops/v1 equivalent requires them.
READ_MERCHANTS = ("reviewer", "risk", "finance")  # GET /ops/v1/merchants
REVIEW = ("reviewer",)  # POST /ops/v1/merchants/{id}/approve | reject
FREEZE = ("risk", "admin")  # POST /ops/v1/merchants/{id}/freeze | unfreeze
APPROVALS = ("reviewer", "risk", "finance", "admin")  # /ops/v1/approvals
CHANNELS = ("admin",)  # GET /ops/v1/channels
CAMPAIGNS = ("risk", "finance", "admin")  # GET /ops/v1/campaigns
RISK = ("risk",)  # /ops/v1/risk/cases
FINANCE = ("finance",)  # /ops/v1/reconciliation, /ops/v1/settlement
AUDIT = ("admin",)  # GET /ops/v1/audit

NAV: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/console/applications", "进件审核 Applications", READ_MERCHANTS),
    ("/console/merchants", "商户 Merchants", READ_MERCHANTS),
    ("/console/approvals", "复核 Approvals", APPROVALS),
    ("/console/channels", "通道 Channels", CHANNELS),
    ("/console/campaigns", "营销 Campaigns", CAMPAIGNS),
    ("/console/risk", "风险 Risk", RISK),
    ("/console/reconciliation", "对账 Reconciliation", FINANCE),
    ("/console/settlement", "结算 Settlement", FINANCE),
    ("/console/audit", "审计 Audit", AUDIT),
)

# Refusals in the operator's words (Chinese first); the service's own message follows.
_WORDS = {
    "VALIDATION_ERROR": "输入有误 Invalid input",
    "ILLEGAL_STATE_TRANSITION": "当前状态不允许此操作 Not allowed in the current state",
    "MERCHANT_NOT_FOUND": "没有这个商户 No such merchant",
    "MERCHANT_CLOSED": "商户已注销 The merchant is closed",
    "APPROVAL_NOT_FOUND": "没有这个复核请求 No such approval",
    "APPROVAL_NOT_PENDING": "该请求已处理 Already decided",
    "APPROVAL_OWN_REQUEST": "不能复核自己发起的请求 You cannot approve your own request",
    "OPERATOR_FORBIDDEN": "您的角色不能执行此操作 Your roles do not allow this",
    "RISK_CASE_NOT_FOUND": "没有这个案件 No such case",
    "DISCREPANCY_NOT_FOUND": "没有这条差错 No such discrepancy",
    "DISCREPANCY_ACTION_INVALID": "此差错不能这样处理 This action does not apply",
}


@dataclass(frozen=True)
class ConsoleUser:
    operator_id: str
    name: str
    roles: frozenset[str]
    csrf_token: str

    def holds(self, roles: tuple[str, ...]) -> bool:
        return bool(self.roles.intersection(roles))


def db_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # a form's address is no page to come back to
        target = "/console/"
    return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)


async def guard(request: Request, roles: tuple[str, ...]) -> ConsoleUser | Response:
    """The logged-in operator when it holds one of `roles`; otherwise the answer to give
    instead: the login page (no live session, or the operator disabled) or a 403 page."""
    session = await sessions.current(request, REALM)
    if session is None:
        return login_redirect(request)
    who = await passwords.identity(db_of(request), operator_id=session.principal_id,
                                   session_started=session.created_at)
    if who is None:  # disabled, or a new password since this session began: end them all
        await sessions.end_all(db_of(request), realm=REALM, principal_id=session.principal_id)
        return login_redirect(request)
    user = ConsoleUser(operator_id=session.principal_id, name=who.name, roles=who.roles,
                       csrf_token=session.csrf_token)
    if not user.holds(roles):
        return page(request, user, "console/forbidden.html", status_code=403, needed=roles)
    return user


def nav_for(user: ConsoleUser) -> list[tuple[str, str]]:
    return [(href, label) for href, label, roles in NAV if user.holds(roles)]


def page(request: Request, user: ConsoleUser, template: str, *, status_code: int = 200,
         **context: Any) -> Response:
    context.setdefault("error", "")
    context.setdefault("notice", _NOTICES.get(request.query_params.get("done", ""), ""))
    return render(request, template, status_code=status_code, nav=nav_for(user),
                  user_label=f"{user.name} ({', '.join(sorted(user.roles))})",
                  csrf_token=user.csrf_token, user=user, **context)


_NOTICES = {
    "approved": "已审核通过 Application approved",
    "rejected": "已驳回 Application rejected",
    "frozen": "已冻结 Merchant frozen",
    "unfreeze_asked": "解冻请求已提交，等待另一位风控人员复核 Unfreeze requested: waiting for a "
                      "second risk operator",
    "unfrozen": "已解冻 Merchant unfrozen",
    "approval_approved": "已复核通过并执行 Approved and carried out",
    "approval_rejected": "已拒绝该请求 Request rejected",
    "case_closed": "案件已结案 Case closed",
    "case_taken": "已接手案件 Case taken",
    "resolved": "差错已处理 Discrepancy resolved",
}


def done(path: str, what: str) -> RedirectResponse:
    """After a change: back to the page (POST-redirect-GET) with a fixed notice."""
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}done={what}", status_code=303)


def refusal(exc: FulemaError) -> str:
    words = _WORDS.get(exc.code.value, exc.code.value)
    return f"{words}: {exc.message}" if exc.message else words


def csrf_refused(request: Request, user: ConsoleUser) -> Response:
    return page(request, user, "console/forbidden.html", status_code=403, needed=(),
                error="表单已过期，请刷新页面后重试 The form expired (CSRF): reload the page and "
                      "try again")


async def form_of(request: Request, user: ConsoleUser) -> dict[str, str] | Response:
    """The posted form as text fields, or the 403 page when its CSRF token is not this
    session's."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    session = await sessions.current(request, REALM)
    if session is None or not sessions.csrf_ok(session, fields.get("csrf")):
        return csrf_refused(request, user)
    return fields


class Show(Protocol):
    """A console page drawn again for `user`, with an error above it when an action failed."""

    def __call__(self, request: Request, user: ConsoleUser, *, error: str = "",
                 status_code: int = 200) -> Awaitable[Response]: ...


class Refused(Exception):
    """Raised by an action when the form is wrong: its page again, with `message` above it."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


UNKNOWN_ACTION = "未知操作 Unknown action"


async def view(request: Request, roles: tuple[str, ...], show: Show) -> Response:
    """A GET page: the operator holding one of `roles` sees it; anyone else the login or 403
    page (`guard`)."""
    user = await guard(request, roles)
    if isinstance(user, Response):
        return user
    return await show(request, user)


async def act(request: Request, roles: tuple[str, ...], show: Show,
              action: Callable[[ConsoleUser, dict[str, str]], Awaitable[Response | None]]
              ) -> Response:
    """A POSTed action, the same way on every page: session and roles (`guard`), the CSRF
    token (`form_of`), then `action(user, fields)`, which calls the service (the service
    writes the audit record naming the operator) and answers the redirect (`done`). A
    `Refused` or a service's `FulemaError` draws the page again with the reason; `None` means
    the URL named no action this page knows (404)."""
    user = await guard(request, roles)
    if isinstance(user, Response):
        return user
    fields = await form_of(request, user)
    if isinstance(fields, Response):
        return fields
    try:
        answer = await action(user, fields)
    except Refused as exc:
        return await show(request, user, error=exc.message, status_code=exc.status_code)
    except FulemaError as exc:
        return await show(request, user, error=refusal(exc), status_code=exc.code.http_status)
    if answer is None:
        return await show(request, user, error=UNKNOWN_ACTION, status_code=404)
    return answer
