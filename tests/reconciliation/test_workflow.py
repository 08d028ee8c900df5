"""The discrepancy workflow through the operator API (role finance): import a statement file,
refuse a bad or repeated one without writing anything, then investigate and resolve with each
action; every step leaves an audit record, an adjustment leaves the ledger's event."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import func, select

from fulema.core.audit import AuditRecord
from fulema.core.clock import clock
from fulema.core.events.outbox import OutboxEvent
from fulema.reconciliation.models import Discrepancy, ReconRun
from tests.payments.conftest import Platform
from tests.reconciliation.test_reconcile_channels import paid_order

CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 24)
AUTH = {"Authorization": "Bearer test-operator"}


async def ops(p: Platform, method: str, path: str, **kw: Any) -> httpx.Response:
    return await p.http.request(method, f"/ops/v1/reconciliation{path}",
                                headers={**AUTH, **kw.pop("headers", {})}, **kw)


async def statement_with_differences(p: Platform) -> tuple[bytes, dict[str, str]]:
    """bankpay's statement of DAY: b dropped, c one fen more, e (unpaid) listed as paid."""
    clock.freeze(datetime(2026, 11, 24, 12, 0, tzinfo=CST))
    ids = {}
    for key, amount in (("a", 1000), ("b", 2000), ("c", 3000)):
        ids[key] = (await paid_order(p, "bankpay", f"WF{key.upper()}0001", amount))["order_id"]
    ids["e"] = (await p.order(out_trade_no="WFE0001", channel="bankpay", amount=500)).json()[
        "order_id"]
    await p.wallet("bankpay", "/faults", {"statement_diff": {
        "drop": [ids["b"]], "amount": {ids["c"]: 3001}, "status": [ids["e"]],
        "extra": [{"out_trade_no": "GHOSTWF01", "amount_fen": 700}]}})
    clock.freeze(datetime(2026, 11, 25, 10, 0, tzinfo=CST))
    data = await p.app.state.channels.get("bankpay").download_statement(DAY)
    return data, ids


async def counts(p: Platform) -> tuple[int, int]:
    async with p.db.transaction() as s:
        runs = await s.scalar(select(func.count()).select_from(ReconRun))
        found = await s.scalar(select(func.count()).select_from(Discrepancy))
    return int(runs or 0), int(found or 0)


