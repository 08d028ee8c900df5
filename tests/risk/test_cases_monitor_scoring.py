"""Cases (open -> investigating -> closed, fraud freezes and blacklists in one step), the
monitor's baselines and alerts, and the daily scoring over generated traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fulema.core.audit import AuditRecord
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import Event, OutboxEvent
from fulema.risk import analysis, monitor
from fulema.risk.evaluation import format_report
from fulema.risk.models import RiskAlert, RiskCase, RiskDailyStat, RiskListEntry, RiskTxn
from fulema.risk.scoring import Features, score, strongest
from fulema.risk.traffic import PATTERNS, generate
from tests.risk.conftest import Platform
from tests.risk.test_decisions import ops

NOON = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)  # 12:00 in Beijing


async def test_case_workflow_closing_as_fraud_freezes_and_blacklists(platform: Platform) -> None:
    p = platform
    opened = await ops(p, "POST", "/cases", {"merchant_id": p.merchant_id,
                                             "summary": "complaint from a payer"})
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["id"]
    assert (await ops(p, "POST", f"/cases/{case_id}/investigate")).json()["status"] == \
        "investigating"
    no_verdict = await ops(p, "POST", f"/cases/{case_id}/close",
                           {"verdict": "no_fraud", "resolution": "x", "freeze": True})
    assert no_verdict.json()["code"] == "VALIDATION_ERROR"
    closed = await ops(p, "POST", f"/cases/{case_id}/close",
                       {"verdict": "fraud", "resolution": "cash-out confirmed",
                        "freeze": True, "hold_settlement": True, "blacklist": True})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed_fraud"
    again = await ops(p, "POST", f"/cases/{case_id}/close",
                      {"verdict": "no_fraud", "resolution": "second thoughts"})
    assert again.json()["code"] == "ILLEGAL_STATE_TRANSITION"
    merchant = (await p.http.get(f"/ops/v1/merchants/{p.merchant_id}",
                                 headers={"Authorization": "Bearer test-operator"})).json()
    assert merchant["status"] == "FROZEN"
    assert merchant["settlement_hold_reason"].startswith(f"risk case {case_id}")
    async with p.db.transaction() as s:
        listed = list(await s.scalars(select(RiskListEntry.value).where(
            RiskListEntry.list_name == "merchant-blacklist")))
        trail = list(await s.scalars(select(AuditRecord.action).where(
            AuditRecord.target_id == case_id).order_by(AuditRecord.at)))
    assert listed == [p.merchant_id]
    assert trail == ["risk.case.open", "risk.case.investigate", "risk.case.close"]
    # risk decides before the order is recorded (where the freeze is checked): the blacklist
    # answers first
    refused = (await p.order()).json()
    assert (refused["code"], refused["details"]) == ("RISK_REJECTED",
                                                     {"reason_code": "MERCHANT_BLOCKED"})
    missing = await ops(p, "POST", "/cases/rcs_nope/investigate")
    assert missing.json()["code"] == "RISK_CASE_NOT_FOUND"


def paid(n: int, merchant: str, amount: int, at: datetime, *, channel: str = "wechat"
         ) -> Event:
    return Event(id=f"evt-{merchant}-{n}", topic="payment.succeeded", payload={
        "order_id": f"ord-{merchant}-{n}", "merchant_id": merchant, "amount": amount,
        "channel": channel, "payer_id": f"payer-{n % 7}", "paid_at": at.isoformat()})


async def test_monitor_alerts_on_a_day_far_above_the_merchant_baseline(db: Database) -> None:
    n = 0
    for day in range(5, 0, -1):  # five ordinary days: 20 payments of 100 yuan
        clock.freeze(NOON - timedelta(days=day))
        for _ in range(20):
            n += 1
            await monitor.handle(db, paid(n, "m-spike", 10_000, clock.now()))
    clock.freeze(NOON)
    for _ in range(3):
        n += 1
        await monitor.handle(db, paid(n, "m-spike", 10_000, clock.now()))
    async with db.transaction() as s:
        assert list(await s.scalars(select(RiskAlert))) == []  # a normal morning
    big = paid(n + 1, "m-spike", 1_500_000, NOON)
    await monitor.handle(db, big)
    await monitor.handle(db, big)  # redelivered: counted once
    async with db.transaction() as s:
        alerts = list(await s.scalars(select(RiskAlert)))
        stat = await s.get(RiskDailyStat, ("merchant", "m-spike", "20260320"))
        published = list(await s.scalars(select(OutboxEvent).where(
            OutboxEvent.topic == "risk.alert")))
        txns = await s.scalar(select(RiskTxn.order_id).where(RiskTxn.merchant_id == "m-spike")
                              .order_by(RiskTxn.order_id.desc()).limit(1))
    assert [(a.kind, a.merchant_id) for a in alerts] == [("volume_spike", "m-spike")]
    assert stat is not None
    assert (stat.pay_count, stat.pay_fen) == (4, 1_530_000)
    assert published[0].payload == {"alert_id": alerts[0].id, "kind": "volume_spike",
                                    "merchant_id": "m-spike", "severity": "warning",
                                    "summary": alerts[0].summary}
    assert txns is not None


async def test_monitor_alerts_on_refunds_reviews_and_channel_failures(db: Database) -> None:
    clock.freeze(NOON)
    events: list[Event] = []
    for i in range(10):
        events.append(paid(i, "m-ref", 10_000, NOON))
    for i in range(4):
        events.append(Event(id=f"evt-rf-{i}", topic="refund.succeeded", payload={
            "refund_id": f"r{i}", "order_id": f"ord-m-ref-{i}", "merchant_id": "m-ref",
            "amount": 10_000, "succeeded_at": NOON.isoformat()}))
    for i in range(5):
        events.append(Event(id=f"evt-rv-{i}", topic="risk.decision", payload={
            "decision_id": f"d{i}", "merchant_id": "m-rev", "action": "pay",
            "outcome": "REVIEW", "reason": "X"}))
    for i in range(25):
        topic = "payment.failed" if i % 2 else "payment.succeeded"
        events.append(Event(id=f"evt-ch-{i}", topic=topic, payload={
            "order_id": f"o-ch-{i}", "merchant_id": f"m-ch-{i}", "amount": 100,
            "channel": "unionpay", "created_at": NOON.isoformat(),
            "paid_at": NOON.isoformat()}))
    for e in events:
        await monitor.handle(db, e)
    async with db.transaction() as s:
        kinds = sorted((a.kind, a.merchant_id or a.channel) for a in
                       await s.scalars(select(RiskAlert)))
        txn = await s.get(RiskTxn, "ord-m-ref-0")
    assert ("refund_rate", "m-ref") in kinds
    assert ("many_reviews", "m-rev") in kinds
    assert ("channel_success_drop", "unionpay") in kinds
    assert txn is not None
    assert txn.refunded_fen == 10_000


async def test_alerts_api_lists_and_acknowledges(platform: Platform) -> None:
    p = platform
    await monitor.handle(p.db, Event(id="evt-x", topic="risk.decision", payload={
        "merchant_id": p.merchant_id, "outcome": "REVIEW"}))
    for i in range(5):
        await monitor.handle(p.db, Event(id=f"evt-y{i}", topic="risk.decision", payload={
            "merchant_id": p.merchant_id, "outcome": "REVIEW"}))
    listed = (await ops(p, "GET", "/alerts?status=open")).json()["data"]
    assert [a["kind"] for a in listed] == ["many_reviews"]
    acked = await ops(p, "POST", f"/alerts/{listed[0]['id']}/acknowledge")
    assert acked.json()["status"] == "acknowledged"
    assert (await ops(p, "GET", "/alerts?status=open")).json()["data"] == []
    frozen = await ops(p, "POST", f"/merchants/{p.merchant_id}/freeze", {"reason": "alert"})
    assert frozen.json() == {"changed": True}
    assert (await p.order()).json()["code"] == "MERCHANT_FROZEN"


async def test_daily_scoring_opens_cases_for_the_planted_merchants(db: Database) -> None:
    traffic = generate(merchants=60, bad_per_pattern=3, days=14, seed=11)
    refunded: dict[str, int] = {}
    for r in traffic.refunds:
        refunded[r.order_id] = refunded.get(r.order_id, 0) + r.amount_fen
    end = max(p.at for p in traffic.payments)
    clock.freeze(end + timedelta(hours=1))
    async with db.transaction() as s:
        for p in traffic.payments:
            s.add(RiskTxn(order_id=p.order_id, merchant_id=p.merchant_id, payer_id=p.payer_id,
                          channel=p.channel, amount_fen=p.amount_fen,
                          refunded_fen=refunded.get(p.order_id, 0), status="SUCCESS", at=p.at))
    run = await analysis.run_daily_scoring(db, top=15)
    planted = {m.id: m.pattern for m in traffic.merchants if m.pattern}
    async with db.transaction() as s:
        cases = list(await s.scalars(select(RiskCase)))
    flagged = {c.merchant_id for c in cases}
    assert run.scored == 60
    assert run.cases_opened == len(cases)
    hits = flagged & set(planted)
    assert len(hits) / len(flagged) >= 0.8  # precision
    assert {planted[m] for m in hits} == {"cash_out", "split", "collection", "refund_abuse"}
    again = await analysis.run_daily_scoring(db, top=15)
    assert again.cases_opened == 0  # the same day again opens nothing twice


def _check(report: Any) -> None:
    for r in report.rules:
        assert r.recall >= 0.75, r
    assert report.rules_fpr <= 0.05
    assert report.scoring_precision >= 0.8
    # per pattern: each honest merchant flagged counts for one pattern (or "other")
    assert sum(report.rules_fpr_by_pattern.values()) == pytest.approx(report.rules_fpr)
    assert sum(report.scoring_fpr_by_pattern.values()) == pytest.approx(report.scoring_fpr)
    assert max(report.scoring_fpr_by_pattern.values()) <= 0.05


def test_the_rules_find_the_planted_patterns_and_leave_honest_merchants_alone() -> None:
    from fulema.risk.defaults import DEFAULT_RULES
    from fulema.risk.evaluation import evaluate

    report = evaluate(generate(merchants=80, bad_per_pattern=4, days=14, seed=3), DEFAULT_RULES,
                      top=20)
    _check(report)
    table = format_report(report).splitlines()
    assert table[0].split() == ["pattern", "merchants", "rules", "recall", "rules", "FPR",
                                "scoring", "recall", "scoring", "FPR"]
    assert [line.split()[0] for line in table[1:5]] == list(PATTERNS)


def test_a_case_names_the_pattern_whose_signal_made_its_score() -> None:
    def merchant(*, round_share: float, refund_ratio: float) -> Features:
        return Features(count=50, round_share=round_share, night_share=0.0,
                        repeat_payer_share=0.1, ticket_ratio=1.0, refund_ratio=refund_ratio,
                        split_share=0.0, burst_share=0.0)

    refunds, rounds = merchant(round_share=0.0, refund_ratio=0.6), \
        merchant(round_share=0.9, refund_ratio=0.0)
    assert (strongest(refunds), score(refunds)) == ("refund_abuse", 1000)
    assert strongest(rounds) == "cash_out"
    assert 420 <= score(rounds) <= 430  # round share 0.4 of the weight, repeat payers 0.03


async def test_the_daily_scoring_runs_once_a_day_after_two(db: Database) -> None:
    from fulema.app import declared_consumers
    from fulema.core.config import Settings
    from fulema.risk.jobs import score_daily_if_due

    consumers, _publisher = declared_consumers(Settings(environment="test"))
    assert "risk.monitor" in {c.name for c in consumers}
    clock.freeze(datetime(2026, 3, 19, 17, 30, tzinfo=UTC))  # 01:30 in Beijing: not yet
    assert await score_daily_if_due(db) is None
    clock.freeze(datetime(2026, 3, 19, 18, 30, tzinfo=UTC))  # 02:30
    first = await score_daily_if_due(db)
    assert first is not None
    assert first.day == "20260320"
    assert await score_daily_if_due(db) is None  # done today
    clock.freeze(datetime(2026, 3, 20, 18, 30, tzinfo=UTC))
    assert await score_daily_if_due(db) is not None  # the next day
