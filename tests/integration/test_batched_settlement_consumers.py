"""`marketing.settle`, `marketing.grant`, `billing.orders`, `billing.donations` and `ops.metrics`
handle a dispatcher round in one transaction (their batch handlers). What a user checks: the
budgets, coupons, points, bills, donations and counters are exactly those of the event-by-event
path; a redelivered round changes nothing; a poisoned event is dead-lettered alone
(DEAD_LETTER), or stops the consumer right after the events before it were handled (STOP); and
a round of ordinary payments costs the same few statements whether it holds 3 or 30 of them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from fulema.billing import jobs as billing_jobs
from fulema.billing.models import BillPayment, CharityProject, Donation
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database, StatementCounter
from fulema.core.events import (
    Consumer,
    ConsumerState,
    DeadLetter,
    OutboxEvent,
)
from fulema.core.money import Money
from fulema.core.payer_ids import event_fields
from fulema.marketing import jobs as marketing_jobs
from fulema.marketing import quotes
from fulema.marketing import service as marketing
from fulema.marketing.domain import Funder, Kind, Line
from fulema.marketing.models import (
    BudgetShard,
    Campaign,
    CampaignDay,
    Coupon,
    CouponTemplate,
    KnownPayer,
    Redemption,
)
from fulema.ops import monitoring
from fulema.points import service as points
from fulema.points.models import PointAccount, PointEarning, PointHold, PointLot, PointMovement
from tests.integration.batches import NOON, Snapshot, Topics, events_of, one_by_one, through_dispatcher, wipe
from tests.marketing import factories

MCH = "mch_1"


def consumer_of(consumers: list[Consumer], name: str) -> Consumer:
    found = next(c for c in consumers if c.name == name)
    assert found.batch_handler is not None
    return found


def paid(order_id: str, payer: str | None, amount: int = 10_000, **extra: Any) -> dict[str, Any]:
    return {"order_id": order_id, "merchant_id": MCH, "amount": amount,
            "payable_amount": amount, "channel": "wechat", **event_fields(payer), **extra}


async def stopped_at(db: Database, name: str) -> tuple[int, bool, list[str]]:
    """A STOP consumer's position (as a count of events passed), whether it is blocked, and
    its dead letters (none: STOP does not skip)."""
    async with db.transaction() as s:
        state = await s.get(ConsumerState, name)
        assert state is not None
        seqs = sorted((await s.scalars(select(OutboxEvent.seq))).all())
        dead = list((await s.scalars(select(DeadLetter.topic))).all())
    passed = sum(1 for q in seqs if q is not None and q <= state.position)
    return passed, state.blocked_since is not None, dead


# ------------------------------------------------------------------------ marketing.settle

SETTLE_MODELS: list[type] = [Redemption, CampaignDay, BudgetShard, Campaign, Coupon,
                             CouponTemplate, KnownPayer, PointMovement, PointLot, PointHold,
                             PointEarning, PointAccount]


async def discounted_orders(db: Database, settings: Settings) -> None:
    """Six discounted orders reserved as their creation reserves them: campaigns (one with a
    daily budget, one sharded), coupons, and points of two payers."""
    daily = await factories.campaign(db, name="daily", discount_type="INSTANT_OFF",
                                     threshold=0, off=100, budget_total=10_000,
                                     daily_budget=5_000)
    sharded = await factories.campaign(db, name="sharded", discount_type="INSTANT_OFF",
                                       threshold=0, off=100, budget_total=4_000,
                                       budget_shards=4)
    tpl = await factories.template(db)
    for payer in ("p3", "p4", "p6"):
        await points.adjust(db, settings, actor="tester", key=f"wechat:{payer}", points=5_000,
                            reason="test")

    def camp(c: Any, fen: int = 100) -> quotes.QuotedLine:
        return quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(fen),
                                      c.campaign_id))

    def pts(n: int) -> quotes.QuotedLine:
        return quotes.QuotedLine(Line(Kind.POINTS, Funder.PLATFORM, Money(n // 100), "points"),
                                 points=n)

    async def coupon(payer: str) -> quotes.QuotedLine:
        c = await marketing.issue(db, template_id=tpl.template_id, payer_key=f"wechat:{payer}",
                                  via="GRANT")
        return quotes.QuotedLine(Line(Kind.COUPON, Funder.PLATFORM, Money(300), c.coupon_id))

    plan: dict[str, tuple[str, list[quotes.QuotedLine]]] = {
        "o1": ("p1", [camp(daily), await coupon("p1")]),
        "o2": ("p2", [camp(daily)]),
        "o3": ("p3", [await coupon("p3"), pts(1_000)]),
        "o4": ("p4", [camp(sharded), pts(2_000)]),
        "o5": ("p5", [camp(daily)]),
        "o6": ("p6", [pts(500), camp(sharded)]),
    }
    for order_id, (payer, lines) in plan.items():
        q = quotes.Quote(merchant_id=MCH, amount=Money(10_000), channel="wechat",
                         payer_id=payer, store_id=None,
                         expires_at=clock.now() + timedelta(minutes=5), lines=tuple(lines))
        async with db.transaction() as s:
            await marketing.reserve(s, order_id=order_id, merchant_id=MCH, quote=q)


def settle_traffic() -> Topics:
    """Twelve plain payments (payers paying twice, one without a payer) around the discounted
    orders' fates: paid, closed, failed, paid then refunded, closed then paid after close."""
    out: Topics = [("payment.succeeded", paid(f"plain-{i}", f"q{i % 8}")) for i in range(6)]
    out += [("payment.succeeded", paid("o1", "p1")), ("payment.closed", paid("o2", "p2")),
            ("payment.failed", paid("o3", "p3")), ("payment.succeeded", paid("o4", "p4")),
            ("payment.closed", paid("o5", "p5")), ("payment.closed", paid("o6", "p6"))]
    out += [("payment.succeeded", paid(f"plain-{i}", f"q{i % 8}")) for i in range(6, 11)]
    out.append(("payment.succeeded", paid("plain-anon", None)))
    out += [("refund.succeeded", {"order_id": "o4", "refund_id": "rf-4", "discounts": [
                {"kind": "campaign", "funder": "platform", "ref": "x", "amount": 40},
                {"kind": "points", "funder": "platform", "ref": "points", "amount": 7}]}),
            ("payment.paid_after_close", paid("o5", "p5")),
            ("payment.paid_after_close", paid("o6", "p6"))]
    return out


