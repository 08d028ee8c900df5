"""The `risk.monitor` consumer: payment, refund and risk-decision events -> the monitor's own
figures (per merchant and channel and Beijing day), the transactions the daily analysis scores,
and alerts when a day departs from the subject's baseline. Idempotent by event id."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, first_delivery
from fulema.core.payer_ids import payer_hash_of
from fulema.risk.alerts import raise_alert_in
from fulema.risk.baselines import DayFigures, Finding, channel_findings, merchant_findings
from fulema.risk.models import RiskDailyStat, RiskTxn

CONSUMER = "risk.monitor"
TOPICS = ("payment.succeeded", "payment.failed", "refund.succeeded", "risk.decision")
BASELINE_DAYS = 14
BEIJING = timedelta(hours=8)


def _day(at: datetime) -> str:
    return (at + BEIJING).strftime("%Y%m%d")


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return clock.now()


async def _stat(s: AsyncSession, scope: str, key: str, day: str) -> RiskDailyStat:
    row = await s.get(RiskDailyStat, (scope, key, day), with_for_update=True)
    if row is None:
        row = RiskDailyStat(scope=scope, key=key, day=day, pay_count=0, pay_fen=0, fail_count=0,
                            refund_count=0, refund_fen=0, review_count=0)
        s.add(row)
    return row


def figures(row: RiskDailyStat) -> DayFigures:
    return DayFigures(pay_count=row.pay_count, pay_fen=row.pay_fen, fail_count=row.fail_count,
                      refund_count=row.refund_count, refund_fen=row.refund_fen,
                      review_count=row.review_count)


async def _history(s: AsyncSession, scope: str, key: str, day: str) -> list[DayFigures]:
    first = datetime.strptime(day + "+0800", "%Y%m%d%z") - timedelta(days=BASELINE_DAYS)
    start = first.strftime("%Y%m%d")
    rows = await s.scalars(select(RiskDailyStat).where(
        RiskDailyStat.scope == scope, RiskDailyStat.key == key, RiskDailyStat.day >= start,
        RiskDailyStat.day < day))
    return [figures(r) for r in rows]


async def handle(db: Database, event: Event) -> None:
    p = event.payload
    async with db.transaction() as s:
        if not await first_delivery(s, CONSUMER, event.id):
            return
        merchant_id = str(p.get("merchant_id") or "")
        channel = p.get("channel")
        if event.topic == "payment.succeeded":
            at = _when(p.get("paid_at") or p.get("created_at"))
            amount = int(p.get("payable_amount", p["amount"]))
            if await s.get(RiskTxn, p["order_id"]) is None:
                s.add(RiskTxn(order_id=p["order_id"], merchant_id=merchant_id,
                              payer_id=payer_hash_of(p), channel=channel or "", amount_fen=amount,
                              refunded_fen=0, status="SUCCESS", at=at))
            touched = [("merchant", merchant_id), ("channel", channel)]
            for scope, key in touched:
                if key:
                    row = await _stat(s, scope, key, _day(at))
                    row.pay_count += 1
                    row.pay_fen += amount
        elif event.topic == "payment.failed":
            at = _when(p.get("created_at"))
            for scope, key in (("merchant", merchant_id), ("channel", channel)):
                if key:
                    (await _stat(s, scope, key, _day(at))).fail_count += 1
        elif event.topic == "refund.succeeded":
            amount = int(p.get("cash_amount", p["amount"]))
            txn = await s.get(RiskTxn, p.get("order_id"), with_for_update=True)
            if txn is not None:
                txn.refunded_fen += amount
            row = await _stat(s, "merchant", merchant_id, _day(_when(p.get("succeeded_at"))))
            row.refund_count += 1
            row.refund_fen += amount
            channel = None
        elif event.topic == "risk.decision" and p.get("outcome") == "REVIEW":
            (await _stat(s, "merchant", merchant_id, _day(clock.now()))).review_count += 1
            channel = None
        else:
            return
        await s.flush()
        await _check(s, "merchant", merchant_id)
        if channel:
            await _check(s, "channel", channel)


async def _check(s: AsyncSession, scope: str, key: str | None) -> None:
    if not key:
        return
    day = _day(clock.now())
    row = await s.get(RiskDailyStat, (scope, key, day))
    if row is None:
        return
    history = await _history(s, scope, key, day)
    found: list[Finding] = (merchant_findings(figures(row), history) if scope == "merchant"
                            else channel_findings(figures(row), history))
    for f in found:
        await raise_alert_in(s, kind=f.kind, severity=f.severity, summary=f.summary,
                             dedupe_key=f"{f.kind}:{scope}:{key}:{day}",
                             merchant_id=key if scope == "merchant" else None,
                             channel=key if scope == "channel" else None)


def consumers() -> list[Consumer]:
    return [Consumer(name=CONSUMER, handler=handle, topics=TOPICS, on_poison=Poison.DEAD_LETTER,
                     max_attempts=5)]