async def test_import_refuses_bad_and_repeated_files_then_each_action_is_taken_and_audited(
        platform: Platform) -> None:
    p = platform
    data, ids = await statement_with_differences(p)
    url = "/runs?channel=bankpay&date=2026-11-24"

    broken = data.replace(b"PAY,", b"PAY,extra,", 1)
    resp = await ops(p, "POST", url, content=broken)
    assert resp.status_code == 422
    assert resp.json()["code"] == "STATEMENT_INVALID"
    assert resp.json()["message"].startswith("line 2: wrong column count")
    assert await counts(p) == (0, 0)  # nothing of a refused file is kept

    resp = await ops(p, "POST", url, content=data)
    assert resp.status_code == 201, resp.text
    run = resp.json()
    assert run["discrepancies"] == 4
    assert run["matched"] == 1
    again = await ops(p, "POST", url, content=data)
    assert again.status_code == 409
    assert again.json()["code"] == "STATEMENT_ALREADY_IMPORTED"
    assert run["run_id"] in again.json()["message"]
    assert await counts(p) == (1, 4)

    listed = (await ops(p, "GET", f"/discrepancies?run_id={run['run_id']}")).json()["data"]
    by_kind = {d["kind"]: d for d in listed}
    assert set(by_kind) == {"ONLY_WITH_US", "AMOUNT_MISMATCH", "STATUS_MISMATCH",
                            "ONLY_AT_CHANNEL"}

    status = by_kind["STATUS_MISMATCH"]
    assert status["order_id"] == ids["e"]
    moved = await ops(p, "POST", f"/discrepancies/{status['discrepancy_id']}/investigate",
                      json={"note": "callback never came?"})
    assert moved.json()["status"] == "INVESTIGATING"
    synced = await ops(p, "POST", f"/discrepancies/{status['discrepancy_id']}/resolve",
                       json={"action": "SYNC_ORDER", "note": "asked the bank"})
    assert synced.status_code == 200, synced.text
    assert (synced.json()["status"], synced.json()["action"]) == ("RESOLVED", "SYNC_ORDER")
    twice = await ops(p, "POST", f"/discrepancies/{status['discrepancy_id']}/resolve",
                      json={"action": "ACCEPT"})
    assert (twice.status_code, twice.json()["code"]) == (409, "DISCREPANCY_ACTION_INVALID")

    ghost = by_kind["ONLY_AT_CHANNEL"]
    wrong = await ops(p, "POST", f"/discrepancies/{ghost['discrepancy_id']}/resolve",
                      json={"action": "REFUND"})
    assert (wrong.status_code, wrong.json()["code"]) == (409, "DISCREPANCY_ACTION_INVALID")
    adjusted = await ops(p, "POST", f"/discrepancies/{ghost['discrepancy_id']}/resolve",
                         json={"action": "ADJUST", "note": "bank's phantom"})
    assert adjusted.json()["action"] == "ADJUST"

    amount = by_kind["AMOUNT_MISMATCH"]
    refunded = await ops(p, "POST", f"/discrepancies/{amount['discrepancy_id']}/resolve",
                         json={"action": "REFUND", "amount": 1})
    assert refunded.status_code == 200, refunded.text
    short = by_kind["ONLY_WITH_US"]
    accepted = await ops(p, "POST", f"/discrepancies/{short['discrepancy_id']}/resolve",
                         json={"action": "ACCEPT", "note": "bank's file was late"})
    assert accepted.json()["status"] == "RESOLVED"

    async with p.db.transaction() as s:
        events = (await s.scalars(select(OutboxEvent).where(
            OutboxEvent.topic == "reconciliation.adjustment"))).all()
        trail = [(r.action, r.target_id) for r in (await s.scalars(select(AuditRecord).where(
            AuditRecord.action.like("reconciliation.%")).order_by(AuditRecord.seq))).all()]
    assert [e.payload for e in events] == [{
        "discrepancy_id": ghost["discrepancy_id"], "channel": "bankpay", "merchant_id": None,
        "amount": 700, "reason": events[0].payload["reason"], "operator": "bootstrap-admin"}]
    assert trail == [("reconciliation.import", run["run_id"]),
                     ("reconciliation.investigate", status["discrepancy_id"]),
                     ("reconciliation.resolve", status["discrepancy_id"]),
                     ("reconciliation.resolve", ghost["discrepancy_id"]),
                     ("reconciliation.resolve", amount["discrepancy_id"]),
                     ("reconciliation.resolve", short["discrepancy_id"])]
    refund = (await p.call("GET", f"/api/v1/orders/{ids['c']}")).json()
    assert refund["refunded_amount"] + refund.get("refund_pending_amount", 0) in (0, 1)


async def test_reports_by_channel_merchant_and_scenario_sum_to_the_run(
        platform: Platform) -> None:
    p = platform
    data, _ = await statement_with_differences(p)
    run = (await ops(p, "POST", "/runs?channel=bankpay&date=2026-11-24", content=data)).json()
    reports = {by: (await ops(p, "GET", f"/runs/{run['run_id']}/report?by={by}")).json()["rows"]
               for by in ("channel", "merchant", "scenario")}
    for rows in reports.values():
        assert sum(r["count"] for r in rows) == sum(v["count"] for v in run["summary"].values())
        assert sum(r["channel_amount"] for r in rows) == 1000 + 3001 + 500 + 700
        assert sum(r["our_amount"] for r in rows) == 1000 + 2000 + 3000 + 500
    assert {r["key"] for r in reports["merchant"]} == {p.merchant_id, None}
    assert {r["key"] for r in reports["scenario"]} == {"QR_DYNAMIC/PAY", "/PAY"}
    missing = await ops(p, "GET", "/runs/rcr_nope/report")
    assert (missing.status_code, missing.json()["code"]) == (404, "RECON_RUN_NOT_FOUND")


async def test_the_daily_job_reconciles_yesterday_for_every_enabled_channel_once(
        platform: Platform) -> None:
    from fulema.reconciliation.jobs import reconcile_due

    p = platform
    await statement_with_differences(p)  # bankpay's DAY has payments; wechat's is empty
    deps = p.app.state.payments
    clock.freeze(datetime(2026, 11, 25, 9, 59, tzinfo=CST))
    assert await reconcile_due(deps) == 0  # the statements are not out before 10:00
    clock.freeze(datetime(2026, 11, 25, 10, 5, tzinfo=CST))
    assert await reconcile_due(deps) == 2
    assert await reconcile_due(deps) == 0  # done for the day
    runs = (await ops(p, "GET", "/runs?date=2026-11-24")).json()
    assert sorted((r["channel"], r["created_by"], r["lines"]) for r in runs) == [
        ("bankpay", "scheduler", 4), ("wechat", "scheduler", 0)]