POISON_SETTLE = ("refund.succeeded", {"order_id": "o4"})  # no refund id: KeyError every time


async def settle_snapshot(db: Database) -> Snapshot:
    async with db.transaction() as s:
        names = {c.id: c.name for c in await s.scalars(select(Campaign))}
        keys = {a.id: a.payer_key for a in await s.scalars(select(PointAccount))}
        return {
            "redemptions": sorted((r.order_id, r.kind, r.state, r.amount.fen, r.refunded.fen,
                                   r.overrun) for r in await s.scalars(select(Redemption))),
            "campaigns": sorted((c.name, c.budget_remaining.fen)
                                for c in await s.scalars(select(Campaign))),
            "shards": sorted((names[x.campaign_id], x.remaining.fen)
                             for x in await s.scalars(select(BudgetShard))),
            "days": sorted((names[d.campaign_id], d.day, d.used)
                           for d in await s.scalars(select(CampaignDay))),
            "coupons": sorted((c.payer_key, c.state, c.order_id or "")
                              for c in await s.scalars(select(Coupon))),
            "known": sorted((k.payer_key,) for k in await s.scalars(select(KnownPayer))),
            "accounts": sorted((a.payer_key, a.balance)
                               for a in await s.scalars(select(PointAccount))),
            "holds": sorted((h.order_id, keys[h.account_id], h.state, h.points, h.returned)
                            for h in await s.scalars(select(PointHold))),
            "lots": sorted((keys[x.account_id], x.source, x.points, x.remaining)
                           for x in await s.scalars(select(PointLot))),
            "movements": sorted((keys[m.account_id], m.kind, m.ref, m.points, m.balance_after)
                                for m in await s.scalars(select(PointMovement))),
        }


