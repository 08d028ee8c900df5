"""Browser sessions for the merchant portal (`/portal`) and the operations console (`/console`).

A session is a random 256-bit cookie value (HttpOnly, SameSite=Strict, Secure outside
development, scoped to its realm's path) whose SHA-256 names a `web_sessions` row. Each session
carries its own CSRF token, which every state-changing form posts back (`csrf_ok`): SameSite
already stops cross-site posts in current browsers, the token covers the rest.

Lifetimes: 8 hours at most, 30 minutes idle; `end_all` ends every session of a principal
(password change, freeze, disable).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from starlette.requests import Request
from starlette.responses import Response

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.web.models import WebSession

Realm = Literal["portal", "console"]
MAX_AGE = timedelta(hours=8)
IDLE = timedelta(minutes=30)
_TOUCH_EVERY = timedelta(minutes=1)  # write last_seen_at at most this often


@dataclass(frozen=True)
class Session:
    id: str
    realm: Realm
    principal_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


def cookie_name(realm: Realm) -> str:
    return f"fulema_{realm}"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def start(db: Database, *, realm: Realm, principal_id: str) -> tuple[str, Session]:
    """A new session: (the cookie value to set, the session)."""
    value = secrets.token_urlsafe(32)
    now = clock.now()
    row = WebSession(id=_digest(value), realm=realm, principal_id=principal_id,
                     csrf_token=secrets.token_urlsafe(24), created_at=now, last_seen_at=now,
                     expires_at=now + MAX_AGE)
    async with db.transaction() as s:
        s.add(row)
    return value, _view(row)


def _view(row: WebSession) -> Session:
    realm: Realm = "console" if row.realm == "console" else "portal"
    return Session(id=row.id, realm=realm, principal_id=row.principal_id,
                   csrf_token=row.csrf_token, created_at=row.created_at,
                   expires_at=row.expires_at)


async def load(db: Database, *, realm: Realm, cookie: str | None) -> Session | None:
    """The live session this cookie names in this realm, or None (absent, unknown, expired,
    idle too long, revoked, or another realm's)."""
    if not cookie or len(cookie) > 100 or not cookie.isascii():
        return None
    now = clock.now()
    async with db.transaction() as s:
        row = await s.get(WebSession, _digest(cookie))
        if (row is None or row.realm != realm or row.revoked_at is not None
                or row.expires_at <= now or row.last_seen_at + IDLE <= now):
            return None
        if now - row.last_seen_at >= _TOUCH_EVERY:
            row.last_seen_at = now
        return _view(row)


async def current(request: Request, realm: Realm) -> Session | None:
    return await load(request.app.state.db, realm=realm,
                      cookie=request.cookies.get(cookie_name(realm)))


async def end(db: Database, *, realm: Realm, cookie: str | None) -> None:
    if not cookie or not cookie.isascii():
        return
    async with db.transaction() as s:
        await s.execute(update(WebSession)
                        .where(WebSession.id == _digest(cookie), WebSession.realm == realm,
                               WebSession.revoked_at.is_(None))
                        .values(revoked_at=clock.now()))


async def end_all(db: Database, *, realm: Realm, principal_id: str) -> int:
    """Ends every live session of one principal; returns how many."""
    async with db.transaction() as s:
        ids = (await s.scalars(select(WebSession.id).where(
            WebSession.realm == realm, WebSession.principal_id == principal_id,
            WebSession.revoked_at.is_(None)))).all()
        if ids:
            await s.execute(update(WebSession).where(WebSession.id.in_(ids))
                            .values(revoked_at=clock.now()))
    return len(ids)


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf_token.encode(),
                                               str(token).encode("utf-8", "replace"))


def set_cookie(response: Response, *, realm: Realm, value: str, secure: bool) -> None:
    response.set_cookie(cookie_name(realm), value, max_age=int(MAX_AGE.total_seconds()),
                        path=f"/{realm}", httponly=True, samesite="strict", secure=secure)


def clear_cookie(response: Response, *, realm: Realm) -> None:
    response.delete_cookie(cookie_name(realm), path=f"/{realm}")
