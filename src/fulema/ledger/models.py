"""Ledger tables: journal entries, their postings, and what the ledger remembers of each payment
to give back its fee in proportion on refunds.

Entries and postings are written once and never updated, with one exception that is not money:
`cleared_by` on a merchant-payable posting, set once (NULL -> a settlement batch id) when a
settlement batch takes it (open-item clearing, as a bank's books do it). Amounts and accounts
never change; a correction is a reversing entry.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, UTCDateTime


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # What made it, unique: the event id for postings of an event (a redelivered event posts
    # once), "settlement:<batch>" / "payout:<id>" / ... for the settlement's own entries.
    source_key: Mapped[str] = mapped_column(String(96))
    kind: Mapped[str] = mapped_column(String(32))
    business_ref: Mapped[str] = mapped_column(String(64))  # order, refund, batch, payout id
    merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The merchant's own number (out_trade_no / out_refund_no) and the channel, for statements.
    external_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    trade_date: Mapped[date] = mapped_column(Date())
    reverses: Mapped[str | None] = mapped_column(String(40), nullable=True)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("uq_ledger_entries_source_key", "source_key", unique=True),
        Index("ix_ledger_entries_business_ref", "business_ref"),
        Index("ix_ledger_entries_merchant_date", "merchant_id", "trade_date"),
    )


class LedgerPosting(Base):
    __tablename__ = "ledger_postings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(40))
    account: Mapped[str] = mapped_column(String(96))
    kind: Mapped[str] = mapped_column(String(24))
    amount: Mapped[int] = mapped_column(BigInteger)  # fen; debit > 0, credit < 0
    currency: Mapped[str] = mapped_column(String(3))
    trade_date: Mapped[date] = mapped_column(Date())
    same_day: Mapped[bool] = mapped_column(Boolean, default=False)  # settles T+0
    cleared_by: Mapped[str | None] = mapped_column(String(40), nullable=True)

    __table_args__ = (
        Index("ix_ledger_postings_account_date", "account", "trade_date"),
        Index("ix_ledger_postings_open", "account", "cleared_by", "trade_date"),
        Index("ix_ledger_postings_entry", "entry_id"),
    )


class LedgerPayment(Base):
    """A posted payment's cash and fee, and what its refunds have taken back so far."""

    __tablename__ = "ledger_payments"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))
    cash: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    cash_refunded: Mapped[int] = mapped_column(BigInteger)
    fee_refunded: Mapped[int] = mapped_column(BigInteger)
    same_day: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
