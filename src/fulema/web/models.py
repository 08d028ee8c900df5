"""Page sessions: one row per logged-in browser, for the merchant portal and the console.

Server-side rows rather than signed cookies, so that a logout, a password change, a frozen
merchant or a disabled operator ends every session at once. Only the SHA-256 of the cookie's
random value is stored: a leaked table opens no session.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.db import Base, UTCDateTime


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie value
    realm: Mapped[str] = mapped_column(String(16))  # "portal" | "console"
    principal_id: Mapped[str] = mapped_column(String(40))  # merchant user id | operator id
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (Index("ix_web_sessions_principal", "realm", "principal_id"),)
