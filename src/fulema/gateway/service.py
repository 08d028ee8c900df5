"""Merchant authentication: signature, timestamp window and nonce replay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import crypto
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database, table_of
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.text import is_ascii_digits
from fulema.gateway import signing
from fulema.gateway.models import ApiNonce
from fulema.merchants import service as merchants
from fulema.merchants.service import AppCredential


async def authenticate(db: Database, settings: Settings, *, method: str, path: str,
                       headers: dict[str, str], body: bytes,
                       defer_nonce: bool = False) -> AppCredential:
    """Check a merchant request; return its credential or raise a documented error.

    With `defer_nonce` the caller records the nonce itself (`insert_nonce`) in the transaction
    that does the work, so a replay is refused by the same commit that would have acted on it.
    """
    app_id = headers.get(signing.H_APP_ID, "")
    ts_text = headers.get(signing.H_TIMESTAMP, "")
    nonce = headers.get(signing.H_NONCE, "")
    signature = headers.get(signing.H_SIGNATURE, "")
    sign_type = headers.get(signing.H_SIGN_TYPE, signing.HMAC).upper()
    missing = [h for h, v in ((signing.H_APP_ID, app_id), (signing.H_TIMESTAMP, ts_text),
                              (signing.H_NONCE, nonce), (signing.H_SIGNATURE, signature)) if not v]
    if missing:
        raise FulemaError(ErrorCode.SIGNATURE_MISSING, f"missing header(s): {', '.join(missing)}")
    if not (8 <= len(nonce) <= 64):
        raise FulemaError(ErrorCode.SIGNATURE_INVALID, "nonce must be 8 to 64 characters")
    if not is_ascii_digits(ts_text):
        raise FulemaError(ErrorCode.TIMESTAMP_EXPIRED, "timestamp must be unix seconds")
    if abs(clock.timestamp() - int(ts_text)) > settings.signature_tolerance_seconds:
        raise FulemaError(ErrorCode.TIMESTAMP_EXPIRED)
    cred = await merchants.get_app_credential(db, app_id=app_id)
    message = signing.canonical_string(method, path, ts_text, nonce, body)
    if sign_type == signing.HMAC:
        ok = crypto.hmac_sha256_verify(cred.secret, message, signature)
    elif sign_type == signing.RSA:
        if not cred.rsa_public_key_pem:
            raise FulemaError(ErrorCode.SIGNATURE_INVALID, "no RSA public key is registered")
        ok = crypto.rsa_sha256_verify(crypto.load_public_key(cred.rsa_public_key_pem), message,
                                      signature)
    else:
        raise FulemaError(ErrorCode.SIGNATURE_INVALID, f"unknown sign type {sign_type}")
    if not ok:
        raise FulemaError(ErrorCode.SIGNATURE_INVALID)
    if not defer_nonce:
        await remember_nonce(db, app_id=app_id, nonce=nonce)
    return cred


_INSERT_NONCE = insert(table_of(ApiNonce))  # built once: see payments.service
# The table `nonce_row` is a row of, for a caller that carries the nonce's INSERT inside a
# statement of its own (payments' one-statement order create on PostgreSQL).
NONCE_TABLE = table_of(ApiNonce)


def nonce_row(*, app_id: str, nonce: str) -> dict[str, Any]:
    """The row that records a used nonce (`insert_nonce` writes it; its primary key refuses
    a second one with IntegrityError)."""
    return dict(app_id=app_id, nonce=nonce, seen_at=clock.now())


async def insert_nonce(session: AsyncSession, *, app_id: str, nonce: str) -> None:
    """Record the nonce now, with a Core INSERT in the caller's transaction (the order-create
    hot path): IntegrityError at once if it was used."""
    await session.execute(_INSERT_NONCE, nonce_row(app_id=app_id, nonce=nonce))


async def remember_nonce(db: Database, *, app_id: str, nonce: str) -> None:
    """NONCE_REPLAYED if this app used this nonce before."""
    try:
        async with db.transaction() as s:
            await insert_nonce(s, app_id=app_id, nonce=nonce)
    except IntegrityError as exc:
        raise FulemaError(ErrorCode.NONCE_REPLAYED) from exc


async def purge_nonces(db: Database, settings: Settings) -> int:
    """Nonces older than twice the window can never be replayed (the timestamp check wins)."""
    cutoff = clock.now() - timedelta(seconds=2 * settings.signature_tolerance_seconds)
    async with db.transaction() as s:
        result = await s.execute(delete(ApiNonce).where(ApiNonce.seen_at < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]
