"""The message center's event consumers (listed in `fulema.app.declared_consumers`).

- `messaging.speaker`: payment.succeeded -> a signed announcement per speaker of the store.
  Idempotent by event id (receipt) and by (event, speaker) (unique row); DEAD_LETTER: one
  store's broken data must not silence every other store. Starts NOW: history is not spoken.
- `messaging.notices`: risk.alert, settlement.paid -> an in-portal notice, once per event,
  unless the merchant switched notices off.
- `messaging.fanout`: payment.succeeded, refund.succeeded, settlement.paid, risk.alert -> the
  SMS and push messages the merchant subscribed to, once per event (messaging/fanout.py).
  Starts NOW.
"""

from __future__ import annotations

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, Start
from fulema.messaging import fanout, notices, speakers


def consumers(settings: Settings) -> list[Consumer]:
    async def announce(db: Database, event: Event) -> None:
        await speakers.announce_payment(db, event, settings=settings)

    async def announce_all(db: Database, events: list[Event]) -> None:
        await speakers.announce_payments(db, events, settings=settings)

    async def fan_out_one(db: Database, event: Event) -> None:
        await fanout.fan_out(db, [event])

    async def fan_out_all(db: Database, events: list[Event]) -> None:
        await fanout.fan_out(db, events)

    return [
        Consumer(name=speakers.CONSUMER, handler=announce, topics=("payment.succeeded",),
                 on_poison=Poison.DEAD_LETTER, max_attempts=5, start=Start.NOW, urgent=True,
                 batch_handler=announce_all),  # a round's announcements in one commit
        Consumer(name=notices.CONSUMER, handler=notices.notice_from_event,
                 topics=notices.TOPICS, on_poison=Poison.DEAD_LETTER, max_attempts=5,
                 start=Start.NOW, urgent=True),
        Consumer(name=fanout.CONSUMER, handler=fan_out_one, topics=fanout.TOPICS,
                 on_poison=Poison.DEAD_LETTER, max_attempts=5, start=Start.NOW, urgent=True,
                 batch_handler=fan_out_all),  # a round's messages in one commit
    ]
