"""`risk.monitor` handles a round of events in one transaction (its batch
handler). What a user checks: the figures and alerts are exactly those of
the event-by-event path, a redelivered round changes nothing, and one poisoned event in a round
is dead-lettered on its own while every other event of the round is still handled once."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import (
    Consumer,
    DeadLetter,
    Dispatcher,
    Event,
    EventReceipt,
    OutboxEvent,
    publish,
)
from fulema.risk import monitor
from fulema.risk.models import RiskAlert, RiskDailyStat, RiskTxn

NOON = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
Snapshot = dict[str, list[tuple[Any, ...]]]
Topics = list[tuple[str, dict[str, Any]]]


def risk_traffic() -> Topics:
    """Payments, refunds, reviews and a failing channel: enough to raise three alerts, and two
    merchants whose day rows are shared by many events of the round."""
    at = NOON.isoformat()
    out: Topics = []
    for i in range(10):
        out.append(("payment.succeeded", {"order_id": f"ord-ref-{i}", "merchant_id": "m-ref",
                                          "amount": 10_000, "channel": "wechat", "paid_at": at,
                                          "payer_hash": f"h{i % 3}"}))
    for i in range(4):
        out.append(("refund.succeeded", {"refund_id": f"r{i}", "order_id": f"ord-ref-{i}",
                                         "merchant_id": "m-ref", "amount": 10_000,
                                         "succeeded_at": at}))
    for i in range(5):
        out.append(("risk.decision", {"decision_id": f"d{i}", "merchant_id": "m-rev",
                                      "action": "pay", "outcome": "REVIEW", "reason": "X"}))
    for i in range(25):
        out.append(("payment.failed" if i % 2 else "payment.succeeded", {
            "order_id": f"o-ch-{i}", "merchant_id": f"m-ch-{i % 4}", "amount": 100,
            "channel": "unionpay", "created_at": at, "paid_at": at}))
    return out


POISON_RISK = ("payment.succeeded", {"order_id": "poison", "merchant_id": "m-ref",
                                     "channel": "wechat"})  # no amount: KeyError every time


async def risk_snapshot(db: Database) -> Snapshot:
    async with db.transaction() as s:
        return {
            "stats": sorted((r.scope, r.key, r.day, r.pay_count, r.pay_fen, r.fail_count,
                             r.refund_count, r.refund_fen, r.review_count)
                            for r in await s.scalars(select(RiskDailyStat))),
            "txns": sorted((t.order_id, t.merchant_id, t.payer_id, t.amount_fen, t.refunded_fen)
                           for t in await s.scalars(select(RiskTxn))),
            "alerts": sorted((a.kind, a.merchant_id, a.channel, a.dedupe_key, a.summary)
                             for a in await s.scalars(select(RiskAlert))),
        }


async def reset(db: Database, models: list[type]) -> None:
    async with db.transaction() as s:
        for model in [*models, EventReceipt, DeadLetter, OutboxEvent]:
            await s.execute(delete(model))


async def one_by_one(db: Database, handle: Callable[[Database, Event], Awaitable[None]],
                     traffic: Topics) -> None:
    for i, (topic, payload) in enumerate(traffic):
        await handle(db, Event(id=f"evt-{i}", topic=topic, payload=payload))


async def through_dispatcher(db: Database, consumer: Consumer, traffic: Topics,
                             name: str) -> list[int]:
    """Publish the traffic (one commit each, in order) and drain it through a fresh consumer
    whose batch handler is watched; returns the size of each batch it was given."""
    sizes: list[int] = []
    assert consumer.batch_handler is not None
    batch = consumer.batch_handler

    async def watched(d: Database, events: list[Event]) -> None:
        sizes.append(len(events))
        await batch(d, events)

    for topic, payload in traffic:
        async with db.transaction() as s:
            publish(s, topic, payload)
        clock.advance(timedelta(milliseconds=1))
    d = Dispatcher(db, [dataclasses.replace(consumer, name=name, batch_handler=watched,
                                            max_attempts=1)])
    await d.register()
    await d.drain()
    return sizes


async def test_risk_monitor_batches_equal_the_event_by_event_path(db: Database) -> None:
    clock.freeze(NOON)
    models: list[type] = [RiskDailyStat, RiskTxn, RiskAlert]
    consumer = monitor.consumers()[0]
    assert consumer.batch_handler is not None
    traffic = risk_traffic()

    await one_by_one(db, monitor.handle, traffic)
    expected = await risk_snapshot(db)
    assert {a[0] for a in expected["alerts"]} == {"refund_rate", "many_reviews",
                                                  "channel_success_drop"}
    await reset(db, models)

    sizes = await through_dispatcher(db, consumer, traffic, "test.monitor1")
    assert sizes == [len(traffic)]  # one round, one transaction
    assert await risk_snapshot(db) == expected
    await reset(db, models)

    # one poisoned event in the middle of the round: dead-lettered alone, the rest handled once
    poisoned = [*traffic[:12], POISON_RISK, *traffic[12:]]
    sizes = await through_dispatcher(db, consumer, poisoned, "test.monitor2")
    assert sizes == [len(poisoned)]
    assert await risk_snapshot(db) == expected
    async with db.transaction() as s:
        dead = list(await s.scalars(select(DeadLetter)))
    assert [(x.consumer, x.topic) for x in dead] == [("test.monitor2", "payment.succeeded")]


async def test_a_redelivered_risk_batch_changes_nothing(db: Database) -> None:
    clock.freeze(NOON)
    events = [Event(id=f"evt-{i}", topic=t, payload=p) for i, (t, p) in enumerate(risk_traffic())]
    await monitor.handle_batch(db, events[:20])
    await monitor.handle_batch(db, events)  # the first twenty again, then the rest
    once = await risk_snapshot(db)
    await monitor.handle_batch(db, events)
    assert await risk_snapshot(db) == once
    await reset(db, [RiskDailyStat, RiskTxn, RiskAlert])
    await one_by_one(db, monitor.handle, risk_traffic())
    assert await risk_snapshot(db) == once
