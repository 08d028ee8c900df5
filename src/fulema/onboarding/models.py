"""Onboarding tables: one registration per merchant x channel x version, and the fields the
channels need that the merchant profile does not hold. Only `onboarding.service` writes them.

The registration row holds no personal data: the profile sent is re-read from merchants when
it is sent, and only its SHA-256 fingerprint is kept, to tell whether a change of the profile
needs a new application.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, UTCDateTime


class Registration(Base):
    __tablename__ = "onboarding_registrations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # also our application no.
    merchant_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, 3... per merchant x channel
    state: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the profile it carries
    channel_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sub_merchant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(512), nullable=True)  # the channel's words
    action_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    missing: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("merchant_id", "channel", "version",
                         name="uq_onboarding_registrations_version"),
        Index("ix_onboarding_registrations_due", "state", "next_check_at"),
        Index("ix_onboarding_registrations_sub", "channel", "sub_merchant_id"),
    )


class Supplement(Base):
    """What the channels need beyond the merchant's profile (set by an operator)."""

    __tablename__ = "onboarding_supplements"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    contact_email: Mapped[str | None] = mapped_column(String(128), nullable=True)
    service_phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    settlement_bank: Mapped[str | None] = mapped_column(String(64), nullable=True)
    address_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    # The merchant's own WeChat app (official account, mini-program or mobile app) bound to its
    # sub_mchid: sent as sub_appid on the orders its own app makes (not part of the profile
    # registered, so setting it re-registers nothing).
    wechat_sub_appid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
