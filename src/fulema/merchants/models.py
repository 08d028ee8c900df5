"""Merchant tables: merchants and their append-only audit log, stores, terminals, API
credentials, fee rates and QR plates. Only `merchants.service` writes them.

Uniqueness that must hold only among *active* rows (a device serial, a speaker id) uses a
nullable "active key" column with a plain unique constraint, set while active and NULL once
disabled: SQLite, PostgreSQL and MySQL all allow many NULLs under a unique constraint, so this
works everywhere without partial indexes (which MySQL-protocol databases lack).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, validates

from fulema.core.db import Base, UTCDateTime
from fulema.core.vault import Encrypted, blind_index


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    short_name: Mapped[str] = mapped_column(String(20))
    licence_no: Mapped[str] = mapped_column(String(18), unique=True)
    legal_person: Mapped[str] = mapped_column(String(32))
    # Sealed at rest (core/vault.py); answers mask them (fulema.core.masking).
    settlement_account: Mapped[str] = mapped_column(Encrypted("bank_account", 32))
    settlement_account_name: Mapped[str] = mapped_column(String(64))
    contact_name: Mapped[str] = mapped_column(String(32))
    contact_phone: Mapped[str] = mapped_column(Encrypted("phone", 11))
    # HMAC-SM3 of the phone under the vault's index key: what a search by phone compares.
    contact_phone_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mcc: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))
    reject_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    freeze_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # Set while settlement is held (risk, an investigation): payments go on, payouts wait.
    settlement_hold_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    version: Mapped[int] = mapped_column(Integer)  # number of audit events so far
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_merchants_status_id", "status", "id"),
                      Index("ix_merchants_contact_phone_hash", "contact_phone_hash"))

    @validates("contact_phone")
    def _index_phone(self, _key: str, phone: str) -> str:
        self.contact_phone_hash = blind_index("phone", phone)
        return phone


class MerchantEvent(Base):
    """Append-only audit log: who did what to a merchant, when, and why. Never updated."""

    __tablename__ = "merchant_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, 3... per merchant: the order of events
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    operator: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("merchant_id", "seq", name="uq_merchant_events_seq"),)


class Store(Base):
    __tablename__ = "merchant_stores"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_merchant_stores_merchant_id", "merchant_id"),)


class Terminal(Base):
    __tablename__ = "merchant_terminals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(ForeignKey("merchant_stores.id"))
    kind: Mapped[str] = mapped_column(String(16))
    serial_no: Mapped[str] = mapped_column(String(64))
    speaker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean)
    # "KIND:serial_no" / speaker_id while active, NULL once disabled (see module docstring)
    active_serial_key: Mapped[str | None] = mapped_column(String(96), nullable=True)
    active_speaker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("active_serial_key", name="uq_merchant_terminals_active_serial"),
        UniqueConstraint("active_speaker_id", name="uq_merchant_terminals_active_speaker"),
        Index("ix_merchant_terminals_store_id", "store_id"),
    )


class AppCredentialRow(Base):
    """A merchant app's API credential.

    The platform needs `secret` in the clear to verify HMAC request signatures and to sign
    notifications, so it is sealed (envelope encryption, core/vault.py), not hashed: opened
    when the row is read (the credential cache keeps the opened value in memory for a few
    seconds); returned to the operator only when created or rotated.
    """

    __tablename__ = "merchant_apps"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(64))
    secret: Mapped[str] = mapped_column(Encrypted("app_secret", 128))
    rsa_public_key_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    notify_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean)
    secret_rotated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_merchant_apps_merchant_id", "merchant_id"),)


class FeeRate(Base):
    """A merchant's rate on one channel, in basis points; absent means the channel default."""

    __tablename__ = "merchant_fee_rates"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    bps: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Plate(Base):
    """A printed static aggregated QR code (收款码牌) bound to one store."""

    __tablename__ = "qr_plates"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[str] = mapped_column(ForeignKey("merchant_stores.id"))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_qr_plates_merchant_id", "merchant_id"),)


class MerchantUser(Base):
    """A person who logs in to the merchant portal (/portal) for one merchant: an owner, a
    cashier or an accountant (merchants/user_rules.py says what each may do).

    The password is an argon2id hash (core/passwords.py). `failed_attempts` and `locked_until`
    carry the lockout; `password_changed_at` ends every older portal session (a session started
    before it is refused, web/portal/auth.py)."""

    __tablename__ = "merchant_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    login_name: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    failed_attempts: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_merchant_users_merchant_id", "merchant_id"),)


class MerchantUserLogin(Base):
    """Append-only: every portal login attempt and its outcome (SUCCESS, BAD_PASSWORD,
    UNKNOWN_NAME, LOCKED, LOCKED_OUT, DISABLED). Never updated."""

    __tablename__ = "merchant_user_logins"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    login_name: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    client_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_merchant_user_logins_user_at", "user_id", "at"),)
