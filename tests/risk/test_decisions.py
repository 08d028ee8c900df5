"""Decisions on the order and refund paths, through the merchant API and the operator API:
a DENY writes nothing but the decision, a REVIEW allows and opens a case, a CHALLENGE forces
the bank channel's password step, rules change without a restart, a broken rule fails safe."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, update

from fulema.core.audit import AuditRecord
from fulema.core.events import OutboxEvent
from fulema.payments.models import Order, Refund
from fulema.risk.models import RiskAlert, RiskCase, RiskDecision, RiskRule, RiskState
from tests.risk.conftest import Platform

OPS = {"Authorization": "Bearer test-operator"}


async def ops(p: Platform, method: str, path: str, body: dict[str, Any] | None = None
              ) -> httpx.Response:
    return await p.http.request(method, f"/ops/v1/risk{path}", json=body, headers=OPS)


async def put_rule(p: Platform, rule: dict[str, Any], **extra: Any) -> httpx.Response:
    return await ops(p, "PUT", "/rules", {"rule": rule, **extra})


async def rows(p: Platform, model: Any, *where: Any) -> list[Any]:
    async with p.db.transaction() as s:
        return list(await s.scalars(select(model).where(*where)))


async def bank_payer(p: Platform, *, balance: int = 10_000_000) -> str:
    resp = await p.wallet("bankpay", "/payers", {"balance_fen": balance})
    return str(resp.json()["payer_id"])


async def bank_code(p: Platform, payer: str) -> str:
    code = (await p.wallet("bankpay", f"/payers/{payer}/code")).json()
    return str(code.get("auth_code") or code["data"]["auth_code"])


async def test_deny_writes_nothing_but_the_decision(platform: Platform) -> None:
    p = platform
    resp = await ops(p, "POST", "/lists/payer-blacklist", {"value": "o-mule-1", "reason": "mule"})
    assert resp.json() == {"changed": True}
    resp = await p.order(out_trade_no="DENY0001", way_code="JSAPI", channel="wechat",
                         payer_id="o-mule-1")
    assert resp.status_code == 403
    body = resp.json()
    assert body["code"] == "RISK_REJECTED"
    assert body["details"] == {"reason_code": "PAYER_BLOCKED"}
    assert "mule" not in resp.text
    assert "blacklist" not in resp.text
    assert await rows(p, Order, Order.out_trade_no == "DENY0001") == []
    decisions = await rows(p, RiskDecision, RiskDecision.out_no == "DENY0001")
    assert [(d.outcome, d.reason, d.fired) for d in decisions] == [
        ("DENY", "PAYER_BLOCKED", ["blacklist-payer"])]
    events = await rows(p, OutboxEvent, OutboxEvent.topic.like("payment.%"))
    assert events == []
    # another payer is fine, and the decision is explainable to the operator
    ok = await p.order(out_trade_no="DENY0002", way_code="JSAPI", channel="wechat",
                       payer_id="o-honest")
    assert ok.status_code == 200, ok.text
    listed = (await ops(p, "GET", "/decisions?out_no=DENY0001")).json()["data"]
    assert listed[0]["fired"] == ["blacklist-payer"]


async def test_rules_change_without_restart_and_bad_rules_are_refused(platform: Platform) -> None:
    p = platform
    rule = {"id": "big-ticket", "outcome": "DENY", "reason": "AMOUNT_REFUSED",
            "when": [{"field": "amount", "op": "gt", "value": 100_000}]}
    saved = await put_rule(p, rule, expected_version=0)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1
    assert (await p.order(amount=100_001)).json()["code"] == "RISK_REJECTED"
    assert (await p.order(amount=100_000)).status_code == 200
    # a stale edit is refused; a fresh one is version 2
    stale = await put_rule(p, {**rule, "outcome": "REVIEW"}, expected_version=0)
    assert stale.json()["code"] == "RISK_RULE_CONFLICT"
    disabled = await ops(p, "POST", "/rules/big-ticket/disable")
    assert disabled.json()["version"] == 2
    assert (await p.order(amount=100_001)).status_code == 200
    versions = (await ops(p, "GET", "/rules/big-ticket/versions")).json()["data"]
    assert [v["enabled"] for v in versions] == [True, False]

    for bad, says in [
        ({"id": "deny-all", "outcome": "DENY", "reason": "NO_WAY",
          "when": [{"field": "amount", "op": "gt", "value": 0}]}, "deny every ordinary payment"),
        ({"id": "typo", "outcome": "REVIEW", "reason": "TYPO",
          "when": [{"field": "amout", "op": "gt", "value": 1}]}, "unknown field 'amout'"),
        ({"id": "nothing", "outcome": "DENY", "reason": "NO_WAY"}, "would deny everything"),
    ]:
        resp = await put_rule(p, bad)
        assert resp.status_code == 422, resp.text
        assert resp.json()["code"] == "RISK_RULE_INVALID"
        assert says in resp.json()["message"]
        check = await ops(p, "POST", "/rules/validate", {"rule": bad})
        assert check.json()["code"] == "RISK_RULE_INVALID"
    assert await rows(p, RiskRule, RiskRule.id.in_(["deny-all", "typo", "nothing"])) == []
    audited = await rows(p, AuditRecord, AuditRecord.action == "risk.rule.save")
    assert [a.target_id for a in audited] == ["big-ticket", "big-ticket"]
    assert (await p.order(amount=500)).status_code == 200


async def test_a_list_change_that_would_deny_everything_is_refused(platform: Platform) -> None:
    p = platform
    everyone = await ops(p, "POST", "/lists/ip-blacklist", {"value": "0.0.0.0/0", "reason": "x"})
    assert everyone.status_code == 422, everyone.text
    assert everyone.json()["code"] == "RISK_RULE_INVALID"
    assert "deny every ordinary payment" in everyone.json()["message"]
    one_block = await ops(p, "POST", "/lists/ip-blacklist", {"value": "10.0.0.0/8", "reason": "x"})
    assert one_block.json() == {"changed": True}
    # channels the bank has opened: taking the last one off would refuse every payment
    assert (await ops(p, "POST", "/lists/open-channels",
                      {"value": "wechat", "reason": "opened"})).json() == {"changed": True}
    saved = await put_rule(p, {"id": "closed-channels", "outcome": "DENY", "reason": "CLOSED",
                               "when": [{"field": "channel", "op": "not_in_list",
                                         "value": "open-channels"}]})
    assert saved.status_code == 200, saved.text
    last = await ops(p, "DELETE", "/lists/open-channels/wechat")
    assert last.json()["code"] == "RISK_RULE_INVALID"
    listed = (await ops(p, "GET", "/lists/open-channels")).json()["data"]
    assert [e["value"] for e in listed] == ["wechat"]
    blocked = (await ops(p, "GET", "/lists/ip-blacklist")).json()["data"]
    assert [e["value"] for e in blocked] == ["10.0.0.0/8"]
    # an IP range comes off its list like any entry, its slash and all
    removed = await ops(p, "DELETE", "/lists/ip-blacklist/10.0.0.0/8")
    assert removed.json() == {"changed": True}
    assert (await ops(p, "GET", "/lists/ip-blacklist")).json()["data"] == []


async def test_review_allows_and_opens_one_case(platform: Platform) -> None:
    p = platform
    await put_rule(p, {"id": "watch", "outcome": "REVIEW", "reason": "WATCHED",
                       "when": [{"field": "amount", "op": "ge", "value": 7_000}]})
    first = await p.order(out_trade_no="REV00001", amount=7_000)
    second = await p.order(out_trade_no="REV00002", amount=8_000)
    assert first.status_code == second.status_code == 200
    cases = await rows(p, RiskCase, RiskCase.merchant_id == p.merchant_id)
    assert [(c.status, c.source) for c in cases] == [("open", "review")]
    decisions = await rows(p, RiskDecision, RiskDecision.outcome == "REVIEW")
    assert {d.case_id for d in decisions} == {cases[0].id}
    assert len(decisions) == 2
    # an idempotent retry of the create writes no second decision
    again = await p.order(out_trade_no="REV00001", amount=7_000)
    assert again.status_code == 200
    assert len(await rows(p, RiskDecision, RiskDecision.out_no == "REV00001")) == 1


async def test_challenge_forces_the_bank_password_step(platform: Platform) -> None:
    p = platform
    payer = await bank_payer(p)  # a payer who waived the password for small amounts
    small = await p.order(way_code="BARCODE", channel=None, auth_code=await bank_code(p, payer),
                          amount=100_000)
    assert small.json()["status"] == "SUCCESS", small.text
    big = await p.order(out_trade_no="CHAL0001", way_code="BARCODE", channel=None,
                        auth_code=await bank_code(p, payer), amount=100_001)
    assert big.status_code == 200, big.text
    assert big.json()["status"] == "PAYING"  # the bank asks the payer's password
    confirm = await p.wallet("bankpay", f"/payers/{payer}/confirm", {})
    assert confirm.status_code == 200, confirm.text
    decision = (await rows(p, RiskDecision, RiskDecision.out_no == "CHAL0001"))[0]
    assert (decision.outcome, decision.reason) == ("CHALLENGE", "STRONG_AUTH_REQUIRED")
    # above the level B cap no password helps
    over = await p.order(way_code="BARCODE", channel=None, auth_code=await bank_code(p, payer),
                         amount=500_001)
    assert over.json()["details"] == {"reason_code": "PAYER_DAILY_LIMIT"}
    # a CHALLENGE on a channel that cannot ask for a password is a DENY
    await put_rule(p, {"id": "wechat-step-up", "outcome": "CHALLENGE", "reason": "STEP_UP",
                       "when": [{"field": "channel", "op": "eq", "value": "wechat"}]})
    refused = await p.order(channel="wechat")
    assert refused.json()["code"] == "RISK_REJECTED"


async def test_refunds_are_decided_too(platform: Platform) -> None:
    p = platform
    payer = await bank_payer(p)
    paid = (await p.order(way_code="BARCODE", channel=None, auth_code=await bank_code(p, payer),
                          amount=2_000)).json()
    assert paid["status"] == "SUCCESS"
    await put_rule(p, {"id": "refund-cap", "outcome": "DENY", "reason": "REFUND_REFUSED",
                       "when": [{"field": "action", "op": "eq", "value": "refund"},
                                {"field": "amount", "op": "gt", "value": 500}]})
    path = f"/api/v1/orders/{paid['order_id']}/refunds"
    refused = await p.call("POST", path, {"out_refund_no": "RFD-BIG-1", "amount": 600})
    assert refused.status_code == 403
    assert refused.json()["details"] == {"reason_code": "REFUND_REFUSED"}
    assert await rows(p, Refund, Refund.out_refund_no == "RFD-BIG-1") == []
    ok = await p.call("POST", path, {"out_refund_no": "RFD-SMALL-1", "amount": 500})
    assert ok.status_code == 200, ok.text
    decided = await rows(p, RiskDecision, RiskDecision.action == "refund")
    assert sorted((d.out_no, d.outcome) for d in decided) == [
        ("RFD-BIG-1", "DENY"), ("RFD-SMALL-1", "ALLOW")]


async def test_a_broken_stored_rule_fails_safe_to_review_and_alerts(platform: Platform) -> None:
    p = platform
    assert (await p.order()).status_code == 200  # installs the shipped rules
    async with p.db.transaction() as s:  # written around the API, as a bad migration might
        s.add(RiskRule(id="hand-edited", version=1, enabled=True, updated_by="dba",
                       updated_at=(await s.scalar(select(RiskRule.updated_at).limit(1))),
                       body={"id": "hand-edited", "outcome": "DENY", "reason": "X_X",
                             "when": [{"field": "nonsense", "op": "eq", "value": 1}]}))
        await s.execute(update(RiskState).where(RiskState.key == "ruleset")
                        .values(version=RiskState.version + 1))
    resp = await p.order(out_trade_no="BROKEN01")
    assert resp.status_code == 200, resp.text
    decision = (await rows(p, RiskDecision, RiskDecision.out_no == "BROKEN01"))[0]
    assert (decision.outcome, decision.reason) == ("REVIEW", "RULE_ERROR")
    alerts = await rows(p, RiskAlert, RiskAlert.kind == "rule_error")
    assert len(alerts) == 1
    assert "hand-edited" in alerts[0].summary
    published = await rows(p, OutboxEvent, OutboxEvent.topic == "risk.alert")
    assert [e.payload["alert_id"] for e in published] == [alerts[0].id]
    assert (await p.order()).status_code == 200  # the next one too; still one alert
    assert len(await rows(p, RiskAlert, RiskAlert.kind == "rule_error")) == 1
