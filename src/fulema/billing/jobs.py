"""Billing's event consumers (listed in `fulema.app.declared_consumers`) and its scheduled job.

- `billing.orders`: payment.* and refund.succeeded of bill orders move bill payments
  (`writeoffs.on_order_event`). STOP on poison: a bill payment left behind could leave money
  neither written off nor refunded, so an operator must look.
- `billing.donations`: payment.* of donation orders mark donations paid and move the project's
  total, once (`charity.on_donation_event`).

Both take a dispatcher round in one transaction (`batch_handler`): one `order_id IN (...)`
look-up finds the round's few bill or donation orders; the rest cost nothing more.
- `run_writeoffs` (every few seconds): write-offs due, retries, refunds past the deadline.
"""

from __future__ import annotations

from fulema.billing import charity, writeoffs
from fulema.billing.billers import BillerRegistry
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, Start
from fulema.payments import service as payments

ORDER_TOPICS = ("payment.succeeded", "payment.failed", "payment.closed")


def consumers(settings: Settings) -> list[Consumer]:
    async def orders(db: Database, event: Event) -> None:
        await writeoffs.on_order_event(
            db, event, deadline_seconds=settings.billing_writeoff_deadline_seconds)

    async def orders_round(db: Database, events: list[Event]) -> None:
        await writeoffs.on_order_events(
            db, events, deadline_seconds=settings.billing_writeoff_deadline_seconds)

    return [
        Consumer(name=writeoffs.CONSUMER, handler=orders,
                 topics=(*ORDER_TOPICS, "refund.succeeded"), on_poison=Poison.STOP,
                 max_attempts=8, start=Start.BEGINNING, batch_handler=orders_round),
        Consumer(name=charity.CONSUMER, handler=charity.on_donation_event, topics=ORDER_TOPICS,
                 on_poison=Poison.STOP, max_attempts=8, start=Start.BEGINNING,
                 batch_handler=charity.on_donation_events),
    ]


async def run_writeoffs(deps: payments.Deps, billers: BillerRegistry) -> int:
    return await writeoffs.run_writeoffs(
        deps, billers, retry_seconds=deps.settings.billing_writeoff_retry_seconds)
