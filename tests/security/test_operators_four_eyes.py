"""Four eyes: a fee rate, a settlement account or an unfreeze asked by one named operator
changes nothing until a different operator with the right role approves, and then changes
exactly once, in the approver's transaction, with both names in the audit trail."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from fulema.app import declared_approval_actions
from fulema.core import approvals, audit
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.merchants import service as merchants
from fulema.merchants import service as merchants_service
from fulema.merchants.models import MerchantEvent
from tests.merchants.factories import application
from tests.security.operator_helpers import BOOTSTRAP, active_merchant, operator, ops_client


async def _fee(http: httpx.AsyncClient, mid: str, channel: str = "alipay") -> int:
    detail = (await http.get(f"/ops/v1/merchants/{mid}", headers=BOOTSTRAP)).json()
    rates = {r["channel"]: r["bps"] for r in detail["fee_rates"]}
    return rates[channel]


def _code(resp: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = resp.json()
    return resp.status_code, body.get("code", body.get("status", ""))


async def test_a_fee_change_waits_for_a_second_finance_operator(db: Database,
                                                                settings: Settings) -> None:
    maker = await operator(db, "chen.fin", "finance")
    checker = await operator(db, "lin.fin", "finance")
    outsider = await operator(db, "xu.review", "reviewer", "risk")
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        no_reason = await http.put(f"/ops/v1/merchants/{mid}/fee-rates/alipay",
                                   json={"bps": 25}, headers=maker)
        assert _code(no_reason) == (400, "VALIDATION_ERROR")
        asked = await http.put(f"/ops/v1/merchants/{mid}/fee-rates/alipay",
                               json={"bps": 25, "reason": "签约优惠费率"}, headers=maker)
        assert asked.status_code == 202, asked.text
        req = asked.json()
        assert (req["kind"], req["status"], req["requested_by"], req["summary"]) == (
            "merchant.set_fee_rate", "PENDING", "chen.fin", {"channel": "alipay", "bps": 25})
        assert await _fee(http, mid) == 38  # nothing changed yet

        path = f"/ops/v1/approvals/{req['id']}"
        assert _code(await http.post(f"{path}/approve", headers=maker)) == (
            403, "APPROVAL_OWN_REQUEST")
        assert _code(await http.post(f"{path}/approve", headers=outsider)) == (
            403, "OPERATOR_FORBIDDEN")
        assert await _fee(http, mid) == 38

        pending = (await http.get("/ops/v1/approvals", headers=outsider)).json()["data"]
        assert [p["id"] for p in pending] == [req["id"]]
        done = await http.post(f"{path}/approve", json={"note": "已核对合同"}, headers=checker)
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["decided_by"]) == ("APPROVED", "lin.fin")
        assert await _fee(http, mid) == 25
        assert _code(await http.post(f"{path}/approve", headers=checker)) == (
            409, "APPROVAL_NOT_PENDING")
        assert (await http.get("/ops/v1/approvals", headers=outsider)).json()["data"] == []
    trail = [(r.actor, r.action) for r in await audit.search(db, target_id=mid)
             if r.action != "merchant.read"][::-1]
    assert trail[-3:] == [("chen.fin", "approval.request"), ("lin.fin", "merchant.set_fee_rate"),
                          ("lin.fin", "approval.approve")]


async def test_a_settlement_account_change_is_masked_and_can_be_rejected(
        db: Database, settings: Settings) -> None:
    reviewer = await operator(db, "he.review", "reviewer")
    finance = await operator(db, "ma.fin", "finance")
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        body = {"settlement_account": "6222020200112233445", "settlement_account_name": "王小明",
                "reason": "商户更换结算卡"}
        first = await http.post(f"/ops/v1/merchants/{mid}/settlement-account", json=body,
                                headers=reviewer)
        assert first.status_code == 202, first.text
        assert first.json()["summary"] == {"settlement_account": "6222****3445"}
        listed = (await http.get("/ops/v1/approvals", headers=finance)).text
        assert "6222020200112233445" not in listed
        rejected = await http.post(f"/ops/v1/approvals/{first.json()['id']}/reject",
                                   json={"reason": "材料不全"}, headers=finance)
        assert (rejected.json()["status"], rejected.json()["decision_note"]) == (
            "REJECTED", "材料不全")
        detail = (await http.get(f"/ops/v1/merchants/{mid}", headers=BOOTSTRAP)).json()
        assert detail["settlement_account"] == "6230****8901"  # unchanged (answers mask it)

        second = await http.post(f"/ops/v1/merchants/{mid}/settlement-account", json=body,
                                 headers=reviewer)
        ok = await http.post(f"/ops/v1/approvals/{second.json()['id']}/approve", headers=finance)
        assert ok.json()["status"] == "APPROVED", ok.text
        detail = (await http.get(f"/ops/v1/merchants/{mid}", headers=BOOTSTRAP)).json()
        assert detail["settlement_account"] == "6222****3445"
    stored = await merchants_service.get_merchant(db, merchant_id=mid)
    assert stored.merchant.settlement_account == "6222020200112233445"  # what payouts use
    records = await audit.search(db, target_id=mid)
    assert "6222020200112233445" not in str([r.detail for r in records])
    change = next(r for r in records if r.action == "merchant.change_settlement_account")
    assert (change.actor, change.detail["to"]) == ("ma.fin", "6222****3445")


async def test_unfreezing_needs_a_second_risk_operator(db: Database, settings: Settings) -> None:
    risk_a = await operator(db, "gao.risk", "risk")
    risk_b = await operator(db, "luo.risk", "risk")
    admin = await operator(db, "tang.admin", "admin")
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        await http.post(f"/ops/v1/merchants/{mid}/freeze", json={"reason": "套现嫌疑"},
                        headers=risk_a)
        asked = await http.post(f"/ops/v1/merchants/{mid}/unfreeze",
                                json={"reason": "核查无误"}, headers=admin)
        assert asked.status_code == 202, asked.text
        status = (await http.get(f"/ops/v1/merchants/{mid}", headers=BOOTSTRAP)).json()["status"]
        assert status == "FROZEN"
        path = f"/ops/v1/approvals/{asked.json()['id']}/approve"
        assert _code(await http.post(path, headers=admin)) == (403, "APPROVAL_OWN_REQUEST")
        ok = await http.post(path, headers=risk_b)
        assert ok.json()["status"] == "APPROVED", ok.text
        status = (await http.get(f"/ops/v1/merchants/{mid}", headers=BOOTSTRAP)).json()["status"]
        assert status == "ACTIVE"
        # asking to unfreeze an ACTIVE merchant is refused at once, not queued
        again = await http.post(f"/ops/v1/merchants/{mid}/unfreeze", headers=risk_a)
        assert _code(again) == (409, "ILLEGAL_STATE_TRANSITION")
        del risk_a


async def test_an_approved_action_that_no_longer_applies_fails_and_changes_nothing(
        db: Database, settings: Settings) -> None:
    maker = await operator(db, "fan.fin", "finance")
    checker = await operator(db, "du.fin", "finance")
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        asked = await http.put(f"/ops/v1/merchants/{mid}/fee-rates/wechat",
                               json={"bps": 20, "reason": "活动"}, headers=maker)
        await http.post(f"/ops/v1/merchants/{mid}/close", headers=BOOTSTRAP)
        path = f"/ops/v1/approvals/{asked.json()['id']}"
        assert _code(await http.post(f"{path}/approve", headers=checker)) == (
            403, "MERCHANT_CLOSED")
        after = (await http.get(path, headers=checker)).json()
        assert (after["status"], after["error_code"], after["decided_by"]) == (
            "FAILED", "MERCHANT_CLOSED", "du.fin")
        assert await _fee(http, mid, "wechat") == 38
        assert _code(await http.post(f"{path}/approve", headers=checker)) == (
            409, "APPROVAL_NOT_PENDING")
        unknown = await http.post("/ops/v1/approvals/apr_nope/approve", headers=checker)
        assert _code(unknown) == (404, "APPROVAL_NOT_FOUND")


async def test_the_bootstrap_identity_acts_at_once(sqlite_db: Database,
                                                   settings: Settings) -> None:
    """Break glass: the shared token holds every role and can create operators, so a second
    pair of eyes could not bind it anyway; its changes run at once, under its own name."""
    async with ops_client(sqlite_db, settings) as http:
        mid = await active_merchant(http)
        fee = await http.put(f"/ops/v1/merchants/{mid}/fee-rates/alipay", json={"bps": 30},
                             headers=BOOTSTRAP)
        assert fee.json() == {"channel": "alipay", "bps": 30, "is_default": False}
        frozen = await http.post(f"/ops/v1/merchants/{mid}/freeze", json={"reason": "查"},
                                 headers=BOOTSTRAP)
        thawed = await http.post(f"/ops/v1/merchants/{mid}/unfreeze", headers=BOOTSTRAP)
        assert thawed.json()["status"] == "ACTIVE"
        assert thawed.json()["created_at"] == frozen.json()["created_at"]  # one JSON form
    (record,) = await audit.search(sqlite_db, action="merchant.set_fee_rate")
    assert record.actor == "bootstrap-admin"
    assert await approvals.list_requests(sqlite_db, status=None, limit=10,
                                         starting_after=None) == []


async def test_two_approvals_at_once_run_the_action_exactly_once(db: Database) -> None:
    """Two finance operators press approve on the same request at the same moment (on
    PostgreSQL and MariaDB truly concurrently): one wins, the other is told it was decided,
    and the merchant's log has one fee change."""
    merchant = await merchants.apply_merchant(db, operator="setup", **application())
    view = await approvals.request(db, kind="merchant.set_fee_rate", target_type="merchant",
                                   target_id=merchant.id,
                                   params={"merchant_id": merchant.id, "channel": "unionpay",
                                           "bps": 21},
                                   summary={"channel": "unionpay", "bps": 21}, reason="合同",
                                   requested_by="maker")
    actions = declared_approval_actions()

    async def press(name: str) -> str:
        try:
            await approvals.approve(db, actions, approval_id=view.id, approver=name,
                                    approver_roles=frozenset({"finance"}))
        except FulemaError as exc:
            return "refused" if exc.code is ErrorCode.APPROVAL_NOT_PENDING else exc.code.value
        return "approved"

    outcomes = await asyncio.gather(*(press(f"checker{i}") for i in range(4)))
    assert sorted(outcomes) == ["approved", "refused", "refused", "refused"]
    async with db.transaction() as s:
        changes = await s.scalar(select(func.count()).select_from(MerchantEvent).where(
            MerchantEvent.merchant_id == merchant.id, MerchantEvent.action == "set_fee_rate"))
    assert changes == 1
    assert await merchants.fee_rate_bps(db, merchant_id=merchant.id, channel="unionpay") == 21
    approved = await audit.search(db, action="approval.approve")
    assert len(approved) == 1
    assert (await audit.verify(db)).intact
