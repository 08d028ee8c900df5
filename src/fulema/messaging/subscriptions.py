"""Per-merchant subscriptions: which events go to which delivery channels, and the recipients
of SMS (a phone, sealed) and app push (a registration id).

A merchant with no row for an (event, channel) gets the default, which is today's behaviour:
the speaker announces payments, the payment core's webhook notifies payments and refunds,
operators see risk alerts as notices; SMS and push are off until a merchant switches them on
and names where to send. Every change is written to the audit trail (the phone masked).

What each switch governs: `sms` and `push` are sent by the message center
(`messaging.fanout`); `speaker` is honoured by the speaker consumer; `notice` by the notices
consumer (`messaging.notices`); `webhook` by the payment core, which asks `webhook_enabled`
through the port the composition root gives it (payments never imports messaging; see
docs/messaging.md).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.masking import mask_identifier, mask_phone
from fulema.merchants import service as merchants
from fulema.messaging.models import MessageSettings, MessageSubscription

EVENTS = ("payment.succeeded", "refund.succeeded", "risk.alert", "settlement.paid")
CHANNELS = ("speaker", "webhook", "sms", "push", "notice")
DEFAULTS: frozenset[tuple[str, str]] = frozenset({
    ("payment.succeeded", "speaker"), ("payment.succeeded", "webhook"),
    ("refund.succeeded", "webhook"), ("risk.alert", "notice"), ("settlement.paid", "notice")})
PHONE = re.compile(r"^1[3-9]\d{9}$")
PUSH_TARGET = re.compile(r"^[A-Za-z0-9_\-:.]{4,128}$")


@dataclass(frozen=True)
class Switch:
    event: str
    channel: str
    enabled: bool


@dataclass(frozen=True)
class SubscriptionsView:
    merchant_id: str
    sms_phone: str | None  # masked: 138****0000
    push_target: str | None  # masked
    subscriptions: list[Switch]  # every (event, channel), as it applies now
    updated_at: datetime | None
    updated_by: str | None


def check_switch(event: str, channel: str) -> None:
    if event not in EVENTS:
        raise FulemaError(ErrorCode.UNKNOWN_MESSAGE_EVENT,
                          f"event must be one of {', '.join(EVENTS)}")
    if channel not in CHANNELS:
        raise FulemaError(ErrorCode.UNKNOWN_MESSAGE_CHANNEL,
                          f"channel must be one of {', '.join(CHANNELS)}")


def check_phone(phone: str) -> None:
    if not PHONE.match(phone):
        raise FulemaError(ErrorCode.INVALID_PHONE,
                          "sms_phone must be a mainland mobile number: 11 digits starting 13-19")


async def enabled_channels(s: AsyncSession, merchant_ids: set[str], event: str
                           ) -> dict[str, set[str]]:
    """Per merchant, the channels that get `event` (defaults applied)."""
    found: dict[str, set[str]] = {m: {c for e, c in DEFAULTS if e == event} for m in merchant_ids}
    if not merchant_ids:
        return found
    rows = await s.scalars(select(MessageSubscription).where(
        MessageSubscription.merchant_id.in_(sorted(merchant_ids)),
        MessageSubscription.event == event))
    for row in rows:
        if row.enabled:
            found[row.merchant_id].add(row.channel)
        else:
            found[row.merchant_id].discard(row.channel)
    return found


async def webhook_enabled(session: AsyncSession, *, merchant_id: str, topic: str) -> bool:
    """The payment core's `WebhookSwitch` (payments/deps.py), plugged in by the composition
    root: does the merchant want its notify_url called for this event? Read in the payment's
    own transaction; an event with no webhook switch here is notified (today's behaviour)."""
    if topic not in EVENTS:
        return True
    return "webhook" in (await enabled_channels(session, {merchant_id}, topic))[merchant_id]


async def recipients(s: AsyncSession, merchant_ids: set[str]) -> dict[str, MessageSettings]:
    if not merchant_ids:
        return {}
    rows = await s.scalars(select(MessageSettings).where(
        MessageSettings.merchant_id.in_(sorted(merchant_ids))))
    return {r.merchant_id: r for r in rows}


async def _view(s: AsyncSession, merchant_id: str) -> SubscriptionsView:
    on: dict[str, set[str]] = defaultdict(set)
    for event in EVENTS:
        on[event] = (await enabled_channels(s, {merchant_id}, event))[merchant_id]
    row = await s.get(MessageSettings, merchant_id)
    return SubscriptionsView(
        merchant_id=merchant_id,
        sms_phone=mask_phone(row.sms_phone) if row and row.sms_phone else None,
        push_target=mask_identifier(row.push_target) if row and row.push_target else None,
        subscriptions=[Switch(event=e, channel=c, enabled=c in on[e])
                       for e in EVENTS for c in CHANNELS],
        updated_at=row.updated_at if row else None, updated_by=row.updated_by if row else None)


async def get_subscriptions(db: Database, *, merchant_id: str) -> SubscriptionsView:
    async with db.transaction() as s:
        return await _view(s, merchant_id)


_KEEP = object()


async def update_subscriptions(db: Database, *, merchant_id: str, switches: list[Switch],
                               sms_phone: str | object | None = _KEEP,
                               push_target: str | object | None = _KEEP,
                               actor: str) -> SubscriptionsView:
    """Apply the switches and recipients given (others unchanged), in one audited transaction.
    Refuses, changing nothing: UNKNOWN_MESSAGE_EVENT / UNKNOWN_MESSAGE_CHANNEL, INVALID_PHONE,
    VALIDATION_ERROR (a malformed push target), MESSAGE_RECIPIENT_MISSING (sms or push on
    with nowhere to send), MERCHANT_NOT_FOUND."""
    for sw in switches:
        check_switch(sw.event, sw.channel)
    if isinstance(sms_phone, str):
        check_phone(sms_phone)
    if isinstance(push_target, str) and not PUSH_TARGET.match(push_target):
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "push_target: 4-128 letters, digits or _-:.")
    await merchants.get_merchant(db, merchant_id=merchant_id)  # MERCHANT_NOT_FOUND
    now = clock.now()
    async with db.transaction() as s:
        row = await s.get(MessageSettings, merchant_id, with_for_update=True)
        if row is None:
            row = MessageSettings(merchant_id=merchant_id, sms_phone=None, push_target=None,
                                  updated_at=now, updated_by=actor)
            s.add(row)
        if sms_phone is not _KEEP:
            row.sms_phone = sms_phone if isinstance(sms_phone, str) else None
        if push_target is not _KEEP:
            row.push_target = push_target if isinstance(push_target, str) else None
        row.updated_at, row.updated_by = now, actor
        for sw in switches:
            sub = await s.get(MessageSubscription, (merchant_id, sw.event, sw.channel))
            if sub is None:
                s.add(MessageSubscription(merchant_id=merchant_id, event=sw.event,
                                          channel=sw.channel, enabled=sw.enabled,
                                          updated_at=now))
            else:
                sub.enabled, sub.updated_at = sw.enabled, now
        await s.flush()
        view = await _view(s, merchant_id)
        for sw in view.subscriptions:
            if sw.enabled and sw.channel == "sms" and not row.sms_phone:
                raise FulemaError(ErrorCode.MESSAGE_RECIPIENT_MISSING,
                                  f"{sw.event} on sms needs sms_phone")
            if sw.enabled and sw.channel == "push" and not row.push_target:
                raise FulemaError(ErrorCode.MESSAGE_RECIPIENT_MISSING,
                                  f"{sw.event} on push needs push_target")
        await audit.record(s, actor=actor, action="message_subscriptions.update",
                           target_type="merchant", target_id=merchant_id, detail={
                               "switches": [[sw.event, sw.channel, sw.enabled]
                                            for sw in switches],
                               "sms_phone": view.sms_phone, "push_target": view.push_target})
    return view