async def test_marketing_settle_batches_equal_the_event_by_event_path(
        db: Database, settings: Settings) -> None:
    clock.freeze(NOON)
    consumer = consumer_of(marketing_jobs.consumers(settings), marketing_jobs.CONSUMER)
    traffic = settle_traffic()

    await discounted_orders(db, settings)
    await one_by_one(db, consumer.handler, traffic)
    expected = await settle_snapshot(db)
    # what the traffic did, as a user reads it: o1 paid, o2 released, o3's coupon and points
    # back, o4 paid and partly refunded, o5 and o6 taken again after their close
    assert [r[:3] for r in expected["redemptions"]] == [
        ("o1", "campaign", "CONSUMED"), ("o1", "coupon", "CONSUMED"),
        ("o2", "campaign", "RELEASED"), ("o3", "coupon", "RELEASED"),
        ("o3", "points", "RELEASED"), ("o4", "campaign", "CONSUMED"),
        ("o4", "points", "CONSUMED"), ("o5", "campaign", "CONSUMED"),
        ("o6", "campaign", "CONSUMED"), ("o6", "points", "CONSUMED")]
    assert ("o4", "campaign", "CONSUMED", 100, 40, False) in expected["redemptions"]
    assert ("wechat:q7",) in expected["known"]
    assert ("wechat:p2",) not in expected["known"]  # closed unpaid: not a paying payer yet
    assert ("daily", 10_000 - 200) in expected["campaigns"]  # o1 and o5 spent, o2 back

    for with_poison in (False, True):
        await wipe(db, SETTLE_MODELS)
        await discounted_orders(db, settings)
        name = f"test.settle{int(with_poison)}"
        if not with_poison:
            assert await through_dispatcher(db, consumer, traffic, name) == [len(traffic)]
            assert await settle_snapshot(db) == expected
            continue
        # STOP: a poisoned event stops the consumer; every event before it is settled once
        cut = 15
        sizes = await through_dispatcher(db, consumer,
                                         [*traffic[:cut], POISON_SETTLE, *traffic[cut:]], name)
        assert sizes == [len(traffic) + 1]
        assert await stopped_at(db, name) == (cut, True, [])
        partial = await settle_snapshot(db)
        await wipe(db, SETTLE_MODELS)
        await discounted_orders(db, settings)
        await one_by_one(db, consumer.handler, traffic[:cut])
        assert await settle_snapshot(db) == partial
        assert partial != expected

    # a redelivered round (after a crash before the position moved) settles nothing twice
    await wipe(db, SETTLE_MODELS)
    await discounted_orders(db, settings)
    assert consumer.batch_handler is not None
    events = events_of(traffic)
    await consumer.batch_handler(db, events[:9])
    await consumer.batch_handler(db, events)
    await consumer.batch_handler(db, events)
    assert await settle_snapshot(db) == expected


# ------------------------------------------------------------------------- marketing.grant


async def grant_world(db: Database) -> None:
    await factories.template(db, name="grant A", grant={"on": "payment.succeeded",
                                                        "min_amount": 5_000},
                             per_payer_limit=2, per_day_limit=2, quantity=6)
    await factories.template(db, name="grant B", grant={"on": "payment.succeeded"},
                             channels=["alipay"])


def grant_traffic() -> Topics:
    return [("payment.succeeded", paid(f"g{i}", f"gp{i % 3}", amount=4_000 + i * 500))
            for i in range(12)] + [("payment.succeeded", paid("g-anon", None))]


async def grant_snapshot(db: Database) -> Snapshot:
    async with db.transaction() as s:
        names = {t.id: t.name for t in await s.scalars(select(CouponTemplate))}
        return {
            "coupons": sorted((names[c.template_id], c.payer_key, c.state, c.via,
                               c.source_order_id or "") for c in await s.scalars(select(Coupon))),
            "issued": sorted((t.name, t.issued) for t in await s.scalars(select(CouponTemplate))),
        }


async def test_marketing_grant_batches_equal_the_event_by_event_path(
        db: Database, settings: Settings) -> None:
    clock.freeze(NOON)
    consumer = consumer_of(marketing_jobs.consumers(settings), marketing_jobs.GRANT_CONSUMER)
    models: list[type] = [Coupon, CouponTemplate]
    traffic = grant_traffic()

    await grant_world(db)
    await one_by_one(db, consumer.handler, traffic)
    expected = await grant_snapshot(db)
    assert ("grant A", 6) in expected["issued"]  # payers' limits and the quantity count
    assert ("grant B", 0) in expected["issued"]  # wechat payments: not in its channel scope

    await wipe(db, models)
    await grant_world(db)
    assert await through_dispatcher(db, consumer, traffic, "test.grant1") == [len(traffic)]
    assert await grant_snapshot(db) == expected

    await wipe(db, models)
    await grant_world(db)
    poison = ("payment.succeeded", paid("g-poison", "gp1", amount=9_000) | {"amount": "x"})
    await through_dispatcher(db, consumer, [*traffic[:4], poison, *traffic[4:]], "test.grant2")
    assert await grant_snapshot(db) == expected
    async with db.transaction() as s:
        dead = list(await s.scalars(select(DeadLetter)))
    assert [(x.consumer, x.topic) for x in dead] == [("test.grant2", "payment.succeeded")]

    await wipe(db, models)
    await grant_world(db)
    assert consumer.batch_handler is not None
    await consumer.batch_handler(db, events_of(traffic))
    await consumer.batch_handler(db, events_of(traffic))
    assert await grant_snapshot(db) == expected


