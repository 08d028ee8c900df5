"""Message center tables: the speaker delivery log, operators' in-portal notices, merchants'
subscriptions and recipients, and the SMS/push delivery log.

`speaker_messages` is both the outbox of the speakers and their delivery log: one row per
announcement and speaker, unique per (event, speaker), so an event delivered twice announces
once; its status, attempts and times are what an operator searches and resends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, MoneyType, UTCDateTime
from fulema.core.money import Money
from fulema.core.vault import Encrypted


class SpeakerMessage(Base):
    __tablename__ = "speaker_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the message id on the wire
    event_id: Mapped[str] = mapped_column(String(40))
    speaker_id: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[str] = mapped_column(String(40))
    store_id: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Money] = mapped_column(MoneyType())
    channel: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(String(128))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # the signed message, sent as is each time
    # PENDING (not sent yet) -> SENT (awaiting the ack) -> ACKED; LOGGED (no broker: the feed
    # page showed it); EXPIRED (no ack within the catch-up window).
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # End of the catch-up window: unacknowledged by then, the message is EXPIRED (an operator's
    # resend opens a new window).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("event_id", "speaker_id", name="uq_speaker_messages_event_speaker"),
        Index("ix_speaker_messages_due", "status", "next_attempt_at"),
        Index("ix_speaker_messages_speaker", "speaker_id", "created_at"),
        Index("ix_speaker_messages_order", "order_id"),
    )


class Notice(Base):
    """An in-portal notice (risk alerts, settlement payouts), shown until read: the operators'
    always, and the merchant's own when it names one."""

    __tablename__ = "message_notices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    summary: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    read_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        UniqueConstraint("event_id", name="uq_message_notices_event"),
        Index("ix_message_notices_read", "read_at", "created_at"),
        # the merchant's own list (newest first, by cursor) and its unread count
        Index("ix_message_notices_merchant", "merchant_id", "id"),
        Index("ix_message_notices_merchant_unread", "merchant_id", "read_at", "id"),
    )


class MessageSettings(Base):
    """A merchant's recipients for SMS and app push. The phone is personal data: stored sealed
    (core.vault, purpose `phone`) and shown masked; the push target is the registration id the
    merchant's app got from the push provider."""

    __tablename__ = "message_settings"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sms_phone: Mapped[str | None] = mapped_column(Encrypted("phone", 11), nullable=True)
    push_target: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(64))


class MessageSubscription(Base):
    """One switch: does this merchant get this event on this delivery channel. No row: the
    default (messaging.subscriptions.DEFAULTS), which keeps today's behaviour."""

    __tablename__ = "message_subscriptions"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MessageDelivery(Base):
    """The delivery log of SMS and app push: one row per (event, channel), unique, so an event
    delivered twice sends once. QUEUED -> SENT; a failed attempt -> FAILED (due again after the
    backoff) -> ... -> DEAD when the schedule is spent. Claimed for sending with a conditional
    UPDATE of `claimed_until` (never SKIP LOCKED)."""

    __tablename__ = "message_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(Encrypted("phone", 128))  # phone or push target
    recipient_masked: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    provider_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("event_id", "channel", name="uq_message_deliveries_event_channel"),
        Index("ix_message_deliveries_due", "status", "next_attempt_at"),
        Index("ix_message_deliveries_merchant", "merchant_id", "created_at"),
    )
