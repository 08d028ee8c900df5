"""The merchant portal in a real browser: the demo owner logs in, sees a payment the test just
made through the merchant API, refunds part of it through the confirmation step, exports the
day's report (a download), and every portal page holds on a phone and a desktop.

The demo merchant's secret is not rotated here: the site is shared by the whole session."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from fulema.gateway.signing import sign_request
from fulema.merchants.demo_seed import DEMO_APP_ID, DEMO_OWNER_LOGIN, DEMO_OWNER_PASSWORD, DEMO_SECRET
from tests.browser.conftest import LiveSite, check_page

PAGES = ("/portal/", "/portal/orders", "/portal/reports", "/portal/statements",
         "/portal/plates", "/portal/speakers", "/portal/credentials", "/portal/notify",
         "/portal/users", "/portal/password")


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
