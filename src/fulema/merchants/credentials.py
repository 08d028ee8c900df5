"""API credentials: a merchant's apps, their HMAC secrets and optional RSA verification keys.

Secrets leave the platform once, on create or rotate. The gateway and notifications read
credentials on every signed request, so they are cached per process for a few seconds; a
rotation or disable drops the entry in this process at once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import UnsupportedAlgorithm
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import crypto
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.outbound import OutboundPolicy
from fulema.merchants.lifecycle import lock, lock_open, record
from fulema.merchants.models import AppCredentialRow


@dataclass(frozen=True)
class AppCredential:
    """What the gateway needs to verify a merchant's request and sign its notifications."""

    app_id: str
    merchant_id: str
    secret: str
    rsa_public_key_pem: str | None
    notify_url: str | None
    active: bool


@dataclass(frozen=True)
class AppView:
    """An app as operators see it after creation: everything but the secret."""

    app_id: str
    merchant_id: str
    name: str
    rsa_public_key_pem: str | None
    notify_url: str | None
    active: bool
    secret_rotated_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class IssuedSecret:
    """Returned by create and rotate only: the one time the secret leaves the platform."""

    app: AppView
    secret: str


async def create_app_credential(db: Database, *, merchant_id: str, operator: str,
                                name: str = "default", rsa_public_key_pem: str | None = None,
                                notify_url: str | None = None) -> IssuedSecret:
    """A new app with a fresh HMAC secret, returned here and never again."""
    pem = _check_public_key(rsa_public_key_pem)
    _check_notify_url(notify_url)
    async with db.transaction() as s:
        m = await lock_open(s, merchant_id, "create an app")
        now = clock.now()
        secret = _new_secret()
        row = AppCredentialRow(app_id=f"app_{secrets.token_hex(10)}", merchant_id=m.id, name=name,
                               secret=secret, rsa_public_key_pem=pem, notify_url=notify_url,
                               active=True, secret_rotated_at=now, created_at=now, updated_at=now)
        s.add(row)
        await record(s, m, "create_app", m.status, row.app_id, operator)
        return IssuedSecret(app=app_view(row), secret=secret)


async def rotate_secret(db: Database, *, merchant_id: str, app_id: str,
                        operator: str) -> IssuedSecret:
    """A new secret replaces the old one at once (no overlap: a leaked secret dies now)."""
    async with db.transaction() as s:
        m = await lock_open(s, merchant_id, "rotate a secret")
        row = await _app_row(s, m.id, app_id)
        if not row.active:
            raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION,
                              f"cannot rotate the secret of app {app_id}: it is disabled")
        now = clock.now()
        row.secret, row.secret_rotated_at, row.updated_at = _new_secret(), now, now
        await record(s, m, "rotate_secret", m.status, app_id, operator)
        _forget_credential(db, row.app_id)
        return IssuedSecret(app=app_view(row), secret=row.secret)


async def disable_app(db: Database, *, merchant_id: str, app_id: str, operator: str) -> AppView:
    async with db.transaction() as s:
        m = await lock(s, merchant_id)
        row = await _app_row(s, m.id, app_id)
        if row.active:
            row.active, row.updated_at = False, clock.now()
            await record(s, m, "disable_app", m.status, app_id, operator)
        _forget_credential(db, row.app_id)
        return app_view(row)


# Every signed request needs the app's secret; reading it from the database each time was a
# whole transaction on the payment hot path. Credentials are cached per process for a few
# seconds: a rotation or disable in this process takes effect at once, in other processes
# within CREDENTIAL_CACHE_SECONDS (a rotated secret should stay valid that long anyway).
CREDENTIAL_CACHE_SECONDS = 10.0


def _credential_cache(db: Database) -> dict[str, tuple[float, AppCredential]]:
    cache: dict[str, tuple[float, AppCredential]] = db.memo.setdefault("merchants.credentials", {})
    return cache


def _forget_credential(db: Database, app_id: str) -> None:
    _credential_cache(db).pop(app_id, None)


async def get_app_credential(db: Database, *, app_id: str) -> AppCredential:
    """APP_NOT_FOUND if the app does not exist or is disabled."""
    _credentials = _credential_cache(db)
    cached = _credentials.get(app_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    async with db.transaction() as s:
        row = await s.get(AppCredentialRow, app_id)
    if row is None or not row.active:
        _forget_credential(db, app_id)
        raise FulemaError(ErrorCode.APP_NOT_FOUND)
    credential = to_credential(row)
    if len(_credentials) > 100_000:
        _credentials.clear()
    _credentials[app_id] = (time.monotonic() + CREDENTIAL_CACHE_SECONDS, credential)
    return credential


async def default_app_for_merchant(db: Database, *, merchant_id: str) -> AppCredential | None:
    """The merchant's oldest active app (the cashier files plate orders under it), if any."""
    async with db.transaction() as s:
        row = await s.scalar(select(AppCredentialRow)
                             .where(AppCredentialRow.merchant_id == merchant_id,
                                    AppCredentialRow.active.is_(True))
                             .order_by(AppCredentialRow.created_at, AppCredentialRow.app_id)
                             .limit(1))
    return to_credential(row) if row else None


async def _app_row(s: AsyncSession, merchant_id: str, app_id: str) -> AppCredentialRow:
    row = await s.get(AppCredentialRow, app_id)
    if row is None or row.merchant_id != merchant_id:
        # NOT_FOUND, not APP_NOT_FOUND: that one is the gateway's 401 for a signed request.
        raise FulemaError(ErrorCode.NOT_FOUND, f"no app {app_id} for this merchant")
    return row


def _check_public_key(pem: str | None) -> str | None:
    if pem is None or not pem.strip():
        return None
    try:
        key = crypto.load_public_key(pem.strip())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "rsa_public_key_pem: not a PEM RSA public key") from exc
    if key.key_size < 2048:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "rsa_public_key_pem: at least 2048 bits")
    return pem.strip() + "\n"


def _check_notify_url(url: str | None) -> None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "notify_url: an http(s) URL")


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def app_view(r: AppCredentialRow) -> AppView:
    return AppView(app_id=r.app_id, merchant_id=r.merchant_id, name=r.name,
                   rsa_public_key_pem=r.rsa_public_key_pem, notify_url=r.notify_url,
                   active=r.active, secret_rotated_at=r.secret_rotated_at, created_at=r.created_at)


def to_credential(r: AppCredentialRow) -> AppCredential:
    return AppCredential(app_id=r.app_id, merchant_id=r.merchant_id, secret=r.secret,
                         rsa_public_key_pem=r.rsa_public_key_pem, notify_url=r.notify_url,
                         active=r.active)


async def set_notify_url(db: Database, *, merchant_id: str, app_id: str, notify_url: str | None,
                         operator: str, policy: OutboundPolicy) -> AppView:
    """The app's default notify_url (None clears it), checked against the outbound policy
    (NOTIFY_URL_REFUSED: a private, loopback or otherwise refused address)."""
    url = (notify_url or "").strip() or None
    if url is not None and len(url) > 512:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "notify_url: at most 512 characters")
    _check_notify_url(url)
    policy.check_notify_url(url)
    async with db.transaction() as s:
        m = await lock_open(s, merchant_id, "change a notify_url")
        row = await _app_row(s, m.id, app_id)
        if row.notify_url != url:
            row.notify_url, row.updated_at = url, clock.now()
            await record(s, m, "set_notify_url", m.status, app_id, operator)
        _forget_credential(db, row.app_id)
        return app_view(row)
