"""`risk.monitor` and `points.earn` handle a round of events in one transaction (their batch
handlers). What a user checks: the figures, alerts, points and statements are exactly those of
the event-by-event path, a redelivered round changes nothing, and one poisoned event in a round
is dead-lettered on its own while every other event of the round is still handled once."""

from __future__ import annotations

import collections

from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import (
    DeadLetter,
    Event,
)
from fulema.core.payer_ids import event_fields
from fulema.points import jobs as points_jobs
from fulema.points.models import PointAccount, PointEarning, PointLot, PointMovement
from fulema.risk import monitor
from fulema.risk.models import RiskAlert, RiskDailyStat, RiskTxn
from tests.integration.batches import NOON, Snapshot, Topics, one_by_one, through_dispatcher, wipe


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


def points_traffic() -> Topics:
    """Payments of three payers (one paying twice), one without a payer, refunds clawing back."""
    out: Topics = []
    for i in range(8):
        out.append(("payment.succeeded", {"order_id": f"po-{i}", "amount": 5_000 + i * 100,
                                          "channel": "wechat",
                                          **event_fields(f"payer-{i % 3}")}))
    out.append(("payment.succeeded", {"order_id": "po-anon", "amount": 9_900,
                                      "channel": "wechat"}))
    out.append(("refund.succeeded", {"order_id": "po-1", "refund_id": "rf-1",
                                     "refunded_amount": 2_550}))
    out.append(("refund.succeeded", {"order_id": "po-4", "refund_id": "rf-4",
                                     "refunded_amount": 5_400}))
    return out


POISON_RISK = ("payment.succeeded", {"order_id": "poison", "merchant_id": "m-ref",
                                     "channel": "wechat"})  # no amount: KeyError every time
POISON_POINTS = ("refund.succeeded", {"order_id": "po-2"})  # no refund id: KeyError


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


async def points_snapshot(db: Database) -> Snapshot:
    async with db.transaction() as s:
        keys = {a.id: a.payer_key for a in await s.scalars(select(PointAccount))}
        lots = list(await s.scalars(select(PointLot)))
        return {
            "accounts": sorted((a.payer_key, a.balance)
                               for a in await s.scalars(select(PointAccount))),
            "earnings": sorted((e.order_id, keys[e.account_id], e.points, e.clawed)
                               for e in await s.scalars(select(PointEarning))),
            # which of two lots expiring at the same instant a claw-back takes first is not
            # defined (ids are random), so lots are compared by what they hold, not one by one
            "lots": sorted((keys[x.account_id], x.source, x.ref, x.points) for x in lots),
            "left": sorted(_left(lots, keys).items()),
            "movements": sorted((keys[m.account_id], m.kind, m.ref, m.points, m.balance_after)
                                for m in await s.scalars(select(PointMovement))),
        }


def _left(lots: list[PointLot], keys: dict[str, str]) -> dict[str, int]:
    left: dict[str, int] = collections.defaultdict(int)
    for x in lots:
        left[keys[x.account_id]] += x.remaining
    return dict(left)


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
    await wipe(db, models)

    sizes = await through_dispatcher(db, consumer, traffic, "test.monitor1")
    assert sizes == [len(traffic)]  # one round, one transaction
    assert await risk_snapshot(db) == expected
    await wipe(db, models)

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
    await wipe(db, [RiskDailyStat, RiskTxn, RiskAlert])
    await one_by_one(db, monitor.handle, risk_traffic())
    assert await risk_snapshot(db) == once


async def test_points_batches_equal_the_event_by_event_path(db: Database,
                                                            settings: Settings) -> None:
    clock.freeze(NOON)
    models: list[type] = [PointMovement, PointLot, PointEarning, PointAccount]
    consumer = points_jobs.consumers(settings)[0]
    handle = consumer.handler
    batch = consumer.batch_handler
    assert batch is not None
    traffic = points_traffic()

    await one_by_one(db, handle, traffic)
    expected = await points_snapshot(db)
    assert "wechat:payer-1" in {a[0] for a in expected["accounts"]}
    assert any(m[1] == "CLAWBACK" for m in expected["movements"])
    await wipe(db, models)

    sizes = await through_dispatcher(db, consumer, traffic, "test.points1")
    assert sizes == [len(traffic)]
    assert await points_snapshot(db) == expected
    # redelivered: the receipts hold, nothing is earned twice
    events = [Event(id=f"evt-{i}", topic=t, payload=p) for i, (t, p) in enumerate(traffic)]
    await wipe(db, models)
    await batch(db, events)
    await batch(db, events)
    assert await points_snapshot(db) == expected
    await wipe(db, models)

    poisoned = [*traffic[:5], POISON_POINTS, *traffic[5:]]
    sizes = await through_dispatcher(db, consumer, poisoned, "test.points2")
    assert sizes == [len(poisoned)]
    assert await points_snapshot(db) == expected
    async with db.transaction() as s:
        dead = list(await s.scalars(select(DeadLetter)))
    assert [(x.consumer, x.topic) for x in dead] == [("test.points2", "refund.succeeded")]
