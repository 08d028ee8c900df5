"""Marketing's event consumers. `marketing.settle` turns an order's reservations into spend when
it is paid, gives them back when it fails or closes, and returns a refund's discount shares to
their funders. Idempotent by event id (`first_delivery`), and each state change is conditional
as well, so a replayed event changes nothing.

`marketing.grant` issues the coupons a paid order earns its payer (templates with a grant rule,
coupons.grant_on_payment): exactly once per order and template, by the event receipt and by the
unique (template, source order) of the coupon. A poison event is dead-lettered: a coupon not
granted must not hold up the other payments' grants."""

from __future__ import annotations

from typing import Any

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, first_delivery
from fulema.core.money import Money
from fulema.core.payer_ids import payer_of
from fulema.marketing import budget, coupons
from fulema.marketing.quoting import key_of

CONSUMER = "marketing.settle"
GRANT_CONSUMER = "marketing.grant"
TOPICS = ("payment.succeeded", "payment.failed", "payment.closed", "payment.paid_after_close",
          "refund.succeeded")


def _payer(payload: dict[str, Any]) -> str | None:
    payer = payer_of(payload)  # coupons are owned by the payer's own id
    return key_of(str(payload.get("channel")), payer) if payer else None


def consumers(settings: Settings) -> list[Consumer]:
    async def settle(db: Database, event: Event) -> None:
        payload: dict[str, Any] = event.payload
        async with db.transaction() as s:
            if not await first_delivery(s, CONSUMER, event.id):
                return
            order_id = str(payload["order_id"])
            if event.topic == "payment.succeeded":
                await budget.on_paid(s, order_id=order_id, payer_key=_payer(payload))
            elif event.topic in ("payment.failed", "payment.closed"):
                await budget.on_unpaid(s, order_id=order_id)
            elif event.topic == "payment.paid_after_close":
                await budget.on_paid_after_close(s, order_id=order_id,
                                                 payer_key=_payer(payload))
            elif event.topic == "refund.succeeded":
                await budget.on_refund(s, settings, order_id=order_id,
                                       refund_id=str(payload["refund_id"]),
                                       shares=list(payload.get("discounts", [])))

    async def grant(db: Database, event: Event) -> None:
        payload: dict[str, Any] = event.payload
        async with db.transaction() as s:
            if not await first_delivery(s, GRANT_CONSUMER, event.id):
                return
            await coupons.grant_on_payment(
                s, order_id=str(payload["order_id"]), merchant_id=str(payload["merchant_id"]),
                channel=str(payload.get("channel")), amount=Money(int(payload["amount"])),
                payer_key=_payer(payload))

    return [Consumer(name=CONSUMER, handler=settle, topics=TOPICS, on_poison=Poison.STOP,
                     max_attempts=8),
            Consumer(name=GRANT_CONSUMER, handler=grant, topics=("payment.succeeded",),
                     on_poison=Poison.DEAD_LETTER, max_attempts=8)]
