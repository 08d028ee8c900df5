"""Takings, orders, the refund walk and the reports, as a merchant's people use them."""

from __future__ import annotations

import csv
import io
import re

import pytest

from fulema.core.clock import clock
from fulema.payments import portal_reads as reads
from tests.web.portal.kit import Kit, csrf


async def test_todays_takings_show_the_payment_in_figures_and_charts(kit: Kit) -> None:
    await kit.paid_order("TAKE000001", 1250)
    await kit.paid_order("TAKE000002", 300)
    http = await kit.login("a-cashier")
    page = await http.get("/portal/")
    assert page.status_code == 200
    assert '<div class="kpi" id="gross">¥15.50</div>' in page.text
    assert page.text.count('<svg class="chart"') == 3
    assert "<td>bankpay</td><td class=\"num\">15.50</td>" in page.text
    bad = await http.get("/portal/?day=yesterday")
    assert bad.status_code == 400
    assert "2026-11-26" in bad.text
    await http.aclose()


async def test_orders_filter_by_amount_state_and_number(kit: Kit) -> None:
    await kit.paid_order("FILT000001", 1250)
    newer = await kit.paid_order("FILT000002", 99)
    http = await kit.login("a-cashier")
    everything = (await http.get("/portal/orders")).text
    assert "FILT000001" in everything
    assert "FILT000002" in everything
    big = (await http.get("/portal/orders?min=10&max=20")).text
    assert "FILT000001" in big
    assert "FILT000002" not in big
    by_no = (await http.get("/portal/orders?out_trade_no=FILT000002")).text
    assert "FILT000002" in by_no
    assert "FILT000001" not in by_no
    older = (await http.get(f"/portal/orders?after={newer['order_id']}")).text
    assert "FILT000001" in older
    assert "FILT000002" not in older  # the cursor: orders before the given one
    closed = (await http.get("/portal/orders?status=CLOSED")).text
    assert "No orders match" in closed
    await http.aclose()


@pytest.mark.parametrize(("query", "says"), [
    ("min=abc", "min"), ("max=1.234", "max"), ("min=5&max=1", "min is above max"),
    ("from=2026-13-01", "from"), ("from=2026-11-20&to=2026-11-01", "from is after to"),
    ("status=PAID", "unknown state"), ("channel=paypal", "unknown channel"),
    ("out_trade_no=" + "x" * 65, "64"),
])
async def test_bad_filters_give_the_page_again_with_a_message(kit: Kit, query: str,
                                                               says: str) -> None:
    http = await kit.login("a-cashier")
    answer = await http.get(f"/portal/orders?{query}")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert says in answer.text
    assert 'role="alert"' in answer.text
    await http.aclose()


async def test_orders_come_newest_first_a_page_at_a_time(kit: Kit) -> None:
    for i in range(3):
        await kit.paid_order(f"PAGE00000{i}", 100 + i)
    first = await reads.list_orders(kit.p.db, merchant_id=kit.merchant_a,
                                    where=reads.OrderFilter(), limit=2)
    assert [o.out_trade_no for o in first.data] == ["PAGE000002", "PAGE000001"]
    assert first.has_more
    rest = await reads.list_orders(kit.p.db, merchant_id=kit.merchant_a,
                                   where=reads.OrderFilter(), limit=2,
                                   starting_after=first.data[-1].order_id)
    assert [o.out_trade_no for o in rest.data] == ["PAGE000000"]
    assert not rest.has_more


