"""Payment tables: orders (current state), their append-only event log, refunds, and the
merchant notifications with every delivery attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, MoneyType, UTCDateTime
from fulema.core.money import Money


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
    status: Mapped[str] = mapped_column(String(24))
    payer_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
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
    )

    @property
    def payable(self) -> Money:
        """What the channel charges: the amount less any discount."""
        return self.payable_amount if self.payable_amount is not None else self.amount


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
