"""Points tables. An account's balance is always the sum of its lots' remaining points and
the sum of its movements; every change writes the lots, the balance and one movement (with
the balance after it) in one transaction under the account's row lock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, UTCDateTime


class PointAccount(Base):
    __tablename__ = "points_accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payer_key: Mapped[str] = mapped_column(String(160))  # "<channel>:<payer id>" or "cust:<id>"
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    balance: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("payer_key", name="uq_points_accounts_payer_key"),
        Index("ix_points_accounts_customer", "customer_id"),
    )


class PointLot(Base):
    """Points that arrived together and expire together; consumed first-to-expire."""

    __tablename__ = "points_lots"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # EARN | ADJUST | RETURN
    ref: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_points_lots_account_expires", "account_id", "expires_at"),
        Index("ix_points_lots_expires", "expires_at", "remaining"),
    )


class PointMovement(Base):
    """Append-only statement line: what changed, why, and the balance after it."""

    __tablename__ = "points_movements"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)  # signed
    balance_after: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_points_movements_account_at", "account_id", "at"),)


class PointHold(Base):
    """Points an order took from its lots when it was created: CONSUMED when it is paid,
    RELEASED (back to the same lots) when it fails or closes."""

    __tablename__ = "points_holds"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    points: Mapped[int] = mapped_column(BigInteger)
    returned: Mapped[int] = mapped_column(BigInteger)  # given back by refunds
    lots: Mapped[list[list[Any]]] = mapped_column(JSON)  # [[lot_id, points], ...]
    state: Mapped[str] = mapped_column(String(16))  # HELD | CONSUMED | RELEASED
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointEarning(Base):
    """Points one payment earned (one row per order: earning twice is a key violation), and
    how many refunds have clawed back."""

    __tablename__ = "points_earnings"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)  # the order's amount in fen
    points: Mapped[int] = mapped_column(BigInteger)
    clawed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
