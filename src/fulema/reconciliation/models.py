"""Reconciliation tables: one run per imported statement, its totals per merchant, scenario
and result (what the reports sum), and the discrepancies operators work through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, MoneyType, UTCDateTime
from fulema.core.money import Money


class ReconRun(Base):
    """One statement file reconciled. The file's SHA-256 is unique per channel and day, so the
    same file imported twice is recognised (STATEMENT_ALREADY_IMPORTED); per day, because two
    days without a transaction have byte-identical statements."""

    __tablename__ = "recon_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    day: Mapped[str] = mapped_column(String(10))  # the statement's date, Asia/Shanghai
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # download | upload
    lines: Mapped[int] = mapped_column(Integer)
    ours: Mapped[int] = mapped_column(Integer)
    matched: Mapped[int] = mapped_column(Integer)
    discrepancies: Mapped[int] = mapped_column(Integer)
    auto_resolved: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # per result: count, amounts
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("channel", "day", "sha256", name="uq_recon_runs_channel_day_sha256"),
        Index("ix_recon_runs_channel_day", "channel", "day"),
    )


class ReconTotal(Base):
    """Counts and amounts of one run per merchant, way code, record kind and result."""

    __tablename__ = "recon_totals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40))
    merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    way_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(24))
    count: Mapped[int] = mapped_column(Integer)
    our_amount: Mapped[int] = mapped_column(BigInteger)  # fen
    channel_amount: Mapped[int] = mapped_column(BigInteger)  # fen

    __table_args__ = (Index("ix_recon_totals_run_merchant", "run_id", "merchant_id"),)


class Discrepancy(Base):
    """A difference between a statement and our books, worked OPEN -> INVESTIGATING ->
    RESOLVED with an action (see `domain`)."""

    __tablename__ = "recon_discrepancies"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))
    day: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(24))  # domain.Result, never MATCHED
    record_kind: Mapped[str] = mapped_column(String(16))  # PAY | REFUND | REVERSAL
    ref: Mapped[str] = mapped_column(String(64))  # our order or refund id as the channel has it
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    way_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    txn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    our_amount: Mapped[Money | None] = mapped_column(MoneyType(), nullable=True)
    channel_amount: Mapped[Money | None] = mapped_column(MoneyType(), nullable=True)
    our_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    channel_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    action: Mapped[str | None] = mapped_column(String(24), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_recon_discrepancies_ref", "channel", "ref", "status"),
        Index("ix_recon_discrepancies_status_day", "status", "day"),
        Index("ix_recon_discrepancies_run", "run_id"),
    )
