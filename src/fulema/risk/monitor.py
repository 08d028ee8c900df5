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
from fulema.core.events import Consumer, Event, Poison, first_deliveries, first_delivery
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


async def _history_rows(s: AsyncSession, scope: str, key: str, day: str
                        ) -> list[RiskDailyStat]:
    first = datetime.strptime(day + "+0800", "%Y%m%d%z") - timedelta(days=BASELINE_DAYS)
    start = first.strftime("%Y%m%d")
    rows = await s.scalars(select(RiskDailyStat).where(
        RiskDailyStat.scope == scope, RiskDailyStat.key == key, RiskDailyStat.day >= start,
        RiskDailyStat.day < day))
    return list(rows)


class _Reads:
    """What one transaction of the monitor reads, read once: the day rows it locks, the
    transactions it looks up and the baselines it compares against.

    A lone event uses it exactly as before (one of each); a batch shares it, so two payments of
    one merchant lock its day row once and read its 14-day history once. The cached history
    keeps the row objects (figures are taken afresh from them, with this batch's changes); it
    is dropped when the batch creates a row of a past day, which the query would now return."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s
        self.rows: dict[tuple[str, str, str], RiskDailyStat] = {}
        self.txns: dict[str, RiskTxn | None] = {}
        self.histories: dict[tuple[str, str, str], list[RiskDailyStat]] = {}

    async def stat(self, scope: str, key: str, day: str) -> RiskDailyStat:
        row = self.rows.get((scope, key, day))
        if row is None:
            row = await _stat(self.s, scope, key, day)
            self.rows[(scope, key, day)] = row
            if day < _day(clock.now()):
                self.histories = {k: v for k, v in self.histories.items() if k[:2] != (scope, key)}
        return row

    async def txns_of(self, order_ids: list[str], *, lock: bool) -> None:
        """Look up (and lock, for refunds) the transactions of many orders in one SELECT."""
        wanted = [o for o in dict.fromkeys(order_ids) if o not in self.txns]
        if not wanted:
            return
        q = select(RiskTxn).where(RiskTxn.order_id.in_(wanted))
        found = {t.order_id: t for t in await self.s.scalars(q.with_for_update() if lock else q)}
        for o in wanted:
            self.txns[o] = found.get(o)

    async def history(self, scope: str, key: str, day: str) -> list[DayFigures]:
        rows = self.histories.get((scope, key, day))
        if rows is None:
            rows = await _history_rows(self.s, scope, key, day)
            self.histories[(scope, key, day)] = rows
        return [figures(r) for r in rows]


async def handle(db: Database, event: Event) -> None:
    async with db.transaction() as s:
        if not await first_delivery(s, CONSUMER, event.id):
            return
        reads = _Reads(s)
        await _prefetch(reads, [event])
        await _apply(reads, event)


async def handle_batch(db: Database, events: list[Event]) -> None:
    """A round of events in one transaction (the consumer's batch handler): the same work as
    `handle` for each event in order, checks included after each one, with one receipt query,
    one lookup of the orders' transactions and each day row and baseline read once. On any
    failure the dispatcher redoes the round through `handle`, event by event."""
    async with db.transaction() as s:
        fresh = await first_deliveries(s, CONSUMER, events)
        reads = _Reads(s)
        await _prefetch(reads, fresh)
        for event in fresh:
            await _apply(reads, event)


async def _prefetch(reads: _Reads, events: list[Event]) -> None:
    paid = [str(e.payload["order_id"]) for e in events
            if e.topic == "payment.succeeded" and e.payload.get("order_id")]
    refunded = [str(e.payload["order_id"]) for e in events
                if e.topic == "refund.succeeded" and e.payload.get("order_id")]
    await reads.txns_of(refunded, lock=True)
    await reads.txns_of(paid, lock=False)


async def _apply(reads: _Reads, event: Event) -> None:
    s, p = reads.s, event.payload
    merchant_id = str(p.get("merchant_id") or "")
    channel = p.get("channel")
    if event.topic == "payment.succeeded":
        at = _when(p.get("paid_at") or p.get("created_at"))
        amount = int(p.get("payable_amount", p["amount"]))
        if reads.txns.get(p["order_id"]) is None:
            txn = RiskTxn(order_id=p["order_id"], merchant_id=merchant_id,
                          payer_id=payer_hash_of(p), channel=channel or "", amount_fen=amount,
                          refunded_fen=0, status="SUCCESS", at=at)
            s.add(txn)
            reads.txns[p["order_id"]] = txn
        touched = [("merchant", merchant_id), ("channel", channel)]
        for scope, key in touched:
            if key:
                row = await reads.stat(scope, key, _day(at))
                row.pay_count += 1
                row.pay_fen += amount
    elif event.topic == "payment.failed":
        at = _when(p.get("created_at"))
        for scope, key in (("merchant", merchant_id), ("channel", channel)):
            if key:
                (await reads.stat(scope, key, _day(at))).fail_count += 1
    elif event.topic == "refund.succeeded":
        amount = int(p.get("cash_amount", p["amount"]))
        found = reads.txns.get(p["order_id"]) if p.get("order_id") else None
        if found is not None:
            found.refunded_fen += amount
        row = await reads.stat("merchant", merchant_id, _day(_when(p.get("succeeded_at"))))
        row.refund_count += 1
        row.refund_fen += amount
        channel = None
    elif event.topic == "risk.decision" and p.get("outcome") == "REVIEW":
        (await reads.stat("merchant", merchant_id, _day(clock.now()))).review_count += 1
        channel = None
    else:
        return
    await _check(reads, "merchant", merchant_id)
    if channel:
        await _check(reads, "channel", channel)


async def _check(reads: _Reads, scope: str, key: str | None) -> None:
    if not key:
        return
    day = _day(clock.now())
    row = reads.rows.get((scope, key, day)) or await reads.s.get(RiskDailyStat, (scope, key, day))
    if row is None:
        return
    history = await reads.history(scope, key, day)
    found: list[Finding] = (merchant_findings(figures(row), history) if scope == "merchant"
                            else channel_findings(figures(row), history))
    for f in found:
        await raise_alert_in(reads.s, kind=f.kind, severity=f.severity, summary=f.summary,
                             dedupe_key=f"{f.kind}:{scope}:{key}:{day}",
                             merchant_id=key if scope == "merchant" else None,
                             channel=key if scope == "channel" else None)


def consumers() -> list[Consumer]:
    return [Consumer(name=CONSUMER, handler=handle, topics=TOPICS, on_poison=Poison.DEAD_LETTER,
                     max_attempts=5, batch_handler=handle_batch)]