# ---------------------------------------------------------- billing.orders, billing.donations

BILLING_MODELS: list[type] = [BillPayment, Donation, CharityProject]


async def billing_world(db: Database) -> None:
    """Four bill payments and three donations among ordinary orders, all CREATED."""
    now = clock.now()
    async with db.transaction() as s:
        for i in range(4):
            s.add(BillPayment(id=f"bp{i}", biller_code="WATER", bill_id=f"bill{i}",
                              account_no=f"acct{i}", period="2026-03", amount=Money(5_000),
                              status="CREATED", live_key=f"WATER:bill{i}", merchant_id=MCH,
                              order_id=f"bo{i}", channel="wechat", writeoff_attempts=0,
                              created_at=now, updated_at=now))
        s.add(CharityProject(id="prj_1", name="希望小学", organisation="基金会", merchant_id=MCH,
                             target_amount=Money(1_000_000), raised_amount=Money(0), donations=0,
                             starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=9),
                             status="OPEN", created_at=now))
        for i in range(3):
            s.add(Donation(id=f"don_d{i}", project_id="prj_1", amount=Money(1_000 * (i + 1)),
                           donor_name=None, anonymous=True, status="CREATED",
                           order_id=f"do{i}", channel="wechat", created_at=now))


def billing_traffic() -> Topics:
    out: Topics = [("payment.succeeded", paid(f"plain-{i}", f"q{i}")) for i in range(5)]
    out += [("payment.succeeded", paid("bo0", "b0")),
            ("payment.succeeded", paid("bo1", "b1", discounts=[
                {"kind": "campaign", "funder": "merchant", "ref": "c", "amount": 100}])),
            ("payment.closed", paid("bo2", "b2")),
            ("payment.succeeded", paid("do0", "d0")), ("payment.failed", paid("do1", "d1")),
            ("payment.succeeded", paid("do2", "d2")), ("payment.closed", paid("do2", "d2"))]
    out += [("payment.succeeded", paid(f"plain-{i}", f"q{i}")) for i in range(5, 9)]
    out += [("refund.succeeded", {"order_id": "bo1", "refund_id": "rf-b1"}),
            ("payment.succeeded", paid("bo0", "b0"))]  # the same payment again, another event
    return out


async def billing_snapshot(db: Database) -> Snapshot:
    async with db.transaction() as s:
        return {
            "bills": sorted((b.order_id or "", b.status, b.live_key or "", b.last_error or "",
                             b.paid_at is not None, b.refunded_at is not None)
                            for b in await s.scalars(select(BillPayment))),
            "donations": sorted((d.order_id or "", d.status, d.certificate_no or "")
                                for d in await s.scalars(select(Donation))),
            "projects": sorted((p.id, p.raised_amount.fen, p.donations)
                               for p in await s.scalars(select(CharityProject))),
            "bill_events": sorted((e.topic, e.payload.get("order_id"))
                                  for e in await s.scalars(select(OutboxEvent))
                                  if e.topic.startswith("bill.")),
        }


@pytest.mark.parametrize("name", ["billing.orders", "billing.donations"])
async def test_billing_batches_equal_the_event_by_event_path(
        db: Database, settings: Settings, name: str) -> None:
    clock.freeze(NOON)
    consumer = consumer_of(billing_jobs.consumers(settings), name)
    traffic = billing_traffic()
    if name == "billing.donations":  # its topics: payments only
        traffic = [t for t in traffic if t[0].startswith("payment.")]

    await billing_world(db)
    await one_by_one(db, consumer.handler, traffic)
    expected = await billing_snapshot(db)
    if name == "billing.orders":
        assert [b[:2] for b in expected["bills"]] == [
            ("bo0", "PAID"), ("bo1", "REFUNDED"), ("bo2", "CLOSED"), ("bo3", "CREATED")]
        assert expected["bill_events"] == [("bill.refunded", "bo1")]
    else:
        assert [d[:2] for d in expected["donations"]] == [
            ("do0", "PAID"), ("do1", "CLOSED"), ("do2", "PAID")]
        assert expected["projects"] == [("prj_1", 4_000, 2)]

    await wipe(db, BILLING_MODELS)
    await billing_world(db)
    tag = name.split(".")[1]
    assert await through_dispatcher(db, consumer, traffic, f"test.{tag}1") == [len(traffic)]
    assert await billing_snapshot(db) == expected

    # a poisoned event (a bill payment's event that breaks the handler): billing.orders
    # (STOP) stops right after the events before it; billing.donations, whose orders it is not
    # about, goes on
    await wipe(db, BILLING_MODELS)
    await billing_world(db)
    cut = 7
    poison = ("payment.succeeded", paid("bo3", "b3", discounts="not a list"))
    sizes = await through_dispatcher(db, consumer, [*traffic[:cut], poison, *traffic[cut:]],
                                     f"test.{tag}2")
    assert sizes == [len(traffic) + 1]
    if name == "billing.orders":
        assert await stopped_at(db, f"test.{tag}2") == (cut, True, [])
        partial = await billing_snapshot(db)
        await wipe(db, BILLING_MODELS)
        await billing_world(db)
        await one_by_one(db, consumer.handler, traffic[:cut])
        assert await billing_snapshot(db) == partial
        assert partial != expected
    else:
        assert await stopped_at(db, f"test.{tag}2") == (len(traffic) + 1, False, [])
        assert await billing_snapshot(db) == expected

    # a redelivered round changes nothing
    await wipe(db, BILLING_MODELS)
    await billing_world(db)
    assert consumer.batch_handler is not None
    events = events_of(traffic)
    await consumer.batch_handler(db, events[:8])
    await consumer.batch_handler(db, events)
    await consumer.batch_handler(db, events)
    assert await billing_snapshot(db) == expected


