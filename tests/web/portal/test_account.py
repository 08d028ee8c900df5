"""Statements, plates, API keys, notify_url, speakers and users; and merchant A trying merchant
B's order, refund, plate, statement and export by URL (404 each, nothing changed)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

from fulema.core.clock import clock
from fulema.merchants import users
from fulema.settlement.models import SettlementBatch
from tests.web.portal.kit import Kit, csrf


async def _batch(kit: Kit, merchant_id: str, batch_id: str) -> None:
    """A settled batch (written directly: the settlement run itself is tested in its context)."""
    async with kit.p.db.transaction() as s:
        s.add(SettlementBatch(id=batch_id, merchant_id=merchant_id, settle_date=date(2026, 11, 25),
                              cycle="T1", status="SETTLED", through_date=None,
                              same_day_through=None, gross=1250, refunds=0, fees=5,
                              discounts=0, other=0, net=1245, hold_reason=None,
                              created_at=clock.now()))


async def test_statements_list_this_merchants_batches_and_export_them(kit: Kit) -> None:
    await _batch(kit, kit.merchant_a, "stb_a_0001")
    http = await kit.login("a-accountant")
    page = await http.get("/portal/statements")
    assert page.status_code == 200
    assert "2026-11-25" in page.text
    assert "12.45" in page.text
    answer = await http.get("/portal/statements/stb_a_0001.csv")
    assert answer.status_code == 200
    assert answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0][0] == "trade_date"
    await http.aclose()


async def test_plates_download_as_png_and_pdf(kit: Kit) -> None:
    http = await kit.login("a-cashier")
    page = await http.get("/portal/plates")
    assert page.status_code == 200
    assert "DEMO000001" in page.text
    png = await http.get("/portal/plates/DEMO000001.png")
    assert png.status_code == 200
    assert png.content.startswith(b"\x89PNG")
    pdf = await http.get("/portal/plates/DEMO000001.pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    await http.aclose()


async def test_speakers_are_listed(kit: Kit) -> None:
    http = await kit.login("a-cashier")
    page = await http.get("/portal/speakers")
    assert page.status_code == 200
    assert "DEMO-SPEAKER-01" in page.text
    assert "DEMO-CASHIER-01" not in page.text  # a cashier terminal is not a speaker
    await http.aclose()


async def test_the_owner_rotates_the_secret_and_sees_it_once(kit: Kit) -> None:
    http = await kit.login("a-owner")
    page = await http.get("/portal/credentials")
    assert page.status_code == 200
    assert "app_demo" in page.text
    assert "demo-secret-change-me" not in page.text
    rotated = await http.post("/portal/credentials/app_demo/rotate",
                              data={"csrf_token": csrf(page.text)})
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    secret = re.search(r'<code id="new-secret">([^<]+)</code>', rotated.text)
    assert secret
    again = await http.get("/portal/credentials")
    assert secret.group(1) not in again.text  # shown once
    old = await kit.p.call("GET", "/api/v1/orders/ord_none")
    assert old.status_code == 401  # the published demo secret no longer signs
    new = await kit.p.call("GET", "/api/v1/orders/ord_none", secret=secret.group(1))
    assert new.status_code == 404
    await http.aclose()


async def test_the_notify_url_is_checked_against_the_outbound_policy(kit: Kit) -> None:
    http = await kit.login("a-owner")
    page = await http.get("/portal/notify")
    token = csrf(page.text)
    for bad in ("http://10.0.0.8/notify", "http://169.254.169.254/latest", "ftp://x.example"):
        answer = await http.post("/portal/notify/app_demo",
                                 data={"csrf_token": token, "notify_url": bad})
        assert answer.status_code == 400, bad
        assert 'role="alert"' in answer.text
    good = await http.post("/portal/notify/app_demo",
                           data={"csrf_token": token, "notify_url": "http://testserver/n"})
    assert good.status_code == 303
    assert 'value="http://testserver/n"' in (await http.get("/portal/notify")).text
    await http.aclose()


async def test_the_owner_adds_a_cashier_but_not_another_owner(kit: Kit) -> None:
    http = await kit.login("a-owner")
    page = await http.get("/portal/users")
    token = csrf(page.text)
    added = await http.post("/portal/users", data={
        "csrf_token": token, "login_name": "a-till-2", "display_name": "小李",
        "role": "cashier", "password": "till-pass-2026"})
    assert added.status_code == 200
    assert "a-till-2" in added.text
    owner = await http.post("/portal/users", data={
        "csrf_token": token, "login_name": "a-owner-2", "display_name": "x",
        "role": "owner", "password": "till-pass-2026"})
    assert owner.status_code == 400
    taken = await http.post("/portal/users", data={
        "csrf_token": token, "login_name": "b-owner", "display_name": "x",
        "role": "cashier", "password": "till-pass-2026"})
    assert taken.status_code == 409
    names = [u.login_name for u in await users.list_users(kit.p.db, merchant_id=kit.merchant_a)]
    assert "a-till-2" in names
    assert "a-owner-2" not in names
    await http.aclose()
    async with kit.client() as till:
        assert (await kit.try_login(till, "a-till-2", "till-pass-2026")).status_code == 303


async def test_merchant_a_never_reaches_merchant_bs_data(kit: Kit) -> None:
    b_order = await kit.paid_order("BBBB000001", 777, b=True)
    await _batch(kit, kit.merchant_b, "stb_b_0001")
    http = await kit.login("a-owner")
    home = await http.get("/portal/")
    token = csrf(home.text)
    oid = b_order["order_id"]
    for path in (f"/portal/orders/{oid}", f"/portal/plates/{kit.b_plate}.png",
                 f"/portal/plates/{kit.b_plate}.pdf", "/portal/statements/stb_b_0001.csv"):
        answer = await http.get(path)
        assert answer.status_code == 404, path
        assert "BBBB000001" not in answer.text
    for path, data in ((f"/portal/orders/{oid}/refund",
                        {"amount": "1.00", "out_refund_no": "portal0123456789abcdef"}),
                       (f"/portal/orders/{oid}/refund/confirm",
                        {"amount": "1.00", "out_refund_no": "portal0123456789abcdef"}),
                       (f"/portal/credentials/{kit.b_app_id}/rotate", {}),
                       (f"/portal/notify/{kit.b_app_id}", {"notify_url": "http://testserver/x"})):
        answer = await http.post(path, data={**data, "csrf_token": token})
        assert answer.status_code == 404, path
    orders = (await http.get("/portal/orders?out_trade_no=BBBB000001")).text
    assert "No orders match" in orders
    export = await http.get("/portal/reports.csv")
    assert "7.77" not in export.content.decode("utf-8-sig")
    assert kit.b_plate not in (await http.get("/portal/plates")).text
    assert "stb_b_0001" not in (await http.get("/portal/statements")).text
    view = (await kit.p.call("GET", f"/api/v1/orders/{oid}", app_id=kit.b_app_id,
                             secret=kit.b_secret)).json()
    assert view["refunded_amount"] == 0  # B's order untouched
    await http.aclose()
