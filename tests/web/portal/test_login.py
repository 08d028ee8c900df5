"""Portal login: the double-submit token, one message for a wrong name or password, the
lockout after five wrong passwords (and its end), every attempt recorded, and sessions ended
by logout, a password change, a disabled user and a merchant freeze."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from fulema.core.audit import AuditRecord
from fulema.core.clock import clock
from fulema.merchants import service as merchants
from fulema.merchants import users
from fulema.merchants.models import MerchantUserLogin
from tests.merchants.factories import OPERATOR
from tests.web.portal.kit import PASSWORD, Kit, csrf


async def test_a_page_without_a_session_sends_to_the_login_page(kit: Kit) -> None:
    async with kit.client() as http:
        for path in ("/portal/", "/portal/orders", "/portal/credentials", "/portal/reports.csv"):
            answer = await http.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"] == "/portal/login"
        page = await http.get("/portal/login")
        assert page.status_code == 200
        assert "商户登录" in page.text
        assert "Merchant log in" in page.text


async def test_the_owner_logs_in_and_out(kit: Kit) -> None:
    http = await kit.login("a-owner")
    home = await http.get("/portal/")
    assert home.status_code == 200
    assert "付了码演示商户" in home.text
    assert "a-owner" in home.text
    out = await http.post("/portal/logout", data={"csrf_token": csrf(home.text)})
    assert out.status_code == 303
    assert (await http.get("/portal/")).status_code == 303  # the session is over
    await http.aclose()


async def test_a_login_post_without_the_form_token_is_refused(kit: Kit) -> None:
    async with kit.client() as http:
        answer = await http.post("/portal/login", data={"login_name": "a-owner",
                                                        "password": PASSWORD,
                                                        "login_token": "forged"})
        assert answer.status_code == 403
        assert "CSRF" in answer.text
        assert "fulema_portal=" not in answer.headers.get("set-cookie", "")  # no session


async def test_a_wrong_name_and_a_wrong_password_read_the_same(kit: Kit) -> None:
    async with kit.client() as http:
        unknown = await kit.try_login(http, "nobody-here")
        wrong = await kit.try_login(http, "a-owner", "wrong-password-1")
    assert unknown.status_code == wrong.status_code == 401
    assert "用户名或密码错误" in unknown.text
    assert "用户名或密码错误" in wrong.text


async def test_five_wrong_passwords_lock_the_user_for_fifteen_minutes(kit: Kit) -> None:
    db = kit.p.db
    async with kit.client() as http:
        for _ in range(4):
            assert (await kit.try_login(http, "a-cashier", "wrong-password-1")).status_code == 401
        fifth = await kit.try_login(http, "a-cashier", "wrong-password-1")
        assert fifth.status_code == 423
        assert "锁定 15 分钟" in fifth.text
        # the right password does not open a locked user
        assert (await kit.try_login(http, "a-cashier")).status_code == 423
        clock.advance(timedelta(minutes=15, seconds=1))
        assert (await kit.try_login(http, "a-cashier")).status_code == 303
    async with db.transaction() as s:
        outcomes = [r.outcome for r in await s.scalars(
            select(MerchantUserLogin).where(MerchantUserLogin.login_name == "a-cashier")
            .order_by(MerchantUserLogin.at, MerchantUserLogin.id))]
        locked = list(await s.scalars(select(AuditRecord).where(
            AuditRecord.action == "merchant_user.locked")))
    assert outcomes == ["BAD_PASSWORD"] * 4 + ["LOCKED_OUT", "LOCKED", "SUCCESS"]
    assert len(locked) == 1


async def test_a_password_change_ends_every_session(kit: Kit) -> None:
    first = await kit.login("a-accountant")
    second = await kit.login("a-accountant")
    page = await second.get("/portal/password")
    clock.advance(timedelta(seconds=1))
    weak = await second.post("/portal/password", data={
        "csrf_token": csrf(page.text), "old_password": PASSWORD, "new_password": "short"})
    assert weak.status_code == 400
    assert "10" in weak.text
    changed = await second.post("/portal/password", data={
        "csrf_token": csrf(page.text), "old_password": PASSWORD,
        "new_password": "another-pass-77"})
    assert changed.status_code == 303
    assert (await first.get("/portal/")).status_code == 303
    assert (await second.get("/portal/")).status_code == 303
    async with kit.client() as http:
        assert (await kit.try_login(http, "a-accountant")).status_code == 401
        assert (await kit.try_login(http, "a-accountant", "another-pass-77")).status_code == 303
    await first.aclose()
    await second.aclose()


async def test_a_freeze_ends_the_merchants_sessions_and_a_disabled_user_is_out(kit: Kit) -> None:
    owner = await kit.login("b-owner")
    assert (await owner.get("/portal/")).status_code == 200
    await merchants.freeze(kit.p.db, merchant_id=kit.merchant_b, reason="chargebacks",
                           operator=OPERATOR)
    assert (await owner.get("/portal/")).status_code == 303
    async with kit.client() as http:
        assert (await kit.try_login(http, "b-owner")).status_code == 401
    cashier = await kit.login("a-cashier")
    found = [u for u in await users.list_users(kit.p.db, merchant_id=kit.merchant_a)
             if u.login_name == "a-cashier"]
    await users.set_status(kit.p.db, merchant_id=kit.merchant_a, user_id=found[0].user_id,
                           status="DISABLED", actor=OPERATOR)
    assert (await cashier.get("/portal/")).status_code == 303
    await owner.aclose()
    await cashier.aclose()
