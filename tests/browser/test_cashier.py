"""A payer in a real browser: every app pays the demo merchant's static QR through the sandbox
app shell (which plays the app and its JS bridge) and sees "paid"; the PC cashier turns to paid
by itself; an unknown plate gets a page. Every page is checked on a phone and a desktop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from fulema.core.clock import clock
from fulema.gateway.signing import sign_request
from tests.browser.conftest import LiveSite, check_page

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 " \
         "(KHTML, like Gecko) Mobile/15E148"
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) " \
          "Chrome/126.0 Mobile Safari/537.36"
APPS = {
    "wechat": f"{IPHONE} MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN",
    "alipay": f"{ANDROID} AlipayClient/10.5.90.8000 Language/zh-Hans",
    "unionpay": f"{ANDROID} UnionPay/1.0 CloudPay",
    "ecny": f"{IPHONE} eCNY/1.0.9",
    "bankpay": f"{ANDROID} FulemaBank/3.1",
}
PAID = "支付成功"
TIMEOUT = 30_000  # ms: the sandbox's notification reaches the platform through the worker


def forgive_document_status(page: Any, status: int) -> None:
    """Chromium logs a page answered with 4xx as a console error; that status is the page's
    documented answer (bad input 400, unknown plate 404), not a broken resource."""
    page.console_errors[:] = [e for e in page.console_errors
                              if f"status of {status}" not in e]


def scan_in_app(page: Any, site: LiveSite, app: str, payer: str = "") -> None:
    """The payer opens the app (the shell), scans the demo plate and types 12.50."""
    page.goto(f"{site.url}/sandbox/app/")
    assert page.locator("#app").input_value() == app  # the shell recognises the app's UA
    if payer:
        page.fill("#payer", payer)
    page.click("button[type=submit]")
    page.wait_for_selector("input[name=amount]")
    page.fill("input[name=amount]", "12.50")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("text=确认付款").count():  # a campaign's confirmation page
        page.click("text=确认付款")
        page.wait_for_load_state()


@pytest.mark.parametrize("app", list(APPS))
def test_a_payer_pays_the_static_qr_in_each_app_and_sees_paid(
        live_site: LiveSite, open_page: Callable[..., Any], app: str) -> None:
    page = open_page("phone", user_agent=APPS[app])
    scan_in_app(page, live_site, app)
    if app in ("ecny", "bankpay"):
        page.click("a[data-app-pay]")  # the app catches its own payment link
    sheet = page.wait_for_selector("#app-sheet", timeout=TIMEOUT)
    assert sheet is not None
    page.wait_for_selector("[data-sheet=amount]:has-text('¥')")
    # the app shows what the channel will charge: the cashier's payable amount
    assert page.inner_text("[data-sheet=amount]") == page.inner_text(".amount-big")
    check_page(page, f"cashier-{app}-sheet")
    page.click("[data-sheet=confirm]")
    page.wait_for_url("**/pay/result/**", timeout=TIMEOUT)
    page.wait_for_selector(f"#pay-state:has-text('{PAID}')", timeout=TIMEOUT)
    assert page.get_attribute("#pay-state", "data-status") == "SUCCESS"
    check_page(page, f"cashier-{app}-paid")


def test_a_payer_who_needs_a_password_gives_it_and_a_wrong_one_is_refused(
        live_site: LiveSite, open_page: Callable[..., Any]) -> None:
    page = open_page("phone", user_agent=APPS["unionpay"])
    scan_in_app(page, live_site, "unionpay", payer="up_pin")
    page.wait_for_selector("input[name=app-password]", state="visible", timeout=TIMEOUT)
    page.fill("input[name=app-password]", "000000")
    page.click("[data-sheet=confirm]")
    page.wait_for_selector("[data-sheet=error]:has-text('支付密码错误')")
    page.fill("input[name=app-password]", "123456")
    page.click("[data-sheet=confirm]")
    page.wait_for_selector(f"#pay-state:has-text('{PAID}')", timeout=TIMEOUT)


def test_a_payer_who_cancels_in_the_app_can_pay_again(
        live_site: LiveSite, open_page: Callable[..., Any]) -> None:
    page = open_page("phone", user_agent=APPS["wechat"])
    scan_in_app(page, live_site, "wechat")
    page.wait_for_selector("#app-sheet", timeout=TIMEOUT)
    page.click("[data-sheet=cancel]")
    page.wait_for_selector("#pay-status:has-text('已取消支付')")
    check_page(page, "cashier-cancelled")
    page.click("#pay-again")
    page.wait_for_selector("#app-sheet")
    page.click("[data-sheet=confirm]")
    page.wait_for_selector(f"#pay-state:has-text('{PAID}')", timeout=TIMEOUT)


def _create_order(site: LiveSite) -> dict[str, Any]:
    """A merchant's QR_DYNAMIC order through the signed API (the demo merchant's app)."""
    body = orjson.dumps({"out_trade_no": f"PC{clock.timestamp()}", "amount": 2599,
                         "subject": "茶具 Tea set", "way_code": "QR_DYNAMIC",
                         "channel": "bankpay"})
    path = "/api/v1/orders"
    headers = sign_request(app_id="app_demo", secret="demo-secret-change-me", method="POST",
                           path=path, body=body, timestamp=clock.timestamp())
    answer = httpx.post(f"{site.url}{path}", content=body,
                        headers={**headers, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_the_pc_cashier_turns_to_paid_by_itself(live_site: LiveSite,
                                                open_page: Callable[..., Any],
                                                viewport: str) -> None:
    order = _create_order(live_site)
    page = open_page(viewport)
    page.goto(f"{live_site.url}/pay/order/{order['order_id']}")
    assert page.locator("#pc-qr img").is_visible()
    assert "¥25.99" in page.inner_text("main")
    check_page(page, "cashier-pc-waiting")
    paid = httpx.post(f"{live_site.url}/sandbox/bankpay/wallet/scan",
                      json={"code_url": order["code_url"], "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    page.wait_for_selector(f"#pay-state:has-text('{PAID}')", timeout=TIMEOUT)
    assert not page.locator("#pc-qr").is_visible()  # the QR goes once paid
    check_page(page, "cashier-pc-paid")


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_the_cashier_pages_fit_the_screen(live_site: LiveSite, open_page: Callable[..., Any],
                                          viewport: str) -> None:
    page = open_page(viewport, user_agent=APPS["bankpay"])
    page.goto(f"{live_site.url}/pay/q/DEMO000001")
    check_page(page, "cashier-amount-pad")
    page.fill("input[name=amount]", "99999999")
    page.click("button[type=submit]")
    assert "单笔金额不能超过" in page.inner_text("main")
    forgive_document_status(page, 400)
    check_page(page, "cashier-over-limit")
    page.goto(f"{live_site.url}/sandbox/app/")
    check_page(page, "cashier-app-shell")
    chrome = open_page(viewport)
    chrome.goto(f"{live_site.url}/pay/q/DEMO000001")
    assert "请使用以下应用扫码付款" in chrome.inner_text("body")
    check_page(chrome, "cashier-unsupported-app")


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_an_unknown_plate_gets_a_page(live_site: LiveSite, open_page: Callable[..., Any],
                                      viewport: str) -> None:
    page = open_page(viewport, user_agent=APPS["wechat"])
    answer = page.goto(f"{live_site.url}/pay/q/NOPE000000")
    assert answer is not None
    assert answer.status == 404
    assert "收款码不存在" in page.inner_text("main")
    forgive_document_status(page, 404)
    check_page(page, "cashier-unknown-plate")


def test_sandbox_wallets_exist_for_every_app(live_site: LiveSite) -> None:
    """The shell's default payers are real sandbox payers (or the sheet would say so)."""
    from fulema.sandbox.appshell.routes import APPS as SHELL_APPS

    for app, (_, _, payer) in SHELL_APPS.items():
        found = httpx.get(f"{live_site.url}/sandbox/{app}/wallet/payers/{payer}")
        assert found.status_code == 200, (app, found.text)


