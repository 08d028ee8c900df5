"""Settlement tables: the business-day calendar, merchants' cycles, runs, batches, payouts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, UTCDateTime


class CalendarDay(Base):
    """An exception to Monday-Friday: a holiday on a weekday, a make-up working weekend day."""

    __tablename__ = "settlement_calendar"

    day: Mapped[date] = mapped_column(Date(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # HOLIDAY | WORKDAY
    note: Mapped[str] = mapped_column(String(64))
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SettlementProfile(Base):
    """A merchant's own cycle (merchants without one use FULEMA_SETTLEMENT_DEFAULT_CYCLE)."""

    __tablename__ = "settlement_profiles"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    cycle: Mapped[str] = mapped_column(String(8))
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SettlementRun(Base):
    __tablename__ = "settlement_runs"

    settle_date: Mapped[date] = mapped_column(Date(), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # RUNNING | DONE
    batches: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SettlementBatch(Base):
    __tablename__ = "settlement_batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    settle_date: Mapped[date] = mapped_column(Date())
    cycle: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))  # SETTLED | HELD | CARRIED
    through_date: Mapped[date | None] = mapped_column(Date(), nullable=True)
    same_day_through: Mapped[date | None] = mapped_column(Date(), nullable=True)
    gross: Mapped[int] = mapped_column(BigInteger)
    refunds: Mapped[int] = mapped_column(BigInteger)
    fees: Mapped[int] = mapped_column(BigInteger)
    discounts: Mapped[int] = mapped_column(BigInteger)
    other: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    hold_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("uq_settlement_batches_merchant_date", "merchant_id", "settle_date", unique=True),
        Index("ix_settlement_batches_date", "settle_date"),
    )


class Payout(Base):
    __tablename__ = "settlement_payouts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(40))
    merchant_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(64))  # the current attempt's idempotency key
    account_masked: Mapped[str | None] = mapped_column(String(32), nullable=True)
    bank_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(128), nullable=True)
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("uq_settlement_payouts_batch", "batch_id", unique=True),
        Index("ix_settlement_payouts_due", "status", "next_try_at"),
    )
