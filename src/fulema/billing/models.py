"""Billing tables: billers, bill payments, charity projects and donations.

One payment at a time holds a bill: `bill_payments.live_key` ("biller:bill") is set while the
payment holds the bill and NULL once it does not (closed unpaid, refunded), under a plain unique
constraint (many NULLs are allowed everywhere; no partial index, which MySQL lacks).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, MoneyType, UTCDateTime
from fulema.core.money import Money


class Biller(Base):
    __tablename__ = "billers"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))  # water, electricity, gas, telecom, ...
    merchant_id: Mapped[str] = mapped_column(String(40))  # the biller is a merchant: settled so
    adapter: Mapped[str] = mapped_column(String(32))  # "sandbox", or a real adapter's name
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BillPayment(Base):
    __tablename__ = "bill_payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    biller_code: Mapped[str] = mapped_column(String(32))
    bill_id: Mapped[str] = mapped_column(String(64))
    account_no: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Money] = mapped_column(MoneyType())
    status: Mapped[str] = mapped_column(String(16))
    live_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    writeoff_attempts: Mapped[int] = mapped_column(Integer)
    next_writeoff_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    writeoff_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    receipt_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    refund_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    written_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("live_key", name="uq_bill_payments_live_key"),
        UniqueConstraint("order_id", name="uq_bill_payments_order"),
        Index("ix_bill_payments_due", "status", "next_writeoff_at"),
        Index("ix_bill_payments_account", "biller_code", "account_no", "created_at"),
    )


class CharityProject(Base):
    __tablename__ = "charity_projects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    organisation: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[str] = mapped_column(String(40))  # the organisation's collecting account
    target_amount: Mapped[Money] = mapped_column(MoneyType())
    raised_amount: Mapped[Money] = mapped_column(MoneyType())
    donations: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))  # OPEN | CLOSED
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Donation(Base):
    __tablename__ = "charity_donations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Money] = mapped_column(MoneyType())
    donor_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    anonymous: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # CREATED | PAID | CLOSED
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    certificate_no: Mapped[str | None] = mapped_column(String(32), nullable=True)
    paid_on: Mapped[date | None] = mapped_column(Date(), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("order_id", name="uq_charity_donations_order"),
        UniqueConstraint("certificate_no", name="uq_charity_donations_certificate"),
        Index("ix_charity_donations_project", "project_id", "status", "paid_at"),
    )
