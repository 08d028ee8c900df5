"""The operations console in a real browser: an operator logs in, approves a merchant's
application and freezes a merchant (each visible afterwards), and every console page fits a
phone and a desktop without console errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from fulema.core.db import Database
from fulema.merchants.domain import MerchantStatus
from fulema.operators.passwords import DEMO_OPERATOR_NAME, DEMO_OPERATOR_PASSWORD
from tests.browser.conftest import LiveSite, check_page
from tests.merchants.factories import applied, merchant_in

T = TypeVar("T")
PAGES = ["applications", "merchants", "approvals", "channels", "campaigns", "risk",
         "reconciliation", "settlement", "audit"]


def _setup(site: LiveSite, work: Callable[[Database], Awaitable[T]]) -> T:
    """`site.run` on a thread of its own: Playwright's sync API keeps an event loop running
    on this one, where asyncio.run refuses to start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(site.run, work).result()


def _log_in(page: Any, url: str) -> None:
    page.goto(f"{url}/console/login")
    page.fill("#name", DEMO_OPERATOR_NAME)
    page.fill("#password", DEMO_OPERATOR_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/console/")


def test_an_operator_approves_an_application_and_freezes_a_merchant(
        live_site: LiveSite, open_page: Callable[..., Any]) -> None:
    url = live_site.url
    applicant = _setup(live_site, lambda db: applied(db, name="浏览器测试茶馆"))
    active = _setup(live_site, lambda db: merchant_in(db, MerchantStatus.ACTIVE))
    page = open_page("desktop")
    _log_in(page, url)

    page.goto(f"{url}/console/applications")
    card = page.locator(f'.application[data-merchant="{applicant.id}"]')
    card.get_by_role("button", name="审核通过 Approve").click()
    page.wait_for_url("**/console/applications?done=approved")
    assert "已审核通过" in page.locator(".notice").inner_text()
    page.goto(f"{url}/console/merchants?q={applicant.id}")
    assert "APPROVED" in page.locator(f'.merchant[data-merchant="{applicant.id}"]').inner_text()

    page.goto(f"{url}/console/merchants?q={active.id}")
    row = page.locator(f'.merchant[data-merchant="{active.id}"]')
    row.locator("input[name=reason]").fill("疑似套现，先冻结")
    row.get_by_role("button", name="冻结 Freeze").click()
    page.wait_for_url("**done=frozen")
    frozen = page.locator(f'.merchant[data-merchant="{active.id}"]').inner_text()
    assert "FROZEN" in frozen
    assert "疑似套现" in frozen
    check_page(page, "console-merchant-frozen")

    page.goto(f"{url}/console/audit?actor={DEMO_OPERATOR_NAME}&action=merchant.freeze")
    assert active.id in page.locator("table.audit").inner_text()


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_every_console_page_fits_the_screen(live_site: LiveSite, open_page: Callable[..., Any],
                                            viewport: str) -> None:
    _setup(live_site, lambda db: applied(db, name="屏幕检查餐厅"))
    page = open_page(viewport)
    page.goto(f"{live_site.url}/console/login")
    check_page(page, "console-login")
    _log_in(page, live_site.url)
    check_page(page, "console-home")
    for name in PAGES:
        page.goto(f"{live_site.url}/console/{name}")
        assert "无权访问" not in page.content()
        check_page(page, f"console-{name}")