# ----------------------------------------------------------------------------- ops.metrics


def _counted() -> dict[str, float]:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {state: sample("fulema_payments_total", channel="wechat", state=state)
            for state in ("SUCCESS", "FAILED", "CLOSED")} | {
        "fen": sample("fulema_payments_amount_fen_total", channel="wechat"),
        "refunds": sample("fulema_refunds_total", state="SUCCEEDED")}


async def test_ops_metrics_batches_count_what_the_events_count(sqlite_db: Database) -> None:
    db = sqlite_db
    consumer = consumer_of(monitoring.consumers(), "ops.metrics")
    traffic: Topics = [("payment.succeeded", paid(f"m{i}", None, amount=100 + i))
                       for i in range(7)]
    traffic += [("payment.failed", paid("mf", None)), ("payment.closed", paid("mc", None)),
                ("refund.succeeded", {"order_id": "m1", "refund_id": "r"})]
    before = _counted()
    await one_by_one(db, consumer.handler, traffic)
    middle = _counted()
    assert consumer.batch_handler is not None
    await consumer.batch_handler(db, events_of(traffic))
    after = _counted()
    one = {k: middle[k] - before[k] for k in before}
    batch = {k: after[k] - middle[k] for k in before}
    assert one == batch == {"SUCCESS": 7, "FAILED": 1, "CLOSED": 1, "fen": 721, "refunds": 1}


# ------------------------------------------------- a round's statements vs plain payments


@pytest.mark.parametrize("name", ["marketing.settle", "marketing.grant", "billing.orders",
                                  "billing.donations", "ops.metrics"])
async def test_a_rounds_statements_do_not_grow_with_its_plain_payments(
        db: Database, settings: Settings, name: str) -> None:
    """Three or thirty ordinary payments (new payers, no discount, no bill, no donation) in a
    round: the same statements. With one discounted order, bill or donation among them too."""
    clock.freeze(NOON)
    declared = [*marketing_jobs.consumers(settings), *billing_jobs.consumers(settings),
                *monitoring.consumers()]
    consumer = consumer_of(declared, name)
    assert consumer.batch_handler is not None
    await discounted_orders(db, settings)
    await billing_world(db)
    if name != "marketing.grant":  # a granting template gives plain payments coupons: work
        await grant_world(db)

    async def statements(n: int, round_no: int, special: Topics) -> int:
        traffic = [("payment.succeeded", paid(f"r{round_no}-{i}", f"new-{round_no}-{i}"))
                   for i in range(n)] + special
        assert consumer.batch_handler is not None
        before = StatementCounter.total
        await consumer.batch_handler(db, events_of(traffic, prefix=f"r{round_no}"))
        return StatementCounter.total - before

    few, many = await statements(3, 1, []), await statements(30, 2, [])
    assert few == many
    assert many <= 6
    # one order of the same shape among them: o2 and o5 hold the same campaign line, bo2 and
    # bo3 are bills, do1 and do2 donations
    few = await statements(3, 3, [("payment.closed", paid("o2", "p2")),
                                  ("payment.closed", paid("bo2", "b2")),
                                  ("payment.closed", paid("do1", "d1"))])
    many = await statements(30, 4, [("payment.closed", paid("o5", "p5")),
                                    ("payment.closed", paid("bo3", "b3")),
                                    ("payment.closed", paid("do2", "d2"))])
    assert few == many