def test_the_demo_plate_shows_the_seeded_discount_before_the_payer_confirms(
        live_site: LiveSite, open_page: Callable[..., Any]) -> None:
    """`fulema demo`/serve in development seed a 满20减2 campaign at the demo merchant: the
    payer who types 25.00 sees amount, discount and what they pay, then pays 23.00."""
    page = open_page("phone", user_agent=APPS["bankpay"])
    page.goto(f"{live_site.url}/sandbox/app/")
    page.click("button[type=submit]")
    page.wait_for_selector("input[name=amount]")
    page.fill("input[name=amount]", "25.00")
    page.click("button[type=submit]")
    page.wait_for_selector("text=确认付款")
    assert page.get_attribute("[data-discount]", "data-discount") == "2.00"
    assert page.get_attribute("[data-payable]", "data-payable") == "23.00"
    check_page(page, "cashier-demo-discount")
    page.click("text=确认付款")
    page.wait_for_load_state()
    page.click("a[data-app-pay]")
    page.wait_for_selector("[data-sheet=amount]:has-text('¥')", timeout=TIMEOUT)
    assert "23.00" in page.inner_text("[data-sheet=amount]")
    page.click("[data-sheet=confirm]")
    page.wait_for_selector(f"#pay-state:has-text('{PAID}')", timeout=TIMEOUT)
