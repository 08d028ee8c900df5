"""The merchant portal in a real browser: the demo owner logs in, sees a payment the test just
made through the merchant API, refunds part of it through the confirmation step, exports the
day's report (a download), and every portal page holds on a phone and a desktop.

The demo merchant's secret is not rotated here: the site is shared by the whole session."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from fulema.core.db import Database
from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.gateway.signing import sign_request
from fulema.merchants.demo_seed import (
    DEMO_APP_ID,
    DEMO_OWNER_LOGIN,
    DEMO_OWNER_PASSWORD,
    DEMO_SECRET,
    onboard_demo_merchant,
)
from fulema.messaging import notices
from tests.browser.conftest import LiveSite, check_page

PAGES = ("/portal/", "/portal/orders", "/portal/reports", "/portal/statements",
         "/portal/plates", "/portal/speakers", "/portal/credentials", "/portal/notify",
         "/portal/users", "/portal/password", "/portal/notices")


def _api(site: LiveSite, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    raw = orjson.dumps(body) if body is not None else b""
    headers = sign_request(app_id=DEMO_APP_ID, secret=DEMO_SECRET, method=method, path=path,
                           body=raw, timestamp=int(time.time()))
    answer = httpx.request(method, f"{site.url}{path}", content=raw, headers=headers, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def _paid_order(site: LiveSite, amount: int) -> dict[str, Any]:
    no = f"WEB{secrets.token_hex(5)}"
    order = _api(site, "POST", "/api/v1/orders",
                 {"out_trade_no": no, "amount": amount, "subject": "Noodles",
                  "way_code": "QR_DYNAMIC", "channel": "bankpay"})
    paid = httpx.post(f"{site.url}/sandbox/bankpay/wallet/scan", timeout=30,
                      json={"code_url": order["code_url"], "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    for _ in range(60):
        view = _api(site, "GET", f"/api/v1/orders/{order['order_id']}")
        if view["status"] == "SUCCESS":
            return dict(view)
        time.sleep(0.25)
    raise AssertionError(f"never paid: {view}")


def _login(page: Any, site: LiveSite) -> None:
    page.goto(f"{site.url}/portal/login")
    page.fill("input[name=login_name]", DEMO_OWNER_LOGIN)
    page.fill("input[name=password]", DEMO_OWNER_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/portal/")


def test_the_owner_sees_a_payment_refunds_part_and_exports_the_day(
        live_site: LiveSite, open_page: Callable[..., Any]) -> None:
    order = _paid_order(live_site, 1888)
    page = open_page("desktop")
    page.goto(f"{live_site.url}/portal/login")
    check_page(page, "portal-login")
    _login(page, live_site)
    assert "18.88" in page.inner_text("main")
    page.goto(f"{live_site.url}/portal/orders?out_trade_no={order['out_trade_no']}")
    page.click(f"text={order['out_trade_no']}")
    page.wait_for_url(f"**/portal/orders/{order['order_id']}")
    check_page(page, "portal-order")
    page.fill("input[name=amount]", "3.00")
    page.fill("input[name=reason]", "少一份")
    page.click("text=下一步 Next")
    assert "¥3.00" in page.inner_text("main")
    check_page(page, "portal-refund-confirm")
    page.click("button:has-text('确认退款')")
    page.wait_for_url(f"**/portal/orders/{order['order_id']}?done=1")
    assert "退款已提交" in page.inner_text("main")
    assert page.inner_text("#refunded") == "¥3.00"
    view = _api(live_site, "GET", f"/api/v1/orders/{order['order_id']}")
    assert view["refunded_amount"] == 300
    page.goto(f"{live_site.url}/portal/reports")
    with page.expect_download() as caught:
        page.click("#export-csv")
    download = caught.value
    assert download.suggested_filename.endswith(".csv")
    content = open(download.path(), "rb").read()  # noqa: SIM115 - playwright's temp file
    assert content.startswith(b"\xef\xbb\xbf")
    assert b"18.88" in content


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_every_portal_page_fits_the_screen(live_site: LiveSite, open_page: Callable[..., Any],
                                           viewport: str) -> None:
    page = open_page(viewport)
    page.goto(f"{live_site.url}/portal/login")
    check_page(page, "portal-login")
    _login(page, live_site)
    for path in PAGES:
        page.goto(f"{live_site.url}{path}")
        assert page.url.endswith(path), page.url  # not sent back to the login page
        name = "portal-" + (path.strip("/").split("/")[-1] if path != "/portal/" else "today")
        check_page(page, name)


def _payout_notice(site: LiveSite, fen: int) -> None:
    """A settlement payout reached the demo merchant: its notice, as the consumer writes it."""
    async def work(db: Database) -> None:
        demo = await onboard_demo_merchant(db, settings=site.settings)
        await notices.notice_from_event(db, Event(
            id=new_id("evt"), topic="settlement.paid",
            payload={"payout_id": new_id("po"), "merchant_id": demo.merchant_id,
                     "amount": fen, "batch_id": "stb_web"}))
    # on a thread of its own: Playwright's sync API keeps an event loop running on this one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(site.run, work).result()


def _badge(page: Any) -> str:
    count = page.locator("header.top nav a[href='/portal/notices'] .count")
    return str(count.inner_text()) if count.count() else ""


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_the_owner_reads_a_notice_and_the_unread_count_drops(
        live_site: LiveSite, open_page: Callable[..., Any], viewport: str) -> None:
    fen = 9000 + secrets.randbelow(999)
    _payout_notice(live_site, fen)
    text = f"结算款 {fen // 100}.{fen % 100:02d} 元已到账"
    page = open_page(viewport)
    _login(page, live_site)
    unread = _api(live_site, "GET", "/api/v1/notices?unread=true&limit=100")["unread_count"]
    assert unread >= 1
    assert _badge(page) == str(unread)  # on every page's navigation, here the first
    page.click("header.top nav a[href='/portal/notices']")
    page.wait_for_url("**/portal/notices")
    item = page.locator("ul.notices li", has_text=text)
    assert item.count() == 1
    check_page(page, "portal-notices-unread")
    item.locator("button:has-text('标为已读')").click()
    page.wait_for_url("**/portal/notices")
    item = page.locator("ul.notices li", has_text=text)
    assert "已读 Read" in item.inner_text()
    assert _badge(page) == (str(unread - 1) if unread > 1 else "")
    check_page(page, "portal-notices-read")
    answer = _api(live_site, "GET", "/api/v1/notices?limit=100")
    [mine] = [n for n in answer["data"] if n["summary"] == text]
    assert mine["read_by"].startswith("portal:")
