"""Payment tables: orders (current state), their append-only event log, refunds, and the
merchant notifications with every delivery attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, validates

from fulema.core.db import Base, MoneyType, UTCDateTime
from fulema.core.money import Money
from fulema.core.vault import Encrypted, blind_index


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    app_id: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    out_trade_no: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Money] = mapped_column(MoneyType())
    subject: Mapped[str] = mapped_column(String(128))
    way_code: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    # The merchant's id at the channel when the order was created (its ACTIVE registration,
    # docs/onboarding.md): the order, its queries, closes and refunds go in the channel's
    # partner form under it; None: the direct form under the platform's own merchant id.
    channel_sub_merchant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(24))
    # The channel's payer id (openid, Alipay user id): sealed at rest (core/vault.py), returned
    # to the merchant that owns the order; searched through payer_id_hash (HMAC-SM3).
    payer_id: Mapped[str | None] = mapped_column(Encrypted("payer_id", 128), nullable=True)
    payer_id_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payer_code_masked: Mapped[str | None] = mapped_column(String(32), nullable=True)
    notify_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    attach: Mapped[str | None] = mapped_column(String(512), nullable=True)
    client_ip: Mapped[str] = mapped_column(String(64))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    h5_url: Mapped[str | None] = mapped_column(Text, nullable=True)  # signed wap.pay URLs are long
    pay_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    failure_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(256), nullable=True)
    refunded_amount: Mapped[Money] = mapped_column(MoneyType())
    # Marketing (docs/marketing.md): the cash the channel is asked for, the discount, and its
    # lines [{kind, funder, amount, ref}]. NULL on orders from before discounts existed.
    payable_amount: Mapped[Money | None] = mapped_column(MoneyType(), nullable=True)
    discount_amount: Mapped[Money | None] = mapped_column(MoneyType(), nullable=True)
    discounts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    refund_pending_amount: Mapped[Money] = mapped_column(MoneyType())
    expire_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_query_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("merchant_id", "out_trade_no", name="uq_orders_merchant_out_trade_no"),
        Index("ix_orders_status_next_query", "status", "next_query_at"),
        Index("ix_orders_status_expire", "status", "expire_at"),
        Index("ix_orders_payer_id_hash", "payer_id_hash"),
        # reconciliation reads a channel's day of payments (payments.exports)
        Index("ix_orders_channel_paid_at", "channel", "paid_at"),
    )

    @validates("payer_id")
    def _index_payer(self, _key: str, payer_id: str | None) -> str | None:
        """ORM assignments keep the hash in step; the Core insert passes `payer_id_hash`."""
        self.payer_id_hash = payer_index(payer_id)
        return payer_id

    @property
    def payable(self) -> Money:
        """What the channel charges: the amount less any discount."""
        return self.payable_amount if self.payable_amount is not None else self.amount


def payer_index(payer_id: str | None) -> str | None:
    """The blind index of a payer id: what a search by payer compares (never the id itself)."""
    return None if payer_id is None else blind_index("payer_id", payer_id)


class OrderEvent(Base):
    """Append-only: what happened to an order, in order. Never updated or deleted."""

    __tablename__ = "order_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), ForeignKey("orders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), ForeignKey("orders.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    out_refund_no: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Money] = mapped_column(MoneyType())
    reason: Mapped[str] = mapped_column(String(128))
    # The refund's split (docs/marketing.md): cash back through the channel, and each
    # discount's share back to its funder. NULL on refunds from before discounts existed.
    cash_amount: Mapped[Money | None] = mapped_column(MoneyType(), nullable=True)
    discounts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    channel_refund_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(256), nullable=True)
    notify_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    next_query_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("merchant_id", "out_refund_no", name="uq_refunds_merchant_out_refund_no"),
        Index("ix_refunds_status_next_query", "status", "next_query_at"),
        # reconciliation reads a channel's day of refunds (payments.exports)
        Index("ix_refunds_channel_succeeded_at", "channel", "succeeded_at"),
    )


class Notification(Base):
    """One merchant notification (one per outbox event), retried until acknowledged."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    app_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(512))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # PENDING | DELIVERED | FAILED
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    notification_id: Mapped[str] = mapped_column(String(40), ForeignKey("notifications.id"),
                                                 index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(String(256), nullable=True)
    error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