async def test_a_partial_refund_takes_a_confirmation_and_a_double_submit_refunds_once(
        kit: Kit) -> None:
    order = await kit.paid_order("REFD000001", 1250)
    http = await kit.login("a-accountant")
    detail = await http.get(f"/portal/orders/{order['order_id']}")
    assert detail.status_code == 200
    assert "ORDER" not in detail.text.split("<main")[0]
    number = re.search(r'name="out_refund_no" value="(portal[0-9a-f]{16})"', detail.text)
    assert number
    form = {"csrf_token": csrf(detail.text), "out_refund_no": number.group(1),
            "amount": "2.50", "reason": "少一碗"}
    confirm = await http.post(f"/portal/orders/{order['order_id']}/refund/confirm", data=form)
    assert confirm.status_code == 200
    assert "确认退款" in confirm.text
    assert "¥2.50" in confirm.text
    first = await http.post(f"/portal/orders/{order['order_id']}/refund", data=form)
    again = await http.post(f"/portal/orders/{order['order_id']}/refund", data=form)
    assert first.status_code == again.status_code == 303
    after = (await http.get(first.headers["location"])).text
    assert "退款已提交" in after
    assert '<td id="refunded">¥2.50</td>' in after
    assert after.count(number.group(1)) == 1  # one refund row
    view = (await kit.p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["refunded_amount"] == 250
    assert view["status"] == "PARTIALLY_REFUNDED"
    await http.aclose()


async def test_a_refund_above_the_refundable_or_malformed_is_refused(kit: Kit) -> None:
    order = await kit.paid_order("REFD000002", 500)
    http = await kit.login("a-owner")
    detail = (await http.get(f"/portal/orders/{order['order_id']}")).text
    number = re.search(r'name="out_refund_no" value="([^"]+)"', detail)
    assert number
    path = f"/portal/orders/{order['order_id']}/refund"
    for amount, says in (("5.01", "at most 5.00"), ("0", "enter the amount"),
                         ("-1", "12.50"), ("1e3", "12.50")):
        answer = await http.post(path, data={"csrf_token": csrf(detail), "amount": amount,
                                             "out_refund_no": number.group(1)})
        assert answer.status_code == 400, amount
        assert says in answer.text
    forged = await http.post(path, data={"csrf_token": csrf(detail), "amount": "1",
                                         "out_refund_no": "R-not-from-the-form"})
    assert forged.status_code == 400
    view = (await kit.p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["refunded_amount"] == 0
    await http.aclose()


async def test_the_daily_report_exports_as_csv_excel_opens(kit: Kit) -> None:
    await kit.paid_order("REPT000001", 1250)
    http = await kit.login("a-accountant")
    page = await http.get("/portal/reports")
    assert page.status_code == 200
    assert 'id="export-csv"' in page.text
    href = re.search(r'id="export-csv" href="([^"]+)"', page.text)
    assert href
    answer = await http.get(href.group(1).replace("&amp;", "&"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.content.startswith(b"\xef\xbb\xbf")  # the BOM
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0][0] == "日期 period"
    assert len(rows) == 1 + 14  # two weeks by default, days without trade included
    assert rows[-1][1:] == ["1", "12.50", "0.00", "12.50"]
    monthly = await http.get("/portal/reports?period=month")
    assert monthly.status_code == 200
    bad = await http.get("/portal/reports?from=2020-01-01&to=2026-01-01")
    assert bad.status_code == 400
    assert "366" in bad.text
    await http.aclose()


async def test_a_cashier_can_neither_refund_nor_export_nor_manage(kit: Kit) -> None:
    order = await kit.paid_order("ROLE000001", 800)
    http = await kit.login("a-cashier")
    detail = await http.get(f"/portal/orders/{order['order_id']}")
    assert detail.status_code == 200
    assert "refund/confirm" not in detail.text  # no refund form for a cashier
    token = csrf(detail.text)
    refund = await http.post(f"/portal/orders/{order['order_id']}/refund",
                             data={"csrf_token": token, "amount": "1.00",
                                   "out_refund_no": "portal0123456789abcdef"})
    assert refund.status_code == 403
    for path in ("/portal/reports.csv", "/portal/credentials", "/portal/notify",
                 "/portal/users"):
        assert (await http.get(path)).status_code == 403, path
    rotate = await http.post("/portal/credentials/app_demo/rotate", data={"csrf_token": token})
    assert rotate.status_code == 403
    view = (await kit.p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["refunded_amount"] == 0
    assert (await kit.p.call("GET", "/api/v1/orders/" + order["order_id"])).status_code == 200
    await http.aclose()


async def test_a_post_without_the_csrf_token_changes_nothing(kit: Kit) -> None:
    order = await kit.paid_order("CSRF000001", 800)
    http = await kit.login("a-owner")
    for token in ("", "forged"):
        refund = await http.post(f"/portal/orders/{order['order_id']}/refund",
                                 data={"csrf_token": token, "amount": "1.00",
                                       "out_refund_no": "portal0123456789abcdef"})
        assert refund.status_code == 403
        assert "CSRF" in refund.text
        rotate = await http.post("/portal/credentials/app_demo/rotate",
                                 data={"csrf_token": token})
        assert rotate.status_code == 403
    view = (await kit.p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["refunded_amount"] == 0  # and the demo secret still signs (the call worked)
    await http.aclose()


async def test_exports_wait_while_the_platform_is_degraded_and_pages_do_not(kit: Kit) -> None:
    """Past the soft level (gateway/protection.py) the portal's CSV downloads answer 429
    RATE_LIMITED with Retry-After before reading anything; the pages themselves are served."""
    http = await kit.login("a-owner")
    protection = kit.p.app.state.protection
    protection.global_limit = type(protection.global_limit)(rate=0.01, burst=10)
    clock.freeze(clock.now())  # the global bucket does not refill meanwhile
    try:
        fresh = [await http.get("/portal/reports.csv") for _ in range(8)]  # 10 -> 2 tokens
        report = await http.get("/portal/reports.csv")  # 1 left: under the soft level
        statement = await http.get("/portal/statements/stb_a_0001.csv")
        page = await http.get("/portal/reports")
    finally:
        clock.reset()
    assert [r.status_code for r in fresh] == [200] * 8
    for resp in (report, statement):
        assert resp.status_code == 429, resp.text
        assert resp.json()["code"] == "RATE_LIMITED"
        assert "reports and exports wait" in resp.json()["message"]
        assert int(resp.headers["Retry-After"]) >= 1
    assert page.status_code == 200
    await http.aclose()
