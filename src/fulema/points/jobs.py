"""Points' event consumer `points.earn`: a paid order earns points for its payer (exactly once
per order, also when the event comes twice), and a refund claws back earned points in
proportion to what has been refunded. Redeemed points a refund gives back are returned by
`marketing.settle` with the rest of the discount shares."""

from __future__ import annotations

from typing import Any

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, first_delivery
from fulema.core.payer_ids import payer_of
from fulema.marketing import service as marketing
from fulema.points import service as points

CONSUMER = "points.earn"


def consumers(settings: Settings) -> list[Consumer]:
    async def handle(db: Database, event: Event) -> None:
        p: dict[str, Any] = event.payload
        async with db.transaction() as s:
            if not await first_delivery(s, CONSUMER, event.id):
                return
            if event.topic == "payment.succeeded":
                payer = payer_of(p)  # points accounts are keyed by the payer's own id
                if not payer:
                    return
                campaigns = [str(d["ref"]) for d in p.get("discounts", [])
                             if d.get("kind") == "campaign"]
                multiplier = await marketing.points_multiplier(s, campaign_ids=campaigns)
                await points.earn(s, settings, order_id=str(p["order_id"]),
                                  key=points.payer_key(str(p["channel"]), payer),
                                  paid_fen=int(p.get("payable_amount", p["amount"])),
                                  amount_fen=int(p["amount"]), multiplier=multiplier)
            elif event.topic == "refund.succeeded":
                await points.claw_back(s, order_id=str(p["order_id"]),
                                       refunded_fen=int(p.get("refunded_amount", 0)),
                                       ref=str(p["refund_id"]))

    return [Consumer(name=CONSUMER, handler=handle,
                     topics=("payment.succeeded", "refund.succeeded"),
                     on_poison=Poison.DEAD_LETTER, max_attempts=8)]
