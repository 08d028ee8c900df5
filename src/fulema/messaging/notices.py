"""In-portal notices: risk alerts and settlement payouts, delivered once per event.

The risk context publishes `risk.alert` {alert_id, kind, merchant_id, severity, summary}; the
settlement context `settlement.paid` {payout_id, merchant_id, amount, ...} when a payout
reached the merchant's account ("结算款 12.50 元已到账"). Each becomes one unread notice,
unless the merchant it names switched notices off for that event (`messaging.subscriptions`),
listed under /ops/v1/messages/notices until an operator marks it read.

A notice that names a merchant is also that merchant's own: it lists and marks it read through
the signed merchant API (/api/v1/notices) and the portal (/portal/notices). Every merchant-side
read is scoped by the merchant id in the statement itself, so another merchant's notice is
simply not found (`NOTICE_NOT_FOUND`), never shown or changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import Event, first_delivery
from fulema.core.ids import new_id
from fulema.messaging import subscriptions, templates
from fulema.messaging.models import Notice

log = structlog.get_logger(__name__)

CONSUMER = "messaging.notices"
TOPICS = ("risk.alert", "settlement.paid")


@dataclass(frozen=True)
class NoticeView:
    id: str
    kind: str
    severity: str
    merchant_id: str | None
    summary: str
    created_at: datetime
    read_at: datetime | None
    read_by: str | None


def _view(n: Notice) -> NoticeView:
    return NoticeView(id=n.id, kind=n.kind, severity=n.severity, merchant_id=n.merchant_id,
                      summary=n.summary, created_at=n.created_at, read_at=n.read_at,
                      read_by=n.read_by)


SEVERITY_INFO = "info"


def _fields(event: Event) -> dict[str, Any] | None:
    """The notice's kind, severity and text fields for an event, or None for a payload it
    cannot be about (logged by the caller)."""
    p = event.payload
    if event.topic == "settlement.paid":
        if not isinstance(p.get("amount"), int) or not isinstance(p.get("merchant_id"), str):
            return None
        return {"kind": "settlement.paid", "severity": SEVERITY_INFO, "amount": p["amount"]}
    return {"kind": str(p.get("kind", "alert")), "severity": str(p.get("severity", "info")),
            "summary": str(p.get("summary", ""))}


async def notice_from_event(db: Database, event: Event) -> None:
    """risk.alert or settlement.paid -> one notice, unless the merchant the event names
    switched its notices off (messaging.subscriptions). Every event leaves its receipt, so a
    redelivery after the switch is turned on writes nothing; the unique event id on the
    notice stays as a second lock (notices written before receipts were kept)."""
    fields = _fields(event)
    if fields is None:
        log.warning("notice.event_ignored", event_id=event.id, topic=event.topic)
        return
    merchant_id = event.payload.get("merchant_id") or None
    try:
        async with db.transaction() as s:
            if not await first_delivery(s, CONSUMER, event.id):
                return
            if isinstance(merchant_id, str) and "notice" not in (
                    await subscriptions.enabled_channels(s, {merchant_id}, event.topic)
            )[merchant_id]:
                return
            s.add(Notice(id=new_id("ntc"), event_id=event.id, kind=fields["kind"][:32],
                         severity=fields["severity"][:16],
                         merchant_id=merchant_id if isinstance(merchant_id, str) else None,
                         summary=templates.render(event.topic, "notice", fields)[:512],
                         created_at=clock.now(), read_at=None, read_by=None))
    except IntegrityError:
        return  # already delivered


async def list_notices(db: Database, *, unread_only: bool, limit: int) -> list[NoticeView]:
    async with db.transaction() as s:
        q = select(Notice).order_by(Notice.created_at.desc(), Notice.id.desc()).limit(limit)
        if unread_only:
            q = q.where(Notice.read_at.is_(None))
        return [_view(n) for n in await s.scalars(q)]


async def list_notices_of(db: Database, *, merchant_id: str, unread_only: bool, limit: int,
                          starting_after: str | None = None) -> tuple[list[NoticeView], bool]:
    """One merchant's notices, newest first (ids are time-ordered), a page of `limit` after the
    id `starting_after`, and whether more follow (one row more is read to know)."""
    q = (select(Notice).where(Notice.merchant_id == merchant_id)
         .order_by(Notice.id.desc()).limit(limit + 1))
    if unread_only:
        q = q.where(Notice.read_at.is_(None))
    if starting_after:
        q = q.where(Notice.id < starting_after)
    async with db.transaction() as s:
        found = [_view(n) for n in await s.scalars(q)]
    return found[:limit], len(found) > limit


UNREAD_SHOWN_MAX = 99


async def unread_count(db: Database, *, merchant_id: str) -> int:
    """How many of the merchant's notices are unread, counted up to UNREAD_SHOWN_MAX + 1 (the
    portal shows "99+"): the navigation asks on every page, so the count reads a bounded
    stretch of the (merchant_id, read_at, id) index however many notices pile up."""
    some = (select(Notice.id).where(Notice.merchant_id == merchant_id, Notice.read_at.is_(None))
            .limit(UNREAD_SHOWN_MAX + 1).subquery())
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(some)) or 0)


async def mark_read_of(db: Database, *, merchant_id: str, notice_id: str,
                       reader: str) -> NoticeView:
    """Mark one of the merchant's own notices read (again: a no-op keeping the first reader).
    A notice of another merchant, or of no merchant (the operators' own), is NOTICE_NOT_FOUND
    and stays as it was: the merchant id is part of the UPDATE's and the read's WHERE."""
    async with db.transaction() as s:
        await s.execute(update(Notice).where(Notice.id == notice_id,
                                             Notice.merchant_id == merchant_id,
                                             Notice.read_at.is_(None))
                        .values(read_at=clock.now(), read_by=reader[:64]))
        n = (await s.scalars(select(Notice).where(Notice.id == notice_id,
                                                   Notice.merchant_id == merchant_id))).first()
        if n is None:
            raise FulemaError(ErrorCode.NOTICE_NOT_FOUND, f"no notice {notice_id[:40]}")
        return _view(n)


async def mark_read(db: Database, *, notice_id: str, operator: str) -> NoticeView:
    async with db.transaction() as s:
        await s.execute(update(Notice).where(Notice.id == notice_id, Notice.read_at.is_(None))
                        .values(read_at=clock.now(), read_by=operator))
        n = await s.get(Notice, notice_id)
        if n is None:
            raise FulemaError(ErrorCode.NOT_FOUND, f"no notice {notice_id}")
        return _view(n)
