"""Points' event consumer `points.earn`: a paid order earns points for its payer (exactly once
per order, also when the event comes twice), and a refund claws back earned points in
proportion to what has been refunded. Redeemed points a refund gives back are returned by
`marketing.settle` with the rest of the discount shares."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, first_deliveries, first_delivery
from fulema.core.payer_ids import payer_of
from fulema.marketing import service as marketing
from fulema.points import service as points

CONSUMER = "points.earn"


def consumers(settings: Settings) -> list[Consumer]:
    async def handle(db: Database, event: Event) -> None:
        async with db.transaction() as s:
            if not await first_delivery(s, CONSUMER, event.id):
                return
            await _apply(s, settings, event, None, {})

    async def handle_batch(db: Database, events: list[Event]) -> None:
        """A round in one transaction: one receipt query, the earnings and accounts read (and
        locked) once, then each event as `handle` does it, in order. On failure the dispatcher
        redoes the round through `handle`, event by event."""
        async with db.transaction() as s:
            fresh = await first_deliveries(s, CONSUMER, events)
            paid = [(e, payer_of(e.payload)) for e in fresh if e.topic == "payment.succeeded"]
            known = await points.known_for(
                s, order_ids=[str(e.payload["order_id"]) for e, payer in paid if payer],
                keys=[points.payer_key(str(e.payload["channel"]), payer)
                      for e, payer in paid if payer])
            multipliers: dict[tuple[str, ...], int] = {}
            for event in fresh:
                await _apply(s, settings, event, known, multipliers)

    return [Consumer(name=CONSUMER, handler=handle,
                     topics=("payment.succeeded", "refund.succeeded"),
                     on_poison=Poison.DEAD_LETTER, max_attempts=8, batch_handler=handle_batch)]


async def _apply(s: AsyncSession, settings: Settings, event: Event, known: points.Known | None,
                 multipliers: dict[tuple[str, ...], int]) -> None:
    """One event's effect in the caller's transaction (its receipt already written)."""
    p: dict[str, Any] = event.payload
    if event.topic == "payment.succeeded":
        payer = payer_of(p)  # points accounts are keyed by the payer's own id
        if not payer:
            return
        campaigns = tuple(str(d["ref"]) for d in p.get("discounts", [])
                          if d.get("kind") == "campaign")
        multiplier = multipliers.get(campaigns)
        if multiplier is None:
            multiplier = await marketing.points_multiplier(s, campaign_ids=list(campaigns))
            multipliers[campaigns] = multiplier
        await points.earn(s, settings, order_id=str(p["order_id"]),
                          key=points.payer_key(str(p["channel"]), payer),
                          paid_fen=int(p.get("payable_amount", p["amount"])),
                          amount_fen=int(p["amount"]), multiplier=multiplier, known=known)
    elif event.topic == "refund.succeeded":
        await points.claw_back(s, order_id=str(p["order_id"]),
                               refunded_fen=int(p.get("refunded_amount", 0)),
                               ref=str(p["refund_id"]))
