"""The operations console over HTTP: login with lockout, each page and action, CSRF, bad
input, and the audit record every action leaves under the operator's name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from fulema.app import create_app
from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.merchants import service as merchants
from fulema.merchants.domain import MerchantStatus
from fulema.operators import passwords
from fulema.risk import cases
from tests.merchants.factories import applied, merchant_in
from tests.web.console_helpers import PASSWORD, csrf_of, log_in, operator, try_login


@pytest.fixture
async def http(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"mount_sandbox": False, "enabled_channels": []}),
                     db=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        yield client


async def actions_of(db: Database, actor: str) -> list[str]:
    return [r.action for r in await audit.search(db, actor=actor, limit=100)]


# --- login, logout, lockout ----------------------------------------------------------------------


async def test_a_page_without_a_session_sends_the_operator_to_log_in(
        http: httpx.AsyncClient) -> None:
    answer = await http.get("/console/merchants?q=x")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=%2Fconsole%2Fmerchants%3Fq%3Dx"
    posted = await http.post("/console/merchants/mch_x/freeze", data={"reason": "x"})
    assert posted.status_code == 303
    assert posted.headers["location"] == "/console/login?next=%2Fconsole%2F"
    login = await http.get("/console/login")
    assert "运营人员登录" in login.text
    assert "Operator log in" in login.text


async def test_an_operator_logs_in_sees_its_pages_and_logs_out(db: Database,
                                                               http: httpx.AsyncClient) -> None:
    await operator(db, "wang.fin", "finance")
    await log_in(http, "wang.fin")
    home = await http.get("/console/")
    assert home.status_code == 200
    assert "/console/settlement" in home.text
    assert "/console/audit" not in home.text
    assert "operator.login" in await actions_of(db, "wang.fin")
    bye = await http.post("/console/logout", data={"csrf": csrf_of(home.text)})
    assert bye.status_code == 303
    assert (await http.get("/console/")).status_code == 303  # the session is over


async def test_wrong_password_and_unknown_name_answer_alike(db: Database,
                                                            http: httpx.AsyncClient) -> None:
    await operator(db, "li.rev", "reviewer")
    wrong = await try_login(http, "li.rev", "not-the-password-1")
    unknown = await try_login(http, "nobody.here", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "用户名或密码错误" in wrong.text
    assert "用户名或密码错误" in unknown.text
    assert "fulema_console=" not in wrong.headers.get("set-cookie", "")  # no session


async def test_five_failures_lock_the_operator_out_even_with_the_right_password(
        db: Database, http: httpx.AsyncClient) -> None:
    await operator(db, "zhao.risk", "risk")
    for _ in range(passwords.MAX_FAILURES - 1):
        assert (await try_login(http, "zhao.risk", "guess-number-1")).status_code == 401
    locked = await try_login(http, "zhao.risk", "guess-number-5")
    assert locked.status_code == 429
    assert "锁定" in locked.text
    assert (await try_login(http, "zhao.risk")).status_code == 429  # the right one, too
    assert "operator.locked" in await actions_of(db, "zhao.risk")
    clock.advance(passwords.LOCKOUT + timedelta(seconds=1))
    await log_in(http, "zhao.risk")


async def test_a_login_without_the_form_token_is_refused(db: Database,
                                                         http: httpx.AsyncClient) -> None:
    await operator(db, "li.rev", "reviewer")
    forged = await http.post("/console/login", data={"name": "li.rev", "password": PASSWORD,
                                                     "login_token": "forged"})
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    empty = await try_login(http, "", "")
    assert empty.status_code == 400
    assert "请输入用户名和密码" in empty.text


async def test_login_never_redirects_off_the_console(db: Database,
                                                     http: httpx.AsyncClient) -> None:
    await operator(db, "li.rev", "reviewer")
    answer = await try_login(http, "li.rev", next_="//evil.example/console/")
    assert answer.headers["location"] == "/console/"


async def test_disabling_an_operator_ends_its_console_sessions(db: Database, settings: Settings,
                                                               http: httpx.AsyncClient) -> None:
    await operator(db, "li.rev", "reviewer")
    await log_in(http, "li.rev")
    assert (await http.get("/console/applications")).status_code == 200
    off = await http.post("/ops/v1/operators/li.rev/disable",
                          headers={"Authorization": f"Bearer {settings.operator_token}"})
    assert off.status_code == 200, off.text
    assert (await http.get("/console/applications")).status_code == 303
    assert (await try_login(http, "li.rev")).status_code == 401


async def test_an_admin_sets_a_password_through_the_api_and_old_sessions_end(
        db: Database, settings: Settings, http: httpx.AsyncClient) -> None:
    await operator(db, "li.rev", "reviewer")
    await log_in(http, "li.rev")
    admin = {"Authorization": f"Bearer {settings.operator_token}"}
    weak = await http.put("/ops/v1/operators/li.rev/password", json={"password": "short"},
                          headers=admin)
    assert (weak.status_code, weak.json()["code"]) == (400, "VALIDATION_ERROR")
    weak2 = await http.put("/ops/v1/operators/li.rev/password",
                           json={"password": "onlylettersherex"}, headers=admin)
    assert weak2.status_code == 400
    missing = await http.put("/ops/v1/operators/no.one/password",
                             json={"password": "new-password-77"}, headers=admin)
    assert missing.json()["code"] == "OPERATOR_NOT_FOUND"
    ok = await http.put("/ops/v1/operators/li.rev/password",
                        json={"password": "new-password-77"}, headers=admin)
    assert ok.status_code == 204, ok.text
    assert (await http.get("/console/applications")).status_code == 303
    assert (await try_login(http, "li.rev")).status_code == 401
    assert (await try_login(http, "li.rev", "new-password-77")).status_code == 303
    record = (await audit.search(db, action="operator.set_password", target_id="li.rev",
                                 limit=5))[0]
    assert record.actor == settings.operator_bootstrap_name
    assert "new-password-77" not in str(record.detail)


async def test_the_cli_sets_a_password(sqlite_db: Database, settings: Settings) -> None:
    import asyncio

    from typer.testing import CliRunner

    from fulema.cli import app as cli

    await operator(sqlite_db, "li.rev", "reviewer")
    env = {"FULEMA_DATABASE_URL": settings.database_url}
    weak = await asyncio.to_thread(CliRunner().invoke, cli,
                                   ["operator", "password", "li.rev", "--password", "weak"],
                                   env=env)
    assert weak.exit_code == 1
    assert "VALIDATION_ERROR" in weak.output
    ok = await asyncio.to_thread(CliRunner().invoke, cli, ["operator", "password", "li.rev"],
                                 input="from-the-cli-2026\nfrom-the-cli-2026\n", env=env)
    assert ok.exit_code == 0, ok.output
    assert "from-the-cli-2026" not in ok.output
    result = await passwords.login(sqlite_db, name="li.rev", password="from-the-cli-2026")
    assert result.outcome is passwords.LoginOutcome.OK
    record = (await audit.search(sqlite_db, action="operator.set_password", limit=1))[0]
    assert record.actor.startswith("cli:")


async def test_only_an_admin_may_set_a_password(db: Database, http: httpx.AsyncClient) -> None:
    from fulema.operators import service

    await operator(db, "li.rev", "reviewer")
    issued = await service.issue_token(db, name="li.rev", label="t", actor="test")
    answer = await http.put("/ops/v1/operators/li.rev/password",
                            json={"password": "new-password-77"},
                            headers={"Authorization": f"Bearer {issued.token}"})
    assert answer.json()["code"] == "OPERATOR_FORBIDDEN"


async def test_the_demo_operator_is_refused_outside_development(db: Database,
                                                                settings: Settings) -> None:
    with pytest.raises(RuntimeError):
        await passwords.seed_demo_operator(
            db, settings=settings.model_copy(update={"environment": "production"}))
    await passwords.seed_demo_operator(db, settings=settings)
    await passwords.seed_demo_operator(db, settings=settings)  # once only
    result = await passwords.login(db, name=passwords.DEMO_OPERATOR_NAME,
                                   password=passwords.DEMO_OPERATOR_PASSWORD)
    assert result.outcome is passwords.LoginOutcome.OK


# --- applications ----------------------------------------------------------------------------------


async def test_a_reviewer_approves_an_application_and_the_audit_names_them(
        db: Database, http: httpx.AsyncClient) -> None:
    m = await applied(db, name="西湖茶馆")
    await operator(db, "li.rev", "reviewer")
    await log_in(http, "li.rev")
    queue = await http.get("/console/applications")
    assert "西湖茶馆" in queue.text
    assert "13912345678" not in queue.text
    assert "139****5678" in queue.text
    assert "6230910012345678901" not in queue.text
    answer = await http.post(f"/console/applications/{m.id}/approve",
                             data={"csrf": csrf_of(queue.text)})
    assert answer.status_code == 303
    after = await http.get(answer.headers["location"])
    assert "已审核通过" in after.text
    assert "西湖茶馆" not in after.text
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.APPROVED
    record = (await audit.search(db, action="merchant.approve", target_id=m.id, limit=1))[0]
    assert record.actor == "li.rev"


async def test_a_rejection_needs_a_reason(db: Database, http: httpx.AsyncClient) -> None:
    m = await applied(db)
    await operator(db, "li.rev", "reviewer")
    await log_in(http, "li.rev")
    csrf = csrf_of((await http.get("/console/applications")).text)
    blank = await http.post(f"/console/applications/{m.id}/reject",
                            data={"csrf": csrf, "reason": "  "})
    assert blank.status_code == 400
    assert "驳回须填写原因" in blank.text
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.APPLIED
    ok = await http.post(f"/console/applications/{m.id}/reject",
                         data={"csrf": csrf, "reason": "营业执照模糊"})
    assert ok.status_code == 303
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.REJECTED
    again = await http.post(f"/console/applications/{m.id}/approve", data={"csrf": csrf})
    assert again.status_code == 409
    assert "当前状态不允许" in again.text


async def test_an_unknown_action_is_a_404_page_and_changes_nothing(
        db: Database, http: httpx.AsyncClient) -> None:
    m = await applied(db)
    await operator(db, "li.rev", "reviewer")
    await log_in(http, "li.rev")
    csrf = csrf_of((await http.get("/console/applications")).text)
    answer = await http.post(f"/console/applications/{m.id}/delete",
                             data={"csrf": csrf, "reason": "x"})
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "未知操作" in answer.text
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.APPLIED


async def test_a_form_with_a_wrong_csrf_token_changes_nothing(db: Database,
                                                              http: httpx.AsyncClient) -> None:
    m = await applied(db)
    await operator(db, "li.rev", "reviewer")
    await log_in(http, "li.rev")
    for token in ("forged", ""):
        answer = await http.post(f"/console/applications/{m.id}/approve", data={"csrf": token})
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.APPLIED


async def test_a_risk_operator_cannot_approve_applications(db: Database,
                                                           http: httpx.AsyncClient) -> None:
    m = await applied(db)
    await operator(db, "zhao.risk", "risk")
    await log_in(http, "zhao.risk")
    queue = await http.get("/console/applications")
    assert queue.status_code == 200
    assert "审核通过 Approve" not in queue.text
    answer = await http.post(f"/console/applications/{m.id}/approve",
                             data={"csrf": csrf_of(queue.text)})
    assert answer.status_code == 403
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.APPLIED


# --- merchants: search, freeze, unfreeze with four eyes --------------------------------------------


async def test_search_by_name_id_and_state(db: Database, http: httpx.AsyncClient) -> None:
    tea = await merchant_in(db, MerchantStatus.ACTIVE)
    other = await applied(db, name="鼓楼面馆", short_name="面馆")
    await operator(db, "li.rev", "reviewer")
    await log_in(http, "li.rev")
    by_name = await http.get("/console/merchants", params={"q": "面馆"})
    assert other.id in by_name.text
    assert tea.id not in by_name.text
    by_id = await http.get("/console/merchants", params={"q": tea.id})
    assert tea.id in by_id.text
    assert other.id not in by_id.text
    by_state = await http.get("/console/merchants", params={"status": "APPLIED"})
    assert other.id in by_state.text
    assert tea.id not in by_state.text
    bad = await http.get("/console/merchants", params={"status": "NAPPING"})
    assert bad.status_code == 400
    assert "未知状态" in bad.text
    wildcard = await http.get("/console/merchants", params={"q": "%"})
    assert other.id not in wildcard.text  # a LIKE wildcard is a character, not "everything"
    assert "merchant.search" in await actions_of(db, "li.rev")


async def test_freeze_then_unfreeze_needs_a_second_risk_operator(
        db: Database, http: httpx.AsyncClient, settings: Settings) -> None:
    m = await merchant_in(db, MerchantStatus.ACTIVE)
    await operator(db, "zhao.risk", "risk")
    await operator(db, "qian.risk", "risk")
    await log_in(http, "zhao.risk")
    found = await http.get("/console/merchants", params={"q": m.id})
    csrf = csrf_of(found.text)
    no_reason = await http.post(f"/console/merchants/{m.id}/freeze", data={"csrf": csrf})
    assert no_reason.status_code == 400
    assert "须填写原因" in no_reason.text
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.ACTIVE
    frozen = await http.post(f"/console/merchants/{m.id}/freeze",
                             data={"csrf": csrf, "reason": "疑似套现"})
    assert frozen.status_code == 303
    shown = await http.get(frozen.headers["location"])
    assert "已冻结" in shown.text
    assert "FROZEN" in shown.text
    assert "疑似套现" in shown.text
    record = (await audit.search(db, action="merchant.freeze", target_id=m.id, limit=1))[0]
    assert record.actor == "zhao.risk"

    asked = await http.post(f"/console/merchants/{m.id}/unfreeze",
                            data={"csrf": csrf, "reason": "核查无误"})
    assert asked.status_code == 303
    assert asked.headers["location"].startswith("/console/approvals")
    pending = await http.get("/console/approvals")
    assert m.id in pending.text
    assert "这是您发起的请求" in pending.text
    approval_id = pending.text.split('data-approval="')[1].split('"')[0]
    own = await http.post(f"/console/approvals/{approval_id}/approve", data={"csrf": csrf})
    assert own.status_code == 403
    assert "不能复核自己发起的请求" in own.text
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.FROZEN

    second = httpx.AsyncClient(transport=http._transport, base_url="http://testserver")
    async with second:
        await log_in(second, "qian.risk")
        page = await second.get("/console/approvals")
        done = await second.post(f"/console/approvals/{approval_id}/approve",
                                 data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.ACTIVE
    unfrozen = (await audit.search(db, action="merchant.unfreeze", target_id=m.id, limit=1))[0]
    assert unfrozen.actor == "qian.risk"


async def test_rejecting_an_approval_needs_a_reason(db: Database,
                                                    http: httpx.AsyncClient) -> None:
    m = await merchant_in(db, MerchantStatus.FROZEN)
    await operator(db, "zhao.risk", "risk")
    await operator(db, "qian.risk", "risk")
    await log_in(http, "zhao.risk")
    csrf = csrf_of((await http.get("/console/merchants")).text)
    await http.post(f"/console/merchants/{m.id}/unfreeze", data={"csrf": csrf, "reason": "复查"})
    await http.post("/console/logout", data={"csrf": csrf})
    await log_in(http, "qian.risk")
    page = await http.get("/console/approvals")
    approval_id = page.text.split('data-approval="')[1].split('"')[0]
    blank = await http.post(f"/console/approvals/{approval_id}/reject",
                            data={"csrf": csrf_of(page.text)})
    assert blank.status_code == 400
    assert "拒绝须填写原因" in blank.text
    no = await http.post(f"/console/approvals/{approval_id}/reject",
                         data={"csrf": csrf_of(page.text), "note": "证据不足"})
    assert no.status_code == 303
    assert await merchants.get_merchant_status(db, merchant_id=m.id) is MerchantStatus.FROZEN


# --- the other contexts' pages -------------------------------------------------------------------


async def test_a_risk_operator_takes_and_closes_a_case(db: Database,
                                                       http: httpx.AsyncClient) -> None:
    m = await merchant_in(db, MerchantStatus.ACTIVE)
    case = await cases.open_case(db, merchant_id=m.id, summary="夜间大额集中", operator="t")
    await operator(db, "zhao.risk", "risk")
    await log_in(http, "zhao.risk")
    page = await http.get("/console/risk")
    assert "夜间大额集中" in page.text
    csrf = csrf_of(page.text)
    taken = await http.post(f"/console/risk/{case.id}/investigate", data={"csrf": csrf})
    assert taken.status_code == 303
    bad = await http.post(f"/console/risk/{case.id}/close",
                          data={"csrf": csrf, "verdict": "maybe", "resolution": "x"})
    assert bad.status_code == 400
    assert "结案须选择结论" in bad.text
    closed = await http.post(f"/console/risk/{case.id}/close",
                             data={"csrf": csrf, "verdict": "no_fraud", "resolution": "正常促销"})
    assert closed.status_code == 303
    assert (await cases.get_case(db, case_id=case.id)).status == "closed_no_fraud"
    assert (await http.get("/console/risk?status=closed_no_fraud")).text.count("正常促销") == 1
    assert (await http.get("/console/risk?status=bogus")).status_code == 400


async def test_pages_answer_bad_filters_with_a_page(db: Database,
                                                    http: httpx.AsyncClient) -> None:
    await operator(db, "wang.fin", "finance")
    await log_in(http, "wang.fin")
    bad_day = await http.get("/console/settlement", params={"date": "2026-13-40"})
    assert bad_day.status_code == 400
    assert "YYYY-MM-DD" in bad_day.text
    bad_state = await http.get("/console/reconciliation", params={"status": "LOST"})
    assert bad_state.status_code == 400
    assert "未知状态" in bad_state.text
    csrf = csrf_of(bad_state.text)
    no_action = await http.post("/console/reconciliation/rdc_none/resolve",
                                data={"csrf": csrf, "action": "SHRUG"})
    assert no_action.status_code == 400
    assert "请选择处理方式" in no_action.text
    missing = await http.post("/console/reconciliation/rdc_none/resolve",
                              data={"csrf": csrf, "action": "ACCEPT"})
    assert missing.status_code == 404
    assert "没有这条差错" in missing.text


async def test_the_audit_log_filters_by_operator_and_action(db: Database,
                                                            http: httpx.AsyncClient) -> None:
    m = await applied(db)
    await operator(db, "li.rev", "reviewer")
    await operator(db, "root.admin", "admin")
    await merchants.approve(db, merchant_id=m.id, reason=None, operator="li.rev")
    await log_in(http, "root.admin")
    page = await http.get("/console/audit", params={"actor": "li.rev",
                                                    "action": "merchant.approve"})
    assert page.status_code == 200
    assert m.id in page.text
    assert "operator.login" not in page.text
    assert "audit.search" in await actions_of(db, "root.admin")


# --- roles: each page as its /ops/v1 twin ----------------------------------------------------------

TWINS = [("/console/applications", "/ops/v1/merchants"),
         ("/console/merchants", "/ops/v1/merchants"),
         ("/console/approvals", "/ops/v1/approvals"),
         ("/console/channels", "/ops/v1/channels"),
         ("/console/campaigns", "/ops/v1/marketing/campaigns"),
         ("/console/risk", "/ops/v1/risk/cases"),
         ("/console/reconciliation", "/ops/v1/reconciliation/discrepancies"),
         ("/console/settlement", "/ops/v1/settlement/batches"),
         ("/console/audit", "/ops/v1/audit")]


@pytest.mark.parametrize("role", ["reviewer", "risk", "finance", "admin"])
async def test_each_page_opens_exactly_where_its_api_does(db: Database, http: httpx.AsyncClient,
                                                          role: str) -> None:
    from fulema.operators import service

    name = await operator(db, f"op.{role}", role)
    token = (await service.issue_token(db, name=name, label="t", actor="test")).token
    await log_in(http, name)
    for page_path, api_path in TWINS:
        api = await http.get(api_path, headers={"Authorization": f"Bearer {token}"})
        page = await http.get(page_path)
        assert api.status_code in (200, 403), (api_path, api.text)
        assert page.status_code == api.status_code, (role, page_path)
        if page.status_code == 403:
            assert "无权访问" in page.text
        else:
            assert page.headers["content-type"].startswith("text/html")
