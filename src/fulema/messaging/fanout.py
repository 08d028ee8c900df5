"""SMS and push: the consumer that fans events out by subscription, the sending loop with
retries and backoff, and the operator's search and resend.

- Consumer `messaging.fanout` (payment.succeeded, refund.succeeded, settlement.paid,
  risk.alert naming a merchant): per event, one `message_deliveries` row per subscribed
  channel (sms, push) that has a recipient, QUEUED. Exactly once: an event receipt (written
  for every event, sent or not) and the unique (event, channel), in one transaction; a round
  of events is recorded in one commit (batch handler).
- `deliver_due`: claims each due row with a conditional UPDATE of `claimed_until` (never SKIP
  LOCKED), sends it through its channel's `Deliverer`, and records SENT, or FAILED with the next
  attempt after `message_retry_seconds[attempts-1]`, or DEAD when the schedule is spent or the
  provider refused the message for good.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select, update

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import Event, fresh_events
from fulema.core.ids import new_id
from fulema.core.masking import mask_identifier, mask_phone
from fulema.messaging import subscriptions, templates
from fulema.messaging.delivery import Deliverer, Outcome, OutgoingMessage
from fulema.messaging.models import MessageDelivery
from fulema.messaging.schemas import DeliveryOut

log = structlog.get_logger(__name__)

CONSUMER = "messaging.fanout"
TOPICS = ("payment.succeeded", "refund.succeeded", "risk.alert", "settlement.paid")
SENT_BY_US = ("sms", "push")
DUE = ("QUEUED", "FAILED")
STATUSES = ("QUEUED", "SENT", "FAILED", "DEAD")
CLAIM_SECONDS = 60
CONCURRENCY = 8


def _fields(event: Event) -> dict[str, Any]:
    p = event.payload
    keys = ("amount", "order_id", "channel", "kind", "severity", "summary")
    fields: dict[str, Any] = {k: p[k] for k in keys if k in p}
    fields.setdefault("order_id", "")
    for key in ("kind", "severity", "summary"):
        fields[key] = str(fields.get(key, ""))[:200]
    return fields


async def fan_out(db: Database, events: list[Event]) -> int:
    """Record the SMS and push messages of a round of events in one transaction."""
    wanted = [e for e in events if e.topic in TOPICS
              and isinstance(e.payload.get("merchant_id"), str) and e.payload["merchant_id"]]
    if not wanted:
        return 0
    now = clock.now()
    made = 0
    async with db.transaction() as s:
        # Every event leaves its receipt, whether or not anything is sent for it: redelivered
        # after the merchant subscribes (an operator's replay, a crash before the position
        # moved), an event that sent nothing then sends nothing.
        wanted = await fresh_events(s, CONSUMER, wanted)
        merchant_ids = {e.payload["merchant_id"] for e in wanted}
        on = {topic: await subscriptions.enabled_channels(s, merchant_ids, topic)
              for topic in {e.topic for e in wanted}}
        to = await subscriptions.recipients(s, merchant_ids)
        for event in wanted:
            merchant_id = event.payload["merchant_id"]
            settings_row = to.get(merchant_id)
            if settings_row is None:
                continue
            channels = [(c, settings_row.sms_phone if c == "sms" else settings_row.push_target)
                        for c in SENT_BY_US if c in on[event.topic][merchant_id]]
            for channel, recipient in channels:
                if not recipient:
                    continue
                try:
                    text = templates.render(event.topic, channel, _fields(event))
                except Exception:  # a payload the template cannot read: log, send nothing
                    log.warning("fanout.unrenderable", event_id=event.id, channel=channel)
                    continue
                masked = (mask_phone(recipient) if channel == "sms"
                          else mask_identifier(recipient)) or "****"
                s.add(MessageDelivery(
                    id=new_id("mdl"), event_id=event.id, event=event.topic,
                    merchant_id=merchant_id, channel=channel, recipient=recipient,
                    recipient_masked=masked, text=text[:512], status="QUEUED", attempts=0,
                    next_attempt_at=now, claimed_until=None, last_error=None,
                    provider_ref=None, sent_at=None, created_at=now))
                made += 1
    return made


async def deliver_due(db: Database, settings: Settings, deliverers: dict[str, Deliverer], *,
                      limit: int = 100) -> int:
    """Send every due message once; answers how many were sent."""
    now = clock.now()
    async with db.transaction() as s:
        due = list((await s.scalars(select(MessageDelivery.id).where(
            MessageDelivery.status.in_(DUE), MessageDelivery.next_attempt_at <= now,
            or_(MessageDelivery.claimed_until.is_(None), MessageDelivery.claimed_until < now))
            .order_by(MessageDelivery.next_attempt_at).limit(limit))).all())
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(delivery_id: str) -> int:
        async with gate:
            return await _deliver_one(db, settings, deliverers, delivery_id)

    return sum(await asyncio.gather(*(one(d) for d in due)))


async def _deliver_one(db: Database, settings: Settings, deliverers: dict[str, Deliverer],
                       delivery_id: str) -> int:
    now = clock.now()
    async with db.transaction() as s:
        claimed = await s.execute(update(MessageDelivery).where(
            MessageDelivery.id == delivery_id, MessageDelivery.status.in_(DUE),
            or_(MessageDelivery.claimed_until.is_(None), MessageDelivery.claimed_until < now))
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS)))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return 0
        d = await s.get(MessageDelivery, delivery_id)
        assert d is not None
        message = OutgoingMessage(delivery_id=d.id, channel=d.channel, recipient=d.recipient,
                                  recipient_masked=d.recipient_masked, text=d.text)
    deliverer = deliverers.get(message.channel)
    if deliverer is None:
        outcome = Outcome(ok=False, error=f"no provider for {message.channel}", permanent=True)
    else:
        outcome = await deliverer.send(message)
    schedule = settings.message_retry_seconds
    async with db.transaction() as s:
        d = await s.get(MessageDelivery, delivery_id, with_for_update=True)
        assert d is not None
        d.attempts += 1
        d.claimed_until = None
        if outcome.ok:
            d.status, d.sent_at, d.next_attempt_at = "SENT", clock.now(), None
            d.provider_ref, d.last_error = outcome.provider_ref, None
        elif outcome.permanent or d.attempts > len(schedule):
            d.status, d.next_attempt_at, d.last_error = "DEAD", None, (outcome.error or "")[:256]
        else:
            d.status, d.last_error = "FAILED", (outcome.error or "")[:256]
            d.next_attempt_at = clock.now() + timedelta(seconds=schedule[d.attempts - 1])
        status, attempts = d.status, d.attempts
    if status == "DEAD":
        log.warning("message.dead", delivery_id=delivery_id, channel=message.channel,
                    recipient=message.recipient_masked, attempts=attempts)
    return int(outcome.ok)


# --- the operator's view: search and resend ----------------------------------------------


def delivery_view(d: MessageDelivery) -> DeliveryOut:
    return DeliveryOut(delivery_id=d.id, event_id=d.event_id, event=d.event,
                       merchant_id=d.merchant_id, channel=d.channel,
                       recipient=d.recipient_masked, text=d.text, status=d.status,
                       attempts=d.attempts, next_attempt_at=d.next_attempt_at,
                       last_error=d.last_error, provider_ref=d.provider_ref,
                       sent_at=d.sent_at, created_at=d.created_at)


async def search(db: Database, *, merchant_id: str | None = None, channel: str | None = None,
                 status: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, event_id: str | None = None, limit: int = 50,
                 starting_after: str | None = None) -> list[DeliveryOut]:
    """Newest first (ids are time-ordered); `starting_after` is the previous page's last id."""
    q = select(MessageDelivery).order_by(MessageDelivery.id.desc()).limit(limit)
    for column, value in ((MessageDelivery.merchant_id, merchant_id),
                          (MessageDelivery.channel, channel), (MessageDelivery.status, status),
                          (MessageDelivery.event_id, event_id)):
        if value:
            q = q.where(column == value)
    if since is not None:
        q = q.where(MessageDelivery.created_at >= since)
    if until is not None:
        q = q.where(MessageDelivery.created_at < until)
    if starting_after:
        q = q.where(MessageDelivery.id < starting_after)
    async with db.transaction() as s:
        return [delivery_view(d) for d in await s.scalars(q)]


async def resend(db: Database, *, delivery_id: str, operator: str) -> DeliveryOut:
    """Queue a message again now, whatever its state (a DEAD one gets one more attempt; the
    provider drops an id it has already sent). Written to the audit trail."""
    async with db.transaction() as s:
        d = (await s.scalars(select(MessageDelivery).where(MessageDelivery.id == delivery_id)
                             .with_for_update())).first()
        if d is None:
            raise FulemaError(ErrorCode.MESSAGE_DELIVERY_NOT_FOUND, f"no delivery {delivery_id}")
        before = d.status
        d.status, d.next_attempt_at, d.claimed_until = "QUEUED", clock.now(), None
        await audit.record(s, actor=operator, action="message_delivery.resend",
                           target_type="message_delivery", target_id=d.id,
                           detail={"status_before": before, "channel": d.channel,
                                   "recipient": d.recipient_masked})
        return delivery_view(d)
