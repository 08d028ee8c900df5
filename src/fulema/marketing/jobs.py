"""Marketing's event consumers. `marketing.settle` turns an order's reservations into spend when
it is paid, gives them back when it fails or closes, and returns a refund's discount shares to
their funders. Idempotent by event id (`first_delivery`), and each state change is conditional
as well, so a replayed event changes nothing. A dispatcher round of events is settled in one
transaction (`settle_round`, settlement.py): most paid orders carry no discount, and a round
finds the few that do with one look-up instead of a transaction per payment.

`marketing.grant` issues the coupons a paid order earns its payer (templates with a grant rule,
coupons.grant_on_payment): exactly once per order and template, by the event receipt and by the
unique (template, source order) of the coupon. A poison event is dead-lettered: a coupon not
granted must not hold up the other payments' grants. A round reads the granting templates once
(`grant_round`); with none, a round costs its receipts and that one read."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, first_deliveries, first_delivery
from fulema.core.money import Money
from fulema.core.payer_ids import payer_of
from fulema.marketing import coupons, settlement
from fulema.marketing.quoting import key_of
from fulema.marketing.settlement import Settle

CONSUMER = "marketing.settle"
GRANT_CONSUMER = "marketing.grant"
TOPICS = ("payment.succeeded", "payment.failed", "payment.closed", "payment.paid_after_close",
          "refund.succeeded")


def _payer(payload: dict[str, Any]) -> str | None:
    payer = payer_of(payload)  # coupons are owned by the payer's own id
    return key_of(str(payload.get("channel")), payer) if payer else None


def _settle_of(event: Event) -> Settle:
    payload: dict[str, Any] = event.payload
    paid = event.topic in (settlement.PAID, settlement.PAID_AFTER_CLOSE)
    refund = event.topic == settlement.REFUNDED
    return Settle(event.topic, str(payload["order_id"]),
                  payer_key=_payer(payload) if paid else None,
                  refund_id=str(payload["refund_id"]) if refund else "",
                  shares=tuple(payload.get("discounts", [])) if refund else ())


def consumers(settings: Settings) -> list[Consumer]:
    async def settle(db: Database, event: Event) -> None:
        async with db.transaction() as s:
            if not await first_delivery(s, CONSUMER, event.id):
                return
            await settlement.settle(s, [_settle_of(event)], settings=settings)

    async def settle_round(db: Database, events: list[Event]) -> None:
        """A round in one transaction: one receipt query and insert, the known payers and the
        redemptions read once (`settlement.settle`); only discounted orders cost more. On
        failure the dispatcher redoes the round through `settle`, event by event, so a
        poisoned event stops the consumer after the events before it are settled."""
        async with db.transaction() as s:
            fresh = await first_deliveries(s, CONSUMER, events)
            await settlement.settle(s, [_settle_of(e) for e in fresh], settings=settings)

    async def grant(db: Database, event: Event) -> None:
        async with db.transaction() as s:
            if not await first_delivery(s, GRANT_CONSUMER, event.id):
                return
            await _grant(s, event, None)

    async def grant_round(db: Database, events: list[Event]) -> None:
        """A round in one transaction: one receipt query and insert and one read of the
        templates that grant (usually none: then nothing more)."""
        async with db.transaction() as s:
            fresh = await first_deliveries(s, GRANT_CONSUMER, events)
            if not fresh:
                return
            templates = await coupons.granting_templates(s)
            if not templates:
                return
            for event in fresh:
                await _grant(s, event, templates)

    return [Consumer(name=CONSUMER, handler=settle, topics=TOPICS, on_poison=Poison.STOP,
                     max_attempts=8, batch_handler=settle_round),
            Consumer(name=GRANT_CONSUMER, handler=grant, topics=("payment.succeeded",),
                     on_poison=Poison.DEAD_LETTER, max_attempts=8, batch_handler=grant_round)]


async def _grant(s: AsyncSession, event: Event, templates: list[str] | None) -> None:
    payload: dict[str, Any] = event.payload
    await coupons.grant_on_payment(
        s, order_id=str(payload["order_id"]), merchant_id=str(payload["merchant_id"]),
        channel=str(payload.get("channel")), amount=Money(int(payload["amount"])),
        payer_key=_payer(payload), template_ids=templates)
