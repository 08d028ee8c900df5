"""The whole flow over HTTP: a payment through the bank's channel (zero fee, same-day settlement
as typed channel fields), a partial refund, the ledger's entries and trial balance through the
operator API, a settlement run, and the merchant's signed bill download."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from fulema.core.clock import clock
from fulema.ledger.domain import business_date
from fulema.merchants import service as merchants
from tests.merchants.factories import OPERATOR
from tests.payments.conftest import Platform

AUTH = {"Authorization": "Bearer test-operator"}


async def paid(p: Platform, amount: int, channel: str = "bankpay") -> dict[str, Any]:
    order = (await p.order(amount=amount, channel=channel)).json()
    resp = await p.wallet(channel, "/scan", {"code_url": order["code_url"],
                                             "payer_id": "payer_rich"})
    assert resp.status_code == 200, resp.text
    return await p.wait_status(order["order_id"], "SUCCESS")


async def test_payment_refund_entries_settlement_and_bill(platform: Platform) -> None:
    p = platform
    await merchants.set_fee_rate(p.db, merchant_id=p.merchant_id, channel="bankpay", bps=60,
                                 operator=OPERATOR)
    order = await paid(p, 1250)
    refund = await p.call("POST", f"/api/v1/orders/{order['order_id']}/refunds",
                          {"out_refund_no": "RFLOW00001", "amount": 250})
    assert refund.json()["status"] == "SUCCESS", refund.text
    await p.settle_background()

    entries = (await p.http.get("/ops/v1/ledger/entries",
                                params={"business_ref": order["order_id"]}, headers=AUTH)).json()
    (entry,) = entries["entries"]
    lines = {(x["account"], x["kind"]): x["amount"] for x in entry["postings"]}
    payable = f"merchant_payable:{p.merchant_id}"
    # The bank says fee_fen 0 (a typed field now): no fee although the merchant's rate is 60.
    assert lines == {("channel_receivable:bankpay", "cash"): 1250, (payable, "gross"): -1250}
    tb = (await p.http.get("/ops/v1/ledger/trial-balance", headers=AUTH)).json()
    assert tb["total"] == 0
    balance = (await p.http.get(f"/ops/v1/ledger/accounts/{payable}", headers=AUTH)).json()
    assert balance["balance"] == -1000

    today = business_date(clock.now(), p.settings.settlement_cutoff).isoformat()
    days = (await p.http.get(f"/ops/v1/ledger/accounts/{payable}/days",
                             params={"from": today, "to": today}, headers=AUTH)).json()
    assert days["days"] == [{"day": today, "movement": -1000, "balance": -1000}]

    bill = await p.call("GET", f"/api/v1/bills?date={today}")
    assert bill.status_code == 200, bill.text
    assert bill.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(bill.text)))
    assert rows[0][:3] == ["trade_date", "type", "reference"]
    # the refund's cash is held when it is accepted, the rest when the channel confirms it
    assert [r[1] for r in rows[1:4]] == ["payment", "refund_accepted", "refund"]
    assert sum(Decimal(r[6]) for r in rows[2:4]) == Decimal("2.50")
    assert rows[1][3] == order["out_trade_no"]
    assert rows[1][-1] == "12.50"
    assert rows[-1][0] == "2"
    assert rows[-1][-1] == "10.00"

    # Same-day settlement: the bank's channel settles on the trade date itself.
    run = (await p.http.post("/ops/v1/settlement/runs", json={"date": today},
                             headers=AUTH)).json()
    assert run["settled"] == 1
    assert run["net_settled"] == 1000
    again = (await p.http.post("/ops/v1/settlement/runs", json={"date": today},
                               headers=AUTH)).json()
    assert again["already_done"] is True
    assert again["net_settled"] == 1000
    batches = (await p.http.get("/ops/v1/settlement/batches", params={"date": today},
                                headers=AUTH)).json()["batches"]
    assert [(b["status"], b["gross"], b["refunds"], b["net"]) for b in batches] == [
        ("SETTLED", 1250, 250, 1000)]
    statement = await p.http.get(f"/ops/v1/settlement/batches/{batches[0]['batch_id']}"
                                 "/statement.csv", headers=AUTH)
    assert statement.text.splitlines()[-1].endswith(",10.00")


async def test_bills_bad_input(platform: Platform) -> None:
    p = platform
    for bad in ("2026-13-01", "20261125", "", "2999-01-01"):
        resp = await p.call("GET", f"/api/v1/bills?date={bad}")
        assert resp.status_code == 400, bad
        assert resp.json()["code"] == "BILL_DATE_INVALID", bad
    unsigned = await p.http.get("/api/v1/bills", params={"date": "2026-11-25"})
    assert unsigned.json()["code"] == "SIGNATURE_MISSING"


async def test_operator_calendar_and_cycle(platform: Platform) -> None:
    p = platform
    ok = await p.http.put("/ops/v1/settlement/calendar/2026-10-01",
                          json={"kind": "HOLIDAY", "note": "国庆节"}, headers=AUTH)
    assert ok.status_code == 200
    assert ok.json()["updated_by"] == "bootstrap-admin"
    weekend = await p.http.put("/ops/v1/settlement/calendar/2026-10-03",
                               json={"kind": "HOLIDAY"}, headers=AUTH)
    assert weekend.json()["code"] == "VALIDATION_ERROR"
    make_up = await p.http.put("/ops/v1/settlement/calendar/2026-10-10",
                               json={"kind": "WORKDAY", "note": "调休"}, headers=AUTH)
    assert make_up.status_code == 200
    year = (await p.http.get("/ops/v1/settlement/calendar", params={"year": 2026},
                             headers=AUTH)).json()
    assert [(d["day"], d["kind"]) for d in year["days"]] == [
        ("2026-10-01", "HOLIDAY"), ("2026-10-10", "WORKDAY")]
    cycle = await p.http.put(f"/ops/v1/settlement/merchants/{p.merchant_id}/cycle",
                             json={"cycle": "D+1"}, headers=AUTH)
    assert cycle.json() == {"merchant_id": p.merchant_id, "cycle": "D+1"}
    bad = await p.http.put(f"/ops/v1/settlement/merchants/{p.merchant_id}/cycle",
                           json={"cycle": "T+7"}, headers=AUTH)
    assert bad.json()["code"] == "VALIDATION_ERROR"
    nobody = await p.http.put("/ops/v1/settlement/merchants/M_nobody/cycle",
                              json={"cycle": "T+0"}, headers=AUTH)
    assert nobody.json()["code"] == "MERCHANT_NOT_FOUND"
    assert (await p.http.get("/ops/v1/ledger/trial-balance")).json()["code"] == "UNAUTHORIZED"
